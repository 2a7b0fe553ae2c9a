package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// keelState is a fingerprint of every row of the event store's tables, as
// the statement's transaction sees them: a refused write leaves it as it
// was (rows neither added nor changed).
var keelState = func() string {
	parts := make([]string, 0, 6)
	for _, table := range []string{"keel.streams", "keel.events", "keel.unsequenced", "keel.feed", "keel.snapshots", "keel.subscriptions"} {
		parts = append(parts, fmt.Sprintf(
			"(SELECT '%[1]s ' || count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM %[1]s x)", table))
	}
	return "SELECT concat_ws(', ', " + strings.Join(parts, ", ") + ")"
}()

// storeState returns the keelState fingerprint as q sees it.
func storeState(ctx context.Context, t testing.TB, q keeltype.DBTX) string {
	t.Helper()
	var state string
	if err := q.QueryRow(ctx, keelState).Scan(&state); err != nil {
		t.Fatalf("reading the store's state: %v", err)
	}
	return state
}

// refusedInTx runs write in a transaction and checks what a refusal
// promises: an error matching want, nothing written, and the transaction
// still usable. It rolls the transaction back.
func refusedInTx(ctx context.Context, t *testing.T, pool *pgxpool.Pool, want error, write func(tx pgx.Tx) error) error {
	t.Helper()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	before := storeState(ctx, t, tx)
	err = write(tx)
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	if after := stillUsable(ctx, t, tx); after != before {
		t.Fatalf("a refused write changed rows: %s, then %s", before, after)
	}
	return err
}

// stillUsable checks that tx runs statements and returns the store's state
// as tx sees it.
func stillUsable(ctx context.Context, t testing.TB, tx pgx.Tx) string {
	t.Helper()
	var one int
	if err := tx.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("the transaction is unusable: %v", err)
	}
	return storeState(ctx, t, tx)
}

// wantField checks that err is a *validate.Error naming field and that its
// message holds each of words (the limit, say).
func wantField(t *testing.T, err error, field string, words ...string) {
	t.Helper()
	var ve *validate.Error
	if !errors.As(err, &ve) || !strings.Contains(ve.Field, field) {
		t.Fatalf("%v does not name the field %q", err, field)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%v does not say %q", err, w)
		}
	}
}

var (
	long1025 = strings.Repeat("k", validate.MaxKey+1)
	long256  = strings.Repeat("n", validate.MaxName+1)
	tenKB    = strings.Repeat("s", 10_000)
	deepJSON = strings.Repeat("[", validate.MaxJSONDepth+1) + strings.Repeat("]", validate.MaxJSONDepth+1)
	hugeNum  = "1" + strings.Repeat("0", 131_072) // one digit more than numeric holds before the point
)

func data(s string) json.RawMessage { return json.RawMessage(s) }

// Everything Postgres would refuse in an append is refused before anything
// is sent, naming the field, and the caller's transaction stays usable.
func TestAppendRefusesWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	ok := events.EventData{Type: "A", Data: data(`{"n":1}`)}
	with := func(f func(*events.EventData)) events.EventData {
		e := ok
		f(&e)
		return e
	}
	for _, tc := range []struct {
		name   string
		stream string
		ev     events.EventData
		field  string
		words  []string
	}{
		{"stream id with NUL", "order-\x001", ok, "stream id", []string{"NUL"}},
		{"stream id not UTF-8", "order-\xff", ok, "stream id", []string{"UTF-8"}},
		{"stream id of 10 kB", tenKB, ok, "stream id", []string{"1024"}},
		{"stream id one byte too long", long1025, ok, "stream id", []string{"1024"}},
		{"type with NUL", "s-1", with(func(e *events.EventData) { e.Type = "A\x00" }), "type", []string{"NUL"}},
		{"type not UTF-8", "s-1", with(func(e *events.EventData) { e.Type = "A\xc3" }), "type", []string{"UTF-8"}},
		{"type too long", "s-1", with(func(e *events.EventData) { e.Type = long256 }), "type", []string{"255"}},
		{"causation id with NUL", "s-1", with(func(e *events.EventData) { e.CausationID = "c\x00" }), "causation id", []string{"NUL"}},
		{"causation id not UTF-8", "s-1", with(func(e *events.EventData) { e.CausationID = "\xfe" }), "causation id", []string{"UTF-8"}},
		{"causation id too long", "s-1", with(func(e *events.EventData) { e.CausationID = long1025 }), "causation id", []string{"1024"}},
		{"correlation id with NUL", "s-1", with(func(e *events.EventData) { e.CorrelationID = "\x00" }), "correlation id", []string{"NUL"}},
		{"correlation id not UTF-8", "s-1", with(func(e *events.EventData) { e.CorrelationID = "a\x80" }), "correlation id", []string{"UTF-8"}},
		{"correlation id of 10 kB", "s-1", with(func(e *events.EventData) { e.CorrelationID = tenKB }), "correlation id", []string{"1024"}},
		{"data with the escape \\u0000", "s-1", with(func(e *events.EventData) { e.Data = data(`{"s":"a\u0000b"}`) }), "data", []string{`\u0000`}},
		{"data not UTF-8", "s-1", with(func(e *events.EventData) { e.Data = data("{\"s\":\"\xff\"}") }), "data", []string{"UTF-8"}},
		{"data with a lone high surrogate", "s-1", with(func(e *events.EventData) { e.Data = data(`"\ud800"`) }), "data", []string{"surrogate"}},
		{"data with a lone low surrogate", "s-1", with(func(e *events.EventData) { e.Data = data(`["\udc00x"]`) }), "data", []string{"surrogate"}},
		{"data too deep", "s-1", with(func(e *events.EventData) { e.Data = data(deepJSON) }), "data", []string{"1000"}},
		{"data number too large", "s-1", with(func(e *events.EventData) { e.Data = data(hugeNum) }), "data", []string{"131072"}},
		{"data number exponent too large", "s-1", with(func(e *events.EventData) { e.Data = data(`{"n":1e200000}`) }), "data", []string{"digits"}},
		{"data number too precise", "s-1", with(func(e *events.EventData) { e.Data = data(`-1e-16384`) }), "data", []string{"16383"}},
		{"data not JSON", "s-1", with(func(e *events.EventData) { e.Data = data(`{oops`) }), "data", []string{"JSON"}},
		{"data missing", "s-1", with(func(e *events.EventData) { e.Data = nil }), "data", []string{"JSON"}},
		{"metadata with the escape \\u0000", "s-1", with(func(e *events.EventData) { e.Metadata = data(`{"\u0000":1}`) }), "metadata", []string{`\u0000`}},
		{"metadata not UTF-8", "s-1", with(func(e *events.EventData) { e.Metadata = data("{\"k\":\"\xc3(\"}") }), "metadata", []string{"UTF-8"}},
		{"metadata with a lone surrogate", "s-1", with(func(e *events.EventData) { e.Metadata = data(`{"k":"\udbff"}`) }), "metadata", []string{"surrogate"}},
		{"metadata too deep", "s-1", with(func(e *events.EventData) { e.Metadata = data(`{"k":` + deepJSON + `}`) }), "metadata", []string{"1000"}},
		{"metadata number out of range", "s-1", with(func(e *events.EventData) { e.Metadata = data(`{"k":1e-20000}`) }), "metadata", []string{"16383"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, n := range []int{1, 3} { // the one-event and the array statement
				evs := []events.EventData{tc.ev}
				if n == 3 {
					evs = []events.EventData{ok, ok, tc.ev}
				}
				err := refusedInTx(ctx, t, pool, events.ErrInvalidArgument, func(tx pgx.Tx) error {
					_, err := store.Append(ctx, tx, tc.stream, events.Any, evs...)
					return err
				})
				wantField(t, err, tc.field, tc.words...)
			}
		})
	}
}

// Values at the limits, and the valid neighbours of refused ones, are
// stored as they were given.
func TestAppendStoresValuesAtTheLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	atDepth := strings.Repeat("[", validate.MaxJSONDepth) + strings.Repeat("]", validate.MaxJSONDepth)
	for _, tc := range []struct {
		name   string
		stream string
		ev     events.EventData
	}{
		{"stream id of 1024 bytes", strings.Repeat("é", validate.MaxKey/2), events.EventData{Type: "A", Data: data(`1`)}},
		{"type of 255 bytes", "lim-1", events.EventData{Type: long256[1:], Data: data(`1`)}},
		{"ids of 1024 bytes", "lim-2", events.EventData{Type: "A", Data: data(`1`), CausationID: long1025[1:], CorrelationID: long1025[1:]}},
		{"data 1000 deep", "lim-3", events.EventData{Type: "A", Data: data(atDepth)}},
		{"data of 100 kB", "lim-4", events.EventData{Type: "A", Data: data(`"` + strings.Repeat("x", 100_000) + `"`)}},
		{"escaped backslash before u0000", "lim-5", events.EventData{Type: "A", Data: data(`{"s":"\\u0000"}`)}},
		{"surrogate pair", "lim-6", events.EventData{Type: "A", Data: data(`"\ud83d\ude00"`), Metadata: data(`{"k":"\udbff\udfff"}`)}},
		{"big and small numbers", "lim-7", events.EventData{Type: "A", Data: data(`[1e131071,-1e-16383,0e-5,-0,123456789012345678901234567890.5]`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := store.Append(ctx, pool, tc.stream, events.NoStream, tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := store.ReadStream(ctx, pool, tc.stream, nil)
			if err != nil || len(got) != 1 || res.Version != 1 {
				t.Fatalf("read back %d events, %v", len(got), err)
			}
			e := got[0]
			if e.Type != tc.ev.Type || e.CausationID != tc.ev.CausationID || e.CorrelationID != tc.ev.CorrelationID || e.StreamID != tc.stream {
				t.Errorf("stored %q %q %q, want %q %q %q", e.Type, e.CausationID, e.CorrelationID, tc.ev.Type, tc.ev.CausationID, tc.ev.CorrelationID)
			}
			if !sameJSON(t, e.Data, tc.ev.Data) {
				t.Errorf("stored data %.200s, want %.200s", e.Data, tc.ev.Data)
			}
		})
	}
}

// sameJSON reports whether two JSON texts hold the same value, numbers
// compared exactly.
func sameJSON(t testing.TB, a, b json.RawMessage) bool {
	t.Helper()
	va, err := decodeJSON(a)
	if err != nil {
		t.Fatalf("decoding %.200s: %v", a, err)
	}
	vb, err := decodeJSON(b)
	if err != nil {
		t.Fatalf("decoding %.200s: %v", b, err)
	}
	return jsonEqual(va, vb)
}

// Writes other than Append check their input the same way.
func TestOtherWritesRefuseWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	appendTx(ctx, t, store, pool, "snap-1", events.NoStream, ev("A", 1), ev("A", 2))
	type state struct {
		Name string
		Tags map[string]string
	}
	for _, tc := range []struct {
		name  string
		write func(tx pgx.Tx) error
		field string
		words []string
	}{
		{"tombstone a stream id with NUL", func(tx pgx.Tx) error { return store.Tombstone(ctx, tx, "snap\x00", events.Any) }, "stream id", []string{"NUL"}},
		{"tombstone a 10 kB stream id", func(tx pgx.Tx) error { return store.Tombstone(ctx, tx, tenKB, events.Any) }, "stream id", []string{"1024"}},
		{"truncate a stream id not UTF-8", func(tx pgx.Tx) error { return store.TruncateBefore(ctx, tx, "snap-\xff", 1) }, "stream id", []string{"UTF-8"}},
		{"truncate a stream id with NUL", func(tx pgx.Tx) error { return store.TruncateBefore(ctx, tx, "\x00", 1) }, "stream id", []string{"NUL"}},
		{"snapshot of a stream id with NUL", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1\x00", 1, state{}) }, "stream id", []string{"NUL"}},
		{"snapshot of a 10 kB stream id", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, tenKB, 1, state{}) }, "stream id", []string{"1024"}},
		{"snapshot state not UTF-8", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1", 1, state{Name: "caf\xe9"}) }, "state", []string{"UTF-8"}},
		{"snapshot state with NUL", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1", 1, state{Name: "a\x00"}) }, "state", []string{"NUL"}},
		{"snapshot state map key not UTF-8", func(tx pgx.Tx) error {
			return store.SaveSnapshot(ctx, tx, "snap-1", 1, state{Tags: map[string]string{"\xff": "v"}})
		}, "state", []string{"UTF-8"}},
		{"snapshot raw state with \\u0000", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1", 1, data(`{"a":"\u0000"}`)) }, "state", []string{`\u0000`}},
		{"snapshot raw state with a lone surrogate", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1", 1, data(`"\ud800"`)) }, "state", []string{"surrogate"}},
		{"snapshot raw state not UTF-8", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1", 1, data("\"\xff\"")) }, "state", []string{"UTF-8"}},
		{"snapshot raw state too deep", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1", 1, data(deepJSON)) }, "state", []string{"1000"}},
		{"snapshot raw state number too large", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1", 1, data(hugeNum)) }, "state", []string{"131072"}},
		{"snapshot at version 0", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1", 0, state{}) }, "", nil},
		{"snapshot at a negative version", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1", -1, state{}) }, "", nil},
		{"snapshot beyond the stream", func(tx pgx.Tx) error { return store.SaveSnapshot(ctx, tx, "snap-1", 3, state{}) }, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := refusedInTx(ctx, t, pool, events.ErrInvalidArgument, tc.write)
			if tc.field != "" {
				wantField(t, err, tc.field, tc.words...)
			}
		})
	}
	// The state is stored as it was given, not with U+FFFD in place of
	// what was refused.
	want := state{Name: "café ☕", Tags: map[string]string{"ключ": "значение"}}
	if err := store.SaveSnapshot(ctx, pool, "snap-1", 2, want); err != nil {
		t.Fatal(err)
	}
	snap, err := store.LoadSnapshot(ctx, pool, "snap-1")
	var got state
	if err != nil || json.Unmarshal(snap.State, &got) != nil || got.Name != want.Name || got.Tags["ключ"] != "значение" {
		t.Errorf("snapshot read back as %+v from %s (%v)", got, snap.State, err)
	}
}

// Reads take the caller's transaction too: a stream id or category that
// cannot exist is refused without sending it.
func TestReadsRefuseWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	agg := events.Aggregate[account]{Store: store, Apply: applyAccount}
	for _, tc := range []struct {
		name string
		read func(tx pgx.Tx) error
	}{
		{"ReadStream NUL", func(tx pgx.Tx) error {
			_, err := store.ReadStream(ctx, tx, "a\x00", nil)
			return err
		}},
		{"ReadStream not UTF-8", func(tx pgx.Tx) error {
			_, err := store.ReadStream(ctx, tx, "a\xff", &events.ReadOpts{Backward: true})
			return err
		}},
		{"Stream NUL", func(tx pgx.Tx) error {
			_, err := store.Stream(ctx, tx, "\x00")
			return err
		}},
		{"Stream empty", func(tx pgx.Tx) error {
			_, err := store.Stream(ctx, tx, "")
			return err
		}},
		{"LoadSnapshot not UTF-8", func(tx pgx.Tx) error {
			_, err := store.LoadSnapshot(ctx, tx, "\xc3")
			return err
		}},
		{"ReadCategory NUL", func(tx pgx.Tx) error {
			_, err := store.ReadCategory(ctx, tx, "order\x00", nil)
			return err
		}},
		{"ReadCategory with '-'", func(tx pgx.Tx) error {
			_, err := store.ReadCategory(ctx, tx, "order-1", nil)
			return err
		}},
		{"Aggregate.Load not UTF-8", func(tx pgx.Tx) error {
			_, _, err := agg.Load(ctx, tx, "account-\xff")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			refusedInTx(ctx, t, pool, events.ErrInvalidArgument, tc.read)
		})
	}
}

// A closed store refuses every write before it sends anything, so a caller
// that retries the write elsewhere does not duplicate it.
func TestClosedStoreRefusesWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	open := newStore(t, pool, events.Config{})
	appendTx(ctx, t, open, pool, "closed-1", events.NoStream, ev("A", 1), ev("A", 2))
	store := newStore(t, pool, events.Config{})
	store.Close()
	for _, tc := range []struct {
		name  string
		write func(q keeltype.DBTX) error
	}{
		{"Append", func(q keeltype.DBTX) error {
			_, err := store.Append(ctx, q, "closed-1", events.Any, ev("B", 3))
			return err
		}},
		{"Append to a new stream", func(q keeltype.DBTX) error {
			_, err := store.Append(ctx, q, "closed-2", events.NoStream, ev("B", 3), ev("B", 4))
			return err
		}},
		{"Tombstone", func(q keeltype.DBTX) error { return store.Tombstone(ctx, q, "closed-1", events.Any) }},
		{"TruncateBefore", func(q keeltype.DBTX) error { return store.TruncateBefore(ctx, q, "closed-1", 2) }},
		{"SaveSnapshot", func(q keeltype.DBTX) error { return store.SaveSnapshot(ctx, q, "closed-1", 1, map[string]int{"n": 1}) }},
		{"Aggregate.Execute", func(q keeltype.DBTX) error {
			agg := events.Aggregate[account]{Store: store, Apply: applyAccount}
			_, _, err := agg.Execute(ctx, q, "account-9", move(5))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			refusedInTx(ctx, t, pool, events.ErrClosed, func(tx pgx.Tx) error { return tc.write(tx) })
			// Through the pool each statement would commit on its own.
			before := storeState(ctx, t, pool)
			if err := tc.write(pool); !errors.Is(err, events.ErrClosed) {
				t.Fatalf("through the pool: %v, want ErrClosed", err)
			}
			if after := storeState(ctx, t, pool); after != before {
				t.Fatalf("a closed store wrote through the pool: %v, then %v", before, after)
			}
		})
	}
	// Reads still work.
	if got, err := store.ReadStream(ctx, pool, "closed-1", nil); err != nil || len(got) != 2 {
		t.Errorf("reading through a closed store: %d events, %v", len(got), err)
	}
}

// nil where a DBTX, a pool, a store or a function belongs is an error, never
// a panic.
func TestNilArguments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	agg := events.Aggregate[account]{Store: store, Apply: applyAccount}
	var nilPool *pgxpool.Pool
	var nilTx pgx.Tx
	var nilStore *events.Store
	for _, q := range []keeltype.DBTX{nil, nilPool, nilTx} {
		for _, tc := range []struct {
			name string
			call func() error
		}{
			{"Append", func() error { _, err := store.Append(ctx, q, "nil-1", events.Any, ev("A", 1)); return err }},
			{"Tombstone", func() error { return store.Tombstone(ctx, q, "nil-1", events.Any) }},
			{"TruncateBefore", func() error { return store.TruncateBefore(ctx, q, "nil-1", 1) }},
			{"SaveSnapshot", func() error { return store.SaveSnapshot(ctx, q, "nil-1", 1, 1) }},
			{"Aggregate.Execute", func() error { _, _, err := agg.Execute(ctx, q, "nil-1", move(1)); return err }},
			{"Aggregate.Load", func() error { _, _, err := agg.Load(ctx, q, "nil-1"); return err }},
			{"ReadStream", func() error { _, err := store.ReadStream(ctx, q, "nil-1", nil); return err }},
			{"Stream", func() error { _, err := store.Stream(ctx, q, "nil-1"); return err }},
			{"LoadSnapshot", func() error { _, err := store.LoadSnapshot(ctx, q, "nil-1"); return err }},
			{"ReadAll", func() error { _, err := store.ReadAll(ctx, q, nil); return err }},
			{"ReadCategory", func() error { _, err := store.ReadCategory(ctx, q, "nil", nil); return err }},
			{"HeadPosition", func() error { _, err := store.HeadPosition(ctx, q); return err }},
		} {
			if err := noPanic(tc.call); !errors.Is(err, events.ErrInvalidArgument) {
				t.Errorf("%s with the DBTX %#v: %v, want ErrInvalidArgument", tc.name, q, err)
			}
		}
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"NewStore(nil)", func() error { _, err := events.NewStore(nil, events.Config{}); return err }},
		{"Append on a nil store", func() error { _, err := nilStore.Append(ctx, pool, "nil-1", events.Any, ev("A", 1)); return err }},
		{"SaveSnapshot on a nil store", func() error { return nilStore.SaveSnapshot(ctx, pool, "nil-1", 1, 1) }},
		{"Execute without a store", func() error {
			_, _, err := events.Aggregate[account]{Apply: applyAccount}.Execute(ctx, pool, "nil-1", move(1))
			return err
		}},
		{"Execute without Apply", func() error {
			_, _, err := events.Aggregate[account]{Store: store}.Execute(ctx, pool, "nil-1", move(1))
			return err
		}},
		{"Execute without decide", func() error { _, _, err := agg.Execute(ctx, pool, "nil-1", nil); return err }},
	} {
		if err := noPanic(tc.call); !errors.Is(err, events.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", tc.name, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.events").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d events written (%v)", n, err)
	}
}

// noPanic turns a panic of call into an error.
func noPanic(call func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return call()
}

// The events an aggregate's decide function returns are checked like any
// Append's, before anything is written; a new state that cannot be stored as
// a snapshot is refused without being sent.
func TestAggregateExecuteChecksWhatItWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	appendTx(ctx, t, store, pool, "account-1", events.NoStream, events.EventData{Type: "Deposited", Data: data(`{"Amount":5}`)})
	agg := events.Aggregate[account]{Store: store, Apply: applyAccount}
	decided := func(evs ...events.EventData) func(account) ([]events.EventData, error) {
		return func(account) ([]events.EventData, error) { return evs, nil }
	}
	for _, tc := range []struct {
		name   string
		decide func(account) ([]events.EventData, error)
		field  string
	}{
		{"type with NUL", decided(events.EventData{Type: "Deposited\x00", Data: data(`{"Amount":1}`)}), "type"},
		{"type too long", decided(events.EventData{Type: long256, Data: data(`{"Amount":1}`)}), "type"},
		{"data not UTF-8", decided(events.EventData{Type: "Deposited", Data: data("{\"Amount\":1,\"note\":\"\xff\"}")}), "data"},
		{"data with \\u0000", decided(events.EventData{Type: "Deposited", Data: data(`{"Amount":1,"note":"\u0000"}`)}), "data"},
		{"second event's correlation id too long", decided(
			events.EventData{Type: "Deposited", Data: data(`{"Amount":1}`)},
			events.EventData{Type: "Deposited", Data: data(`{"Amount":1}`), CorrelationID: long1025},
		), "events[1].correlation id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := refusedInTx(ctx, t, pool, events.ErrInvalidArgument, func(tx pgx.Tx) error {
				_, _, err := agg.Execute(ctx, tx, "account-1", tc.decide)
				return err
			})
			wantField(t, err, tc.field)
		})
	}

	// A state holding bytes that are not UTF-8 is not snapshotted as
	// U+FFFD: the snapshot is refused, nothing bad is sent and tx goes on.
	type tagged struct{ Tag string }
	bytesAgg := events.Aggregate[tagged]{Store: store, SnapshotEvery: 1,
		Apply: func(s tagged, e events.RecordedEvent) (tagged, error) {
			s.Tag = e.Type[:len(e.Type)-1] // cuts the last rune in half
			return s, nil
		}}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	_, _, err = bytesAgg.Execute(ctx, tx, "tagged-1", func(tagged) ([]events.EventData, error) {
		return []events.EventData{{Type: "Tagé", Data: data(`{}`)}}, nil
	})
	if !errors.Is(err, events.ErrInvalidArgument) {
		t.Fatalf("snapshot of a state that is not UTF-8: %v, want ErrInvalidArgument", err)
	}
	wantField(t, err, "snapshot state", "UTF-8")
	var snapshots int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM keel.snapshots").Scan(&snapshots); err != nil || snapshots != 0 {
		t.Errorf("after the refused snapshot: %d snapshots, %v", snapshots, err)
	}
}

// A read's UntilTime beyond what timestamptz holds reads as far as there is,
// instead of failing the statement and the caller's transaction.
func TestReadUntilTimeOutOfRange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	appendTx(ctx, t, store, pool, "when-1", events.NoStream, ev("A", 1), ev("A", 2))
	for _, tc := range []struct {
		name  string
		until time.Time
		want  int
	}{
		{"year 300000", time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC), 2},
		{"seconds overflowing microseconds", time.Unix(1<<62, 0), 2},
		{"year -5000", time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{"just after the zero time", time.Time{}.Add(time.Nanosecond), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			for _, backward := range []bool{false, true} {
				got, err := store.ReadStream(ctx, tx, "when-1", &events.ReadOpts{UntilTime: tc.until, Backward: backward})
				if err != nil || len(got) != tc.want {
					t.Errorf("backward %v: %d events, %v; want %d", backward, len(got), err, tc.want)
				}
			}
			agg := events.Aggregate[account]{Store: store, Apply: func(a account, _ events.RecordedEvent) (account, error) { a.Ops++; return a, nil }}
			if a, _, err := agg.LoadAt(ctx, tx, "when-1", &events.ReadOpts{UntilTime: tc.until}); err != nil || a.Ops != int64(tc.want) {
				t.Errorf("LoadAt: %d events folded, %v; want %d", a.Ops, err, tc.want)
			}
		})
	}
}

// NewEvent refuses a value whose strings jsonb cannot hold instead of
// encoding U+FFFD in their place.
func TestNewEventRefusesUnstorableStrings(t *testing.T) {
	t.Parallel()
	for _, v := range []any{"a\xffb", map[string]string{"k": "\x00"}, map[string]int{"\xc3": 1}, []string{"ok", "caf\xe9"}} {
		if _, err := events.NewEvent("A", v); !errors.Is(err, events.ErrInvalidArgument) {
			t.Errorf("NewEvent(%q): %v, want ErrInvalidArgument", v, err)
		}
	}
	e, err := events.NewEvent("A", map[string]string{"k": "café ☕"})
	if err != nil || string(e.Data) != `{"k":"café ☕"}` {
		t.Errorf("NewEvent: %s, %v", e.Data, err)
	}
}
