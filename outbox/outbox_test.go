package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/hooktest"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// recorder is a Publisher that remembers every publication, in order.
type recorder struct {
	mu   sync.Mutex
	log  []outbox.Delivery
	fail func(outbox.Delivery) error
}

func (r *recorder) Publish(ctx context.Context, batch []outbox.Delivery) []error {
	errs := make([]error, len(batch))
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, d := range batch {
		if r.fail != nil {
			if errs[i] = r.fail(d); errs[i] != nil {
				continue
			}
		}
		r.log = append(r.log, d)
	}
	return errs
}

func (r *recorder) published() []outbox.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outbox.Delivery(nil), r.log...)
}

func newOutbox(t *testing.T, pool *pgxpool.Pool) *outbox.Outbox {
	t.Helper()
	o, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

func newRelay(t testing.TB, pool *pgxpool.Pool, pub outbox.Publisher, cfg outbox.RelayConfig) *outbox.Relay {
	t.Helper()
	r, err := outbox.NewRelay(pool, pub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func enqueue(t *testing.T, pool *pgxpool.Pool, o *outbox.Outbox, msgs ...outbox.Message) {
	t.Helper()
	ctx := context.Background()
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := o.Enqueue(ctx, tx, msgs...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// drain runs RunOnce until a claim comes back empty, at the given clock.
func drain(t *testing.T, r *outbox.Relay, now *time.Time) {
	t.Helper()
	for range 10000 {
		var n int
		var err error
		if now != nil {
			n, err = outbox.RunOnceAt(context.Background(), r, *now)
		} else {
			n, err = r.RunOnce(context.Background())
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("relay never ran out of work")
}

func state(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) db.KeelOutbox {
	t.Helper()
	row, err := db.New(pool).OutboxGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func count(t *testing.T, pool *pgxpool.Pool, where string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM keel.outbox WHERE "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRollbackNeverPublishedCommitPublished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	o := newOutbox(t, pool)

	rolledBack := outbox.Message{ID: uuid.New(), Topic: "orders", Payload: []byte("no")}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Enqueue(ctx, tx, rolledBack); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	committed := outbox.Message{ID: uuid.New(), Topic: "orders", Key: "o-1", Type: "OrderPlaced", Payload: []byte(`{"id":1}`), Headers: map[string]string{"trace": "abc"}}
	enqueue(t, pool, o, committed)

	rec := &recorder{}
	drain(t, newRelay(t, pool, rec, outbox.RelayConfig{}), nil)
	got := rec.published()
	if len(got) != 1 {
		t.Fatalf("published %d messages, want 1: %+v", len(got), got)
	}
	d := got[0]
	if d.Topic != "orders" || d.Key != "o-1" || d.Type != "OrderPlaced" || string(d.Payload) != `{"id":1}` || d.Headers["trace"] != "abc" || d.Attempt != 1 || d.ID == uuid.Nil {
		t.Errorf("published %+v", d)
	}
	if row := state(t, pool, d.ID); row.State != db.KeelOutboxStateDelivered || !row.DeliveredAt.Valid {
		t.Errorf("row after delivery: state %s, delivered_at %v", row.State, row.DeliveredAt)
	}
	if n := count(t, pool, "true"); n != 1 {
		t.Errorf("%d rows in keel.outbox, want 1 (the rolled-back one must not exist)", n)
	}
}

func TestEnqueueIdempotentAndOrdered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	id := uuid.New()
	msgs := []outbox.Message{
		{ID: id, Topic: "t", Payload: []byte("1")},
		{Topic: "t", Payload: []byte("2")},
		{Topic: "t", Payload: []byte("3")},
	}
	var n int
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
		n, err = o.Enqueue(ctx, tx, msgs...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != 3 || msgs[1].ID == uuid.Nil || msgs[1].ID == msgs[2].ID {
		t.Fatalf("enqueued %d, ids %v", n, []uuid.UUID{msgs[0].ID, msgs[1].ID, msgs[2].ID})
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) (err error) {
		n, err = o.Enqueue(ctx, tx, outbox.Message{ID: id, Topic: "t", Payload: []byte("again")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("re-enqueueing a known id stored %d rows", n)
	}
	rec := &recorder{}
	drain(t, newRelay(t, pool, rec, outbox.RelayConfig{}), nil)
	var bodies string
	for _, d := range rec.published() {
		bodies += string(d.Payload)
	}
	if bodies != "123" {
		t.Errorf("published %q, want the three bodies once, in enqueue order", bodies)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	long := make([]byte, 256)
	for i := range long {
		long[i] = 'x'
	}
	tests := []struct {
		name string
		msg  outbox.Message
		want string
	}{
		{"empty topic", outbox.Message{Payload: []byte("x")}, "topic: is empty"},
		{"long topic", outbox.Message{ID: uuid.New(), Topic: string(long), Payload: []byte("x")}, "at most 255"},
		{"nil payload", outbox.Message{ID: uuid.New(), Topic: "t"}, "payload: is nil"},
		{"empty header name", outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte{}, Headers: map[string]string{"": "v"}}, `header name "": is empty`},
	}
	for _, tc := range tests {
		valid := outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte("valid")}
		_, err := o.Enqueue(ctx, pool, valid, tc.msg)
		var ime *outbox.InvalidMessageError
		if !errors.Is(err, outbox.ErrInvalidMessage) || !errors.As(err, &ime) || ime.Index != 1 {
			t.Errorf("%s: got %v, want an InvalidMessageError for message 1", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q lacks %q", tc.name, err, tc.want)
		}
	}
	if n := count(t, pool, "true"); n != 0 {
		t.Errorf("%d rows written by rejected enqueues", n)
	}
	if err := outbox.Requeue(ctx, pool, uuid.New()); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("requeue of an unknown id: %v", err)
	}
	if _, err := outbox.NewRelay(pool, nil, outbox.RelayConfig{}); err == nil {
		t.Error("NewRelay accepted a nil publisher")
	}
	if _, err := outbox.NewRelay(pool, &recorder{}, outbox.RelayConfig{BatchSize: -1}); err == nil {
		t.Error("NewRelay accepted a negative batch size")
	}
}

// 3 relays, 100 keys × 50 messages, a publisher failing 20% of the time:
// every message is published, and per key the first publications follow
// enqueue order.
func TestConcurrentRelaysKeepPerKeyOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	const keys, perKey = 100, 50
	order := map[uuid.UUID]int{}
	// Enqueue in many transactions, keys interleaved.
	for round := range perKey {
		msgs := make([]outbox.Message, 0, keys)
		for k := range keys {
			msgs = append(msgs, outbox.Message{ID: uuid.New(), Topic: "t", Key: fmt.Sprintf("k%d", k), Payload: []byte(fmt.Sprint(round))})
		}
		enqueue(t, pool, o, msgs...)
		for _, m := range msgs {
			order[m.ID] = round
		}
	}

	rec := &recorder{fail: func(outbox.Delivery) error {
		if rand.IntN(5) == 0 {
			return errors.New("broker hiccup")
		}
		return nil
	}}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 3 {
		r := newRelay(t, pool, rec, outbox.RelayConfig{
			Name: fmt.Sprintf("relay-%d", i), BatchSize: 64, MaxAttempts: 1000, PollInterval: 10 * time.Millisecond,
			RetryPolicy: keeltype.ExponentialBackoff{Initial: time.Millisecond, Max: time.Millisecond},
		})
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx) }()
	}
	waitFor(t, 2*time.Minute, func() bool { return count(t, pool, "state = 'delivered'") == keys*perKey })
	cancel()
	wg.Wait()

	seen := map[uuid.UUID]bool{}
	next := map[string]int{}
	for _, d := range rec.published() {
		if seen[d.ID] {
			continue // a redelivery; order is about first publications
		}
		seen[d.ID] = true
		if got, want := order[d.ID], next[d.Key]; got != want {
			t.Fatalf("key %s: message %d first published when %d was next", d.Key, got, want)
		}
		next[d.Key]++
	}
	if len(seen) != keys*perKey {
		t.Errorf("published %d distinct messages, want %d", len(seen), keys*perKey)
	}
	if n := count(t, pool, "attempts > 1"); n == 0 {
		t.Error("no message needed a retry: the failing publisher did not fail")
	}
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A failing message waits its backoff, blocks later messages of its key but
// not other keys, is dead after MaxAttempts, and can be requeued.
func TestBackoffDeadLetterRequeue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	first := outbox.Message{ID: uuid.New(), Topic: "t", Key: "a", Payload: []byte("first")}
	second := outbox.Message{ID: uuid.New(), Topic: "t", Key: "a", Payload: []byte("second")}
	other := outbox.Message{ID: uuid.New(), Topic: "t", Key: "b", Payload: []byte("other")}
	enqueue(t, pool, o, first, second, other)

	broken := true
	rec := &recorder{fail: func(d outbox.Delivery) error {
		if broken && string(d.Payload) == "first" {
			return fmt.Errorf("attempt %d refused", d.Attempt)
		}
		return nil
	}}
	r := newRelay(t, pool, rec, outbox.RelayConfig{MaxAttempts: 3, RetryPolicy: keeltype.RetryPolicyFunc(func(n int, _ error) time.Duration { return time.Duration(n) * time.Hour })})

	base := time.Now()
	at := func(d time.Duration) *time.Time { t := base.Add(d); return &t }
	drain(t, r, at(0))
	if got := rec.published(); len(got) != 1 || string(got[0].Payload) != "other" {
		t.Fatalf("after attempt 1 published %v, want only the other key's message", payloads(got))
	}
	row := state(t, pool, first.ID)
	if row.State != db.KeelOutboxStatePending || row.Attempts != 1 || row.LastError == nil || *row.LastError != "attempt 1 refused" {
		t.Fatalf("after one failure: %+v", row)
	}
	if wait := row.AvailableAt.Time.Sub(base); wait < 59*time.Minute || wait > 61*time.Minute {
		t.Errorf("retry scheduled %s after the failure, want the backoff of 1h", wait)
	}
	drain(t, r, at(30*time.Minute)) // within the backoff: nothing to do
	if row := state(t, pool, first.ID); row.Attempts != 1 {
		t.Errorf("retried before its backoff ended: %d attempts", row.Attempts)
	}
	drain(t, r, at(61*time.Minute))
	drain(t, r, at(4*time.Hour))
	row = state(t, pool, first.ID)
	if row.State != db.KeelOutboxStateDead || row.Attempts != 3 {
		t.Fatalf("after 3 failures: state %s, attempts %d", row.State, row.Attempts)
	}
	if n := len(jsonArray(t, row.Errors)); n != 3 {
		t.Errorf("errors column holds %d attempts, want 3", n)
	}
	// The dead head no longer blocks its key.
	drain(t, r, at(5*time.Hour))
	if got := payloads(rec.published()); got != "other,second" {
		t.Errorf("published %s, want other then second", got)
	}
	if err := outbox.Requeue(ctx, pool, second.ID); !errors.Is(err, outbox.ErrNotDead) {
		t.Errorf("requeue of a delivered message: %v", err)
	}
	broken = false
	if err := outbox.Requeue(ctx, pool, first.ID); err != nil {
		t.Fatal(err)
	}
	drain(t, r, nil)
	if row := state(t, pool, first.ID); row.State != db.KeelOutboxStateDelivered || row.Attempts != 1 {
		t.Errorf("requeued message: state %s, attempts %d", row.State, row.Attempts)
	}
}

// RequeueDead requeues the dead messages of one topic, or of all, in one
// statement, and leaves every other message alone; a topic Postgres cannot
// store is refused before anything is sent, in a transaction that stays
// usable.
func TestRequeueDead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	msg := func(topic, payload string) outbox.Message {
		return outbox.Message{ID: uuid.New(), Topic: topic, Payload: []byte(payload)}
	}
	deadA := []outbox.Message{msg("a", "1"), msg("a", "2")}
	deadB := msg("b", "3")
	enqueue(t, pool, o, append(deadA, deadB)...)
	failing := &recorder{fail: func(outbox.Delivery) error { return errors.New("broker down") }}
	drain(t, newRelay(t, pool, failing, outbox.RelayConfig{MaxAttempts: 1}), nil)
	pending := msg("a", "4")
	enqueue(t, pool, o, pending)

	n, err := outbox.RequeueDead(ctx, pool, "a")
	if err != nil || n != 2 {
		t.Fatalf("RequeueDead(a) = %d, %v; want 2", n, err)
	}
	for _, m := range deadA {
		if row := state(t, pool, m.ID); row.State != db.KeelOutboxStatePending || row.Attempts != 0 || row.LockedBy != nil {
			t.Errorf("requeued message %s: state %s, attempts %d, relay %v", m.Payload, row.State, row.Attempts, row.LockedBy)
		}
	}
	if row := state(t, pool, deadB.ID); row.State != db.KeelOutboxStateDead {
		t.Errorf("topic b's dead letter is %s after requeueing topic a", row.State)
	}
	if row := state(t, pool, pending.ID); row.State != db.KeelOutboxStatePending || row.Attempts != 0 {
		t.Errorf("a pending message changed: %+v", row)
	}
	if n, err := outbox.RequeueDead(ctx, pool, ""); err != nil || n != 1 {
		t.Fatalf("RequeueDead of every topic = %d, %v; want 1", n, err)
	}
	if n, err := outbox.RequeueDead(ctx, pool, ""); err != nil || n != 0 {
		t.Fatalf("RequeueDead with no dead letter = %d, %v; want 0", n, err)
	}
	ok := &recorder{}
	drain(t, newRelay(t, pool, ok, outbox.RelayConfig{}), nil)
	if got := len(ok.published()); got != 4 {
		t.Errorf("published %d messages after the requeue, want 4", got)
	}

	for _, topic := range []string{strings.Repeat("t", 256), "a\x00b", "\xff"} {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := outbox.RequeueDead(ctx, tx, topic); !errors.Is(err, outbox.ErrInvalidArgument) {
				t.Errorf("RequeueDead(%q) = %v, want ErrInvalidArgument", topic, err)
			}
			_, err := o.Enqueue(ctx, tx, msg("after", "5"))
			return err
		})
		if err != nil {
			t.Errorf("the transaction is not usable after RequeueDead(%q) was refused: %v", topic, err)
		}
	}
}

func payloads(ds []outbox.Delivery) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += ","
		}
		s += string(d.Payload)
	}
	return s
}

func TestNotBeforeAndRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	later := outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte("later"), NotBefore: time.Now().Add(time.Hour)}
	now := outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte("now")}
	enqueue(t, pool, o, later, now)
	rec := &recorder{}
	r := newRelay(t, pool, rec, outbox.RelayConfig{})
	drain(t, r, nil)
	if got := payloads(rec.published()); got != "now" {
		t.Fatalf("published %s before the not-before time", got)
	}
	future := time.Now().Add(2 * time.Hour)
	drain(t, r, &future)
	if got := payloads(rec.published()); got != "now,later" {
		t.Fatalf("published %s after the not-before time", got)
	}

	deleted, err := outbox.DeleteDelivered(ctx, pool, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// "later" was delivered at the moved clock, two hours ahead: it stays.
	if deleted != 1 || count(t, pool, "true") != 1 || state(t, pool, later.ID).State != db.KeelOutboxStateDelivered {
		t.Errorf("retention deleted %d; rows left %d", deleted, count(t, pool, "true"))
	}
}

// Stopping a relay while it publishes records what was delivered and hands
// back the rest without using an attempt.
func TestStopDuringPublishHandsBack(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	a, b := outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte("a")}, outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte("b")}
	enqueue(t, pool, o, a, b)
	ctx, cancel := context.WithCancel(context.Background())
	pub := outbox.PublisherFunc(func(ctx context.Context, d outbox.Delivery) error {
		if string(d.Payload) == "a" {
			cancel()
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	})
	if _, err := newRelay(t, pool, pub, outbox.RelayConfig{}).RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if row := state(t, pool, a.ID); row.State != db.KeelOutboxStateDelivered {
		t.Errorf("message published before the stop: %s", row.State)
	}
	if row := state(t, pool, b.ID); row.State != db.KeelOutboxStatePending || row.Attempts != 0 || row.LockedUntil.Valid {
		t.Errorf("message interrupted by the stop: state %s, attempts %d, lease %v", row.State, row.Attempts, row.LockedUntil)
	}
}

// The outbox's hook hears of each Enqueue and the relay's of each message
// published, with its outcome.
func TestHooks(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	hook := &hooktest.Recorder{}
	o, err := outbox.New(pool, outbox.Config{Hook: hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	enqueue(t, pool, o, outbox.Message{ID: uuid.New(), Topic: "ok", Payload: []byte{}}, outbox.Message{ID: uuid.New(), Topic: "bad", Payload: []byte{}})
	rec := &recorder{fail: func(d outbox.Delivery) error {
		if d.Topic == "bad" {
			return errors.New("no")
		}
		return nil
	}}
	r := newRelay(t, pool, rec, outbox.RelayConfig{MaxAttempts: 1, Hook: hook})
	drain(t, r, nil)
	if e := hook.Ended(keeltype.OpOutboxEnqueue); len(e) != 1 || e[0].Op.Count != 2 || e[0].Op.Name != "ok" || e[0].Outcome.Err != nil {
		t.Errorf("enqueues the hook heard of: %+v", e)
	}
	states := map[string]string{}
	for _, e := range hook.Ended(keeltype.OpOutboxPublish) {
		states[e.Op.Name] = e.Outcome.State
		if e.Op.Attempt != 1 || e.Op.ID == "" {
			t.Errorf("publish operation %+v", e.Op)
		}
	}
	if states["ok"] != "delivered" || states["bad"] != "failed" || len(states) != 2 {
		t.Errorf("publish outcomes %v, want ok delivered and bad failed", states)
	}
}

// A running relay reports the age of the oldest undelivered message: above
// zero while one waits, zero once everything is delivered.
func TestLagHook(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	enqueue(t, pool, o, outbox.Message{Topic: "t", Payload: []byte{}, NotBefore: time.Now().Add(time.Hour)})
	hook := &hooktest.Recorder{}
	r := newRelay(t, pool, &recorder{}, outbox.RelayConfig{PollInterval: 10 * time.Millisecond, Hook: hook})
	last := func() (time.Duration, int) {
		lags := hook.Measured(keeltype.MeasureOutboxLag)
		if len(lags) == 0 {
			return 0, 0
		}
		return lags[len(lags)-1].Age, len(lags)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	waitFor(t, 30*time.Second, func() bool { d, n := last(); return n > 0 && d > 0 })
	if _, err := pool.Exec(ctx, "UPDATE keel.outbox SET available_at = now()"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool { d, n := last(); return n > 0 && d == 0 })
	cancel()
	<-done
}
