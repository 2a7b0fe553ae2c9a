package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/outbox"
)

// The outbox comparison: keel's outbox and relay against Watermill's SQL
// publisher and forwarder (watermill-sql v4), on the same server, with a
// publisher that does nothing so the outbox machinery is what is measured.
//
//	go test -run '^$' -bench Outbox -benchtime 1x

const (
	relayMessages   = 50000
	enqueueWriters  = 8
	latencySamples  = 200
	latencySpacing  = 10 * time.Millisecond
	forwarderTopic  = "keel_bench_forwarder"
	destinationName = "orders"
)

var payload = []byte(`{"order":42,"customer":"c-17","total":"99.90","currency":"EUR"}`)

// --- keel ----------------------------------------------------------------

func keelEnqueue(b *testing.B, pool *pgxpool.Pool, box *outbox.Outbox, txSize, txs int, key func(int) string) {
	b.Helper()
	ctx := context.Background()
	for i := range txs {
		msgs := make([]outbox.Message, txSize)
		for j := range msgs {
			msgs[j] = outbox.Message{Topic: destinationName, Key: key(i*txSize + j), Type: "OrderPlaced", Payload: payload}
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := box.Enqueue(ctx, tx, msgs...)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func noKey(int) string { return "" }

// countingPublisher counts deliveries and, for latency runs, measures from
// the recorded commit time of each message.
type countingPublisher struct {
	n       atomic.Int64
	mu      sync.Mutex
	commits map[uuid.UUID]time.Time
	latency []time.Duration
}

func (p *countingPublisher) Publish(_ context.Context, batch []outbox.Delivery) []error {
	now := time.Now()
	if p.commits != nil {
		p.mu.Lock()
		for _, d := range batch {
			if c, ok := p.commits[d.ID]; ok {
				p.latency = append(p.latency, now.Sub(c))
			}
		}
		p.mu.Unlock()
	}
	p.n.Add(int64(len(batch)))
	return make([]error, len(batch))
}

func BenchmarkOutboxEnqueue(b *testing.B) {
	for _, txSize := range []int{1, 100} {
		total := 4000
		if txSize == 100 {
			total = 40000
		}
		b.Run(fmt.Sprintf("keel/tx=%d", txSize), func(b *testing.B) {
			pool := freshDB(b, true, 16)
			box, err := outbox.New(pool, outbox.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer box.Close()
			start := time.Now()
			parallel(enqueueWriters, func(int) { keelEnqueue(b, pool, box, txSize, total/txSize/enqueueWriters, noKey) })
			b.ReportMetric(float64(total)/time.Since(start).Seconds(), "msgs/s")
		})
		b.Run(fmt.Sprintf("watermill/tx=%d", txSize), func(b *testing.B) {
			pool := freshDB(b, false, 16)
			initWatermill(b, pool)
			start := time.Now()
			parallel(enqueueWriters, func(int) { watermillEnqueue(b, pool, txSize, total/txSize/enqueueWriters) })
			b.ReportMetric(float64(total)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); fn(i) }()
	}
	wg.Wait()
}

// BenchmarkOutboxRelay: 50,000 messages relayed to a publisher that does
// nothing, by one relay or three, unkeyed or over 1,000 keys; with one relay
// also with a day of delivered messages in the table.
func BenchmarkOutboxRelay(b *testing.B) {
	cases := []relayCase{
		{"relays=1", 1, 0},
		{"relays=3", 3, 0},
		{"relays=1/keys=1000", 1, 1000},
		{"relays=3/keys=1000", 3, 1000},
	}
	for _, tc := range cases {
		b.Run("keel/"+tc.name, func(b *testing.B) { keelRelay(b, tc, 0) })
	}
	for _, n := range historySizes(b) {
		for _, tc := range cases {
			if tc.relays == 1 {
				b.Run("keel/"+tc.name+"/"+historyName(n), func(b *testing.B) { keelRelay(b, tc, n) })
			}
		}
	}
	b.Run("sql/relays=1", benchOutboxFloor)
	for _, relays := range []int{1, 3} {
		for _, batch := range []int{0, 1000} {
			name := fmt.Sprintf("watermill/relays=%d", relays)
			if batch != 0 {
				name += fmt.Sprintf("/batch=%d", batch)
			}
			b.Run(name, func(b *testing.B) {
				pool := freshDB(b, false, 16)
				initWatermill(b, pool)
				watermillEnqueue(b, pool, 1000, relayMessages/1000)
				out := &watermillCounter{}
				start := time.Now()
				stop := runForwarders(b, pool, relays, batch, 0, out)
				waitCount(b, &out.n, relayMessages)
				elapsed := time.Since(start)
				stop()
				b.ReportMetric(float64(relayMessages)/elapsed.Seconds(), "msgs/s")
			})
		}
	}
}

// relayCase is a relay workload: how many relays, and how many keys the
// messages have (0: none).
type relayCase struct {
	name   string
	relays int
	keys   int
}

func (tc relayCase) key(i int) string {
	if tc.keys == 0 {
		return ""
	}
	return fmt.Sprintf("order-%d", i%tc.keys)
}

// keelRelay enqueues relayMessages messages, after history delivered ones,
// and measures how fast tc.relays relays deliver them.
func keelRelay(b *testing.B, tc relayCase, history int) {
	pool := freshDB(b, true, 16)
	if history > 0 {
		outboxHistory(b, pool, history, tc.keys)
	}
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer box.Close()
	keelEnqueue(b, pool, box, 1000, relayMessages/1000, tc.key)
	pub := &countingPublisher{}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	var wg sync.WaitGroup
	for range tc.relays {
		r, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx) }()
	}
	waitCount(b, &pub.n, relayMessages)
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	b.ReportMetric(float64(relayMessages)/elapsed.Seconds(), "msgs/s")
}

func BenchmarkOutboxLatency(b *testing.B) {
	b.Run("keel", func(b *testing.B) {
		pool := freshDB(b, true, 8)
		box, err := outbox.New(pool, outbox.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer box.Close()
		pub := &countingPublisher{commits: map[uuid.UUID]time.Time{}}
		r, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = r.Run(ctx); close(done) }()
		time.Sleep(200 * time.Millisecond) // let the relay LISTEN before the first message
		for range latencySamples {
			m := outbox.Message{ID: uuid.New(), Topic: destinationName, Payload: payload}
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := box.Enqueue(ctx, tx, m)
				return err
			}); err != nil {
				b.Fatal(err)
			}
			pub.mu.Lock()
			pub.commits[m.ID] = time.Now()
			pub.mu.Unlock()
			time.Sleep(latencySpacing)
		}
		waitCount(b, &pub.n, latencySamples)
		cancel()
		<-done
		reportPercentiles(b, pub.latency)
	})
	// Watermill's subscriber polls; its default interval is 1s. The tuned
	// run polls every 10ms.
	for _, poll := range []time.Duration{0, 10 * time.Millisecond} {
		name := "watermill"
		if poll != 0 {
			name += "/poll=" + poll.String()
		}
		b.Run(name, func(b *testing.B) {
			pool := freshDB(b, false, 8)
			initWatermill(b, pool)
			out := &watermillCounter{commits: map[string]time.Time{}}
			stop := runForwarders(b, pool, 1, 0, poll, out)
			time.Sleep(200 * time.Millisecond)
			ctx := context.Background()
			for range latencySamples {
				msg := message.NewMessage(watermill.NewUUID(), payload)
				if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					return watermillPublisher(b, tx).Publish(destinationName, msg)
				}); err != nil {
					b.Fatal(err)
				}
				out.mu.Lock()
				out.commits[msg.UUID] = time.Now()
				out.mu.Unlock()
				time.Sleep(latencySpacing)
			}
			waitCount(b, &out.n, latencySamples)
			stop()
			reportPercentiles(b, out.latency)
		})
	}
}

// The commit time is taken after Commit returns, so a message may be
// published before it is recorded; those samples count as zero.
func reportPercentiles(b *testing.B, samples []time.Duration) {
	b.Helper()
	if len(samples) == 0 {
		b.Fatal("no latency samples")
	}
	for i, s := range samples {
		samples[i] = max(s, 0)
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func waitCount(b *testing.B, n *atomic.Int64, want int64) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for n.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d messages arrived within 5 minutes", n.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// --- Watermill -------------------------------------------------------------

func watermillSchema(batch int) sql.DefaultPostgreSQLSchema {
	return sql.DefaultPostgreSQLSchema{SubscribeBatchSize: batch}
}

func initWatermill(b *testing.B, pool *pgxpool.Pool) {
	b.Helper()
	sub, err := sql.NewSubscriber(sql.BeginnerFromPgx(pool), sql.SubscriberConfig{
		SchemaAdapter:    watermillSchema(0),
		OffsetsAdapter:   sql.DefaultPostgreSQLOffsetsAdapter{},
		InitializeSchema: true,
	}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	if err := sub.SubscribeInitialize(forwarderTopic); err != nil {
		b.Fatal(err)
	}
	_ = sub.Close()
}

func watermillPublisher(b *testing.B, tx pgx.Tx) message.Publisher {
	b.Helper()
	pub, err := sql.NewPublisher(sql.TxFromPgx(tx), sql.PublisherConfig{SchemaAdapter: watermillSchema(0)}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	return forwarder.NewPublisher(pub, forwarder.PublisherConfig{ForwarderTopic: forwarderTopic})
}

func watermillEnqueue(b *testing.B, pool *pgxpool.Pool, txSize, txs int) {
	b.Helper()
	ctx := context.Background()
	for range txs {
		msgs := make([]*message.Message, txSize)
		for j := range msgs {
			msgs[j] = message.NewMessage(watermill.NewUUID(), payload)
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return watermillPublisher(b, tx).Publish(destinationName, msgs...)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// watermillCounter is the forwarder's destination: it counts and, for
// latency runs, measures from each message's recorded commit time.
type watermillCounter struct {
	n       atomic.Int64
	mu      sync.Mutex
	commits map[string]time.Time
	latency []time.Duration
}

func (c *watermillCounter) Publish(_ string, msgs ...*message.Message) error {
	now := time.Now()
	if c.commits != nil {
		c.mu.Lock()
		for _, m := range msgs {
			if t, ok := c.commits[m.UUID]; ok {
				c.latency = append(c.latency, now.Sub(t))
			}
		}
		c.mu.Unlock()
	}
	c.n.Add(int64(len(msgs)))
	return nil
}

func (c *watermillCounter) Close() error { return nil }

// runForwarders starts n Watermill forwarders (one consumer group) that
// move messages from the SQL table to out; the returned func stops them.
func runForwarders(b *testing.B, pool *pgxpool.Pool, n, batch int, poll time.Duration, out message.Publisher) func() {
	b.Helper()
	var fwds []*forwarder.Forwarder
	for range n {
		sub, err := sql.NewSubscriber(sql.BeginnerFromPgx(pool), sql.SubscriberConfig{
			SchemaAdapter:  watermillSchema(batch),
			OffsetsAdapter: sql.DefaultPostgreSQLOffsetsAdapter{},
			PollInterval:   poll,
		}, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		f, err := forwarder.NewForwarder(sub, out, watermill.NopLogger{}, forwarder.Config{ForwarderTopic: forwarderTopic})
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = f.Run(context.Background()) }()
		<-f.Running()
		fwds = append(fwds, f)
	}
	return func() {
		for _, f := range fwds {
			_ = f.Close()
		}
	}
}
