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

	"github.com/keelpg/keel"
	"github.com/keelpg/keel/db"
	"github.com/keelpg/keel/internal/periodic"
)

// ErrDuplicate is returned by Inbox.Claim when the consumer already
// processed the message.
var ErrDuplicate = errors.New("keel inbox: message already processed")

// ErrInvalidInboxKey is returned when a consumer name or message id is
// empty. Nothing is written.
var ErrInvalidInboxKey = errors.New("keel inbox: consumer and message id must not be empty")

// InboxConfig configures an Inbox. The zero value is ready to use.
type InboxConfig struct {
	// DedupWindow is how long a processed message id is remembered. A
	// redelivery after that is processed again. Default: 7 days.
	DedupWindow time.Duration
	// ExpireInterval is how often Run deletes records past the window.
	// Default: 1 minute.
	ExpireInterval time.Duration
	// Logger receives warnings. Default: nothing is logged.
	Logger *slog.Logger
}

// Inbox makes a consumer's processing of a message happen once in effect:
// the consumer's writes and the record that it saw the message commit in
// one transaction, so a redelivered message is recognised and skipped.
type Inbox struct {
	pool *pgxpool.Pool
	cfg  InboxConfig
}

// NewInbox returns an Inbox on the pool.
func NewInbox(pool *pgxpool.Pool, cfg InboxConfig) *Inbox {
	if cfg.DedupWindow <= 0 {
		cfg.DedupWindow = 7 * 24 * time.Hour
	}
	if cfg.ExpireInterval <= 0 {
		cfg.ExpireInterval = time.Minute
	}
	return &Inbox{pool: pool, cfg: cfg}
}

// Claim records, in tx, that consumer processes messageID. It returns nil
// the first time — go on and make the consumer's writes in the same tx — and
// ErrDuplicate when the message was already processed (roll back, or just
// skip it). When two deliveries of one id race, the second Claim waits for
// the first transaction: if it commits, the second gets ErrDuplicate; if it
// rolls back, the second proceeds. Give it a pgx.Tx: with a pool, the record
// commits on its own, apart from the consumer's writes.
func (i *Inbox) Claim(ctx context.Context, tx keel.DBTX, consumer, messageID string) error {
	return i.claim(ctx, tx, consumer, messageID, nil)
}

func (i *Inbox) claim(ctx context.Context, tx keel.DBTX, consumer, messageID string, now *time.Time) error {
	if consumer == "" || messageID == "" {
		return ErrInvalidInboxKey
	}
	_, err := db.New(tx).InboxClaim(ctx, db.InboxClaimParams{
		Consumer: consumer, MessageID: messageID, Now: timestamp(now), DedupWindowMs: i.cfg.DedupWindow.Milliseconds(),
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: consumer %q, message %q", ErrDuplicate, consumer, messageID)
	case err != nil:
		return fmt.Errorf("keel inbox: claim: %w", err)
	}
	return nil
}

// Process runs fn for the message in a new transaction that also records
// the message as processed, and commits. It reports whether fn ran: false
// with a nil error means the message was a duplicate and was skipped. If fn
// fails, the transaction rolls back — neither the consumer's writes nor the
// record remain — and the error is returned, so a redelivery runs fn again.
func (i *Inbox) Process(ctx context.Context, consumer, messageID string, fn func(ctx context.Context, tx pgx.Tx) error) (bool, error) {
	ran := false
	err := pgx.BeginFunc(ctx, i.pool, func(tx pgx.Tx) error {
		if err := i.Claim(ctx, tx, consumer, messageID); err != nil {
			return err
		}
		ran = true
		return fn(ctx, tx)
	})
	if errors.Is(err, ErrDuplicate) {
		return false, nil
	}
	return ran && err == nil, err
}

// expireBatch bounds one expiry statement.
const expireBatch = 10000

// expireKey is the advisory lock key of the inbox expiry duty.
const expireKey int64 = 0x6b696e62657870 // "kinbexp"

// Expire deletes up to 10,000 seen-records older than the dedup window (as
// of now) and returns how many.
func (i *Inbox) Expire(ctx context.Context, tx keel.DBTX, now time.Time) (int, error) {
	n, err := db.New(tx).InboxExpire(ctx, db.InboxExpireParams{Before: pgtype.Timestamptz{Time: now.Add(-i.cfg.DedupWindow), Valid: true}, BatchSize: expireBatch})
	if err != nil {
		return 0, fmt.Errorf("keel inbox: expire: %w", err)
	}
	return int(n), nil
}

// Run deletes seen-records past the dedup window every ExpireInterval until
// ctx ends. Run it in any number of processes; one at a time does the work.
func (i *Inbox) Run(ctx context.Context) {
	periodic.Run(ctx, i.pool, periodic.Duty{
		Name: "inbox expiry", Key: expireKey, Interval: i.cfg.ExpireInterval,
		Pass: func(ctx context.Context, tx pgx.Tx) (bool, error) {
			n, err := i.Expire(ctx, tx, time.Now())
			return n == expireBatch, err
		},
	}, i.cfg.Logger, nil)
}
