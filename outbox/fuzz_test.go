package outbox_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/outbox"
)

// Seeds every fuzz target starts from, with the text fields' edges: NUL, the
// JSON escape \u0000 as text, invalid UTF-8, a cut rune, each limit and one
// past it, 100 kB.
var fuzzTexts = []string{
	"", "orders", "a\x00b", `\u0000`, "\xff", "a\xc3", "é", "\xed\xa0\x80",
	strings.Repeat("n", validate.MaxName), strings.Repeat("n", validate.MaxName+1),
	strings.Repeat("k", validate.MaxKey), strings.Repeat("k", validate.MaxKey+1),
	strings.Repeat("é", validate.MaxName/2+1), strings.Repeat("x", 100_000),
}

// Times at the edges of Postgres's range and of pgx's int64 microseconds.
var fuzzTimes = []time.Time{
	{}, time.Unix(0, 0), time.Date(2030, 1, 1, 0, 0, 0, 1, time.UTC),
	firstTime, firstTime.Add(-time.Nanosecond), endOfTime, endOfTime.Add(-time.Nanosecond),
	time.Unix(math.MaxInt64, 999_999_999), time.Unix(math.MinInt64, 0),
	time.Date(-300000, 1, 1, 0, 0, 0, 0, time.UTC),
}

// For any message, Enqueue either stores it as given, or refuses it with an
// *InvalidMessageError, writes nothing and leaves the transaction usable.
func FuzzEnqueue(f *testing.F) {
	for i, s := range fuzzTexts {
		f.Add(s, "", "", []byte{}, false, "", "", int64(0), int64(0))
		f.Add("t", s, "", []byte(s), false, "", "", int64(0), int64(0))
		f.Add("t", "", s, []byte(nil), i%2 == 0, "h", s, int64(0), int64(0))
		f.Add("t", "k", "T", []byte{0}, false, s, "v", int64(0), int64(0))
	}
	for _, at := range fuzzTimes {
		f.Add("t", "k", "T", []byte("p"), false, "", "", at.Unix(), int64(at.Nanosecond()))
	}
	// The payload is bytes, never parsed: JSON that jsonb refuses is stored.
	for _, p := range []string{strings.Repeat("[", 100_000), `{"n":1e999999999}`, `"\u0000"`, "-1e-99999999"} {
		f.Add("t", "", "", []byte(p), false, "", "", int64(-1), int64(math.MaxInt64))
	}
	pool := testdb.New(f)
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(box.Close)
	f.Fuzz(func(t *testing.T, topic, key, typ string, payload []byte, nilPayload bool, header, value string, sec, nsec int64) {
		m := outbox.Message{ID: uuid.New(), Topic: topic, Key: key, Type: typ, Payload: payload}
		switch {
		case nilPayload:
			m.Payload = nil
		case payload == nil:
			m.Payload = []byte{}
		}
		if header != "" || value != "" {
			m.Headers = map[string]string{header: value}
		}
		if sec != 0 || nsec != 0 {
			m.NotBefore = time.Unix(sec, nsec)
		}
		inTx(t, pool, func(tx pgx.Tx) {
			n, err := box.Enqueue(context.Background(), tx, outbox.Message{Topic: "first", Payload: []byte{}}, m)
			if err == nil {
				if n != 2 {
					t.Fatalf("Enqueue stored %d messages, want 2", n)
				}
				checkStored(t, tx, m)
				return
			}
			var ime *outbox.InvalidMessageError
			var ve *validate.Error
			if !errors.As(err, &ime) || !errors.Is(err, outbox.ErrInvalidMessage) || ime.Index != 1 || !errors.As(err, &ve) {
				t.Fatalf("Enqueue: %v, want an InvalidMessageError for message 1 naming its field", err)
			}
			usable(t, tx)
			if n := rows(t, tx, "outbox"); n != 0 {
				t.Fatalf("a refused Enqueue wrote %d rows", n)
			}
		})
	})
}

// For any consumer and message id, Claim either records them as given (and
// a second Claim is a duplicate), or refuses them with ErrInvalidInboxKey,
// writes nothing and leaves the transaction usable; Process agrees.
func FuzzInboxClaim(f *testing.F) {
	for _, s := range fuzzTexts {
		f.Add(s, "m")
		f.Add("c", s)
	}
	pool := testdb.New(f)
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, consumer, id string) {
		ctx := context.Background()
		valid := false
		inTx(t, pool, func(tx pgx.Tx) {
			err := inbox.Claim(ctx, tx, consumer, id)
			if err != nil {
				var ve *validate.Error
				if !errors.Is(err, outbox.ErrInvalidInboxKey) || !errors.As(err, &ve) {
					t.Fatalf("Claim: %v, want ErrInvalidInboxKey naming its field", err)
				}
				usable(t, tx)
				if n := rows(t, tx, "inbox"); n != 0 {
					t.Fatalf("a refused Claim wrote %d records", n)
				}
				return
			}
			valid = true
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM keel.inbox WHERE consumer = $1 AND message_id = $2", consumer, id).Scan(&n); err != nil || n != 1 {
				t.Fatalf("%d records of the claim as given (%v), want 1", n, err)
			}
			if err := inbox.Claim(ctx, tx, consumer, id); !errors.Is(err, outbox.ErrDuplicate) {
				t.Fatalf("second Claim: %v, want ErrDuplicate", err)
			}
			usable(t, tx)
		})
		runs := 0
		ran, err := inbox.Process(ctx, consumer, id, func(context.Context, pgx.Tx) error { runs++; return nil })
		switch {
		case !valid && (!errors.Is(err, outbox.ErrInvalidInboxKey) || runs != 0):
			t.Fatalf("Process of what Claim refused: %v, %d runs", err, runs)
		case valid && (!ran || err != nil || runs != 1):
			t.Fatalf("Process of what Claim accepted: %v, %v, %d runs", ran, err, runs)
		case valid:
			if _, err := pool.Exec(ctx, "DELETE FROM keel.inbox WHERE consumer = $1 AND message_id = $2", consumer, id); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// For any error a publisher returns, the relay records the failed attempt:
// the message is dead after its one attempt, with the error stored as it
// is when Postgres can hold it, escaped and cut when not.
func FuzzRelayError(f *testing.F) {
	for _, s := range fuzzTexts {
		f.Add(s)
	}
	f.Add(strings.Repeat("\x00", 1<<20))
	pool := testdb.New(f)
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(box.Close)
	f.Fuzz(func(t *testing.T, published string) {
		ctx := context.Background()
		m := outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte{}}
		enqueue(t, pool, box, m)
		pub := outbox.PublisherFunc(func(context.Context, outbox.Delivery) error { return errors.New(published) })
		r := newRelay(t, pool, pub, outbox.RelayConfig{MaxAttempts: 1})
		if n, err := r.RunOnce(ctx); n != 1 || err != nil {
			t.Fatalf("RunOnce: %d, %v; want the one failure recorded", n, err)
		}
		row := state(t, pool, m.ID)
		if row.State != "dead" || row.LastError == nil {
			t.Fatalf("after its one failed attempt: state %s, last_error %v", row.State, row.LastError)
		}
		checkStoredError(t, *row.LastError, published)
		if _, err := pool.Exec(ctx, "DELETE FROM keel.outbox WHERE id = $1", m.ID); err != nil {
			t.Fatal(err)
		}
	})
}

// For any time and message id, Requeue, DeleteDelivered, Inbox.Expire and
// a relay's moved clock either run or refuse with a typed error, and the
// transaction stays usable; a time is refused exactly when Postgres cannot
// hold it.
func FuzzMaintenance(f *testing.F) {
	for _, at := range fuzzTimes {
		f.Add(at.Unix(), int64(at.Nanosecond()), []byte{})
	}
	f.Add(int64(0), int64(0), uuid.Nil[:])
	f.Add(int64(0), int64(0), []byte("0123456789abcdef"))
	pool := testdb.New(f)
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{DedupWindow: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	r := newRelay(f, pool, &recorder{}, outbox.RelayConfig{})
	f.Fuzz(func(t *testing.T, sec, nsec int64, id []byte) {
		ctx := context.Background()
		at := time.Unix(sec, nsec)
		held, windowHeld := roundTrip(ctx, pool, at) == nil, roundTrip(ctx, pool, at.Add(-time.Hour)) == nil
		inTx(t, pool, func(tx pgx.Tx) {
			_, err := outbox.DeleteDelivered(ctx, tx, at)
			if held != (err == nil) || (err != nil && !errors.Is(err, outbox.ErrInvalidArgument)) {
				t.Fatalf("DeleteDelivered at %s: %v; Postgres holds it: %v", at, err, held)
			}
			usable(t, tx)
			_, err = outbox.ExpireAt(ctx, inbox, tx, at)
			if windowHeld != (err == nil) || (err != nil && !errors.Is(err, outbox.ErrInvalidArgument)) {
				t.Fatalf("Expire at %s: %v; Postgres holds an hour before it: %v", at, err, windowHeld)
			}
			usable(t, tx)
			var u uuid.UUID
			copy(u[:], id)
			if err := outbox.Requeue(ctx, tx, u); !errors.Is(err, outbox.ErrNotFound) {
				t.Fatalf("Requeue of %s: %v, want ErrNotFound", u, err)
			}
			usable(t, tx)
		})
		if _, err := outbox.RunOnceAt(ctx, r, at); err != nil && !errors.Is(err, outbox.ErrInvalidArgument) {
			t.Fatalf("RunOnce at %s: %v", at, err)
		}
	})
}

// For any topic, RequeueDead either requeues the topic's dead letters (none
// here) or refuses the topic with ErrInvalidArgument before its statement,
// leaving the transaction usable.
func FuzzRequeueDead(f *testing.F) {
	for _, s := range fuzzTexts {
		f.Add(s)
	}
	pool := testdb.New(f)
	f.Fuzz(func(t *testing.T, topic string) {
		inTx(t, pool, func(tx pgx.Tx) {
			n, err := outbox.RequeueDead(context.Background(), tx, topic)
			if (err != nil && !errors.Is(err, outbox.ErrInvalidArgument)) || n != 0 {
				t.Fatalf("RequeueDead(%q) = %d, %v", topic, n, err)
			}
			usable(t, tx)
		})
	})
}
