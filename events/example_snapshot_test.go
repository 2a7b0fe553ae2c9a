package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
)

// A snapshot keeps a stream's folded state at a version, so a load reads
// the snapshot and only the events after it. TruncateBefore can then hide
// the folded events from reads; versions go on.
func ExampleStore_SaveSnapshot() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	type meter struct{ Total int }
	const stream = "meter-snapshot-example"
	read := func(evs []events.RecordedEvent, m meter) meter {
		for _, e := range evs {
			var r struct{ KWh int }
			_ = e.Decode(&r)
			m.Total += r.KWh
		}
		return m
	}
	appendReadings := func(kwh ...int) {
		for _, n := range kwh {
			e, _ := events.NewEvent("MeterRead", map[string]int{"kwh": n})
			if _, err := store.Append(ctx, pool, stream, events.Any, e); err != nil {
				panic(err)
			}
		}
	}

	appendReadings(5, 7, 3, 9)
	all, err := store.ReadStream(ctx, pool, stream, nil)
	if err != nil {
		panic(err)
	}
	state := read(all, meter{})
	if err := store.SaveSnapshot(ctx, pool, stream, all[len(all)-1].Version, state); err != nil {
		panic(err)
	}
	appendReadings(4, 2)

	// A later load: the snapshot, then the events after it.
	snap, err := store.LoadSnapshot(ctx, pool, stream)
	if err != nil {
		panic(err)
	}
	var loaded meter
	if err := json.Unmarshal(snap.State, &loaded); err != nil {
		panic(err)
	}
	after, err := store.ReadStream(ctx, pool, stream, &events.ReadOpts{From: snap.Version + 1})
	if err != nil {
		panic(err)
	}
	fmt.Println("snapshot at version", snap.Version, "then", len(after), "events: total", read(after, loaded).Total)

	if err := store.TruncateBefore(ctx, pool, stream, snap.Version+1); err != nil {
		panic(err)
	}
	left, _ := store.ReadStream(ctx, pool, stream, nil)
	fmt.Println("after truncation the stream reads from version", left[0].Version)
	// Output:
	// snapshot at version 4 then 2 events: total 30
	// after truncation the stream reads from version 5
}
