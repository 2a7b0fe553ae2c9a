package orders_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/examples/orders"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// recorder keeps the service's happenings.
type recorder struct {
	mu  sync.Mutex
	all []orders.Happening
}

func (r *recorder) observe(h orders.Happening) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, h)
}

// count is how often what happened to order id.
func (r *recorder) count(id int64, what string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, h := range r.all {
		if h.OrderID == id && h.What == what {
			n++
		}
	}
	return n
}

func (r *recorder) of(id int64) []orders.Happening {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []orders.Happening
	for _, h := range r.all {
		if h.OrderID == id {
			out = append(out, h)
		}
	}
	return out
}

func setup(t *testing.T, timeout time.Duration) (*pgxpool.Pool, *orders.Service, *recorder) {
	t.Helper()
	// pgxpool's default config, so the tests show it is enough.
	pool := testdb.New(t)
	if err := orders.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	svc, err := orders.New(pool, orders.Config{Observe: rec.observe, PollInterval: 50 * time.Millisecond, PaymentTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return pool, svc, rec
}

// run runs the service until the test ends.
func run(t *testing.T, svc *orders.Service) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service: %v", err)
		}
	})
}

// snapshot is every row of every table in schemas keel and public, as text,
// so two snapshots differ when any row was inserted, updated or deleted.
func snapshot(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	ctx := t.Context()
	rows, err := pool.Query(ctx, `SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('keel', 'public') ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var s, n string
		err := r.Scan(&s, &n)
		return pgx.Identifier{s, n}.Sanitize(), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("only %d tables in keel and public: %v", len(names), names)
	}
	out := map[string]string{}
	for _, n := range names {
		var s string
		q := fmt.Sprintf(`SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM %s t`, n)
		if err := pool.QueryRow(ctx, q).Scan(&s); err != nil {
			t.Fatal(err)
		}
		out[n] = s
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	for n, b := range before {
		if after[n] != b {
			t.Errorf("table %s changed: %s → %s", n, b, after[n])
		}
	}
	if len(after) != len(before) {
		t.Errorf("tables changed: %d → %d", len(before), len(after))
	}
}

var order = orders.NewOrder{
	Customer: "ada", Email: "ada@example.com",
	Items: []orders.Item{{SKU: "book", Qty: 2, PriceCents: 1500}, {SKU: "pen", Qty: 1, PriceCents: 250}},
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func post(t *testing.T, h http.Handler, path, body string) (int, map[string]any) {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(rr.Body.Bytes(), &out); err != nil {
		t.Fatalf("POST %s: %d %q is not JSON: %v", path, rr.Code, rr.Body.String(), err)
	}
	return rr.Code, out
}

func await(t *testing.T, svc *orders.Service, id int64) *saga.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	run, err := svc.Engine().Await(ctx, orders.RunID(id))
	if err != nil {
		r, gerr := svc.Engine().Get(context.Background(), svc.Pool(), orders.RunID(id))
		if gerr == nil {
			t.Logf("run %s: %s wait=%q last=%q", r.ID, r.Status, r.WaitReason, r.LastError)
		}
		steps, _ := svc.Engine().Steps(context.Background(), orders.RunID(id))
		for _, s := range steps {
			t.Logf("step %+v", s)
		}
		t.Fatal(err)
	}
	return run
}

func status(t *testing.T, pool *pgxpool.Pool, id int64) string {
	t.Helper()
	var s string
	if err := pool.QueryRow(t.Context(), `SELECT status FROM public.orders WHERE id = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// One transaction across all four features: rolled back, no table changes
// and nothing runs; committed, each feature acts on it exactly once.
func TestOneTransaction(t *testing.T) {
	t.Parallel()
	pool, svc, rec := setup(t, 10*time.Minute)
	ctx := t.Context()

	before := snapshot(t, pool)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rolledBack, err := svc.Place(ctx, tx, order)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	sameSnapshot(t, before, snapshot(t, pool))

	run(t, svc)
	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	placed, err := svc.Place(ctx, tx, order)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if placed.ID == rolledBack.ID {
		t.Fatalf("the committed order reused the rolled-back id %d", placed.ID)
	}
	waitFor(t, "the saga to wait for payment", func() bool { return status(t, pool, placed.ID) == "awaiting payment confirmation" })
	if code, body := post(t, svc.Handler(), fmt.Sprintf("/orders/%d/payment", placed.ID), `{"confirmed":true}`); code != http.StatusAccepted {
		t.Fatalf("payment: %d %v", code, body)
	}
	done := await(t, svc, placed.ID)
	if done.Status != saga.StatusSucceeded {
		t.Fatalf("run %s: %s %v", done.ID, done.Status, done.Err())
	}
	if s := status(t, pool, placed.ID); s != "shipped" {
		t.Errorf("order status %q, want shipped", s)
	}
	for _, what := range []string{"job ran", "message relayed", "projection updated"} {
		waitFor(t, what, func() bool { return rec.count(placed.ID, what) > 0 })
	}
	// The relay, the job and the subscription had their chance to repeat
	// while the saga ran; their rows say each finished on the first try.
	// The relay records the delivery after the publisher returns.
	var outboxState string
	var outboxAttempts int
	waitFor(t, "the message to be marked delivered", func() bool {
		if err := pool.QueryRow(ctx, `SELECT state::text, attempts FROM keel.outbox WHERE key = $1`, orders.StreamID(placed.ID)).Scan(&outboxState, &outboxAttempts); err != nil {
			t.Fatal(err)
		}
		return outboxState != "pending"
	})
	if outboxState != "delivered" || outboxAttempts != 1 {
		t.Errorf("outbox message %s after %d attempts, want delivered after 1", outboxState, outboxAttempts)
	}
	var jobState string
	var jobAttempt int
	waitFor(t, "the job's outcome to be written", func() bool {
		if err := pool.QueryRow(ctx, `SELECT state::text, attempt FROM keel.jobs WHERE kind = 'order_confirmation_email' AND args->>'order_id' = $1`, fmt.Sprint(placed.ID)).Scan(&jobState, &jobAttempt); err != nil {
			t.Fatal(err)
		}
		return jobState != "running"
	})
	if jobState != "completed" || jobAttempt != 1 {
		t.Errorf("job %s at attempt %d, want completed at 1", jobState, jobAttempt)
	}
	waitFor(t, "the subscription checkpoint", func() bool {
		var pos int64
		err := pool.QueryRow(ctx, `SELECT position FROM keel.subscriptions WHERE name = $1`, orders.Subscription).Scan(&pos)
		return err == nil && pos > 0
	})
	var n, total int64
	if err := pool.QueryRow(ctx, `SELECT orders, total_cents FROM public.orders_per_customer WHERE customer = 'ada'`).Scan(&n, &total); err != nil {
		t.Fatal(err)
	}
	if n != 1 || total != placed.TotalCents {
		t.Errorf("read model: %d orders, %d cents; want 1, %d", n, total, placed.TotalCents)
	}
	for _, what := range []string{"job ran", "message relayed", "projection updated"} {
		if c := rec.count(placed.ID, what); c != 1 {
			t.Errorf("%s %d times, want once", what, c)
		}
	}
	if hs := rec.of(rolledBack.ID); len(hs) > 0 {
		t.Errorf("the rolled-back order %d ran: %v", rolledBack.ID, hs)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM keel.events WHERE stream_id = $1`, orders.StreamID(rolledBack.ID)).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("events of the rolled-back order: %d, %v", rows, err)
	}
}

// A refused payment fails the run and compensates in reverse order; a
// payment that never comes does the same at the timeout.
func TestPaymentCompensates(t *testing.T) {
	t.Parallel()
	pool, svc, rec := setup(t, 2*time.Second)
	run(t, svc)
	h := svc.Handler()
	body, _ := json.Marshal(order)

	code, refused := post(t, h, "/orders", string(body))
	if code != http.StatusCreated {
		t.Fatalf("POST /orders: %d %v", code, refused)
	}
	code, silent := post(t, h, "/orders", string(body))
	if code != http.StatusCreated {
		t.Fatalf("POST /orders: %d %v", code, silent)
	}
	refusedID, silentID := int64(refused["id"].(float64)), int64(silent["id"].(float64))
	if code, b := post(t, h, fmt.Sprintf("/orders/%d/payment", refusedID), `{"confirmed":false}`); code != http.StatusAccepted {
		t.Fatalf("payment: %d %v", code, b)
	}
	for _, id := range []int64{refusedID, silentID} {
		done := await(t, svc, id)
		if done.Status != saga.StatusFailed {
			t.Fatalf("run %s: %s, want failed", done.ID, done.Status)
		}
		var steps []string
		for _, hp := range rec.of(id) {
			if hp.What == "saga step" {
				steps = append(steps, hp.Detail)
			}
		}
		want := []string{"stock reserved", "card charged", "awaiting payment confirmation", "refunded 3250 cents", "stock released"}
		if fmt.Sprint(steps) != fmt.Sprint(want) {
			t.Errorf("order %d steps %q, want %q", id, steps, want)
		}
		if s := status(t, pool, id); s != "stock released" {
			t.Errorf("order %d status %q", id, s)
		}
	}
	if code, b := post(t, h, "/orders/999999/payment", `{"confirmed":true}`); code != http.StatusNotFound {
		t.Errorf("payment of a missing order: %d %v", code, b)
	}
}

// Invalid input gets a 400 with a clear message and leaves no trace.
func TestInvalidOrder(t *testing.T) {
	t.Parallel()
	pool, svc, _ := setup(t, time.Minute)
	h := svc.Handler()
	before := snapshot(t, pool)
	for _, tc := range []struct{ body, want string }{
		{`{"customer":"","email":"a@b.c","items":[{"sku":"x","qty":1,"price_cents":1}]}`, "customer is required"},
		{`{"customer":"ada","email":"nope","items":[{"sku":"x","qty":1,"price_cents":1}]}`, `email "nope" is not an address`},
		{`{"customer":"ada","email":"a@b.c","items":[]}`, "at least one item"},
		{`{"customer":"ada","email":"a@b.c","items":[{"sku":"x","qty":0,"price_cents":1}]}`, "qty must be positive"},
		{`{"customer":"ada","email":"a@b.c","items":[{"sku":"x","qty":1,"price_cents":-5}]}`, "price_cents must be positive"},
		{`{"customer":"ada","email":"a@b.c","items":[{"qty":1,"price_cents":1}]}`, "has no sku"},
		{`{"customer":"ada"`, "not the expected JSON"},
		{`{"customer":"ada","colour":"red"}`, `unknown field "colour"`},
	} {
		code, out := post(t, h, "/orders", tc.body)
		msg, _ := out["error"].(string)
		if code != http.StatusBadRequest || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %q, want 400 containing %q", tc.body, code, msg, tc.want)
		}
	}
	for _, tc := range []struct{ path, body string }{
		{"/orders/abc/payment", `{"confirmed":true}`},
		{"/orders/1/payment", `{}`},
	} {
		if code, out := post(t, h, tc.path, tc.body); code != http.StatusBadRequest {
			t.Errorf("%s %s: %d %v", tc.path, tc.body, code, out)
		}
	}
	sameSnapshot(t, before, snapshot(t, pool))
	// The same order placed directly fails before its first write, too.
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := svc.Place(t.Context(), tx, orders.NewOrder{Customer: "ada"}); err == nil {
		t.Fatal("an order without email or items was placed")
	}
	var n int
	if err := tx.QueryRow(t.Context(), `SELECT count(*) FROM public.orders`).Scan(&n); err != nil || n != 0 {
		t.Errorf("orders in the transaction: %d, %v", n, err)
	}
}
