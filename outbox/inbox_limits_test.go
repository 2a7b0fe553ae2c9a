package outbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/outbox"
)

func TestInboxRefusesWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	x := strings.Repeat
	tests := []struct {
		name, consumer, id string
		field              string // the field refused; empty: claimed
	}{
		{"plain", "billing", "m-1", ""},
		{"NUL in the consumer", "bill\x00ing", "m", "consumer"},
		{"invalid UTF-8 in the consumer", "bill\xffing", "m", "consumer"},
		{"empty consumer", "", "m", "consumer"},
		{"consumer of 255 bytes", x("c", 255), "m", ""},
		{"consumer of 256 bytes", x("c", 256), "m", "consumer"},
		{"NUL in the message id", "c", "m\x00", "message id"},
		{"JSON escape text in the message id", "c", `\u0000`, ""},
		{"invalid UTF-8 in the message id", "c", "\xc3", "message id"},
		{"empty message id", "c", "", "message id"},
		{"message id of 1024 bytes", "c", x("m", 1024), ""},
		{"message id of 1025 bytes", "c", x("m", 1025), "message id"},
		{"message id of 100 kB", "c", x("m", 100_000), "message id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ran := false
			_, perr := inbox.Process(ctx, tc.consumer, tc.id, func(context.Context, pgx.Tx) error { ran = true; return errors.New("roll back") })
			tx := begin(t, pool)
			err := call(t, func() error { return inbox.Claim(ctx, tx, tc.consumer, tc.id) })
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Claim: %v", err)
				}
				var n int
				if err := tx.QueryRow(ctx, "SELECT count(*) FROM keel.inbox WHERE consumer = $1 AND message_id = $2", tc.consumer, tc.id).Scan(&n); err != nil || n != 1 {
					t.Errorf("%d records of the claim (%v), want 1", n, err)
				}
				if !ran {
					t.Errorf("Process did not run the handler: %v", perr)
				}
				return
			}
			var ve *validate.Error
			if !errors.Is(err, outbox.ErrInvalidInboxKey) || !errors.As(err, &ve) || ve.Field != tc.field {
				t.Errorf("Claim: %v, want ErrInvalidInboxKey naming %s", err, tc.field)
			}
			if !errors.Is(perr, outbox.ErrInvalidInboxKey) || ran {
				t.Errorf("Process: %v (handler ran: %v), want ErrInvalidInboxKey and no run", perr, ran)
			}
			usable(t, tx)
			if n := rows(t, tx, "inbox"); n != 0 {
				t.Errorf("a refused Claim wrote %d records", n)
			}
		})
	}
}

// A handler whose own error wraps ErrDuplicate (it claimed the message for
// another consumer that had processed it) failed: its writes were rolled
// back, so Process must not report the message as a skipped duplicate,
// which a caller would acknowledge.
func TestProcessReturnsTheHandlersDuplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	if _, err := pool.Exec(ctx, "CREATE TABLE effects (consumer text)"); err != nil {
		t.Fatal(err)
	}
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	write := func(consumer string) func(context.Context, pgx.Tx) error {
		return func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO effects VALUES ($1)", consumer)
			return err
		}
	}
	if ran, err := inbox.Process(ctx, "audit", "m", write("audit")); !ran || err != nil {
		t.Fatalf("audit: %v, %v", ran, err)
	}
	ran, err := inbox.Process(ctx, "billing", "m", func(ctx context.Context, tx pgx.Tx) error {
		if err := write("billing")(ctx, tx); err != nil {
			return err
		}
		return inbox.Claim(ctx, tx, "audit", "m")
	})
	if ran || err == nil || !errors.Is(err, outbox.ErrDuplicate) {
		t.Fatalf("Process with a handler failing with ErrDuplicate: %v, %v; want false and the handler's error", ran, err)
	}
	var effects, billing int
	if err := pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM effects WHERE consumer = 'billing'), (SELECT count(*) FROM keel.inbox WHERE consumer = 'billing')").Scan(&effects, &billing); err != nil {
		t.Fatal(err)
	}
	if effects != 0 || billing != 0 {
		t.Errorf("after the failed handler: %d effects, %d records; want none", effects, billing)
	}
	if ran, err := inbox.Process(ctx, "billing", "m", write("billing")); !ran || err != nil {
		t.Errorf("redelivery: %v, %v; want the handler to run", ran, err)
	}
	if ran, err := inbox.Process(ctx, "billing", "m", write("billing")); ran || err != nil {
		t.Errorf("second redelivery: %v, %v; want a skipped duplicate", ran, err)
	}
}
