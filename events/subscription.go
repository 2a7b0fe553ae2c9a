package events

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/carrier"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/internal/outage"
	"github.com/keelpg/keel/internal/service"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/listener"
)

// Handler handles one event of a subscription inside tx, the transaction
// that also advances the subscription's checkpoint: whatever the handler
// writes through tx commits exactly when the event counts as handled. It must
// not commit or roll back tx. An error (or a panic) rolls the batch back and
// the event is retried.
type Handler func(ctx context.Context, tx pgx.Tx, ev RecordedEvent) error

// SubscriptionConfig configures a Subscription. Name and Handler are
// required; every other field has a default.
type SubscriptionConfig struct {
	// Name identifies the subscription and its checkpoint. Every process
	// that runs a subscription of this name shares one checkpoint, and only
	// one of them handles events at a time.
	Name string
	// Category restricts the subscription to streams of one category.
	// Default: the whole feed. It cannot change once the subscription ran.
	Category string
	// Handler handles each event.
	Handler Handler
	// BatchSize is the most events handled in one transaction. Default: 100.
	BatchSize int
	// PollInterval is how often the subscription looks for events when no
	// notification woke it. Default: 1s.
	PollInterval time.Duration
	// Lease is how long a consumer holds the subscription without renewing
	// it; when a consumer dies, another takes over after at most this long.
	// Default: 30s.
	Lease time.Duration
	// MaxAttempts is how many times in a row the handler may fail on one
	// event before the subscription is parked. Default: 10.
	MaxAttempts int
	// RetryPolicy gives the wait before the next attempt after a handler
	// failed. Default: keeltype.ExponentialBackoff{Initial: 1s, Max: 5m,
	// Jitter: 0.25}.
	RetryPolicy keeltype.RetryPolicy
	// ConsumerID names this consumer in the subscription's row.
	// Default: host name, process id and a random suffix.
	ConsumerID string
}

func (c SubscriptionConfig) withDefaults() (SubscriptionConfig, error) {
	if err := c.check(); err != nil {
		return c, err
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.RetryPolicy == nil {
		c.RetryPolicy = defaultRetryPolicy
	}
	if c.ConsumerID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = crand.Read(b[:])
		c.ConsumerID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return c, nil
}

// Subscription is a durable catch-up subscription over the global feed or
// one category. Create it with Store.NewSubscription and Start it (or call
// Run).
type Subscription struct {
	store  *Store
	cfg    SubscriptionConfig
	runner service.Runner
}

// Subscription returns a subscription; it touches the database only in Run.
// A config that names no handler, or a name, category or consumer id that
// could not be stored (see the package's Limits), is ErrInvalidArgument.
func (s *Store) NewSubscription(cfg SubscriptionConfig) (*Subscription, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Subscription{store: s, cfg: cfg}, nil
}

// handlerFailure is a handler's error on the event at position.
type handlerFailure struct {
	position int64
	err      error
}

func (f *handlerFailure) Error() string {
	return fmt.Sprintf("handler failed on the event at position %d: %v", f.position, f.err)
}

func (f *handlerFailure) Unwrap() error { return f.err }

// errLostLease ends a batch whose consumer no longer holds the subscription.
var errLostLease = errors.New("keel events: subscription lease lost")

// Start runs the subscription in the background and returns at once (ctx
// only scopes the start); Stop or StopAndCancel ends it. It returns
// ErrStarted while the subscription runs and ErrClosed on a closed store.
func (sub *Subscription) Start(ctx context.Context) error {
	if err := sub.store.usable(); err != nil {
		return err
	}
	err := sub.runner.Start(ctx, sub.runLoop)
	if errors.Is(err, service.ErrStarted) {
		return ErrStarted
	}
	return err
}

// Stop stops taking events, lets the batch in hand commit its checkpoint,
// gives up the lease and returns. When ctx ends first, the batch in hand
// rolls back (its events are handled again) and Stop returns ctx's error.
// It returns the error the subscription stopped on by itself, if it did.
func (sub *Subscription) Stop(ctx context.Context) error { return sub.runner.Stop(ctx) }

// StopAndCancel is Stop that also cancels the batch in hand at once: its
// handler's context ends and its transaction rolls back.
func (sub *Subscription) StopAndCancel(ctx context.Context) error {
	return sub.runner.StopAndCancel(ctx)
}

// Run is Start and Stop in one blocking call: it handles events from the
// subscription's checkpoint on until ctx ends, then gives up its lease and
// returns nil. It waits while another consumer holds the subscription and
// takes over when that one stops or its lease runs out. A parked
// subscription waits for SubscriptionResume. It returns an error only when
// it cannot go on: the subscription's row names another category, the store
// is or gets closed (ErrClosed), or its pool is closed.
func (sub *Subscription) Run(ctx context.Context) error { return sub.runLoop(ctx, ctx) }

func (sub *Subscription) runLoop(loop, work context.Context) error {
	s := sub.store
	if err := s.usable(); err != nil {
		return err
	}
	// Closing the store ends the run as ending ctx does, but with ErrClosed.
	loopCtx, stopLoop := context.WithCancel(loop)
	defer stopLoop()
	defer context.AfterFunc(s.ctx, stopLoop)()
	workCtx, stopWork := context.WithCancel(work)
	defer stopWork()
	defer context.AfterFunc(s.ctx, stopWork)()
	err := sub.run(loopCtx, workCtx)
	if err == nil && loop.Err() == nil && s.closed.Load() {
		return ErrClosed
	}
	return err
}

// run handles events until loop ends; ctx scopes the batch in hand.
func (sub *Subscription) run(loop, ctx context.Context) error {
	s, cfg := sub.store, sub.cfg
	q := db.New(s.pool)
	var category *string
	if cfg.Category != "" {
		category = &cfg.Category
	}
	if err := q.EnsureSubscription(ctx, db.EnsureSubscriptionParams{Name: cfg.Name, Category: category}); err != nil {
		return fmt.Errorf("keel events: subscription %q: %w", cfg.Name, err)
	}
	existing, err := q.GetSubscription(ctx, cfg.Name)
	if err != nil {
		return fmt.Errorf("keel events: subscription %q: %w", cfg.Name, err)
	}
	if deref(existing.Category) != cfg.Category {
		return fmt.Errorf("%w: subscription %q follows category %q, not %q", ErrInvalidArgument, cfg.Name, deref(existing.Category), cfg.Category)
	}
	wake := s.wakeups()
	defer wake.Close()
	defer sub.release(ctx)
	log := s.cfg.Logger.With("subscription", cfg.Name, "consumer", cfg.ConsumerID)
	owned := false
	var rechecks notify.Rechecks
	var backoff outage.Backoff
	// pause logs err unless it is an outage (the tracker logs those once)
	// and waits: a backoff through an outage, else the poll.
	pause := func(what string, err error) {
		if s.outage.Failed(err) {
			sub.wait(loop, wake, backoff.Next())
			return
		}
		log.WarnContext(ctx, what, "error", err)
		sub.wait(loop, wake, cfg.PollInterval)
	}
	for loop.Err() == nil {
		row, err := q.ClaimSubscription(ctx, db.ClaimSubscriptionParams{Owner: cfg.ConsumerID, Lease: interval(cfg.Lease), Name: cfg.Name})
		if err == nil || errors.Is(err, pgx.ErrNoRows) {
			s.outage.Succeeded()
			backoff.Reset()
		}
		switch {
		case loop.Err() != nil:
			return nil
		case outage.PoolClosed(err):
			return outage.Closed("events subscription "+cfg.Name, err)
		case errors.Is(err, pgx.ErrNoRows):
			if owned {
				log.InfoContext(ctx, "keel events: subscription taken over by another consumer")
			}
			owned = false
			sub.wait(loop, wake, cfg.PollInterval)
			continue
		case err != nil:
			pause("keel events: claiming subscription", err)
			continue
		}
		if !owned {
			log.InfoContext(ctx, "keel events: subscription acquired", "position", row.Position)
			owned = true
		}
		if row.Status == "parked" {
			sub.wait(loop, wake, cfg.PollInterval)
			continue
		}
		if row.RetryAt.Valid && time.Until(row.RetryAt.Time) > 0 {
			sub.wait(loop, wake, min(time.Until(row.RetryAt.Time), cfg.PollInterval))
			continue
		}
		if err := s.Sequence(ctx); err != nil && ctx.Err() == nil && !s.outage.Failed(err) {
			log.WarnContext(ctx, "keel events: sequencing", "error", err)
		}
		limit := cfg.BatchSize
		if row.Attempts > 0 {
			limit = 1 // after a failure, go event by event up to the failing one
		}
		n, err := sub.batch(ctx, limit)
		var failed *handlerFailure
		switch {
		case loop.Err() != nil:
			return nil
		case outage.PoolClosed(err):
			return outage.Closed("events subscription "+cfg.Name, err)
		case errors.As(err, &failed):
			if err := sub.fail(ctx, log, failed, row.Attempts); err != nil {
				pause("keel events: recording a handler failure", err)
			}
		case errors.Is(err, errLostLease):
			owned = false
		case err != nil:
			pause("keel events: subscription batch", err)
		case n < limit:
			if n > 0 {
				rechecks.Found()
			}
			if sub.wait(loop, wake, rechecks.Wait(cfg.PollInterval)) {
				rechecks.Woken()
			}
		}
	}
	return nil
}

// batch handles up to limit events after the checkpoint in one transaction
// and advances the checkpoint in it. It returns how many it handled.
func (sub *Subscription) batch(ctx context.Context, limit int) (int, error) {
	s, cfg := sub.store, sub.cfg
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := db.New(tx)
	fence, err := q.FenceSubscription(ctx, db.FenceSubscriptionParams{Lease: interval(cfg.Lease), Name: cfg.Name, Owner: cfg.ConsumerID})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, errLostLease
	}
	if err != nil {
		return 0, err
	}
	opts := &FeedOpts{After: fence.Position, Limit: limit}
	var evs []RecordedEvent
	if fence.Category != nil {
		evs, err = s.ReadCategory(ctx, tx, *fence.Category, opts)
	} else {
		evs, err = s.ReadAll(ctx, tx, opts)
	}
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	for _, ev := range evs {
		hctx, end := s.cfg.Hook.Start(ctx, keeltype.Operation{
			Kind: keeltype.OpEventsHandle, Name: cfg.Name, ID: ev.ID.String(),
			Scheduled: ev.RecordedAt, Carrier: carrier.FromMetadata(ev.Metadata),
		})
		err := safeHandle(hctx, cfg.Handler, tx, ev)
		end(keeltype.Outcome{Err: err})
		if err != nil {
			return 0, &handlerFailure{position: ev.Position, err: err}
		}
	}
	last := evs[len(evs)-1]
	err = q.AdvanceSubscription(ctx, db.AdvanceSubscriptionParams{Position: last.Position, Name: cfg.Name, Owner: cfg.ConsumerID})
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil && ctx.Err() == nil && !outage.Is(err) {
		// The handlers returned nil, yet the checkpoint does not commit: one
		// of them left tx failed (an error it swallowed), closed it, or wrote
		// what a deferred constraint refuses. That is a handler failure, to
		// retry and park like a returned error, not a loop; going event by
		// event finds the one at fault.
		return 0, &handlerFailure{position: last.Position, err: fmt.Errorf("the checkpoint did not commit after the handler returned nil: %w", err)}
	}
	if err != nil {
		return 0, err
	}
	if _, none := s.cfg.Hook.(keeltype.NoHook); none {
		return len(evs), nil
	}
	if head, err := db.New(s.pool).HeadPosition(ctx); err == nil {
		s.cfg.Hook.Measure(ctx, keeltype.Measurement{
			Kind: keeltype.MeasureSubscriptionLag, Name: cfg.Name,
			Value: max(head-last.Position, 0), Age: time.Since(last.RecordedAt),
		})
	}
	return len(evs), nil
}

// safeHandle runs the handler, turning a panic into an error.
func safeHandle(ctx context.Context, h Handler, tx pgx.Tx, ev RecordedEvent) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, tx, ev)
}

// fail records a handler failure; the next attempt waits a backoff, and the
// subscription parks after MaxAttempts. Its error is the failure to record
// it, for the caller to wait on rather than retry at once.
func (sub *Subscription) fail(ctx context.Context, log *slog.Logger, f *handlerFailure, attempts int32) error {
	cfg := sub.cfg
	retryAt := time.Now().Add(max(cfg.RetryPolicy.NextRetry(int(attempts)+1, f.err), 0))
	row, err := db.New(sub.store.pool).FailSubscription(ctx, db.FailSubscriptionParams{
		LastError: validate.ErrorText(f.err.Error()), FailedPosition: f.position, RetryAt: timestamptz(retryAt),
		MaxAttempts: int32(cfg.MaxAttempts), Name: cfg.Name, Owner: cfg.ConsumerID,
	})
	if err != nil {
		return fmt.Errorf("keel events: recording the handler failure %q: %w", f.err, err)
	}
	if row.Status == "parked" {
		log.ErrorContext(ctx, "keel events: subscription parked after repeated handler failures",
			"position", f.position, "attempts", row.Attempts, "error", f.err)
		return nil
	}
	log.WarnContext(ctx, "keel events: handler failed; will retry", "position", f.position,
		"attempts", row.Attempts, "retry_at", retryAt, "error", f.err)
	return nil
}

// defaultRetryPolicy is SubscriptionConfig.RetryPolicy's default.
var defaultRetryPolicy = keeltype.ExponentialBackoff{Initial: time.Second, Max: 5 * time.Minute, Jitter: 0.25}

// wait returns after d, on a wake-up notification or when ctx ends.
func (sub *Subscription) wait(ctx context.Context, wake *listener.Subscription, d time.Duration) (woken bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake.C:
		return true
	case <-t.C:
	}
	return false
}

// release gives the lease up so another consumer can take over at once.
func (sub *Subscription) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := db.New(sub.store.pool).ReleaseSubscription(ctx, db.ReleaseSubscriptionParams{Name: sub.cfg.Name, Owner: sub.cfg.ConsumerID})
	if err != nil {
		sub.store.cfg.Logger.WarnContext(ctx, "keel events: releasing subscription", "subscription", sub.cfg.Name, "error", err)
	}
}

func interval(d time.Duration) pgtype.Interval {
	return pgtype.Interval{Microseconds: d.Microseconds(), Valid: true}
}
