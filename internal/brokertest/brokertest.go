// Package brokertest is the test harness keel's broker integrations
// (integrations/nats, integrations/rabbitmq) share; it imports no broker
// client, so keel's own module stays free of them.
//
// A test binary calls [Main] from TestMain. The tests' consumers write one
// row per message into an effects table ([CreateEffects], [WriteEffect]),
// in the inbox transaction; [Enqueue] fills the outbox with numbered
// messages per key, and [CheckEffects] asserts exactly-once in effect and
// per-key order. [StopAndCancel] and [Outages] are whole scenarios, run
// against a broker through the integration's own Consumer and Publisher.
package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// Main gives the tests their databases, as testdb.Main does, after asking
// reach whether the broker answers. When it does not, Main prints one line,
// "<broker> unreachable (<error>): examples not run, tests skip", and runs
// the tests only (the examples need the broker); they skip one by one.
func Main(m *testing.M, broker string, reach func() error) {
	if err := reach(); err != nil {
		fmt.Printf("%s unreachable (%v): examples not run, tests skip\n", broker, err)
		flag.Parse()
		if flag.Lookup("test.run").Value.String() == "" {
			_ = flag.Set("test.run", "^Test")
		}
	}
	testdb.Main(m)
}

// RandomHex returns 12 random hex digits, for names of a test's own.
func RandomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// WaitFor polls cond until it holds, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// effectsTable is where the tests' consumers write each message's effect,
// in the inbox transaction: seq gives the order effects committed in.
const effectsTable = `CREATE TABLE effects (
	seq bigserial PRIMARY KEY,
	id  text NOT NULL,
	key text NOT NULL,
	n   int  NOT NULL
)`

const insertEffect = `INSERT INTO effects (id, key, n) VALUES ($1, $2, $3)`

// CreateEffects makes the effects table in pool's database.
func CreateEffects(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), effectsTable); err != nil {
		t.Fatal(err)
	}
}

// WriteEffect is the tests' handler body: one row per message, its payload
// the number n.
func WriteEffect(ctx context.Context, tx pgx.Tx, id, key string, payload []byte) error {
	n, err := strconv.Atoi(string(payload))
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, insertEffect, id, key, n)
	return err
}

// Enqueue writes rounds × keys messages of type "Counted" to the outbox,
// one transaction per round; message n of each key carries n as its
// payload, from n = from.
func Enqueue(ctx context.Context, pool *pgxpool.Pool, topic string, keys []string, from, rounds int) error {
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		return err
	}
	defer box.Close()
	for n := from; n < from+rounds; n++ {
		msgs := make([]outbox.Message, len(keys))
		for i, k := range keys {
			msgs[i] = outbox.Message{Topic: topic, Key: k, Type: "Counted", Payload: []byte(strconv.Itoa(n))}
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := box.Enqueue(ctx, tx, msgs...)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// Keys returns n order keys, key-0 … key-<n-1>.
func Keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = "key-" + strconv.Itoa(i)
	}
	return ks
}

// CountEffects is how many effects committed.
func CountEffects(t testing.TB, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM effects").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// CheckEffects asserts exactly-once in effect and per-key order: want rows,
// want distinct message ids, and each key's numbers 0, 1, 2 … in the order
// their effects committed.
func CheckEffects(t testing.TB, pool *pgxpool.Pool, want int) {
	t.Helper()
	ctx := context.Background()
	var rows, ids int
	if err := pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM effects").Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != want || ids != want {
		t.Fatalf("%d effects of %d distinct messages, want %d of %d", rows, ids, want, want)
	}
	r, err := pool.Query(ctx, "SELECT key, array_agg(n ORDER BY seq) FROM effects GROUP BY key")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var key string
		var ns []int32
		if err := r.Scan(&key, &ns); err != nil {
			t.Fatal(err)
		}
		for i, n := range ns {
			if int(n) != i {
				t.Fatalf("key %s: effects in order %v, want 0, 1, 2 …", key, ns)
			}
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

// StartRelay starts a relay of pool's outbox through pub and stops it when
// the test ends.
func StartRelay(t testing.TB, pool *pgxpool.Pool, pub outbox.Publisher, cfg outbox.RelayConfig) {
	t.Helper()
	relay, err := outbox.NewRelay(pool, pub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop(context.Background()) })
}

// FailFifths is the flaky part of a handler: it fails the first delivery of
// every fifth message (its payload a multiple of 5), once per message id,
// and counts the handler's runs. The zero value is ready.
type FailFifths struct {
	mu     sync.Mutex
	failed map[string]bool
	runs   atomic.Int64
}

// Fail counts a run of the handler and reports whether it is to fail this
// delivery (the first of a fifth message) or sees a fifth message again.
func (f *FailFifths) Fail(id string, payload []byte) (fail, again bool) {
	f.runs.Add(1)
	if n, _ := strconv.Atoi(string(payload)); n%5 != 0 {
		return false, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed[id] {
		return false, true
	}
	if f.failed == nil {
		f.failed = map[string]bool{}
	}
	f.failed[id] = true
	return true, false
}

// ErrFirstDelivery is what a handler returns when FailFifths fails it.
var ErrFirstDelivery = errors.New("handler fails the first delivery")

// CheckRuns asserts that the handler ran once per message of want and once
// more per failure.
func (f *FailFifths) CheckRuns(t testing.TB, want int) {
	t.Helper()
	if got := f.runs.Load(); got != int64(want+want/5) {
		t.Errorf("the handler ran %d times, want %d: once per message and once more per failure", got, want+want/5)
	}
}

// Consumer is an integration's Consumer, as the scenarios drive it.
type Consumer interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
}

// Handler is an integration's handler with its message cut down to what
// the scenarios need.
type Handler func(ctx context.Context, tx pgx.Tx, id string, payload []byte) error

// StopAndCancel checks that StopAndCancel abandons the message in hand: its
// transaction rolls back and it is not acked, so a consumer started again
// handles it, once. The broker holds one message, its payload "0", for the
// consumers newConsumer makes (it runs handle on each delivery). A second
// Start of a running consumer must fail with errStarted.
func StopAndCancel(t testing.TB, pool *pgxpool.Pool, errStarted error, newConsumer func(handle Handler) Consumer) {
	t.Helper()
	ctx := context.Background()
	entered := make(chan struct{}, 1)
	c := newConsumer(func(ctx context.Context, tx pgx.Tx, id string, payload []byte) error {
		if err := WriteEffect(ctx, tx, id, "k", payload); err != nil {
			return err
		}
		entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); !errors.Is(err, errStarted) {
		t.Errorf("second Start: %v, want ErrStarted", err)
	}
	<-entered
	if err := c.StopAndCancel(ctx); err != nil {
		t.Fatal(err)
	}
	if n := CountEffects(t, pool); n != 0 {
		t.Fatalf("%d effects of a cancelled handler committed", n)
	}

	var handled atomic.Int64
	c = newConsumer(func(ctx context.Context, tx pgx.Tx, id string, payload []byte) error {
		handled.Add(1)
		return WriteEffect(ctx, tx, id, "k", payload)
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, time.Minute, "the message to be handled again", func() bool { return CountEffects(t, pool) == 1 })
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if handled.Load() != 1 {
		t.Errorf("handled %d times", handled.Load())
	}
}

// failureCount is a relay hook that counts failed publishes.
type failureCount struct{ n atomic.Int64 }

func (f *failureCount) Start(ctx context.Context, _ keeltype.Operation) (context.Context, func(keeltype.Outcome)) {
	return ctx, func(o keeltype.Outcome) {
		if o.State == "failed" {
			f.n.Add(1)
		}
	}
}

func (f *failureCount) Measure(context.Context, keeltype.Measurement) {}

// Outage is what the Outages scenario runs on.
type Outage struct {
	// Pool is the test's database, its effects table made.
	Pool *pgxpool.Pool
	// Publisher is what the relay publishes through, to the broker that
	// goes away.
	Publisher outbox.Publisher
	// Consumer writes each message of Topic as its effect (WriteEffect,
	// with the message's key), reading from the broker that goes away.
	Consumer Consumer
	// Topic is the outbox topic of the messages.
	Topic string
	// Down takes the broker away and returns once the clients can tell; Up
	// brings it back.
	Down, Up func()
}

// Outages checks that through two broker outages while a relay publishes
// and o.Consumer consumes, every message takes effect once, in per-key
// order. Each outage comes while the consumer is half-way through what was
// published, and the next messages are enqueued while the broker is away,
// so the relay's publishes fail and are retried. The relay and the consumer
// run until the test ends. It returns how many messages there were.
func Outages(t testing.TB, o Outage) int {
	t.Helper()
	ctx := context.Background()
	failures := &failureCount{}
	StartRelay(t, o.Pool, o.Publisher, outbox.RelayConfig{
		BatchSize: 50, PollInterval: 50 * time.Millisecond, MaxAttempts: 1000, Hook: failures,
		RetryPolicy: keeltype.ExponentialBackoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond},
	})
	if err := o.Consumer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Consumer.Stop(ctx) })

	ks := Keys(8)
	const rounds, phases = 40, 3
	if err := Enqueue(ctx, o.Pool, o.Topic, ks, 0, rounds); err != nil {
		t.Fatal(err)
	}
	for phase := 1; phase < phases; phase++ {
		WaitFor(t, time.Minute, "half the messages before the outage", func() bool {
			return CountEffects(t, o.Pool) >= (phase*rounds-rounds/2)*len(ks)
		})
		failed := failures.n.Load()
		o.Down()
		if err := Enqueue(ctx, o.Pool, o.Topic, ks, phase*rounds, rounds); err != nil {
			t.Fatal(err)
		}
		WaitFor(t, 30*time.Second, "a publish to fail", func() bool { return failures.n.Load() > failed })
		o.Up()
	}
	want := phases * rounds * len(ks)
	WaitFor(t, 3*time.Minute, "every message's effect", func() bool { return CountEffects(t, o.Pool) >= want })
	CheckEffects(t, o.Pool, want)
	t.Logf("%d publishes failed and were retried", failures.n.Load())
	return want
}
