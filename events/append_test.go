package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

// Every expected-version variant, against a missing stream and a stream at
// version 2.
func TestExpectedVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	for _, tc := range []struct {
		name     string
		exists   bool
		expected events.ExpectedVersion
		ok       bool
	}{
		{"any on missing", false, events.Any, true},
		{"any on existing", true, events.Any, true},
		{"no stream on missing", false, events.NoStream, true},
		{"no stream on existing", true, events.NoStream, false},
		{"stream exists on missing", false, events.StreamExists, false},
		{"stream exists on existing", true, events.StreamExists, true},
		{"exactly 0 on missing", false, events.Exactly(0), true},
		{"exactly 0 on existing", true, events.Exactly(0), false},
		{"exactly 2 on existing", true, events.Exactly(2), true},
		{"exactly 1 on existing", true, events.Exactly(1), false},
		{"exactly 3 on existing", true, events.Exactly(3), false},
		{"exactly 2 on missing", false, events.Exactly(2), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stream := "ev-" + uuid.NewString()
			var before int64
			if tc.exists {
				appendTx(ctx, t, store, pool, stream, events.NoStream, ev("A", 1), ev("A", 2))
				before = 2
			}
			res, err := store.Append(ctx, pool, stream, tc.expected, ev("B", 3))
			if tc.ok {
				if err != nil {
					t.Fatalf("append: %v", err)
				}
				if res.Version != before+1 || res.Events[0].Version != before+1 {
					t.Errorf("version %d, event version %d; want %d", res.Version, res.Events[0].Version, before+1)
				}
				return
			}
			var conflict *events.VersionConflictError
			if !errors.As(err, &conflict) || !errors.Is(err, events.ErrVersionConflict) {
				t.Fatalf("got %v, want a *VersionConflictError", err)
			}
			if conflict.StreamID != stream || conflict.Actual != before || conflict.Expected != tc.expected {
				t.Errorf("conflict %+v; want stream %s, actual %d, expected %v", conflict, stream, before, tc.expected)
			}
			if before == 0 {
				if _, err := store.ReadStream(ctx, pool, stream, nil); !errors.Is(err, events.ErrStreamNotFound) {
					t.Errorf("after a refused append the stream exists: %v", err)
				}
				return
			}
			got, err := store.ReadStream(ctx, pool, stream, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(versions(got), []int64{1, 2}) {
				t.Errorf("a refused append wrote something: versions %v", versions(got))
			}
		})
	}
}

// 16 goroutines append to one stream, each with the version it last read:
// each version is won by exactly one, the others get the typed conflict,
// and the stream has no holes.
func TestConcurrentAppendsOneStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.NewSized(t, 8)
	store := newStore(t, pool, events.Config{})
	const writers, perWriter = 16, 10
	stream := "race-1"
	var mu sync.Mutex
	won := map[int64]int{}
	conflicts := 0
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; {
				var seen int64
				info, err := store.Stream(ctx, pool, stream)
				switch {
				case errors.Is(err, events.ErrStreamNotFound):
				case err != nil:
					t.Error(err)
					return
				default:
					seen = info.Version
				}
				err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					res, err := store.Append(ctx, tx, stream, events.Exactly(seen), ev("Tick", w))
					if err == nil {
						mu.Lock()
						won[res.Version]++
						mu.Unlock()
					}
					return err
				})
				var conflict *events.VersionConflictError
				switch {
				case err == nil:
					i++
				case errors.As(err, &conflict):
					if conflict.Actual <= seen || conflict.StreamID != stream {
						t.Errorf("conflict %+v after reading version %d", conflict, seen)
					}
					mu.Lock()
					conflicts++
					mu.Unlock()
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := store.ReadStream(ctx, pool, stream, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*perWriter {
		t.Fatalf("%d events, want %d", len(got), writers*perWriter)
	}
	for i, e := range got {
		if e.Version != int64(i+1) {
			t.Fatalf("event %d has version %d: a hole", i, e.Version)
		}
		if won[e.Version] != 1 {
			t.Errorf("version %d won by %d appends", e.Version, won[e.Version])
		}
	}
	t.Logf("%d appends, %d conflicts", len(got), conflicts)
}

// Re-appending events with the ids they were stored with is a no-op; the
// same id in another stream is an error.
func TestIdempotentAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	a, b := ev("A", 1), ev("B", 2)
	a.ID, b.ID = uuid.New(), uuid.New()
	first, err := store.Append(ctx, pool, "idem-1", events.NoStream, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || first.Events[0].ID != a.ID || first.Events[1].ID != b.ID {
		t.Fatalf("first append: %+v", first)
	}
	for _, exp := range []events.ExpectedVersion{events.NoStream, events.Any, events.Exactly(0)} {
		again, err := store.Append(ctx, pool, "idem-1", exp, a, b)
		if err != nil {
			t.Fatalf("retry with %v: %v", exp, err)
		}
		if !again.Duplicate || again.Version != 2 {
			t.Errorf("retry with %v: %+v, want a duplicate at version 2", exp, again)
		}
	}
	got, err := store.ReadStream(ctx, pool, "idem-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("%d events after retries, want 2", len(got))
	}
	for _, tc := range []struct {
		name   string
		stream string
		evs    []events.EventData
	}{
		{"other stream", "idem-2", []events.EventData{a}},
		{"other order", "idem-1", []events.EventData{b, a}},
		{"with a new event", "idem-1", []events.EventData{a, ev("C", 3)}},
	} {
		if _, err := store.Append(ctx, pool, tc.stream, events.Any, tc.evs...); !errors.Is(err, events.ErrDuplicateEvent) {
			t.Errorf("%s: got %v, want ErrDuplicateEvent", tc.name, err)
		}
	}
	info, err := store.Stream(ctx, pool, "idem-1")
	if err != nil || info.Version != 2 {
		t.Errorf("stream after refused appends: %+v %v", info, err)
	}
}

// Bad input gets a clear error and writes nothing.
func TestAppendBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := newStore(t, pool, events.Config{})
	id := uuid.New()
	for _, tc := range []struct {
		name     string
		stream   string
		expected events.ExpectedVersion
		evs      []events.EventData
	}{
		{"empty stream id", "", events.Any, []events.EventData{ev("A", 1)}},
		{"zero expected version", "bad-1", events.ExpectedVersion{}, []events.EventData{ev("A", 1)}},
		{"negative expected version", "bad-1", events.Exactly(-1), []events.EventData{ev("A", 1)}},
		{"no events", "bad-1", events.Any, nil},
		{"no type", "bad-1", events.Any, []events.EventData{{Data: json.RawMessage(`{}`)}}},
		{"data not JSON", "bad-1", events.Any, []events.EventData{{Type: "A", Data: json.RawMessage(`{oops`)}}},
		{"no data", "bad-1", events.Any, []events.EventData{{Type: "A"}}},
		{"data with a NUL escape", "bad-1", events.Any, []events.EventData{{Type: "A", Data: json.RawMessage(`{"s":"a\u0000b"}`)}}},
		{"metadata with a NUL escape", "bad-1", events.Any, []events.EventData{{Type: "A", Data: json.RawMessage(`1`), Metadata: json.RawMessage(`{"\u0000":1}`)}}},
		{"metadata not an object", "bad-1", events.Any, []events.EventData{{Type: "A", Data: json.RawMessage(`1`), Metadata: json.RawMessage(`[1]`)}}},
		{"one id twice", "bad-1", events.Any, []events.EventData{{ID: id, Type: "A", Data: json.RawMessage(`1`)}, {ID: id, Type: "A", Data: json.RawMessage(`2`)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.Append(ctx, pool, tc.stream, tc.expected, tc.evs...)
			if !errors.Is(err, events.ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
			t.Log(err)
		})
	}
	if _, err := events.NewEvent("A", func() {}); !errors.Is(err, events.ErrInvalidArgument) {
		t.Errorf("NewEvent with a func: %v", err)
	}
	head, err := store.HeadPosition(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Stream(ctx, pool, "bad-1"); !errors.Is(err, events.ErrStreamNotFound) || head != 0 {
		t.Errorf("bad input wrote something: stream %v, head %d", err, head)
	}
	// An escaped backslash followed by u0000 is text, not the NUL escape.
	text := json.RawMessage(`{"s":"\\u0000"}`)
	if _, err := store.Append(ctx, pool, "text-1", events.NoStream, events.EventData{Type: "A", Data: text}); err != nil {
		t.Fatalf("appending %s: %v", text, err)
	}
	got, err := store.ReadStream(ctx, pool, "text-1", nil)
	var data struct{ S string }
	if err != nil || len(got) != 1 || got[0].Decode(&data) != nil || data.S != `\u0000` {
		t.Errorf("read back %v (%q), %v", got, data.S, err)
	}
}
