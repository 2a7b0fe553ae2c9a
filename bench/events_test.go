package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
)

// analyzeEvents is maintenance, not a query keel makes, so it is not in sql/.
const analyzeEvents = "ANALYZE keel.streams, keel.events, keel.feed"

// The SQL floor the appends are compared with: rows with the same payload
// inserted per transaction into a table with a bigserial key, and no
// versions, positions or idempotency.
const (
	createFloor = "CREATE TABLE public.floor (id bigserial PRIMARY KEY, stream text NOT NULL, data jsonb NOT NULL)"
	insertFloor = "INSERT INTO public.floor (stream, data) SELECT $1, d FROM unnest($2::jsonb[]) AS d"
)

// analyzeEventTables gives the planner statistics of the freshly loaded
// tables, as autovacuum does on its own a little later in a real database.
func analyzeEventTables(b *testing.B, pool *pgxpool.Pool) {
	b.Helper()
	if _, err := pool.Exec(context.Background(), analyzeEvents); err != nil {
		b.Fatal(err)
	}
}

func newEventStore(b *testing.B, pool *pgxpool.Pool) *events.Store {
	b.Helper()
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(store.Close)
	return store
}

var eventPayload = json.RawMessage(`{"sku":"ABC-123","quantity":2,"price":1999,"currency":"EUR"}`)

func itemAdded() events.EventData { return events.EventData{Type: "ItemAdded", Data: eventPayload} }

// appendFunc writes events to a stream in tx; version is the stream's
// version before the write.
type appendFunc func(ctx context.Context, tx pgx.Tx, stream string, version int64, evs []events.EventData) error

// appendLoad runs `writers` goroutines, each making `txs` transactions that
// append `perTx` events to a stream of its own, and returns the events
// written per second.
func appendLoad(b *testing.B, pool *pgxpool.Pool, write appendFunc, prefix string, writers, txs, perTx int) float64 {
	b.Helper()
	ctx := context.Background()
	batch := make([]events.EventData, perTx)
	for i := range batch {
		batch[i] = itemAdded()
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("%s-%d", prefix, w)
			for i := range txs {
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					return write(ctx, tx, stream, int64(i*perTx), batch)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return float64(writers*txs*perTx) / elapsed.Seconds()
}

// keelAppend appends through the store, expecting the exact version.
func keelAppend(store *events.Store) appendFunc {
	return func(ctx context.Context, tx pgx.Tx, stream string, version int64, evs []events.EventData) error {
		_, err := store.Append(ctx, tx, stream, events.Exactly(version), evs...)
		return err
	}
}

// floorAppend inserts the payloads into the floor table.
func floorAppend(ctx context.Context, tx pgx.Tx, stream string, _ int64, evs []events.EventData) error {
	data := make([]json.RawMessage, len(evs))
	for i, e := range evs {
		data[i] = e.Data
	}
	_, err := tx.Exec(ctx, insertFloor, stream, data)
	return err
}

// BenchmarkEventsAppend measures appends/s with one event per transaction at
// concurrency 1 and 8, and events/s with 100 events per transaction, for
// keel's event store and for the SQL floor (a bare insert per transaction).
func BenchmarkEventsAppend(b *testing.B) {
	for _, tc := range []struct {
		name               string
		writers, txs, size int
	}{
		{"1event/conc=1", 1, 3000, 1},
		{"1event/conc=8", 8, 1000, 1},
		{"100events/conc=1", 1, 300, 100},
		{"100events/conc=4", 4, 100, 100},
	} {
		b.Run("keel/"+tc.name, func(b *testing.B) {
			pool := freshDB(b, true, int32(tc.writers)+3)
			store := newEventStore(b, pool)
			write := keelAppend(store)
			// The sequencer stamps positions while the writers append, as
			// it does in a running system.
			seqCtx, stopSequencer := context.WithCancel(context.Background())
			sequencerDone := make(chan struct{})
			go func() {
				defer close(sequencerDone)
				store.Run(seqCtx)
			}()
			b.Cleanup(func() { stopSequencer(); <-sequencerDone })
			var rate float64
			for i := 0; b.Loop(); i++ {
				rate = appendLoad(b, pool, write, fmt.Sprintf("cart%d", i), tc.writers, tc.txs, tc.size)
			}
			b.ReportMetric(rate, "events/s")
		})
		b.Run("sql/"+tc.name, func(b *testing.B) {
			pool := freshDB(b, false, int32(tc.writers)+2)
			if _, err := pool.Exec(context.Background(), createFloor); err != nil {
				b.Fatal(err)
			}
			var rate float64
			for i := 0; b.Loop(); i++ {
				rate = appendLoad(b, pool, floorAppend, fmt.Sprintf("cart%d", i), tc.writers, tc.txs, tc.size)
			}
			b.ReportMetric(rate, "events/s")
		})
	}
}

// BenchmarkEventsSequencer measures how fast the sequencer gives committed
// events their feed positions: 20,000 events appended one per transaction
// (its work is per append, so this is its slowest case), in passes of the
// default batch size.
func BenchmarkEventsSequencer(b *testing.B) {
	b.Run("keel", func(b *testing.B) {
		ctx := context.Background()
		pool := freshDB(b, true, 6)
		store := newEventStore(b, pool)
		const total = 20000
		var rate float64
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			appendLoad(b, pool, keelAppend(store), fmt.Sprintf("order%d", i), 10, total/10, 1)
			b.StartTimer()
			start := time.Now()
			if err := store.Sequence(ctx); err != nil {
				b.Fatal(err)
			}
			rate = total / time.Since(start).Seconds()
		}
		b.ReportMetric(rate, "events/s")
	})
}

// readPages calls read from start, then from where each page says the next
// begins, until a page is empty, and returns how many events it read.
func readPages(b *testing.B, start int64, read func(from int64) ([]events.RecordedEvent, int64, error)) int {
	b.Helper()
	n := 0
	for from := start; ; {
		evs, next, err := read(from)
		if err != nil {
			b.Fatal(err)
		}
		if len(evs) == 0 {
			return n
		}
		n += len(evs)
		from = next
	}
}

// runSubscription starts a subscription and returns the function that stops
// it.
func runSubscription(b *testing.B, store *events.Store, cfg events.SubscriptionConfig) (stop func()) {
	b.Helper()
	sub, err := store.NewSubscription(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- sub.Run(ctx) }()
	return func() {
		cancel()
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventsRead measures reading one long stream and the global feed,
// in pages of 1000: a feed of 100-event appends, and one of single-event
// appends.
func BenchmarkEventsRead(b *testing.B) {
	ctx := context.Background()
	pool := freshDB(b, true, 6)
	store := newEventStore(b, pool)
	const streams, perStream = 10, 5000
	appendLoad(b, pool, keelAppend(store), "order", streams, perStream/100, 100)
	if err := store.Sequence(ctx); err != nil {
		b.Fatal(err)
	}
	analyzeEventTables(b, pool)
	b.Run("keel/stream", func(b *testing.B) {
		var rate float64
		for b.Loop() {
			start := time.Now()
			n := readPages(b, 1, func(from int64) ([]events.RecordedEvent, int64, error) {
				evs, err := store.ReadStream(ctx, pool, "order-0", &events.ReadOpts{From: from, Limit: 1000})
				if len(evs) == 0 {
					return evs, 0, err
				}
				return evs, evs[len(evs)-1].Version + 1, err
			})
			if n != perStream {
				b.Fatalf("read %d events, want %d", n, perStream)
			}
			rate = float64(n) / time.Since(start).Seconds()
		}
		b.ReportMetric(rate, "events/s")
	})
	b.Run("keel/feed", func(b *testing.B) {
		readFeed(b, store, pool, streams*perStream)
	})
	// The feed keeps one row per append, so a feed of single-event appends
	// (from many streams) is its slowest read.
	b.Run("keel/feed/1event-appends", func(b *testing.B) {
		pool := freshDB(b, true, 10)
		store := newEventStore(b, pool)
		const writers, total = 8, 20000
		appendLoad(b, pool, keelAppend(store), "order", writers, total/writers, 1)
		if err := store.Sequence(ctx); err != nil {
			b.Fatal(err)
		}
		analyzeEventTables(b, pool)
		readFeed(b, store, pool, total)
	})
}

// readFeed reads the whole feed in pages of 1000 and reports events/s.
func readFeed(b *testing.B, store *events.Store, pool *pgxpool.Pool, want int) {
	b.Helper()
	ctx := context.Background()
	var rate float64
	for b.Loop() {
		start := time.Now()
		n := readPages(b, 0, func(after int64) ([]events.RecordedEvent, int64, error) {
			evs, err := store.ReadAll(ctx, pool, &events.FeedOpts{After: after, Limit: 1000})
			if len(evs) == 0 {
				return evs, 0, err
			}
			return evs, evs[len(evs)-1].Position, err
		})
		if n != want {
			b.Fatalf("read %d events, want %d", n, want)
		}
		rate = float64(n) / time.Since(start).Seconds()
	}
	b.ReportMetric(rate, "events/s")
}

// BenchmarkEventsSubscription measures a subscription catching up on the
// feed (events handled and checkpointed per second, with a handler that does
// nothing), and the latency from just before an append's transaction begins
// to its handler call, one append at a time: back to back, and spaced 10ms
// apart.
func BenchmarkEventsSubscription(b *testing.B) {
	ctx := context.Background()
	b.Run("keel/catchup", func(b *testing.B) {
		pool := freshDB(b, true, 6)
		store := newEventStore(b, pool)
		const total = 40000
		appendLoad(b, pool, keelAppend(store), "order", 4, total/4/100, 100)
		if err := store.Sequence(ctx); err != nil {
			b.Fatal(err)
		}
		analyzeEventTables(b, pool)
		var rate float64
		for i := 0; b.Loop(); i++ {
			done := make(chan struct{})
			n := 0
			start := time.Now()
			stop := runSubscription(b, store, events.SubscriptionConfig{
				Name: fmt.Sprintf("catchup-%d", i), BatchSize: 1000,
				Handler: func(_ context.Context, _ pgx.Tx, e events.RecordedEvent) error {
					n++
					if e.Position == total {
						close(done)
					}
					return nil
				},
			})
			select {
			case <-done:
			case <-time.After(5 * time.Minute):
				b.Fatal("subscription did not catch up")
			}
			rate = float64(total) / time.Since(start).Seconds()
			stop()
			if n < total {
				b.Fatalf("handled %d events, want %d", n, total)
			}
		}
		b.ReportMetric(rate, "events/s")
	})
	// A category subscription catching up on 10,000 single-event appends
	// with the default batch size; with history, after a day of events of
	// other categories, which the subscription has to pass over.
	b.Run("keel/catchup/category", func(b *testing.B) { categoryCatchup(b, 0) })
	for _, n := range historySizes(b) {
		b.Run("keel/catchup/category/"+historyName(n), func(b *testing.B) { categoryCatchup(b, n) })
	}
	// Appends one at a time, each as soon as the last was handled, and
	// spaced 10ms apart as in the outbox and jobs latency benchmarks: back
	// to back, most wake-ups are the debouncer's trailing notification.
	// commit-40ms-later: each measured append commits 40ms after it was
	// made, right behind a quick append, so its own notification is held
	// back and the trailing one goes out before it commits.
	for _, tc := range []struct {
		name        string
		spacing     time.Duration
		commitAfter time.Duration
	}{
		{"keel/latency", 0, 0},
		{"keel/latency/spaced-10ms", 10 * time.Millisecond, 0},
		{"keel/latency/commit-40ms-later", 0, 40 * time.Millisecond},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pool := freshDB(b, true, 6)
			store := newEventStore(b, pool)
			var p50, p99 time.Duration
			for i := 0; b.Loop(); i++ {
				p50, p99 = subscriptionLatency(b, store, pool, fmt.Sprintf("latency-%d", i), tc.spacing, tc.commitAfter)
			}
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		})
	}
}

// categoryCatchup appends 10,000 single events to the streams of one
// category, after history events of other categories, and reports how fast
// a new subscription to the category handles them.
func categoryCatchup(b *testing.B, history int) {
	ctx := context.Background()
	pool := freshDB(b, true, 10)
	if history > 0 {
		eventsHistory(b, pool, history)
	}
	store := newEventStore(b, pool)
	const writers, total = 8, 10000
	appendLoad(b, pool, keelAppend(store), "order", writers, total/writers, 1)
	if err := store.Sequence(ctx); err != nil {
		b.Fatal(err)
	}
	analyzeEventTables(b, pool)
	var rate float64
	for i := 0; b.Loop(); i++ {
		done := make(chan struct{})
		var n atomic.Int64
		start := time.Now()
		stop := runSubscription(b, store, events.SubscriptionConfig{
			Name: fmt.Sprintf("category-%d", i), Category: "order",
			Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error {
				if n.Add(1) == total {
					close(done)
				}
				return nil
			},
		})
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("subscription handled %d of %d events in 5 minutes", n.Load(), total)
		}
		rate = total / time.Since(start).Seconds()
		stop()
	}
	b.ReportMetric(rate, "events/s")
}

// subscriptionLatency appends 500 events one at a time, each `spacing` after
// the last was handled, and returns the p50 and p99 of the time from just
// before the append's transaction began to its handler call. With
// commitAfter, each measured append is made right after a quick one (not
// measured) and its transaction commits commitAfter after the append.
func subscriptionLatency(b *testing.B, store *events.Store, pool *pgxpool.Pool, name string, spacing, commitAfter time.Duration) (p50, p99 time.Duration) {
	b.Helper()
	ctx := context.Background()
	const samples = 500
	got := make(chan time.Duration, samples)
	stop := runSubscription(b, store, events.SubscriptionConfig{
		Name: name,
		Handler: func(_ context.Context, _ pgx.Tx, e events.RecordedEvent) error {
			if e.Type != "Ping" {
				return nil
			}
			var sent struct{ T int64 }
			if err := e.Decode(&sent); err != nil {
				return err
			}
			got <- time.Since(time.Unix(0, sent.T))
			return nil
		},
	})
	lat := make([]time.Duration, 0, samples)
	for j := range samples {
		time.Sleep(spacing)
		if commitAfter > 0 {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := store.Append(ctx, tx, fmt.Sprintf("lead-%s-%d", name, j%10), events.Any,
					events.EventData{Type: "Lead", Data: json.RawMessage(`{}`)})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		data, _ := json.Marshal(struct{ T int64 }{time.Now().UnixNano()})
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := store.Append(ctx, tx, fmt.Sprintf("ping-%s-%d", name, j%10), events.Any,
				events.EventData{Type: "Ping", Data: data})
			time.Sleep(commitAfter)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		select {
		case d := <-got:
			lat = append(lat, d)
		case <-time.After(time.Minute):
			b.Fatal("event not handled within a minute")
		}
	}
	stop()
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}
