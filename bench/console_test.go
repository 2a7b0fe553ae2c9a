package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/bench/internal/machine"
	"github.com/keelpg/keel/console"
)

// consoleRows is the size of the history the console is measured on: jobs
// (completed) and events (in streams of ten), 1,000,000 each unless
// KEEL_BENCH_CONSOLE_ROWS says otherwise, and a fifth as many delivered
// messages and succeeded saga runs.
func consoleRows(b *testing.B) int {
	n := 1_000_000
	if s := os.Getenv("KEEL_BENCH_CONSOLE_ROWS"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil || n < 10_000 {
			b.Fatalf("KEEL_BENCH_CONSOLE_ROWS=%q: want a number of at least 10000", s)
		}
	}
	return n
}

// consoleReportEnv names a file BenchmarkConsolePages writes its per-query
// table to (bench/CONSOLE.md is the committed one).
const consoleReportEnv = "KEEL_BENCH_CONSOLE_REPORT"

// The live rows the console's pages show, written beside the history:
// jobs in every state that is not final in two queues, 500 discarded jobs,
// 200 pending outbox messages and 50 dead letters, 300 runs waiting on a
// signal with one step each, a subscription 5,000 events behind.
const (
	consoleLiveJobs = `INSERT INTO keel.jobs (kind, queue, state, args, attempt, max_attempts, run_at, finalized_at, errors)
SELECT 'mail', CASE WHEN g % 2 = 0 THEN 'default' ELSE 'mail' END, s,
       jsonb_build_object('to', 'user' || g || '@example.com'), CASE WHEN s = 'discarded' THEN 3 ELSE 0 END, 3,
       CASE WHEN s = 'scheduled' THEN now() + interval '1 hour' ELSE now() END,
       CASE WHEN s = 'discarded' THEN now() - g * interval '1 s' END,
       CASE WHEN s = 'discarded' THEN '[{"attempt":3,"at":"2026-01-01T00:00:00Z","error":"smtp: 550 mailbox unavailable"}]'::jsonb ELSE '[]' END
FROM generate_series(1, 500) g, unnest('{available,scheduled,retryable,discarded}'::keel.job_state[]) s`
	consoleLiveOutbox = `INSERT INTO keel.outbox (id, topic, key, type, payload, state, attempts, last_error)
SELECT gen_random_uuid(), CASE WHEN g % 3 = 0 THEN 'billing' ELSE 'orders' END, 'order-' || g, 'OrderPlaced', '{"order":1}', s,
       CASE WHEN s = 'dead' THEN 10 ELSE 0 END, CASE WHEN s = 'dead' THEN 'broker: connection refused' END
FROM generate_series(1, 200) g, unnest('{pending,dead}'::keel.outbox_state[]) s
WHERE s = 'pending' OR g <= 50`
	consoleLiveRuns = `INSERT INTO keel.saga_runs (id, workflow, version, status, queue, input, epoch, generation, resumes, wait_reason)
SELECT '00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'), 'fulfil-order', 1, 'waiting', 'saga', '{"order":1}', 1, 1, 1, 'signal payment-confirmed'
FROM generate_series(1, 300) g`
	consoleLiveSteps = `INSERT INTO keel.saga_steps (run_id, seq, name, kind, status, output, attempts, started_at, finished_at)
SELECT '00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'), 1, 'reserve-stock', 'step', 'completed', '"ok"', 1, now(), now()
FROM generate_series(1, 300) g`
	consoleLiveSubscription = `INSERT INTO keel.subscriptions (name, category, position) VALUES ('read-model', 'history3', $1::bigint - 5000)`
	consoleIDs              = `SELECT (SELECT max(id) FROM keel.jobs WHERE state = 'discarded'),
       (SELECT id::text FROM keel.outbox WHERE state = 'dead' ORDER BY seq DESC LIMIT 1),
       (SELECT id FROM keel.saga_runs WHERE status = 'waiting' ORDER BY id LIMIT 1),
       (SELECT stream_id FROM keel.feed ORDER BY last_position DESC LIMIT 1)`
	consoleExplain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
	// consoleSerial is what the console's ConsoleSerialPlans does, for the
	// statements a page runs after it.
	consoleSerial = "SELECT set_config('max_parallel_workers_per_gather', '0', true)"
)

// BenchmarkConsolePages serves every console page as JSON over a database
// holding consoleRows jobs and events of history and a live set, and reports
// how long a page takes (the median of 20 requests after the first) and
// how many buffers its queries touch (those of the first request, which
// also reads the overview's charts). With KEEL_BENCH_CONSOLE_REPORT set it
// writes each page's queries with their EXPLAIN ANALYZE time and buffers to
// that file.
func BenchmarkConsolePages(b *testing.B) {
	ctx := context.Background()
	pool := freshDB(b, true, 8)
	rows := consoleRows(b)
	jobsHistory(b, pool, rows)
	eventsHistory(b, pool, rows)
	outboxHistory(b, pool, rows/5, 0)
	sagaHistory(b, pool, rows/5)
	for _, stmt := range []string{consoleLiveJobs, consoleLiveOutbox, consoleLiveRuns, consoleLiveSteps} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, consoleLiveSubscription, rows); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE keel.jobs, keel.outbox, keel.saga_runs, keel.saga_steps, keel.subscriptions"); err != nil {
		b.Fatal(err)
	}
	var jobID int64
	var messageID, runID, streamID string
	if err := pool.QueryRow(ctx, consoleIDs).Scan(&jobID, &messageID, &runID, &streamID); err != nil {
		b.Fatal(err)
	}

	rec := &statements{}
	cfg := pool.Config().Copy()
	cfg.ConnConfig.Tracer = rec
	traced, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(traced.Close)
	h, err := console.New(traced, console.Config{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)

	pages := []string{
		"/", "/queues",
		"/jobs", "/jobs?state=discarded", "/jobs?state=available&queue=mail", "/jobs?kind=mail",
		fmt.Sprintf("/jobs/%d", jobID),
		"/outbox", "/outbox?state=dead", "/outbox/" + messageID,
		"/sagas", "/sagas?status=waiting", "/sagas/" + runID,
		"/events", "/events?category=history3", "/events/streams/" + streamID, "/events/subscriptions",
	}
	var report strings.Builder
	fmt.Fprintf(&report, "# keel console: what each page costs\n\n"+
		"Made by `cd bench && %s=CONSOLE.md go test -run '^$' -bench ConsolePages -benchtime 1x .` on %s, %s.\n\n"+
		"The database holds %d completed jobs and %d events (in streams of ten) spread over the last 23 hours, "+
		"%d delivered outbox messages and %d succeeded saga runs, and a live set: 2,000 jobs not final or discarded, "+
		"200 pending messages and 50 dead letters, 300 waiting runs, a subscription 5,000 events behind. "+
		"Each page is requested as JSON (the HTML page runs the same statements). ms is the median of 20 requests "+
		"after the first, through HTTP; each statement's ms and shared buffers come from EXPLAIN ANALYZE of the "+
		"statements the first request ran, with its arguments (BEGIN and COMMIT are the overview's and queues' "+
		"read-only snapshot, planned without parallel workers). The overview's charts (ConsoleJobMinutes, "+
		"ConsoleOutboxMinutes) are read at most once every 15 seconds, whatever the number of open pages, so the "+
		"overview's median does not include them.\n\n"+
		"| page | ms (median of 20) | statement | ms | buffers | reaches |\n|---|---|---|---|---|---|\n",
		consoleReportEnv, time.Now().UTC().Format("2006-01-02"), machine.Describe(os.Getenv("DATABASE_URL")), rows, rows, rows/5, rows/5)
	for _, page := range pages {
		b.Run("keel/page="+pageName(page), func(b *testing.B) {
			get := func() {
				res, err := http.Get(srv.URL + "/api" + page)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				_ = res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("GET /api%s: %d %s", page, res.StatusCode, body)
				}
			}
			// The first request runs every statement the page has; later
			// ones find the overview's charts cached (they are read at most
			// once per 15 s), so the median is what a page open costs.
			rec.start()
			get()
			stmts := rec.stop()
			var times []time.Duration
			for range 20 {
				start := time.Now()
				get()
				times = append(times, time.Since(start))
			}
			slices.Sort(times)
			var buffers int64
			serial := false // in a snapshot planned without parallel workers
			for i, s := range stmts {
				switch {
				case s.name() == "ConsoleSerialPlans":
					serial = true
				case strings.EqualFold(s.sql, "commit"):
					serial = false
				}
				cell := ""
				if i == 0 {
					cell = fmt.Sprintf("%.2f", float64(times[len(times)/2].Microseconds())/1000)
				}
				if !s.named() { // BEGIN and COMMIT of a page's snapshot
					fmt.Fprintf(&report, "| %s | %s | %s | - | - | - |\n", pageCell(page, i), cell, s.name())
					continue
				}
				ms, bufs, reaches := explain(b, pool, s, serial)
				buffers += bufs
				fmt.Fprintf(&report, "| %s | %s | %s | %.2f | %d | %s |\n", pageCell(page, i), cell, s.name(), ms, bufs, reaches)
			}
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms/page")
			b.ReportMetric(float64(len(stmts)), "queries/page")
			b.ReportMetric(float64(buffers), "buffers/page")
		})
	}
	if path := os.Getenv(consoleReportEnv); path != "" {
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// pageName is a page's path as a benchmark name: /jobs?state=discarded is
// jobs_state-discarded, / is overview.
func pageName(page string) string {
	if page == "/" {
		return "overview"
	}
	return strings.NewReplacer("/", "_", "?", "_", "&", "_", "=", "-").Replace(strings.TrimPrefix(page, "/"))
}

func pageCell(page string, i int) string {
	if i > 0 {
		return ""
	}
	return "`" + page + "`"
}

// statement is one query a page ran, with its arguments.
type statement struct {
	sql  string
	args []any
}

// named reports whether the statement is one of sqlc's.
func (s statement) named() bool { return strings.HasPrefix(s.sql, "-- name: ") }

// name is sqlc's name for the statement, from the comment it starts with.
func (s statement) name() string {
	if rest, ok := strings.CutPrefix(s.sql, "-- name: "); ok {
		name, _, _ := strings.Cut(rest, " ")
		return name
	}
	return strings.Fields(s.sql)[0]
}

// statements is a pgx tracer that keeps the queries run between start and
// stop.
type statements struct {
	mu   sync.Mutex
	on   bool
	kept []statement
}

func (r *statements) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on, r.kept = true, nil
}

func (r *statements) stop() []statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return r.kept
}

func (r *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.kept = append(r.kept, statement{data.SQL, data.Args})
	}
	return ctx
}

func (r *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// explainNode is the part of EXPLAIN's JSON the report reads.
type explainNode struct {
	Type     string        `json:"Node Type"`
	Relation string        `json:"Relation Name"`
	Index    string        `json:"Index Name"`
	Hit      int64         `json:"Shared Hit Blocks"`
	Read     int64         `json:"Shared Read Blocks"`
	Plans    []explainNode `json:"Plans"`
}

// explain runs s under EXPLAIN ANALYZE and returns its execution time,
// the shared buffers it touched and how it reached each table.
func explain(b *testing.B, pool *pgxpool.Pool, s statement, serial bool) (float64, int64, string) {
	b.Helper()
	var out []struct {
		Plan          explainNode `json:"Plan"`
		ExecutionTime float64     `json:"Execution Time"`
	}
	var raw []byte
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if serial {
		if _, err := tx.Exec(ctx, consoleSerial); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.QueryRow(ctx, consoleExplain+s.sql, s.args...).Scan(&raw); err != nil {
		b.Fatalf("explaining %s: %v", s.name(), err)
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out) == 0 {
		b.Fatalf("reading the plan of %s: %v", s.name(), err)
	}
	reach := map[string]bool{}
	var walk func(n explainNode)
	walk = func(n explainNode) {
		switch {
		case n.Index != "":
			reach[n.Index] = true
		case n.Relation != "":
			reach[strings.ToLower(n.Type)+" "+n.Relation] = true
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(out[0].Plan)
	reaches := make([]string, 0, len(reach))
	for r := range reach {
		reaches = append(reaches, r)
	}
	sort.Strings(reaches)
	return out[0].ExecutionTime, out[0].Plan.Hit + out[0].Plan.Read, strings.Join(reaches, ", ")
}
