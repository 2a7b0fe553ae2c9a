package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/internal/outage"
	"github.com/keelpg/keel/internal/periodic"
	"github.com/keelpg/keel/internal/service"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/listener"
)

// Publisher sends messages to where they go: Kafka, NATS, SQS, a webhook.
type Publisher interface {
	// Publish sends a batch and returns one error per delivery, in the same
	// order; nil means delivered. A batch never holds two messages with the
	// same key, so a Publisher may send a batch's messages concurrently. A
	// result of the wrong length fails the whole batch.
	Publish(ctx context.Context, batch []Delivery) []error
}

// PublisherFunc publishes one message at a time, in batch order.
type PublisherFunc func(ctx context.Context, d Delivery) error

// Publish implements Publisher.
func (f PublisherFunc) Publish(ctx context.Context, batch []Delivery) []error {
	errs := make([]error, len(batch))
	for i, d := range batch {
		errs[i] = f(ctx, d)
	}
	return errs
}

// RelayConfig configures a Relay. The zero value is ready to use.
type RelayConfig struct {
	// Name identifies the relay in leases and logs: UTF-8 without NUL, at
	// most 255 bytes. Default: host-pid-random.
	Name string
	// BatchSize is how many messages one claim takes, at most 2^31-1.
	// Default: 500.
	BatchSize int
	// Lease is how long a claim lasts; a message claimed by a relay that died
	// is taken again after it. Keep it well above the publisher's time for a
	// batch. Default: 30s.
	Lease time.Duration
	// PollInterval is how often an idle relay looks for work when no
	// notification wakes it. Default: 1s.
	PollInterval time.Duration
	// MaxAttempts is how many times a message is tried before it is dead,
	// at most 2^31-1. Default: 10.
	MaxAttempts int
	// RetryPolicy gives the wait before the next attempt of a message whose
	// attempt failed. Default: keeltype.ExponentialBackoff{Initial: 1s,
	// Max: 1h, Jitter: 0.25} — about 1s, 2s, 4s … up to an hour.
	RetryPolicy keeltype.RetryPolicy
	// Retention is how long delivered messages are kept before deletion.
	// Negative keeps them forever. Default: 24h.
	Retention time.Duration
	// Logger receives the relay's logs. Default: nothing is logged.
	Logger *slog.Logger
	// Hook observes the relay: each message's publishing
	// (keeltype.OpOutboxPublish), the age of the oldest undelivered message
	// (keeltype.MeasureOutboxLag) and outages. Default: none.
	Hook keeltype.Hook
	// Listener is the LISTEN connection the relay shares with the
	// process's other keel components (see package listener). Default: the
	// relay opens its own.
	Listener *listener.Listener
}

// defaultRetryPolicy is RelayConfig.RetryPolicy's default.
var defaultRetryPolicy = keeltype.ExponentialBackoff{Initial: time.Second, Max: time.Hour, Jitter: 0.25}

// retentionKey is the advisory lock key of the retention duty.
const retentionKey int64 = 0x6b6f7574726574 // "koutret"

// Relay publishes committed messages, at least once, in order per key. Any
// number of relays may run against one database, in one process or many.
type Relay struct {
	pool   *pgxpool.Pool
	pub    Publisher
	cfg    RelayConfig
	log    *slog.Logger
	outage *outage.Tracker
	runner service.Runner
}

// NewRelay returns a relay that hands messages to pub. Start (or Run)
// runs it. A nil
// pool or publisher, or a RelayConfig out of range, fails with
// ErrInvalidArgument.
func NewRelay(pool *pgxpool.Pool, pub Publisher, cfg RelayConfig) (*Relay, error) {
	switch {
	case pool == nil:
		return nil, invalidArgument("NewRelay needs a pool")
	case isNil(pub):
		return nil, invalidArgument("NewRelay needs a publisher")
	}
	if err := checkRelayConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		host, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.N(1<<16))
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 500
	}
	if cfg.Lease == 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.RetryPolicy == nil {
		cfg.RetryPolicy = defaultRetryPolicy
	}
	if cfg.Retention == 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.Hook == nil {
		cfg.Hook = keeltype.NoHook{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("relay", cfg.Name)
	return &Relay{pool: pool, pub: pub, cfg: cfg, log: log, outage: outage.NewTracker("outbox relay", log, outage.Report(cfg.Hook))}, nil
}

// Start runs the relay in the background and returns at once (ctx only
// scopes the start); Stop or StopAndCancel ends it. It returns ErrStarted
// while the relay runs.
func (r *Relay) Start(ctx context.Context) error {
	err := r.runner.Start(ctx, r.run)
	if errors.Is(err, service.ErrStarted) {
		return ErrStarted
	}
	return err
}

// Stop stops claiming, lets the batch in hand be published and recorded,
// and returns once the relay has stopped. When ctx ends first, the batch in
// hand is abandoned (its messages go out again after their lease) and Stop
// returns ctx's error. It returns the error the relay stopped on by itself,
// if it did (a closed pool).
func (r *Relay) Stop(ctx context.Context) error { return r.runner.Stop(ctx) }

// StopAndCancel is Stop that also cancels the publishing in hand at once.
func (r *Relay) StopAndCancel(ctx context.Context) error { return r.runner.StopAndCancel(ctx) }

// Run runs the relay until ctx ends, then returns nil: Start and Stop in
// one blocking call. It returns an error only when the relay cannot go on:
// its pool was closed.
//
// The relay wakes on enqueue notifications and polls every PollInterval,
// and it deletes delivered messages past Retention (one relay at a time
// does that).
func (r *Relay) Run(ctx context.Context) error { return r.run(ctx, ctx) }

// run publishes until loop ends; work scopes the batch in hand.
func (r *Relay) run(loop, work context.Context) error {
	loop, cancel := context.WithCancel(loop)
	defer cancel()
	l := r.cfg.Listener
	if l == nil {
		l = listener.New(r.pool, r.log)
	}
	wake := l.Subscribe(Channel, 1)
	defer wake.Close()
	done := make(chan struct{}, 2)
	go func() { _ = l.Run(loop); done <- struct{}{} }()
	go func() {
		_ = periodic.Run(loop, r.pool, r.retentionDuty(), r.log, r.outage) // a closed pool ends the relay too
		done <- struct{}{}
	}()
	defer func() { cancel(); <-done; <-done }()

	// A batch's outcome is recorded while the next batch is claimed and
	// published. A claim that ran while an outcome was being recorded may
	// have missed messages that recording unblocks (the next of a key), so
	// the relay only sleeps after a claim that ran alone and came back short.
	var pending *outcome
	defer func() {
		if pending != nil {
			r.recordLogged(work, *pending)
		}
	}()
	lastLag := time.Time{}
	var rechecks notify.Rechecks
	var backoff outage.Backoff
	for {
		overlapped := pending != nil
		recorded := make(chan struct{})
		go func(o *outcome) {
			defer close(recorded)
			if o != nil {
				r.recordLogged(work, *o)
			}
		}(pending)
		o, err := r.claimAndPublish(work, nil)
		<-recorded
		pending = nil
		if o.claimed > 0 {
			pending = &o
		}
		if outage.PoolClosed(err) {
			return outage.Closed("outbox relay", err)
		}
		if loop.Err() != nil {
			return nil
		}
		wait := r.cfg.PollInterval
		switch {
		case err == nil:
			r.outage.Succeeded()
			backoff.Reset()
		case r.outage.Failed(err):
			wait = backoff.Next()
		default:
			r.log.WarnContext(loop, "keel outbox: relay batch failed", "error", err)
		}
		if time.Since(lastLag) >= r.cfg.PollInterval {
			lastLag = time.Now()
			r.reportLag(work)
		}
		if o.claimed > 0 {
			rechecks.Found()
		}
		if err == nil && (o.claimed == r.cfg.BatchSize || overlapped || pending != nil) {
			continue
		}
		select {
		case <-loop.Done():
			return nil
		case <-wake.C:
			rechecks.Woken()
		case <-time.After(rechecks.Wait(wait)):
		}
	}
}

func (r *Relay) recordLogged(ctx context.Context, o outcome) {
	if err := r.record(ctx, o); err != nil {
		r.log.WarnContext(ctx, "keel outbox: recording a batch failed; its messages go out again after the lease", "error", err)
	}
}

func (r *Relay) reportLag(ctx context.Context) {
	oldest, err := db.New(r.pool).OutboxOldestPending(ctx)
	lag := keeltype.Measurement{Kind: keeltype.MeasureOutboxLag}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		r.cfg.Hook.Measure(ctx, lag)
	case err == nil:
		lag.Age = max(time.Since(oldest.Time), 0)
		r.cfg.Hook.Measure(ctx, lag)
	}
}

// outcome is a published batch waiting to be recorded.
type outcome struct {
	claimed  int
	stopping bool // the relay was stopping while it published
	now      pgtype.Timestamptz
	batch    []Delivery
	seqs     []int64
	errs     []error
	bad      []int64 // claimed rows that could not be decoded
	badErrs  []error
}

// RunOnce claims one batch, publishes it and records the outcome, on the
// calling goroutine; it returns how many messages it claimed. It is for
// tools and tests that drive a relay step by step: a service Starts it.
func (r *Relay) RunOnce(ctx context.Context) (int, error) { return r.runOnce(ctx, nil) }

// runOnce is RunOnce at a moved clock for claims and retries (nil: the
// database's); tests use it to skip backoff waits. A clock so near the end
// of Postgres's time range that a lease or backoff would run past it fails
// with ErrInvalidArgument.
func (r *Relay) runOnce(ctx context.Context, now *time.Time) (int, error) {
	if err := checkClock(now); err != nil {
		return 0, err
	}
	o, err := r.claimAndPublish(ctx, now)
	if err != nil || o.claimed == 0 {
		return o.claimed, err
	}
	return o.claimed, r.record(ctx, o)
}

func (r *Relay) claimAndPublish(ctx context.Context, now *time.Time) (outcome, error) {
	rows, err := db.New(r.pool).OutboxClaim(ctx, db.OutboxClaimParams{
		Now: timestamp(now), LeaseMs: r.cfg.Lease.Milliseconds(), Relay: r.cfg.Name, BatchSize: int32(r.cfg.BatchSize),
	})
	if err != nil {
		return outcome{}, fmt.Errorf("keel outbox: claim: %w", err)
	}
	o := outcome{
		claimed: len(rows), now: timestamp(now),
		batch: make([]Delivery, 0, len(rows)), seqs: make([]int64, 0, len(rows)),
	}
	if len(rows) == 0 {
		return o, nil
	}
	for _, row := range rows {
		h, err := decodeHeaders(row.Headers)
		if err != nil {
			o.bad, o.badErrs = append(o.bad, row.Seq), append(o.badErrs, err)
			continue
		}
		d := Delivery{
			Message:    Message{ID: row.ID, Topic: row.Topic, Type: row.Type, Payload: row.Payload, Headers: h},
			Attempt:    int(row.Attempts),
			EnqueuedAt: row.CreatedAt.Time,
		}
		if row.Key != nil {
			d.Key = *row.Key
		}
		o.batch = append(o.batch, d)
		o.seqs = append(o.seqs, row.Seq)
	}
	ends := make([]func(keeltype.Outcome), len(o.batch))
	for i, d := range o.batch {
		_, ends[i] = r.cfg.Hook.Start(ctx, keeltype.Operation{
			Kind: keeltype.OpOutboxPublish, Name: d.Topic, ID: d.ID.String(), Attempt: d.Attempt,
			Scheduled: d.EnqueuedAt, Carrier: maps.Clone(d.Headers),
		})
	}
	o.errs = r.pub.Publish(ctx, o.batch)
	if len(o.errs) != len(o.batch) {
		err := fmt.Errorf("keel outbox: publisher returned %d results for %d messages", len(o.errs), len(o.batch))
		o.errs = make([]error, len(o.batch))
		for i := range o.errs {
			o.errs[i] = err
		}
	}
	o.stopping = ctx.Err() != nil
	for i, end := range ends {
		switch {
		case o.errs[i] == nil:
			end(keeltype.Outcome{State: "delivered"})
		case o.stopping:
			end(keeltype.Outcome{Err: o.errs[i], State: "released"})
		default:
			end(keeltype.Outcome{Err: o.errs[i], State: "failed"})
		}
	}
	return o, nil
}

// writeTimeout bounds one statement that records an outcome.
const writeTimeout = 30 * time.Second

// write runs one statement of a batch's outcome until it is written.
// Through an outage it retries with a capped exponential backoff while
// runCtx lives; once the relay stops it tries once more and then leaves the
// messages to their lease, after which they go out again. A statement's own
// error is returned at once.
func (r *Relay) write(runCtx context.Context, stmt func(ctx context.Context) error) error {
	var backoff outage.Backoff
	for {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		err := stmt(ctx)
		cancel()
		if err == nil {
			r.outage.Succeeded()
			return nil
		}
		if !r.outage.Failed(err) || backoff.Wait(runCtx) != nil {
			return err
		}
	}
}

// record writes a batch's outcome, through an outage while the relay runs
// (see write): a delivered message left unrecorded would be published again.
func (r *Relay) record(runCtx context.Context, o outcome) error {
	var ok, failed, released []int64
	var failedErrs []error
	var failedDeliveries []Delivery
	for i, err := range o.errs {
		switch {
		case err == nil:
			ok = append(ok, o.seqs[i])
		case o.stopping:
			released = append(released, o.seqs[i])
		default:
			failed, failedErrs, failedDeliveries = append(failed, o.seqs[i]), append(failedErrs, err), append(failedDeliveries, o.batch[i])
		}
	}
	failed, failedErrs = append(failed, o.bad...), append(failedErrs, o.badErrs...)
	q := db.New(r.pool)
	if len(ok) > 0 {
		if err := r.write(runCtx, func(ctx context.Context) error {
			_, err := q.OutboxMarkDelivered(ctx, db.OutboxMarkDeliveredParams{Now: o.now, Seqs: ok})
			return err
		}); err != nil {
			return fmt.Errorf("keel outbox: recording deliveries: %w", err)
		}
	}
	if len(released) > 0 {
		if err := r.write(runCtx, func(ctx context.Context) error {
			return q.OutboxRelease(ctx, db.OutboxReleaseParams{Seqs: released, Relay: r.cfg.Name})
		}); err != nil {
			return fmt.Errorf("keel outbox: releasing claims: %w", err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	p := db.OutboxMarkFailedParams{
		MaxAttempts: int32(r.cfg.MaxAttempts), Now: o.now, Seqs: failed,
		Errors: make([]string, len(failed)), RetryMs: make([]int64, len(failed)),
	}
	for i, err := range failedErrs {
		p.Errors[i] = validate.ErrorText(err.Error())
		attempt := 1
		if i < len(failedDeliveries) {
			attempt = failedDeliveries[i].Attempt
		}
		p.RetryMs[i] = max(r.cfg.RetryPolicy.NextRetry(attempt, err), 0).Milliseconds()
	}
	var res []db.OutboxMarkFailedRow
	if err := r.write(runCtx, func(ctx context.Context) error {
		var err error
		res, err = q.OutboxMarkFailed(ctx, p)
		return err
	}); err != nil {
		return fmt.Errorf("keel outbox: recording failures: %w", err)
	}
	dead := make(map[int64]bool, len(res))
	for _, row := range res {
		dead[row.Seq] = row.State == db.KeelOutboxStateDead
	}
	for i, d := range failedDeliveries {
		if dead[failed[i]] {
			r.log.WarnContext(runCtx, "keel outbox: message is dead", "id", d.ID, "topic", d.Topic, "attempts", d.Attempt, "error", failedErrs[i])
		}
	}
	return nil
}

// retentionDuty deletes delivered messages past Retention. Once keel.outbox
// is partitioned it creates the partitions ahead and drops the partitions
// whose messages were all delivered before the retention instead, and
// deletes no rows.
func (r *Relay) retentionDuty() periodic.Duty {
	return periodic.Duty{
		Name: "outbox retention", Key: retentionKey, Interval: time.Minute,
		Pass: func(ctx context.Context, tx pgx.Tx) (bool, error) {
			before := time.Now().Add(-r.cfg.Retention)
			q := db.New(tx)
			partitioned, err := q.TablePartitioned(ctx, "outbox")
			if err != nil {
				return false, err
			}
			if partitioned {
				if _, err := q.PartitionExtend(ctx, "outbox"); err != nil {
					return false, err
				}
				cutoff := pgtype.Timestamptz{Time: before, Valid: r.cfg.Retention > 0}
				_, err := q.PartitionDropExpired(ctx, db.PartitionDropExpiredParams{TableName: "outbox", Before: []pgtype.Timestamptz{cutoff}})
				return false, err
			}
			if r.cfg.Retention < 0 {
				return false, nil
			}
			n, err := DeleteDelivered(ctx, tx, before)
			return n == retentionBatch, err
		},
	}
}

// retentionBatch is how many delivered messages one retention statement
// deletes, so a large backlog is removed in short transactions.
const retentionBatch = 10000

// DeleteDelivered deletes up to 10,000 messages delivered before the given
// time and returns how many it deleted. Relays call it on their own every
// minute; it is exported for operators and tests. A nil tx, or a time
// outside Postgres's range, fails with ErrInvalidArgument.
func DeleteDelivered(ctx context.Context, tx keeltype.DBTX, before time.Time) (int, error) {
	if err := checkDBTX(tx); err != nil {
		return 0, err
	}
	if err := checkTime("before", before); err != nil {
		return 0, invalidValue(err)
	}
	n, err := db.New(tx).OutboxDeleteDelivered(ctx, db.OutboxDeleteDeliveredParams{Before: pgtype.Timestamptz{Time: before, Valid: true}, BatchSize: retentionBatch})
	if err != nil {
		return 0, fmt.Errorf("keel outbox: retention: %w", err)
	}
	return int(n), nil
}
