// Command orders-demo runs keel's orders example end to end in one process
// and prints what happens as it happens: a paid order, an order whose
// payment is refused and compensates, and a rolled-back and an invalid
// request. Then it prints the psql queries that show the result, with their
// output. `make demo` runs it.
//
// With -console ADDR (or KEEL_DEMO_CONSOLE=ADDR; `make demo
// CONSOLE=127.0.0.1:8080` sets it) the demo then serves keel's web console
// on ADDR over its scratch database, with the order service still running,
// until Ctrl-C; the scratch database is dropped after that.
//
// It connects with DATABASE_URL, or with an empty connection string (libpq's
// PGHOST, PGPORT, PGUSER … as pg_virtualenv sets them), creates a scratch
// database on that server, works only there and drops it at the end.
// scripts/demo.sh picks the server; its last resort runs the demo through
// scripts/postgres.sh, which finds a server on 127.0.0.1:5432 or starts one
// — a local cluster, or a throwaway Docker container (tools/pgcontainer) —
// and sets DATABASE_URL:
//
//	bash scripts/postgres.sh --run go run ./examples/orders/cmd/orders-demo
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/console"
	"github.com/keelpg/keel/examples/orders"
	"github.com/keelpg/keel/migrations"
	"github.com/keelpg/keel/saga"
)

// Statements sqlc cannot express: CREATE and DROP DATABASE take the name as
// an identifier, filled with pgx.Identifier.Sanitize.
const (
	createDatabase = "CREATE DATABASE %s"
	dropDatabase   = "DROP DATABASE IF EXISTS %s WITH (FORCE)"
)

// The queries the demo shows the user, to run in psql themselves.
const (
	queryOrders    = `SELECT id, customer, total_cents, status FROM orders ORDER BY id;`
	queryEvents    = `SELECT position, stream_id, version, type FROM keel.event_feed ORDER BY position;`
	queryOutbox    = `SELECT topic, key, type, state, attempts FROM keel.outbox ORDER BY id;`
	queryJobs      = `SELECT kind, state, attempt FROM keel.jobs WHERE kind NOT LIKE 'keel.%' ORDER BY id;`
	querySagas     = `SELECT id, status, error->>'message' AS error FROM keel.saga_runs ORDER BY created_at;`
	querySteps     = `SELECT run_id, seq, name, kind, status FROM keel.saga_steps ORDER BY run_id, seq;`
	queryReadModel = `SELECT customer, orders, total_cents FROM orders_per_customer ORDER BY customer;`
)

// queryTrace counts what a rolled-back order could have left: its row, its
// event, its message, its job and its saga run.
const queryTrace = `SELECT (SELECT count(*) FROM orders WHERE id = $3)
  + (SELECT count(*) FROM keel.events WHERE stream_id = $1)
  + (SELECT count(*) FROM keel.outbox WHERE key = $1)
  + (SELECT count(*) FROM keel.jobs WHERE args->>'order_id' = $3::bigint::text)
  + (SELECT count(*) FROM keel.saga_runs WHERE id = $2)`

var exitCode int

func main() {
	defer func() { os.Exit(exitCode) }()
	realMain()
}

func realMain() {
	start := time.Now()
	// Ctrl-C ends the demo through its deferred clean-up (the scratch
	// database is dropped).
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	consoleAddr := flag.String("console", os.Getenv("KEEL_DEMO_CONSOLE"), "after the demo, serve keel's console on this `address` until Ctrl-C")
	flag.Parse()
	if err := run(ctx, os.Stdout, *consoleAddr); err != nil {
		fmt.Fprintln(os.Stderr, "orders-demo:", err)
		exitCode = 1
		return
	}
	fmt.Printf("\ndemo finished in %s\n", time.Since(start).Round(time.Millisecond))
}

func run(ctx context.Context, out io.Writer, consoleAddr string) error {
	url := os.Getenv("DATABASE_URL")
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connecting (DATABASE_URL or PGHOST/PGPORT/PGUSER): %w", err)
	}
	defer func() { _ = admin.Close(context.Background()) }()
	scratch := fmt.Sprintf("keel_demo_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, fmt.Sprintf(createDatabase, pgx.Identifier{scratch}.Sanitize())); err != nil {
		return fmt.Errorf("creating the scratch database %s: %w", scratch, err)
	}
	defer func() {
		if _, err := admin.Exec(context.Background(), fmt.Sprintf(dropDatabase, pgx.Identifier{scratch}.Sanitize())); err != nil {
			fmt.Fprintln(os.Stderr, "orders-demo: dropping", scratch+":", err)
		}
	}()
	fmt.Fprintf(out, "scratch database %s on %s:%d (dropped at the end)\n", scratch, admin.Config().Host, admin.Config().Port)

	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.ConnConfig.Database = scratch
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrations.New(pool, migrations.Config{})
	if err != nil {
		return err
	}
	applied, err := m.Up(ctx)
	_ = m.Close()
	if err != nil {
		return err
	}
	if err := orders.Migrate(ctx, pool); err != nil {
		return err
	}
	fmt.Fprintf(out, "applied %d keel migrations (public.keel_db_version) and the example's own (%s)\n", len(applied), orders.VersionTable)

	d := &demo{out: out, start: time.Now(), seen: map[int64]map[string]int{}}
	svc, err := orders.New(pool, orders.Config{Observe: d.observe, PaymentTimeout: 30 * time.Second, PollInterval: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "orders-demo: stopping:", err)
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	d.base = "http://" + ln.Addr().String()
	fmt.Fprintf(out, "order service listening on %s\n", d.base)

	if err := d.scenarios(ctx, svc, pool); err != nil {
		return err
	}
	if err := d.show(ctx, pool); err != nil {
		return err
	}
	if consoleAddr == "" {
		return nil
	}
	return serveConsole(ctx, out, pool, consoleAddr)
}

// serveConsole serves keel's console over the demo's database until ctx
// ends (Ctrl-C).
func serveConsole(ctx context.Context, out io.Writer, pool *pgxpool.Pool, addr string) error {
	h, err := console.New(pool, console.Config{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close() }()
	fmt.Fprintf(out, "\nkeel console on http://%s/ over the demo's database; Ctrl-C ends the demo and drops the database\n", ln.Addr())
	<-ctx.Done()
	return nil
}

type demo struct {
	out   io.Writer
	base  string
	start time.Time
	mu    sync.Mutex
	seen  map[int64]map[string]int
}

func (d *demo) observe(h orders.Happening) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[h.OrderID] == nil {
		d.seen[h.OrderID] = map[string]int{}
	}
	d.seen[h.OrderID][h.What]++
	fmt.Fprintf(d.out, "  %6.3fs  order %d  %-19s %s\n", time.Since(d.start).Seconds(), h.OrderID, h.What, h.Detail)
}

func (d *demo) count(id int64, what string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[id][what]
}

// waitFor polls until cond holds, for at most 20 seconds or until ctx ends.
func waitFor(ctx context.Context, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

func (d *demo) post(path string, body any) (int, map[string]any, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	if s, ok := body.(string); ok {
		b = []byte(s)
	}
	fmt.Fprintf(d.out, "\n> POST %s %s\n", path, b)
	resp, err := http.Post(d.base+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	fmt.Fprintf(d.out, "< %s %s", resp.Status, raw)
	var out map[string]any
	err = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, err
}

func (d *demo) place(o orders.NewOrder) (int64, error) {
	code, body, err := d.post("/orders", o)
	if err != nil {
		return 0, err
	}
	if code != http.StatusCreated {
		return 0, fmt.Errorf("POST /orders: %d %v", code, body)
	}
	id, _ := body["id"].(float64)
	return int64(id), nil
}

func (d *demo) awaitRun(ctx context.Context, svc *orders.Service, id int64) (*saga.Run, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return svc.Engine().Await(ctx, orders.RunID(id))
}

func (d *demo) section(title string) {
	fmt.Fprintf(d.out, "\n=== %s ===\n", title)
}

func (d *demo) scenarios(ctx context.Context, svc *orders.Service, pool *pgxpool.Pool) error {
	items := []orders.Item{{SKU: "book", Qty: 2, PriceCents: 1500}, {SKU: "pen", Qty: 1, PriceCents: 250}}

	d.section("1. a paid order: placed, emailed, relayed, projected, shipped")
	ada, err := d.place(orders.NewOrder{Customer: "ada", Email: "ada@example.com", Items: items})
	if err != nil {
		return err
	}
	if err := d.payWhenWaiting(ctx, svc, ada, true); err != nil {
		return err
	}
	run, err := d.awaitRun(ctx, svc, ada)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, "order "+fmt.Sprint(ada)+"'s job, message and projection", func() bool {
		return d.count(ada, "job ran") > 0 && d.count(ada, "message relayed") > 0 && d.count(ada, "projection updated") > 0
	}); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "saga %s %s\n", run.ID, run.Status)

	d.section("2. a refused payment: the saga refunds and releases the stock")
	bob, err := d.place(orders.NewOrder{Customer: "bob", Email: "bob@example.com", Items: items[:1]})
	if err != nil {
		return err
	}
	if err := d.payWhenWaiting(ctx, svc, bob, false); err != nil {
		return err
	}
	run, err = d.awaitRun(ctx, svc, bob)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, "order "+fmt.Sprint(bob)+"'s job, message and projection", func() bool {
		return d.count(bob, "job ran") > 0 && d.count(bob, "message relayed") > 0 && d.count(bob, "projection updated") > 0
	}); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "saga %s %s: %v\n", run.ID, run.Status, run.Err())

	d.section("3. an invalid request and a rolled-back transaction leave no trace")
	if code, _, err := d.post("/orders", `{"customer":"eve","email":"eve-at-example","items":[]}`); err != nil || code != http.StatusBadRequest {
		return fmt.Errorf("the invalid order got %d, %v", code, err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	p, err := svc.Place(ctx, tx, orders.NewOrder{Customer: "eve", Email: "eve@example.com", Items: items})
	if err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if err := tx.Rollback(ctx); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "\nplaced order %d (row, event, message, job, saga) in a transaction, then rolled it back\n", p.ID)
	var rows int
	err = pool.QueryRow(ctx, queryTrace, orders.StreamID(p.ID), orders.RunID(p.ID), p.ID).Scan(&rows)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "rows it left in orders, keel.events, keel.outbox, keel.jobs, keel.saga_runs: %d\n", rows)
	if rows != 0 {
		return errors.New("the rolled-back order left rows")
	}
	return nil
}

// payWhenWaiting signals the payment once the saga waits for it (sent
// earlier, the signal would be kept for the wait all the same).
func (d *demo) payWhenWaiting(ctx context.Context, svc *orders.Service, id int64, confirmed bool) error {
	if err := waitFor(ctx, "the saga to wait for payment", func() bool {
		r, err := svc.Engine().Get(ctx, svc.Pool(), orders.RunID(id))
		return err == nil && r.Status == saga.StatusWaiting
	}); err != nil {
		return err
	}
	code, body, err := d.post(fmt.Sprintf("/orders/%d/payment", id), map[string]bool{"confirmed": confirmed})
	if err != nil {
		return err
	}
	if code != http.StatusAccepted {
		return fmt.Errorf("payment: %d %v", code, body)
	}
	return nil
}

// show prints each query a user can run in psql, and its output here.
func (d *demo) show(ctx context.Context, pool *pgxpool.Pool) error {
	d.section("see it in psql (psql \"$DATABASE_URL\"), here run on the scratch database")
	for _, q := range []string{queryOrders, queryReadModel, queryEvents, queryOutbox, queryJobs, querySagas, querySteps} {
		fmt.Fprintf(d.out, "\n%s\n", q)
		rows, err := pool.Query(ctx, q)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
		var head []string
		for _, f := range rows.FieldDescriptions() {
			head = append(head, f.Name)
		}
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				rows.Close()
				return err
			}
			cells := make([]string, len(vals))
			for i, v := range vals {
				if v == nil {
					cells[i] = ""
				} else {
					cells[i] = fmt.Sprint(v)
				}
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_ = tw.Flush()
	}
	return nil
}
