package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

// The fuzz targets hold every write of the store to one promise: for any
// input, either the write succeeds and the rows read back equal what was
// given, or it fails with one of the package's errors, has written nothing
// and the caller's transaction still runs statements. Each input runs in
// a transaction that is rolled back, so inputs do not see each other. Their
// seeds (below and in testdata/fuzz) run with the ordinary tests.

// fuzzStore is a store on a fresh database that logs nothing.
func fuzzStore(f *testing.F) (*events.Store, func(t *testing.T) (context.Context, pgx.Tx)) {
	pool := testdb.New(f)
	store := newStore(f, pool, events.Config{Logger: slog.New(slog.DiscardHandler), DisableNotify: true})
	begin := func(t *testing.T) (context.Context, pgx.Tx) {
		ctx := context.Background()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(ctx) })
		return ctx, tx
	}
	return store, begin
}

// expectation maps a fuzzed kind and version onto an ExpectedVersion,
// the unset zero value included.
func expectation(kind uint8, version int64) events.ExpectedVersion {
	switch kind % 5 {
	case 0:
		return events.Any
	case 1:
		return events.NoStream
	case 2:
		return events.StreamExists
	case 3:
		return events.Exactly(version)
	}
	return events.ExpectedVersion{}
}

// refusedCleanly checks a failed write: an error of the package, the
// transaction usable and the store's rows as they were.
func refusedCleanly(ctx context.Context, t *testing.T, tx pgx.Tx, before string, err error, allowed ...error) {
	t.Helper()
	typed := false
	for _, sentinel := range allowed {
		typed = typed || errors.Is(err, sentinel)
	}
	if !typed {
		t.Fatalf("untyped error: %v", err)
	}
	if after := stillUsable(ctx, t, tx); after != before {
		t.Fatalf("the refused write (%v) changed rows: %s, then %s", err, before, after)
	}
}

// prefillStream appends two events to the stream, when its id is valid, so
// that the write under test meets an existing stream.
func prefillStream(ctx context.Context, t *testing.T, store *events.Store, tx pgx.Tx, stream string) {
	t.Helper()
	before := storeState(ctx, t, tx)
	if _, err := store.Append(ctx, tx, stream, events.Any, ev("Before", 1), ev("Before", 2)); err != nil {
		refusedCleanly(ctx, t, tx, before, err, events.ErrInvalidArgument)
	}
}

var (
	deepOK    = strings.Repeat("[", 1000) + strings.Repeat("]", 1000)
	deepBad   = strings.Repeat("{\"a\":", 1001) + "1" + strings.Repeat("}", 1001)
	hundredKB = strings.Repeat("x", 100_000)
)

func FuzzAppend(f *testing.F) {
	id := uuid.MustParse("0190f2a1-7b3c-7def-8abc-0123456789ab")
	for _, s := range []struct {
		stream, typ, causation, correlation string
		data, meta                          string
		kind                                uint8
		version                             int64
		count                               uint8
		id                                  []byte
		prefill                             bool
	}{
		{"order-1", "OrderPlaced", "", "", `{"total":42}`, "", 0, 0, 0, nil, false},
		{"order-1", "OrderPlaced", "cmd-1", "conv-1", `[1,"a",null,true,{"b":[]}]`, `{"user":"u"}`, 3, 2, 2, nil, true},
		{"order-1", "A", "", "", `1`, "", 1, 0, 0, nil, true},
		{"order-1", "A", "", "", `1`, "", 2, 0, 0, nil, false},
		{"order-1", "A", "", "", `1`, "", 3, -1, 0, nil, false},
		{"order-1", "A", "", "", `1`, "", 3, math.MaxInt64, 0, nil, true},
		{"order-1", "A", "", "", `1`, "", 3, math.MinInt64, 0, nil, true},
		{"order-1", "A", "", "", `1`, "", 4, 0, 0, nil, false},
		{"order-1", "A", "", "", `1`, "", 0, 0, 0, id[:], true},
		{"order-1", "A", "", "", `1`, "", 0, 0, 2, id[:], false},
		{"", "A", "", "", `1`, "", 0, 0, 0, nil, false},
		{"order-\x001", "A", "", "", `1`, "", 0, 0, 0, nil, false},
		{"order-\xff", "A", "", "", `1`, "", 0, 0, 0, nil, false},
		{strings.Repeat("s", 1024), "A", "", "", `1`, "", 0, 0, 0, nil, true},
		{strings.Repeat("s", 1025), "A", "", "", `1`, "", 0, 0, 0, nil, false},
		{hundredKB, "A", "", "", `1`, "", 0, 0, 0, nil, false},
		{"t-1", "", "", "", `1`, "", 0, 0, 0, nil, false},
		{"t-1", "A\x00", "", "", `1`, "", 0, 0, 0, nil, false},
		{"t-1", "\xc3", "", "", `1`, "", 0, 0, 0, nil, false},
		{"t-1", strings.Repeat("n", 255), "", "", `1`, "", 0, 0, 0, nil, false},
		{"t-1", strings.Repeat("n", 256), "", "", `1`, "", 0, 0, 0, nil, false},
		{"t-1", hundredKB, "", "", `1`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "\x00", "\xff", `1`, "", 0, 0, 0, nil, false},
		{"t-1", "A", strings.Repeat("c", 1024), strings.Repeat("c", 1025), `1`, "", 0, 0, 0, nil, false},
		{"t-1", "A", hundredKB, "", `1`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `"a\u0000b"`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `"a\\u0000b"`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", "\"\xff\"", "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `"\ud800"`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `"\udc00\ud800"`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `"\ud83d\ude00"`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", deepOK, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", deepBad, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `"` + hundredKB + `"`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `[1e131071,-1e-16383,0e-9,-0,1E+2]`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", "1" + strings.Repeat("0", 131072), "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `1e-16384`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `-1e999999999999`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `{"a":1,"a":2}`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `{oops`, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", ``, "", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `1`, `[]`, 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `1`, `null`, 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `1`, `{"\u0000":1}`, 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `1`, "{\"k\":\"\xfe\"}", 0, 0, 0, nil, false},
		{"t-1", "A", "", "", `1`, `{"k":` + deepOK[1:len(deepOK)-1] + `}`, 0, 0, 0, nil, false},
	} {
		f.Add(s.stream, s.typ, s.causation, s.correlation, []byte(s.data), []byte(s.meta), s.kind, s.version, s.count, s.id, s.prefill)
	}
	store, begin := fuzzStore(f)
	f.Fuzz(func(t *testing.T, stream, typ, causation, correlation string, data, meta []byte, kind uint8, version int64, count uint8, rawID []byte, prefill bool) {
		ctx, tx := begin(t)
		if prefill {
			prefillStream(ctx, t, store, tx, stream)
		}
		e := events.EventData{Type: typ, Data: data, CausationID: causation, CorrelationID: correlation}
		if len(meta) > 0 {
			e.Metadata = meta
		}
		if len(rawID) >= 16 {
			e.ID = uuid.UUID(rawID[:16])
		}
		evs := make([]events.EventData, int(count%3)+1)
		for i := range evs {
			evs[i] = e
		}
		before := storeState(ctx, t, tx)
		res, err := store.Append(ctx, tx, stream, expectation(kind, version), evs...)
		if err != nil {
			refusedCleanly(ctx, t, tx, before, err, events.ErrInvalidArgument, events.ErrVersionConflict, events.ErrDuplicateEvent)
			return
		}
		if res.Duplicate {
			t.Fatalf("a first append reported a duplicate: %+v", res)
		}
		rows, err := tx.Query(ctx, `SELECT event_id, version, type, data::text, metadata::text,
		        coalesce(causation_id, ''), coalesce(correlation_id, '')
		    FROM keel.events WHERE stream_id = $1 AND version > $2 ORDER BY version`, stream, res.Version-int64(len(evs)))
		if err != nil {
			t.Fatal(err)
		}
		type stored struct {
			id                                      uuid.UUID
			version                                 int64
			typ, data, meta, causation, correlation string
		}
		got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stored, error) {
			var s stored
			err := r.Scan(&s.id, &s.version, &s.typ, &s.data, &s.meta, &s.causation, &s.correlation)
			return s, err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(evs) {
			t.Fatalf("%d events stored, want %d", len(got), len(evs))
		}
		wantMeta := json.RawMessage(`{}`)
		if e.Metadata != nil {
			wantMeta = e.Metadata
		}
		for i, g := range got {
			if g.id != res.Events[i].ID || g.version != res.Events[i].Version || (e.ID != uuid.Nil && g.id != e.ID) {
				t.Errorf("event %d stored as %s@%d, reported as %s@%d", i, g.id, g.version, res.Events[i].ID, res.Events[i].Version)
			}
			if g.typ != typ || g.causation != causation || g.correlation != correlation {
				t.Errorf("event %d stored with %q %q %q, given %q %q %q", i, g.typ, g.causation, g.correlation, typ, causation, correlation)
			}
			if !sameJSON(t, json.RawMessage(g.data), e.Data) || !sameJSON(t, json.RawMessage(g.meta), wantMeta) {
				t.Errorf("event %d stored as %.200s %.200s, given %.200s %.200s", i, g.data, g.meta, e.Data, wantMeta)
			}
		}
	})
}

// snapshotState is a Go value a snapshot is made of, strings in a field, a
// map key and a slice.
type snapshotState struct {
	Name string
	Tags map[string]string
	List []string
}

func FuzzSaveSnapshot(f *testing.F) {
	for _, s := range []struct {
		stream  string
		version int64
		raw     string
		useRaw  bool
		text    string
		prefill bool
	}{
		{"account-1", 1, ``, false, "café ☕", true},
		{"account-1", 2, `{"balance":10}`, true, "", true},
		{"account-1", 3, `{}`, true, "", true},
		{"account-1", 0, `{}`, true, "", true},
		{"account-1", -1, `{}`, true, "", true},
		{"account-1", math.MaxInt64, `{}`, true, "", true},
		{"account-1", math.MinInt64, `{}`, true, "", true},
		{"account-1", 1, `{}`, true, "", false},
		{"account-\x00", 1, `{}`, true, "", true},
		{"account-\xff", 1, `{}`, true, "", true},
		{strings.Repeat("s", 1024), 1, `{}`, true, "", true},
		{strings.Repeat("s", 1025), 1, `{}`, true, "", true},
		{hundredKB, 1, `{}`, true, "", true},
		{"", 1, `{}`, true, "", false},
		{"a-1", 1, ``, false, "a\x00b", true},
		{"a-1", 1, ``, false, "caf\xe9", true},
		{"a-1", 1, ``, false, "\xed\xa0\x80", true},
		{"a-1", 1, ``, false, "<&>\u2028", true},
		{"a-1", 1, ``, false, hundredKB, true},
		{"a-1", 1, ``, true, "", true},
		{"a-1", 1, `null`, true, "", true},
		{"a-1", 1, `"a\u0000"`, true, "", true},
		{"a-1", 1, `"\\u0000"`, true, "", true},
		{"a-1", 1, `"\udfff"`, true, "", true},
		{"a-1", 1, "\"\xff\"", true, "", true},
		{"a-1", 1, deepOK, true, "", true},
		{"a-1", 1, deepBad, true, "", true},
		{"a-1", 1, `[1e131071,-1e-16383,1E+2,-0]`, true, "", true},
		{"a-1", 1, "1" + strings.Repeat("0", 131072), true, "", true},
		{"a-1", 1, `1e-16384`, true, "", true},
		{"a-1", 1, `{"a":1,"a":2}`, true, "", true},
		{"a-1", 1, `{oops`, true, "", true},
	} {
		f.Add(s.stream, s.version, []byte(s.raw), s.useRaw, s.text, s.prefill)
	}
	store, begin := fuzzStore(f)
	f.Fuzz(func(t *testing.T, stream string, version int64, raw []byte, useRaw bool, text string, prefill bool) {
		ctx, tx := begin(t)
		if prefill {
			prefillStream(ctx, t, store, tx, stream)
		}
		var state any = snapshotState{Name: text, Tags: map[string]string{text: text}, List: []string{text}}
		if useRaw {
			state = json.RawMessage(raw)
		}
		before := storeState(ctx, t, tx)
		err := store.SaveSnapshot(ctx, tx, stream, version, state)
		if err != nil {
			refusedCleanly(ctx, t, tx, before, err, events.ErrInvalidArgument, events.ErrStreamNotFound)
			return
		}
		var gotVersion int64
		var gotState string
		if err := tx.QueryRow(ctx, "SELECT version, state::text FROM keel.snapshots WHERE stream_id = $1", stream).Scan(&gotVersion, &gotState); err != nil {
			t.Fatal(err)
		}
		if gotVersion != version {
			t.Errorf("snapshot stored at version %d, given %d", gotVersion, version)
		}
		if useRaw {
			want := json.RawMessage(raw)
			if len(raw) == 0 {
				want = json.RawMessage(`null`) // how encoding/json writes a nil RawMessage
			}
			if !sameJSON(t, json.RawMessage(gotState), want) {
				t.Errorf("state stored as %.200s, given %.200s", gotState, want)
			}
			return
		}
		var got snapshotState
		if err := json.Unmarshal([]byte(gotState), &got); err != nil {
			t.Fatal(err)
		}
		if got.Name != text || got.Tags[text] != text || len(got.Tags) != 1 || len(got.List) != 1 || got.List[0] != text {
			t.Errorf("state stored as %+.200v, given %.200q", got, text)
		}
	})
}

func FuzzTombstoneAndTruncate(f *testing.F) {
	for _, s := range []struct {
		stream  string
		tomb    bool
		kind    uint8
		version int64
		before  int64
		prefill bool
	}{
		{"order-1", true, 0, 0, 0, true},
		{"order-1", true, 1, 0, 0, true},
		{"order-1", true, 2, 0, 0, true},
		{"order-1", true, 3, 2, 0, true},
		{"order-1", true, 3, 1, 0, true},
		{"order-1", true, 3, -1, 0, true},
		{"order-1", true, 3, math.MaxInt64, 0, true},
		{"order-1", true, 4, 0, 0, true},
		{"order-1", true, 0, 0, 0, false},
		{"order-1", false, 0, 0, 1, true},
		{"order-1", false, 0, 0, 3, true},
		{"order-1", false, 0, 0, 0, true},
		{"order-1", false, 0, 0, -1, true},
		{"order-1", false, 0, 0, math.MaxInt64, true},
		{"order-1", false, 0, 0, math.MinInt64, true},
		{"order-1", false, 0, 0, 1, false},
		{"order-\x00", true, 0, 0, 1, true},
		{"order-\xff", false, 0, 0, 1, true},
		{strings.Repeat("s", 1024), true, 0, 0, 1, true},
		{strings.Repeat("s", 1025), false, 0, 0, 1, true},
		{hundredKB, true, 0, 0, 1, true},
		{"", false, 0, 0, 1, true},
	} {
		f.Add(s.stream, s.tomb, s.kind, s.version, s.before, s.prefill)
	}
	store, begin := fuzzStore(f)
	f.Fuzz(func(t *testing.T, stream string, tomb bool, kind uint8, version, before int64, prefill bool) {
		ctx, tx := begin(t)
		if prefill {
			prefillStream(ctx, t, store, tx, stream)
		}
		state := storeState(ctx, t, tx)
		var err error
		if tomb {
			err = store.Tombstone(ctx, tx, stream, expectation(kind, version))
		} else {
			err = store.TruncateBefore(ctx, tx, stream, before)
		}
		if err != nil {
			refusedCleanly(ctx, t, tx, state, err, events.ErrInvalidArgument, events.ErrVersionConflict, events.ErrStreamNotFound)
			return
		}
		var deleted bool
		var truncated int64
		if err := tx.QueryRow(ctx, "SELECT deleted_at IS NOT NULL, truncated_before FROM keel.streams WHERE stream_id = $1", stream).Scan(&deleted, &truncated); err != nil {
			t.Fatal(err)
		}
		if tomb && !deleted {
			t.Error("the tombstoned stream is not deleted")
		}
		if !tomb && (deleted || truncated != before) {
			t.Errorf("truncated before %d (deleted %v), given %d", truncated, deleted, before)
		}
	})
}
