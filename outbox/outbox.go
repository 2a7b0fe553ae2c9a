package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/carrier"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// Channel is the LISTEN/NOTIFY channel on which enqueues wake relays.
const Channel = "keel_outbox"

// ErrNotFound is returned when no message has the given id.
var ErrNotFound = errors.New("keel outbox: no such message")

// ErrNotDead is returned by Requeue for a message that is not dead.
var ErrNotDead = errors.New("keel outbox: message is not dead")

// Config configures an Outbox. The zero value is ready to use.
type Config struct {
	// NotifyInterval is the shortest time between two wake-up notifications
	// this process sends to relays; enqueues in between are covered by one
	// trailing notification. A notifying commit takes a database-wide lock,
	// so one per insert would serialise busy writers. Default: 5ms.
	NotifyInterval time.Duration
	// Logger receives warnings. Default: nothing is logged.
	Logger *slog.Logger
	// Hook observes each Enqueue (keeltype.OpOutboxEnqueue). Default: none.
	Hook keeltype.Hook
}

// Outbox writes messages in the caller's transaction.
type Outbox struct {
	pool     *pgxpool.Pool
	debounce *notify.Debouncer
	hook     keeltype.Hook
	closed   atomic.Bool
}

// New returns an Outbox. The pool is used only to send trailing wake-up
// notifications; messages are written through the DBTX given to Enqueue.
// Close stops it. A nil pool fails with ErrInvalidArgument.
func New(pool *pgxpool.Pool, cfg Config) (*Outbox, error) {
	if pool == nil {
		return nil, invalidArgument("New needs a pool")
	}
	if cfg.Hook == nil {
		cfg.Hook = keeltype.NoHook{}
	}
	return &Outbox{pool: pool, debounce: notify.NewDebouncer(pool, cfg.NotifyInterval, cfg.Logger), hook: cfg.Hook}, nil
}

// Close stops pending wake-up notifications. Enqueue returns ErrClosed
// afterwards, before it writes anything; an Enqueue that began before Close
// finishes as usual.
func (o *Outbox) Close() {
	if o == nil || o.debounce == nil {
		return
	}
	o.closed.Store(true)
	o.debounce.Close()
}

// Enqueue writes messages in tx, in order. They are published once tx
// commits, and never if it rolls back. Everything is checked first, and a
// refused call writes nothing and leaves tx usable: an invalid message
// fails it with an *InvalidMessageError (errors.Is ErrInvalidMessage), a
// nil tx with ErrInvalidArgument, a closed Outbox with ErrClosed. Messages
// whose ID is already in the outbox are skipped; Enqueue returns how many
// were new. IDs left zero are filled in on msgs.
func (o *Outbox) Enqueue(ctx context.Context, tx keeltype.DBTX, msgs ...Message) (int, error) {
	switch {
	case o == nil || o.debounce == nil:
		return 0, invalidArgument("the Outbox was not made by outbox.New")
	case o.closed.Load():
		return 0, ErrClosed
	}
	if err := checkDBTX(tx); err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	p := db.OutboxEnqueueParams{
		Ids:       make([]string, len(msgs)),
		Topics:    make([]string, len(msgs)),
		Keys:      make([]string, len(msgs)),
		Types:     make([]string, len(msgs)),
		Payloads:  make([][]byte, len(msgs)),
		Headers:   make([]string, len(msgs)),
		NotBefore: make([]pgtype.Timestamptz, len(msgs)),
	}
	for i := range msgs {
		m := &msgs[i]
		h, err := validateMessage(i, *m)
		if err != nil {
			return 0, err
		}
		if m.ID == uuid.Nil {
			if m.ID, err = uuid.NewV7(); err != nil {
				return 0, fmt.Errorf("keel outbox: new id: %w", err)
			}
		}
		p.Ids[i], p.Topics[i], p.Keys[i], p.Types[i], p.Payloads[i], p.Headers[i] = m.ID.String(), m.Topic, m.Key, m.Type, m.Payload, h
		p.NotBefore[i] = pgtype.Timestamptz{Time: m.NotBefore, Valid: true}
		if m.NotBefore.IsZero() {
			p.NotBefore[i].Time = time.Unix(0, 0)
		}
	}
	op := keeltype.Operation{Kind: keeltype.OpOutboxEnqueue, Name: msgs[0].Topic, Count: len(msgs), Carrier: map[string]string{}}
	ctx, end := o.hook.Start(ctx, op)
	if entries := carrier.Clean(op.Carrier); entries != nil {
		for i := range msgs {
			p.Headers[i] = headersWith(entries, msgs[i].Headers, p.Headers[i])
		}
	}
	n, err := o.enqueue(ctx, tx, p)
	end(keeltype.Outcome{Err: err})
	return n, err
}

// headersWith returns a message's headers, encoded, with the carrier's
// entries it lacks; encoded, its headers as they are, when it lacks none or
// they would not encode.
func headersWith(entries *carrier.Entries, h map[string]string, encoded string) string {
	merged, added := entries.Headers(h)
	if !added {
		return encoded
	}
	out, err := encodeHeaders(merged)
	if err != nil {
		return encoded
	}
	return out
}

func (o *Outbox) enqueue(ctx context.Context, tx keeltype.DBTX, p db.OutboxEnqueueParams) (int, error) {
	n, err := db.New(tx).OutboxEnqueue(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("keel outbox: enqueue: %w", err)
	}
	// Close may have come after the check above. The messages are written
	// by then, and relays poll: the call succeeds without its notification.
	if n > 0 {
		if err := o.debounce.Notify(ctx, tx, Channel, ""); err != nil && !errors.Is(err, notify.ErrClosed) {
			return 0, fmt.Errorf("keel outbox: notify: %w", err)
		}
	}
	return int(n), nil
}

// Requeue puts a dead message back in line with fresh attempts. It returns
// ErrNotFound for an unknown id, ErrNotDead for a message that is not dead
// and ErrInvalidArgument for a nil tx.
func Requeue(ctx context.Context, tx keeltype.DBTX, id uuid.UUID) error {
	if err := checkDBTX(tx); err != nil {
		return err
	}
	q := db.New(tx)
	_, err := q.OutboxRequeue(ctx, db.OutboxRequeueParams{ID: id})
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("keel outbox: requeue: %w", err)
	}
	if _, err := q.OutboxGet(ctx, id); errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	} else if err != nil {
		return fmt.Errorf("keel outbox: requeue: %w", err)
	}
	return fmt.Errorf("%w: %s", ErrNotDead, id)
}

// RequeueDead puts every dead message of topic back in line with fresh
// attempts, in one statement, and returns how many it requeued; an empty
// topic requeues the dead messages of every topic. Each goes back in line
// behind the later messages of its key, as with Requeue. A topic longer
// than 255 bytes, not UTF-8 or holding a NUL byte, or a nil tx, fails with
// ErrInvalidArgument before anything is sent.
func RequeueDead(ctx context.Context, tx keeltype.DBTX, topic string) (int, error) {
	if err := checkDBTX(tx); err != nil {
		return 0, err
	}
	if err := validate.Text("topic", topic, validate.MaxName); err != nil {
		return 0, invalidValue(err)
	}
	p := db.OutboxRequeueDeadParams{}
	if topic != "" {
		p.Topic = &topic
	}
	n, err := db.New(tx).OutboxRequeueDead(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("keel outbox: requeue dead messages: %w", err)
	}
	return int(n), nil
}
