package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/periodic"
	"github.com/keelpg/keel/internal/service"
	"github.com/keelpg/keel/keeltype"
)

// ErrDuplicate is returned by Inbox.Claim when the consumer already
// processed the message.
var ErrDuplicate = errors.New("keel outbox: inbox: message already processed")

// ErrInvalidInboxKey is returned when a consumer name or message id cannot
// be stored: empty, longer than its limit (255 bytes for a consumer, 1024
// for a message id), holding a NUL or not UTF-8. Nothing is written.
var ErrInvalidInboxKey = errors.New("keel outbox: inbox: invalid consumer or message id")

// InboxConfig configures an Inbox. The zero value is ready to use.
type InboxConfig struct {
	// DedupWindow is how long a processed message id is remembered. A
	// redelivery after that is processed again. Default: 7 days.
	DedupWindow time.Duration
	// ExpireInterval is how often Start (or Run) deletes records past the window.
	// Default: 1 minute.
	ExpireInterval time.Duration
	// Logger receives warnings. Default: nothing is logged.
	Logger *slog.Logger
}

// Inbox makes a consumer's processing of a message happen once in effect:
// the consumer's writes and the record that it saw the message commit in
// one transaction, so a redelivered message is recognised and skipped.
type Inbox struct {
	pool   *pgxpool.Pool
	cfg    InboxConfig
	runner service.Runner
}

// NewInbox returns an Inbox on the pool. Claim and Expire write through the
// transaction they are given; Process, Start and Run use the pool. A nil
// pool fails with ErrInvalidArgument.
func NewInbox(pool *pgxpool.Pool, cfg InboxConfig) (*Inbox, error) {
	if pool == nil {
		return nil, invalidArgument("NewInbox needs a pool")
	}
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = 7 * 24 * time.Hour
	}
	if cfg.ExpireInterval <= 0 {
		cfg.ExpireInterval = time.Minute
	}
	return &Inbox{pool: pool, cfg: cfg}, nil
}

// Claim records, in tx, that consumer processes messageID. It returns nil
// the first time — go on and make the consumer's writes in the same tx — and
// ErrDuplicate when the message was already processed (roll back, or just
// skip it). When two deliveries of one id race, the second Claim waits for
// the first transaction: if it commits, the second gets ErrDuplicate; if it
// rolls back, the second proceeds. Give it a pgx.Tx: with a pool, the record
// commits on its own, apart from the consumer's writes. A consumer or
// message id that cannot be stored fails with ErrInvalidInboxKey and a nil
// tx with ErrInvalidArgument; nothing is sent and tx stays usable.
func (i *Inbox) Claim(ctx context.Context, tx keeltype.DBTX, consumer, messageID string) error {
	return i.claim(ctx, tx, consumer, messageID, nil)
}

func (i *Inbox) claim(ctx context.Context, tx keeltype.DBTX, consumer, messageID string, now *time.Time) error {
	if i == nil {
		return invalidArgument("the Inbox is nil")
	}
	if err := checkDBTX(tx); err != nil {
		return err
	}
	if err := validateInboxKey(consumer, messageID); err != nil {
		return err
	}
	_, err := db.New(tx).InboxClaim(ctx, db.InboxClaimParams{
		Consumer: consumer, MessageID: messageID, Now: timestamp(now), DedupWindowMs: i.cfg.DedupWindow.Milliseconds(),
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: consumer %q, message %q", ErrDuplicate, consumer, messageID)
	case err != nil:
		return fmt.Errorf("keel outbox: inbox claim: %w", err)
	}
	return nil
}

// Process runs fn for the message in a new transaction that also records
// the message as processed, and commits. It reports whether fn ran: false
// with a nil error means the message was a duplicate and was skipped. If fn
// fails, the transaction rolls back — neither the consumer's writes nor the
// record remain — and the error is returned, so a redelivery runs fn again.
// That holds for an error of fn's that wraps ErrDuplicate too (fn claimed
// the message for another consumer): only Process's own claim makes a
// skipped duplicate. Invalid arguments are refused before a transaction
// begins: ErrInvalidInboxKey, or ErrInvalidArgument for a nil fn or pool.
func (i *Inbox) Process(ctx context.Context, consumer, messageID string, fn func(ctx context.Context, tx pgx.Tx) error) (bool, error) {
	switch {
	case i == nil || i.pool == nil:
		return false, invalidArgument("Process needs an Inbox made by NewInbox with a pool")
	case fn == nil:
		return false, invalidArgument("the handler is nil")
	}
	if err := validateInboxKey(consumer, messageID); err != nil {
		return false, err
	}
	ran, duplicate := false, false
	err := pgx.BeginFunc(ctx, i.pool, func(tx pgx.Tx) error {
		if err := i.Claim(ctx, tx, consumer, messageID); err != nil {
			duplicate = errors.Is(err, ErrDuplicate)
			return err
		}
		ran = true
		return fn(ctx, tx)
	})
	if duplicate {
		return false, nil
	}
	return ran && err == nil, err
}

// expireBatch bounds one expiry statement.
const expireBatch = 10000

// expireKey is the advisory lock key of the inbox expiry duty.
const expireKey int64 = 0x6b696e62657870 // "kinbexp"

// Expire deletes up to 10,000 seen-records older than the dedup window and
// returns how many; the expiry Start runs calls it. A nil tx fails with
// ErrInvalidArgument.
func (i *Inbox) Expire(ctx context.Context, tx keeltype.DBTX) (int, error) {
	return i.expire(ctx, tx, time.Now())
}

// expire is Expire as of now, which tests move. A now whose window starts
// outside Postgres's time range fails with ErrInvalidArgument.
func (i *Inbox) expire(ctx context.Context, tx keeltype.DBTX, now time.Time) (int, error) {
	if i == nil {
		return 0, invalidArgument("the Inbox is nil")
	}
	if err := checkDBTX(tx); err != nil {
		return 0, err
	}
	before := now.Add(-i.cfg.DedupWindow)
	if err := checkTime("now minus the dedup window", before); err != nil {
		return 0, invalidValue(err)
	}
	n, err := db.New(tx).InboxExpire(ctx, db.InboxExpireParams{Before: pgtype.Timestamptz{Time: before, Valid: true}, BatchSize: expireBatch})
	if err != nil {
		return 0, fmt.Errorf("keel outbox: inbox expiry: %w", err)
	}
	return int(n), nil
}

// Start deletes seen-records past the dedup window every ExpireInterval in
// the background, until Stop; it returns at once (ctx only scopes the
// start). Run it in any number of processes; one at a time does the work.
// It returns ErrStarted while the expiry runs, and ErrInvalidArgument when
// the Inbox has no pool.
func (i *Inbox) Start(ctx context.Context) error {
	if i == nil || i.pool == nil {
		return invalidArgument("Start needs an Inbox made by NewInbox with a pool")
	}
	err := i.runner.Start(ctx, func(loop, _ context.Context) error { return i.Run(loop) })
	if errors.Is(err, service.ErrStarted) {
		return ErrStarted
	}
	return err
}

// Stop ends the expiry Start began and waits for it; a pass in hand rolls
// back. It returns ctx's error when ctx ends first.
func (i *Inbox) Stop(ctx context.Context) error { return i.runner.Stop(ctx) }

// StopAndCancel is Stop; the expiry holds no work worth finishing.
func (i *Inbox) StopAndCancel(ctx context.Context) error { return i.runner.StopAndCancel(ctx) }

// Run is Start and Stop in one blocking call: it expires seen-records until
// ctx ends, then returns nil. It returns ErrInvalidArgument at once when the
// Inbox has no pool, and an error when its pool is closed while it runs.
func (i *Inbox) Run(ctx context.Context) error {
	if i == nil || i.pool == nil {
		return invalidArgument("Run needs an Inbox made by NewInbox with a pool")
	}
	return periodic.Run(ctx, i.pool, periodic.Duty{
		Name: "outbox inbox expiry", Key: expireKey, Interval: i.cfg.ExpireInterval,
		Pass: func(ctx context.Context, tx pgx.Tx) (bool, error) {
			n, err := i.Expire(ctx, tx)
			return n == expireBatch, err
		},
	}, i.cfg.Logger, nil)
}
