package outbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// Postgres's timestamptz range: from the first microsecond of 4714-11-24 BC
// up to, not including, 294277-01-01.
var (
	firstTime = time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC)
	endOfTime = time.Date(294277, 1, 1, 0, 0, 0, 0, time.UTC)
)

// begin starts a transaction that the test rolls back when it ends.
func begin(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// inTx runs f in a transaction that it then rolls back.
func inTx(t *testing.T, pool *pgxpool.Pool, f func(tx pgx.Tx)) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	f(tx)
}

// usable fails the test when tx can no longer run a statement: a refused
// write must leave the caller's transaction as it was.
func usable(t *testing.T, tx pgx.Tx) {
	t.Helper()
	if _, err := tx.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatalf("the caller's transaction is no longer usable: %v", err)
	}
}

// rows counts the rows of a keel table as tx sees them.
func rows(t *testing.T, tx pgx.Tx, table string) int {
	t.Helper()
	var n int
	if err := tx.QueryRow(context.Background(), "SELECT count(*) FROM keel."+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkStored fails the test unless the row of m.ID holds m as given.
func checkStored(t *testing.T, tx pgx.Tx, m outbox.Message) {
	t.Helper()
	ctx := context.Background()
	row, err := db.New(tx).OutboxGet(ctx, m.ID)
	if err != nil {
		t.Fatalf("reading back message %s: %v", m.ID, err)
	}
	if row.Topic != m.Topic || row.Type != m.Type || !bytes.Equal(row.Payload, m.Payload) {
		t.Errorf("stored topic %q, type %q, payload %q; given %q, %q, %q", row.Topic, row.Type, row.Payload, m.Topic, m.Type, m.Payload)
	}
	if (row.Key == nil) != (m.Key == "") || (row.Key != nil && *row.Key != m.Key) {
		t.Errorf("stored key %v, given %q", row.Key, m.Key)
	}
	var h map[string]string
	if err := json.Unmarshal(row.Headers, &h); err != nil {
		t.Fatalf("stored headers %s: %v", row.Headers, err)
	}
	if !maps.Equal(h, m.Headers) {
		t.Errorf("stored headers %q, given %q", h, m.Headers)
	}
	var now time.Time
	if err := tx.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		t.Fatal(err)
	}
	want := now
	if nb := m.NotBefore.Truncate(time.Microsecond); !m.NotBefore.IsZero() && nb.After(now) {
		want = nb
	}
	if !row.AvailableAt.Time.Equal(want) {
		t.Errorf("stored available_at %s, want %s (not before %s)", row.AvailableAt.Time, want, m.NotBefore)
	}
}

// checkRefusedMessage fails the test unless err refuses message 1 of an
// Enqueue for field, as an *InvalidMessageError wrapping a *validate.Error.
func checkRefusedMessage(t *testing.T, err error, field string) {
	t.Helper()
	var ime *outbox.InvalidMessageError
	var ve *validate.Error
	switch {
	case !errors.Is(err, outbox.ErrInvalidMessage) || !errors.As(err, &ime):
		t.Fatalf("got %v, want an InvalidMessageError", err)
	case ime.Index != 1:
		t.Errorf("error names message %d, want 1: %v", ime.Index, err)
	case !errors.As(err, &ve) || !strings.HasPrefix(ve.Field, field):
		t.Errorf("error %v does not name the field %s", err, field)
	}
}

func TestEnqueueRefusesWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	x := strings.Repeat
	tests := []struct {
		name  string
		msg   outbox.Message
		field string // the field refused; empty: stored
	}{
		{"plain", outbox.Message{Topic: "t", Key: "k", Type: "T", Payload: []byte("p"), Headers: map[string]string{"h": "v"}}, ""},
		{"NUL in topic", outbox.Message{Topic: "a\x00b", Payload: []byte{}}, "topic"},
		{"invalid UTF-8 in topic", outbox.Message{Topic: "a\xffb", Payload: []byte{}}, "topic"},
		{"cut rune in topic", outbox.Message{Topic: "\xc3", Payload: []byte{}}, "topic"},
		{"empty topic", outbox.Message{Payload: []byte{}}, "topic"},
		{"topic of 255 bytes", outbox.Message{Topic: x("t", 255), Payload: []byte{}}, ""},
		{"topic of 256 bytes", outbox.Message{Topic: x("t", 256), Payload: []byte{}}, "topic"},
		{"topic of 128 two-byte runes", outbox.Message{Topic: x("é", 128), Payload: []byte{}}, "topic"},
		{"topic of 100 kB", outbox.Message{Topic: x("t", 100_000), Payload: []byte{}}, "topic"},
		{"NUL in key", outbox.Message{Topic: "t", Key: "k\x00", Payload: []byte{}}, "key"},
		{"invalid UTF-8 in key", outbox.Message{Topic: "t", Key: "\xfe\xff", Payload: []byte{}}, "key"},
		{"key of 1024 bytes", outbox.Message{Topic: "t", Key: x("k", 1024), Payload: []byte{}}, ""},
		{"key of 1025 bytes", outbox.Message{Topic: "t", Key: x("k", 1025), Payload: []byte{}}, "key"},
		{"key of 100 kB", outbox.Message{Topic: "t", Key: x("k", 100_000), Payload: []byte{}}, "key"},
		{"NUL in type", outbox.Message{Topic: "t", Type: "\x00", Payload: []byte{}}, "type"},
		{"invalid UTF-8 in type", outbox.Message{Topic: "t", Type: "T\x80", Payload: []byte{}}, "type"},
		{"type of 255 bytes", outbox.Message{Topic: "t", Type: x("T", 255), Payload: []byte{}}, ""},
		{"type of 256 bytes", outbox.Message{Topic: "t", Type: x("T", 256), Payload: []byte{}}, "type"},
		{"nil payload", outbox.Message{Topic: "t"}, "payload"},
		{"NUL and invalid UTF-8 in the payload", outbox.Message{Topic: "t", Payload: []byte("\x00\xff\\u0000")}, ""},
		{"payload of 100 kB", outbox.Message{Topic: "t", Payload: bytes.Repeat([]byte{0}, 100_000)}, ""},
		{"NUL in a header name", outbox.Message{Topic: "t", Payload: []byte{}, Headers: map[string]string{"a\x00": "v"}}, "header name"},
		{"invalid UTF-8 in a header name", outbox.Message{Topic: "t", Payload: []byte{}, Headers: map[string]string{"\xff": "v"}}, "header name"},
		{"empty header name", outbox.Message{Topic: "t", Payload: []byte{}, Headers: map[string]string{"": "v"}}, "header name"},
		{"NUL in a header value", outbox.Message{Topic: "t", Payload: []byte{}, Headers: map[string]string{"h": "v\x00"}}, `headers["h"]`},
		{"invalid UTF-8 in a header value", outbox.Message{Topic: "t", Payload: []byte{}, Headers: map[string]string{"ok": "fine", "h": "\xfe"}}, `headers["h"]`},
		{"the text \\u0000 in a header value", outbox.Message{Topic: "t", Payload: []byte{}, Headers: map[string]string{"h": `\u0000`}}, ""},
		{"header value of 100 kB", outbox.Message{Topic: "t", Payload: []byte{}, Headers: map[string]string{"h": x("v", 100_000)}}, ""},
		{"empty header value", outbox.Message{Topic: "t", Payload: []byte{}, Headers: map[string]string{"h": ""}}, ""},
		{"not before in an hour", outbox.Message{Topic: "t", Payload: []byte{}, NotBefore: time.Now().Add(time.Hour)}, ""},
		{"not before at Postgres's last microsecond", outbox.Message{Topic: "t", Payload: []byte{}, NotBefore: endOfTime.Add(-time.Nanosecond)}, ""},
		{"not before past Postgres's range", outbox.Message{Topic: "t", Payload: []byte{}, NotBefore: endOfTime}, "not before"},
		{"not before at Postgres's first microsecond", outbox.Message{Topic: "t", Payload: []byte{}, NotBefore: firstTime}, ""},
		{"not before ahead of Postgres's range", outbox.Message{Topic: "t", Payload: []byte{}, NotBefore: firstTime.Add(-time.Nanosecond)}, "not before"},
		{"not before in year -300000", outbox.Message{Topic: "t", Payload: []byte{}, NotBefore: time.Date(-300000, 1, 1, 0, 0, 0, 0, time.UTC)}, "not before"},
		{"not before at the largest Unix time", outbox.Message{Topic: "t", Payload: []byte{}, NotBefore: time.Unix(math.MaxInt64, 0)}, "not before"},
		{"not before in year 1", outbox.Message{Topic: "t", Payload: []byte{}, NotBefore: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			tx := begin(t, pool)
			m := tc.msg
			m.ID = uuid.New()
			n, err := o.Enqueue(ctx, tx, outbox.Message{Topic: "t", Payload: []byte("valid")}, m)
			if tc.field == "" {
				if err != nil || n != 2 {
					t.Fatalf("Enqueue: %d, %v; want 2 stored", n, err)
				}
				checkStored(t, tx, m)
				return
			}
			checkRefusedMessage(t, err, tc.field)
			usable(t, tx)
			if n := rows(t, tx, "outbox"); n != 0 {
				t.Errorf("a refused Enqueue wrote %d rows", n)
			}
		})
	}
}

// The reproduction: a refused message leaves the transaction usable.
func TestEnqueueNULKeepsTheTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	box := newOutbox(t, pool)
	tx := begin(t, pool)
	if _, err := box.Enqueue(ctx, tx, outbox.Message{Topic: "a\x00b", Payload: []byte{}}); !errors.Is(err, outbox.ErrInvalidMessage) {
		t.Fatalf("Enqueue: %v, want ErrInvalidMessage", err)
	}
	usable(t, tx)
}

// A closed Outbox refuses before it writes: through a pool, rows written
// before an error would commit, and a caller that retries would store them
// twice.
func TestEnqueueOnClosedOutbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	box.Close()
	tx := begin(t, pool)
	for via, dbtx := range map[string]keeltype.DBTX{"pool": pool, "transaction": tx} {
		n, err := box.Enqueue(ctx, dbtx, outbox.Message{Topic: "t", Payload: []byte{}})
		if !errors.Is(err, outbox.ErrClosed) || n != 0 {
			t.Errorf("Enqueue through a %s on a closed Outbox: %d, %v; want 0, ErrClosed", via, n, err)
		}
		usable(t, tx)
		if n := rows(t, tx, "outbox"); n != 0 {
			t.Errorf("Enqueue through a %s on a closed Outbox wrote %d rows", via, n)
		}
	}
}

// call runs f and turns a panic into a test failure.
func call(t *testing.T, f func() error) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("panicked: %v", p)
		}
	}()
	return f()
}

func TestNilArgumentsAreErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	box := newOutbox(t, pool)
	msg := outbox.Message{Topic: "t", Payload: []byte{}}
	var nilPool *pgxpool.Pool
	var nilTx pgx.Tx
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	nop := func(context.Context, pgx.Tx) error { return nil }
	tests := []struct {
		name string
		call func() error
	}{
		{"Enqueue with a nil DBTX", func() error { _, err := box.Enqueue(ctx, nil, msg); return err }},
		{"Enqueue with a nil pgx.Tx", func() error { _, err := box.Enqueue(ctx, nilTx, msg); return err }},
		{"Enqueue with a nil *pgxpool.Pool", func() error { _, err := box.Enqueue(ctx, nilPool, msg); return err }},
		{"New with a nil pool", func() error { _, err := outbox.New(nil, outbox.Config{}); return err }},
		{"Enqueue on a zero Outbox", func() error { _, err := new(outbox.Outbox).Enqueue(ctx, pool, msg); return err }},
		{"Enqueue on a nil *Outbox", func() error { _, err := (*outbox.Outbox)(nil).Enqueue(ctx, pool, msg); return err }},
		{"Requeue with a nil DBTX", func() error { return outbox.Requeue(ctx, nil, uuid.New()) }},
		{"Requeue with a nil *pgxpool.Pool", func() error { return outbox.Requeue(ctx, nilPool, uuid.New()) }},
		{"RequeueDead with a nil DBTX", func() error { _, err := outbox.RequeueDead(ctx, nil, "t"); return err }},
		{"RequeueDead with a nil *pgxpool.Pool", func() error { _, err := outbox.RequeueDead(ctx, nilPool, ""); return err }},
		{"DeleteDelivered with a nil DBTX", func() error { _, err := outbox.DeleteDelivered(ctx, nil, time.Now()); return err }},
		{"Claim with a nil DBTX", func() error { return inbox.Claim(ctx, nil, "c", "m") }},
		{"Claim with a nil pgx.Tx", func() error { return inbox.Claim(ctx, nilTx, "c", "m") }},
		{"Expire with a nil DBTX", func() error { _, err := inbox.Expire(ctx, nil); return err }},
		{"NewInbox with a nil pool", func() error { _, err := outbox.NewInbox(nil, outbox.InboxConfig{}); return err }},
		{"Process on a zero Inbox", func() error { _, err := new(outbox.Inbox).Process(ctx, "c", "m", nop); return err }},
		{"Process with a nil handler", func() error { _, err := inbox.Process(ctx, "c", "m", nil); return err }},
		{"Run on a zero Inbox", func() error { return new(outbox.Inbox).Run(ctx) }},
		{"Start on a zero Inbox", func() error { return new(outbox.Inbox).Start(ctx) }},
		{"NewRelay with a nil pool", func() error { _, err := outbox.NewRelay(nil, &recorder{}, outbox.RelayConfig{}); return err }},
		{"NewRelay with a nil publisher", func() error { _, err := outbox.NewRelay(pool, nil, outbox.RelayConfig{}); return err }},
		{"NewRelay with a nil *recorder", func() error { _, err := outbox.NewRelay(pool, (*recorder)(nil), outbox.RelayConfig{}); return err }},
		{"NewRelay with a nil PublisherFunc", func() error {
			_, err := outbox.NewRelay(pool, outbox.PublisherFunc(nil), outbox.RelayConfig{})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := call(t, tc.call); !errors.Is(err, outbox.ErrInvalidArgument) {
				t.Errorf("got %v, want ErrInvalidArgument", err)
			}
		})
	}
	if n := count(t, pool, "true"); n != 0 {
		t.Errorf("refused calls wrote %d messages", n)
	}
}

// checkStoredError fails the test unless stored, what the relay wrote to
// last_error for a publisher's error, is text Postgres holds, at most
// validate.MaxErrorText bytes, and the error itself when that is such text.
func checkStoredError(t *testing.T, stored, published string) {
	t.Helper()
	if validate.Text("error", stored, validate.MaxErrorText) != nil {
		t.Errorf("stored error %.80q (%d bytes) is not storable text of at most %d bytes", stored, len(stored), validate.MaxErrorText)
	}
	if validate.Text("error", published, validate.MaxErrorText) == nil && stored != published {
		t.Errorf("stored error %q, published %q", stored, published)
	}
}

// A publisher's error that Postgres cannot store as it is (NUL, invalid
// UTF-8, megabytes) is cleaned and cut, so the failure is recorded and the
// message goes dead after MaxAttempts instead of going out again forever.
func TestRelayRecordsUnstorableErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	tests := []struct {
		name, err, want string
	}{
		{"plain", "no", "no"},
		{"NUL", "broker said \x00 no", "broker said \uFFFD no"},
		{"invalid UTF-8", "bad \xff byte é", "bad \uFFFD byte é"},
		{"the text \\u0000", `\u0000`, `\u0000`},
		{"at the limit", strings.Repeat("e", validate.MaxErrorText), strings.Repeat("e", validate.MaxErrorText)},
		{"1 MB", strings.Repeat("é", 1<<19), validate.ErrorText(strings.Repeat("é", 1<<19))},
		{"1 MB of NUL", strings.Repeat("\x00", 1<<20), validate.ErrorText(strings.Repeat("\uFFFD", 1<<20))},
	}
	fail := map[string]string{}
	for _, tc := range tests {
		fail[tc.name] = tc.err
		enqueue(t, pool, o, outbox.Message{Topic: tc.name, Payload: []byte{}})
	}
	r := newRelay(t, pool, &recorder{fail: func(d outbox.Delivery) error { return errors.New(fail[d.Topic]) }}, outbox.RelayConfig{MaxAttempts: 1})
	if n, err := r.RunOnce(ctx); err != nil || n != len(tests) {
		t.Fatalf("RunOnce: %d, %v; want %d claimed and their failures recorded", n, err, len(tests))
	}
	for _, tc := range tests {
		var state, lastError string
		var errs []byte
		if err := pool.QueryRow(ctx, "SELECT state, last_error, errors FROM keel.outbox WHERE topic = $1", tc.name).Scan(&state, &lastError, &errs); err != nil {
			t.Fatal(err)
		}
		if state != "dead" || lastError != tc.want {
			t.Errorf("%s: state %s, last_error %.80q (%d bytes); want dead, %.80q (%d bytes)", tc.name, state, lastError, len(lastError), tc.want, len(tc.want))
		}
		checkStoredError(t, lastError, tc.err)
		if attempts := jsonArray(t, errs); len(attempts) != 1 || attempts[0]["error"] != lastError {
			t.Errorf("%s: errors column %.200s, want one attempt with the stored error", tc.name, errs)
		}
	}
}

// Times Postgres's timestamptz cannot hold are refused before anything is
// sent, and the refusal agrees with the server at the edges.
func TestTimesOutsidePostgresRange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := newRelay(t, pool, &recorder{}, outbox.RelayConfig{})
	tests := []struct {
		name string
		at   time.Time
	}{
		{"now", time.Now()},
		{"zero", time.Time{}},
		{"first microsecond", firstTime},
		{"a nanosecond before", firstTime.Add(-time.Nanosecond)},
		{"last microsecond", endOfTime.Add(-time.Nanosecond)},
		{"end", endOfTime},
		{"year 300000", time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year -300000", time.Date(-300000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"largest Unix time", time.Unix(math.MaxInt64, 0)},
		{"smallest Unix time", time.Unix(math.MinInt64, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			serverErr, windowErr := roundTrip(ctx, pool, tc.at), roundTrip(ctx, pool, tc.at.Add(-time.Hour))
			for name, f := range map[string]func(tx pgx.Tx) error{
				"DeleteDelivered": func(tx pgx.Tx) error { _, err := outbox.DeleteDelivered(ctx, tx, tc.at); return err },
				"Expire":          func(tx pgx.Tx) error { _, err := outbox.ExpireAt(ctx, inbox, tx, tc.at); return err },
			} {
				want := serverErr
				if name == "Expire" {
					want = windowErr // Expire deletes what is older than at minus the window
				}
				inTx(t, pool, func(tx pgx.Tx) {
					err := call(t, func() error { return f(tx) })
					switch {
					case want == nil && err != nil:
						t.Errorf("%s refused %s, which Postgres holds: %v", name, tc.at, err)
					case want != nil && !errors.Is(err, outbox.ErrInvalidArgument):
						t.Errorf("%s at %s: %v, want ErrInvalidArgument (Postgres: %v)", name, tc.at, err, want)
					}
					usable(t, tx)
				})
			}
			at := tc.at
			if _, err := outbox.RunOnceAt(ctx, r, at); serverErr != nil && !errors.Is(err, outbox.ErrInvalidArgument) {
				t.Errorf("RunOnce at %s: %v, want ErrInvalidArgument", tc.at, err)
			}
		})
	}
}

// roundTrip sends at to the server as a timestamptz. It fails when the server
// refuses it, or when what comes back is not at (pgx wraps around Unix
// microseconds beyond int64).
func roundTrip(ctx context.Context, pool *pgxpool.Pool, at time.Time) error {
	var echo time.Time
	if err := pool.QueryRow(ctx, "SELECT $1::timestamptz", at).Scan(&echo); err != nil {
		return err
	}
	if want := at.Truncate(time.Microsecond); !echo.Equal(want) {
		return fmt.Errorf("sent %s, the server holds %s", want, echo)
	}
	return nil
}

func TestNewRelayRefusesBadConfig(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	tests := []struct {
		name string
		cfg  outbox.RelayConfig
		ok   bool
	}{
		{"zero", outbox.RelayConfig{}, true},
		{"name of 255 bytes", outbox.RelayConfig{Name: strings.Repeat("r", 255)}, true},
		{"name of 256 bytes", outbox.RelayConfig{Name: strings.Repeat("r", 256)}, false},
		{"NUL in the name", outbox.RelayConfig{Name: "relay\x00"}, false},
		{"invalid UTF-8 in the name", outbox.RelayConfig{Name: "relay\xff"}, false},
		{"negative batch size", outbox.RelayConfig{BatchSize: -1}, false},
		{"batch size beyond int32", outbox.RelayConfig{BatchSize: math.MaxInt32 + 1}, false},
		{"max attempts beyond int32", outbox.RelayConfig{MaxAttempts: math.MaxInt32 + 1}, false},
		{"negative max attempts", outbox.RelayConfig{MaxAttempts: -1}, false},
		{"negative lease", outbox.RelayConfig{Lease: -time.Second}, false},
		{"negative poll interval", outbox.RelayConfig{PollInterval: -time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := call(t, func() error { _, err := outbox.NewRelay(pool, &recorder{}, tc.cfg); return err })
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, outbox.ErrInvalidArgument)) {
				t.Errorf("NewRelay: %v, want ok=%v or ErrInvalidArgument", err, tc.ok)
			}
		})
	}
}
