// Command soak runs keel's jobs and outbox under a steady offered load for a
// long time and reports, once a minute, whether keel keeps up as its tables
// grow:
//
//	cd bench && go run ./cmd/soak                        # 30 minutes
//	cd bench && go run ./cmd/soak -duration 3m -out SOAK.md
//
// It creates a database on DATABASE_URL's server (dropped at the end) and
// runs a jobs client with keel's default configuration working no-op jobs
// and an outbox relay publishing to a publisher that does nothing, both
// with keel's retention (by default completed jobs and delivered messages
// are kept 24 hours, so the tables grow for the whole run). Two pacers
// insert the offered load on a ticker: every -tick, the jobs (InsertMany)
// and the messages (one Enqueue transaction) that are due by then at
// -jobs-rate and -outbox-rate per second.
//
// Every -report interval, and at the end, it prints one line: the
// throughput offered and done, the backlog (available jobs, pending
// messages), the total size of keel.jobs and keel.outbox with their indexes,
// and their dead tuples. The summary compares the last full interval's
// throughput with the first and says whether keel kept up: the last
// interval did at least 95 % of the offered load and the final backlog is at
// most one second of it.
//
// When the server runs with autovacuum off, the soak does autovacuum's work
// on the two tables itself (see vacuumer), since a real deployment has
// autovacuum on: by each table's own autovacuum settings, which keel's
// migrations set, with the cost limit keel's README recommends at this rate
// (-vacuum-cost-limit, default 2000; autovacuum's own is 200).
// -autovacuum=false leaves them unvacuumed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/bench/internal/machine"
	"github.com/keelpg/keel/bench/internal/scratch"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/outbox"
)

type config struct {
	duration, report, tick, retention time.Duration
	jobsRate, outboxRate, keys        int
	autovacuum                        bool
	vacuumCostLimit                   int
	out                               string
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.duration, "duration", 30*time.Minute, "how long the load runs")
	flag.DurationVar(&cfg.report, "report", time.Minute, "how often a line is printed")
	flag.DurationVar(&cfg.tick, "tick", 10*time.Millisecond, "how often the pacers insert what is due")
	flag.DurationVar(&cfg.retention, "retention", 0, "how long completed jobs and delivered messages are kept (0: keel's default, 24h)")
	flag.IntVar(&cfg.jobsRate, "jobs-rate", 5000, "jobs inserted per second")
	flag.IntVar(&cfg.outboxRate, "outbox-rate", 5000, "outbox messages enqueued per second")
	flag.IntVar(&cfg.keys, "keys", 0, "order keys the messages are spread over (0: unkeyed)")
	flag.BoolVar(&cfg.autovacuum, "autovacuum", true, "when the server's autovacuum is off, vacuum and analyze keel.jobs and keel.outbox by autovacuum's rules and the tables' settings")
	flag.IntVar(&cfg.vacuumCostLimit, "vacuum-cost-limit", 2000, "the cost limit of the soak's vacuums when it does autovacuum's work")
	flag.StringVar(&cfg.out, "out", "", "also write the report to this file (Markdown)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// noopArgs is the soak's job, which does nothing.
type noopArgs struct {
	N int `json:"n"`
}

func (noopArgs) Kind() string { return "noop" }

// countingPublisher accepts every message and counts them.
type countingPublisher struct{ n atomic.Int64 }

func (p *countingPublisher) Publish(_ context.Context, batch []outbox.Delivery) []error {
	p.n.Add(int64(len(batch)))
	return make([]error, len(batch))
}

var payload = []byte(`{"order":42,"customer":"c-17","total":"99.90","currency":"EUR"}`)

// counters are what the soak counts as it runs.
type counters struct {
	jobsIn, jobsDone, outboxIn atomic.Int64
	pub                        countingPublisher
}

func run(ctx context.Context, cfg config) error {
	if cfg.jobsRate <= 0 || cfg.outboxRate <= 0 || cfg.tick <= 0 || cfg.report <= 0 || cfg.duration <= 0 {
		return errors.New("-duration, -report, -tick, -jobs-rate and -outbox-rate must be positive")
	}
	base := os.Getenv("DATABASE_URL")
	d, err := scratch.New(ctx, base, 16, true)
	if err != nil {
		return err
	}
	defer d.Drop(context.Background())
	pool := d.Pool
	var c counters
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(context.Context, *jobs.Job[noopArgs]) error {
		c.jobsDone.Add(1)
		return nil
	}, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers: workers, Logger: slog.New(slog.DiscardHandler), CompletedRetention: cfg.retention,
	})
	if err != nil {
		return err
	}
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		return err
	}
	defer box.Close()
	relay, err := outbox.NewRelay(pool, &c.pub, outbox.RelayConfig{Retention: cfg.retention})
	if err != nil {
		return err
	}
	vacuuming, err := autovacuumOff(ctx, pool)
	if err != nil {
		return err
	}
	vacuuming = vacuuming && cfg.autovacuum
	r := newReport(cfg, machine.Describe(base), vacuuming)
	fmt.Print(r.head())

	loadCtx, stopLoad := context.WithTimeout(ctx, cfg.duration)
	defer stopLoad()
	if err := client.Start(ctx); err != nil {
		return err
	}
	relayCtx, stopRelay := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 3+len(vacuumedTables))
	wg.Go(func() {
		if err := relay.Run(relayCtx); err != nil {
			errs <- err
		}
	})
	if vacuuming {
		for _, v := range vacuumedTables {
			wg.Go(func() { vacuumer(relayCtx, pool, v, cfg.vacuumCostLimit, errs) })
		}
	}
	wg.Go(func() {
		errs <- pace(loadCtx, cfg.jobsRate, cfg.tick, &c.jobsIn, func(n int) error {
			params := make([]jobs.InsertManyParams, n)
			for i := range params {
				params[i] = jobs.InsertManyParams{Args: noopArgs{N: i}}
			}
			_, err := client.InsertMany(loadCtx, pool, params)
			return err
		})
	})
	wg.Go(func() {
		errs <- pace(loadCtx, cfg.outboxRate, cfg.tick, &c.outboxIn, func(n int) error {
			first := c.outboxIn.Load()
			msgs := make([]outbox.Message, n)
			for i := range msgs {
				msgs[i] = outbox.Message{Topic: "orders", Type: "OrderPlaced", Payload: payload}
				if cfg.keys > 0 {
					msgs[i].Key = fmt.Sprintf("order-%d", (first+int64(i))%int64(cfg.keys))
				}
			}
			return pgx.BeginFunc(loadCtx, pool, func(tx pgx.Tx) error {
				_, err := box.Enqueue(loadCtx, tx, msgs...)
				return err
			})
		})
	})

	sampleErr := r.sample(loadCtx, pool, &c)
	stopLoad()
	if sampleErr == nil {
		sampleErr = r.final(pool, &c)
	}
	stopErr := client.Stop(context.Background())
	stopRelay()
	wg.Wait()
	close(errs)
	var failed []error
	for err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if err := errors.Join(append(failed, sampleErr, stopErr)...); err != nil {
		return err
	}
	summary := r.summary()
	fmt.Print(summary)
	if cfg.out != "" {
		return os.WriteFile(cfg.out, []byte(r.markdown(summary)), 0o644)
	}
	return nil
}

// pace inserts, every tick, what is due at rate per second since it
// started, up to ten ticks' worth at once, so a slow insert is caught up
// without bursts; it counts what it inserted in done and returns when ctx
// ends.
func pace(ctx context.Context, rate int, tick time.Duration, done *atomic.Int64, insert func(n int) error) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	most := max(1, int(float64(rate)*tick.Seconds()*10))
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			due := int64(now.Sub(start).Seconds() * float64(rate))
			n := min(int(due-done.Load()), most)
			if n <= 0 {
				continue
			}
			if err := insert(n); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			done.Add(int64(n))
		}
	}
}

// The soak's statements about the tables it watches.
const (
	showAutovacuum = "SHOW autovacuum"
	backlog        = "SELECT (SELECT count(*) FROM keel.jobs WHERE state = 'available'), (SELECT count(*) FROM keel.outbox WHERE state = 'pending')"
	tableSizes     = `SELECT pg_total_relation_size('keel.jobs'), pg_total_relation_size('keel.outbox'),
       COALESCE((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'keel.jobs'::regclass), 0),
       COALESCE((SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'keel.outbox'::regclass), 0)`
)

func autovacuumOff(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var v string
	if err := pool.QueryRow(ctx, showAutovacuum).Scan(&v); err != nil {
		return false, err
	}
	return v == "off", nil
}

// sample is one line of the report.
type sample struct {
	at                                  time.Duration // since the start
	span                                time.Duration // the interval it covers
	jobsIn, jobsDone, outboxIn, outDone float64       // per second over span
	available, pending                  int64
	jobsSize, outboxSize                int64
	jobsDead, outboxDead                int64
}

type report struct {
	cfg       config
	host      string
	vacuuming bool
	start     time.Time
	samples   []sample
	// what the counters said at the last sample
	last                                         time.Time
	lastJobsIn, lastJobsDone, lastOutIn, lastOut int64
}

func newReport(cfg config, host string, vacuuming bool) *report {
	now := time.Now()
	return &report{cfg: cfg, host: host, vacuuming: vacuuming, start: now, last: now}
}

func (r *report) settings() string {
	retention := "keel's default (24h)"
	if r.cfg.retention != 0 {
		retention = r.cfg.retention.String()
	}
	keys := "unkeyed"
	if r.cfg.keys > 0 {
		keys = fmt.Sprintf("over %d keys", r.cfg.keys)
	}
	vacuum := "the server's autovacuum"
	if r.vacuuming {
		vacuum = fmt.Sprintf("the soak's, by autovacuum's rules and each table's settings, cost limit %d (the server's autovacuum is off)", r.cfg.vacuumCostLimit)
	}
	return fmt.Sprintf("%v at %d jobs/s and %d messages/s (%s), offered every %v; retention %s; vacuum: %s.",
		r.cfg.duration, r.cfg.jobsRate, r.cfg.outboxRate, keys, r.cfg.tick, retention, vacuum)
}

func (r *report) head() string {
	return r.host + "\n" + r.settings() + "\n\n" +
		fmt.Sprintf("%-6s %9s %9s %9s %9s %10s %10s %10s %10s %10s %10s\n", "min", "jobs in/s", "done/s",
			"msgs in/s", "sent/s", "available", "pending", "jobs size", "msgs size", "jobs dead", "msgs dead")
}

func (s sample) line() string {
	return fmt.Sprintf("%-6.1f %9.0f %9.0f %9.0f %9.0f %10d %10d %10s %10s %10d %10d\n", s.at.Minutes(),
		s.jobsIn, s.jobsDone, s.outboxIn, s.outDone, s.available, s.pending,
		mib(s.jobsSize), mib(s.outboxSize), s.jobsDead, s.outboxDead)
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// sample takes a sample every report interval until ctx ends.
func (r *report) sample(ctx context.Context, pool *pgxpool.Pool, c *counters) error {
	t := time.NewTicker(r.cfg.report)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.take(pool, c); err != nil {
				return err
			}
		}
	}
}

// final takes the last sample, when the end is not the sample just taken.
func (r *report) final(pool *pgxpool.Pool, c *counters) error {
	if time.Since(r.last) < time.Second && len(r.samples) > 0 {
		return nil
	}
	return r.take(pool, c)
}

func (r *report) take(pool *pgxpool.Pool, c *counters) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now()
	s := sample{at: now.Sub(r.start), span: now.Sub(r.last)}
	jobsIn, jobsDone, outIn, out := c.jobsIn.Load(), c.jobsDone.Load(), c.outboxIn.Load(), c.pub.n.Load()
	rate := func(n, last int64) float64 { return float64(n-last) / s.span.Seconds() }
	s.jobsIn, s.jobsDone = rate(jobsIn, r.lastJobsIn), rate(jobsDone, r.lastJobsDone)
	s.outboxIn, s.outDone = rate(outIn, r.lastOutIn), rate(out, r.lastOut)
	r.last, r.lastJobsIn, r.lastJobsDone, r.lastOutIn, r.lastOut = now, jobsIn, jobsDone, outIn, out
	if err := pool.QueryRow(ctx, backlog).Scan(&s.available, &s.pending); err != nil {
		return err
	}
	if err := pool.QueryRow(ctx, tableSizes).Scan(&s.jobsSize, &s.outboxSize, &s.jobsDead, &s.outboxDead); err != nil {
		return err
	}
	r.samples = append(r.samples, s)
	fmt.Print(s.line())
	return nil
}

// full is the samples that cover a whole report interval (all of them when
// none does).
func (r *report) full() []sample {
	var full []sample
	for _, s := range r.samples {
		if s.span >= r.cfg.report*9/10 {
			full = append(full, s)
		}
	}
	if len(full) == 0 {
		return r.samples
	}
	return full
}

func (r *report) summary() string {
	full := r.full()
	first, last := full[0], full[len(full)-1]
	end := r.samples[len(r.samples)-1]
	var most sample
	for _, s := range r.samples {
		most.jobsSize, most.outboxSize = max(most.jobsSize, s.jobsSize), max(most.outboxSize, s.outboxSize)
		most.jobsDead, most.outboxDead = max(most.jobsDead, s.jobsDead), max(most.outboxDead, s.outboxDead)
		most.available, most.pending = max(most.available, s.available), max(most.pending, s.pending)
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	verdict := func(done float64, backlog int64, target int) string {
		if done >= 0.95*float64(target) && backlog <= int64(target) {
			return "kept up"
		}
		return "did not keep up"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nlast vs first full interval (target ≥ 0.90): jobs %.0f → %.0f/s (%.2f), outbox %.0f → %.0f/s (%.2f)\n",
		first.jobsDone, last.jobsDone, ratio(last.jobsDone, first.jobsDone),
		first.outDone, last.outDone, ratio(last.outDone, first.outDone))
	fmt.Fprintf(&b, "largest: keel.jobs %s, keel.outbox %s; dead tuples %d, %d; backlog %d jobs, %d messages\n",
		mib(most.jobsSize), mib(most.outboxSize), most.jobsDead, most.outboxDead, most.available, most.pending)
	fmt.Fprintf(&b, "jobs: %s (last interval %.0f of %d/s done, %d available at the end); outbox: %s (%.0f of %d/s sent, %d pending at the end)\n",
		verdict(last.jobsDone, end.available, r.cfg.jobsRate), last.jobsDone, r.cfg.jobsRate, end.available,
		verdict(last.outDone, end.pending, r.cfg.outboxRate), last.outDone, r.cfg.outboxRate, end.pending)
	if r.vacuuming {
		b.WriteString(vacuumSummary())
	}
	return b.String()
}

// markdown is the report as Markdown: settings, the table and the summary.
func (r *report) markdown(summary string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# keel soak\n\nMade by `cd bench && go run ./cmd/soak %s` on %s.\n\n%s\n\n%s\n\n",
		strings.Join(os.Args[1:], " "), time.Now().UTC().Format("2006-01-02"), r.host, r.settings())
	b.WriteString("| min | jobs in/s | jobs done/s | msgs in/s | msgs sent/s | available jobs | pending msgs | keel.jobs | keel.outbox | jobs dead tuples | outbox dead tuples |\n")
	b.WriteString(strings.Repeat("|---", 11) + "|\n")
	for _, s := range r.samples {
		fmt.Fprintf(&b, "| %.1f | %.0f | %.0f | %.0f | %.0f | %d | %d | %s | %s | %d | %d |\n", s.at.Minutes(),
			s.jobsIn, s.jobsDone, s.outboxIn, s.outDone, s.available, s.pending,
			mib(s.jobsSize), mib(s.outboxSize), s.jobsDead, s.outboxDead)
	}
	b.WriteString("\n```" + summary + "```\n")
	return b.String()
}
