package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/migrations"
)

// The sizes the jobs issue sets.
const (
	insertJobs   = 50_000
	insertBatch  = 1_000
	workJobs     = 50_000
	latencyJobs  = 200
	latencyGap   = 10 * time.Millisecond // light load: one job per gap
	inserters    = 8
	insertsEach  = 300
	benchMaxConn = 16
)

// CREATE and DROP DATABASE take the name as an identifier, which no query
// parameter can stand for (and the bench module has no sqlc of its own);
// %s is filled with pgx.Identifier.Sanitize.
const (
	createDatabase = "CREATE DATABASE %s"
	dropDatabase   = "DROP DATABASE IF EXISTS %s WITH (FORCE)"
)

// noopArgs is the no-op job, for keel and River alike.
type noopArgs struct {
	N int `json:"n"`
}

func (noopArgs) Kind() string { return "noop" }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newDatabase creates an empty database on DATABASE_URL, dropped when the
// benchmark ends, and returns a pool on it.
func newDatabase(b *testing.B) *pgxpool.Pool {
	b.Helper()
	serverURL := os.Getenv("DATABASE_URL")
	if serverURL == "" {
		b.Skip("set DATABASE_URL to a PostgreSQL whose role may create databases")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		b.Fatal(err)
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := "keel_bench_" + hex.EncodeToString(r[:])
	if _, err := admin.Exec(ctx, fmt.Sprintf(createDatabase, pgx.Identifier{name}.Sanitize())); err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = benchMaxConn
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		pool.Close()
		_, _ = admin.Exec(ctx, fmt.Sprintf(dropDatabase, pgx.Identifier{name}.Sanitize()))
		_ = admin.Close(ctx)
	})
	return pool
}

func keelDatabase(b *testing.B) *pgxpool.Pool {
	b.Helper()
	pool := newDatabase(b)
	m, err := migrations.New(pool, migrations.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(context.Background()); err != nil {
		b.Fatal(err)
	}
	return pool
}

func riverDatabase(b *testing.B) *pgxpool.Pool {
	b.Helper()
	pool := newDatabase(b)
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Migrate(context.Background(), rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	return pool
}

// keelWorkers returns workers whose no-op handler calls onStart.
func keelWorkers(onStart func(id int64)) *jobs.Workers {
	w := jobs.NewWorkers()
	jobs.AddWorker(w, func(ctx context.Context, j *jobs.Job[noopArgs]) error {
		onStart(j.ID)
		return nil
	}, nil)
	return w
}

func riverWorkers(onStart func(id int64)) *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, river.WorkFunc(func(ctx context.Context, j *river.Job[noopArgs]) error {
		onStart(j.ID)
		return nil
	}))
	return w
}

// The configurations compared. River's tuned settings are those of its own
// benchmark; keel's tuned settings raise the workers the same way.
func keelConfig(tuned bool, w *jobs.Workers) jobs.Config {
	cfg := jobs.Config{Workers: w, Logger: quiet}
	if tuned {
		cfg.Queues = map[string]jobs.QueueConfig{jobs.DefaultQueue: {MaxWorkers: 2000}}
		cfg.FetchCooldown = 2 * time.Millisecond
		cfg.FetchPollInterval = 20 * time.Millisecond
	}
	return cfg
}

func riverConfig(tuned bool, w *river.Workers) *river.Config {
	cfg := &river.Config{
		Workers: w, Logger: quiet,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}},
	}
	if tuned {
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2000}}
		cfg.FetchCooldown = 2 * time.Millisecond
		cfg.FetchPollInterval = 20 * time.Millisecond
	}
	return cfg
}

func keelInsertMany(b *testing.B, c *jobs.Client, pool *pgxpool.Pool, n int) {
	b.Helper()
	params := make([]jobs.InsertManyParams, 0, insertBatch)
	for i := 0; i < n; i += insertBatch {
		params = params[:0]
		for j := i; j < min(i+insertBatch, n); j++ {
			params = append(params, jobs.InsertManyParams{Args: noopArgs{N: j}})
		}
		if _, err := c.InsertMany(context.Background(), pool, params); err != nil {
			b.Fatal(err)
		}
	}
}

func riverInsertMany(b *testing.B, c *river.Client[pgx.Tx], n int) {
	b.Helper()
	params := make([]river.InsertManyParams, 0, insertBatch)
	for i := 0; i < n; i += insertBatch {
		params = params[:0]
		for j := i; j < min(i+insertBatch, n); j++ {
			params = append(params, river.InsertManyParams{Args: noopArgs{N: j}})
		}
		if _, err := c.InsertManyFast(context.Background(), params); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJobsInsert: (a) 50,000 jobs inserted in batches of 1,000, each
// batch one COPY (keel InsertMany, River InsertManyFast).
func BenchmarkJobsInsert(b *testing.B) {
	b.Run("keel", func(b *testing.B) {
		for range b.N {
			pool := keelDatabase(b)
			c, err := jobs.NewClient(pool, jobs.Config{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			keelInsertMany(b, c, pool, insertJobs)
			b.ReportMetric(insertJobs/time.Since(start).Seconds(), "jobs/s")
		}
	})
	b.Run("river", func(b *testing.B) {
		for range b.N {
			pool := riverDatabase(b)
			c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			riverInsertMany(b, c, insertJobs)
			b.ReportMetric(insertJobs/time.Since(start).Seconds(), "jobs/s")
		}
	})
}

// BenchmarkJobsWork: (b) 50,000 pre-inserted no-op jobs, from Start until
// every row is completed in the database.
func BenchmarkJobsWork(b *testing.B) {
	for _, tuned := range []bool{false, true} {
		name := map[bool]string{false: "defaults", true: "tuned"}[tuned]
		b.Run("keel-"+name, func(b *testing.B) {
			for range b.N {
				pool := keelDatabase(b)
				var handled atomic.Int64
				c, err := jobs.NewClient(pool, keelConfig(tuned, keelWorkers(func(int64) { handled.Add(1) })))
				if err != nil {
					b.Fatal(err)
				}
				keelInsertMany(b, c, pool, workJobs)
				start := time.Now()
				if err := c.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				waitAll(b, &handled, func() int64 {
					n, err := c.JobCount(context.Background(), jobs.StateCompleted)
					if err != nil {
						b.Fatal(err)
					}
					return n
				})
				b.ReportMetric(workJobs/time.Since(start).Seconds(), "jobs/s")
				if err := c.Stop(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("river-"+name, func(b *testing.B) {
			for range b.N {
				pool := riverDatabase(b)
				var handled atomic.Int64
				c, err := river.NewClient(riverpgxv5.New(pool), riverConfig(tuned, riverWorkers(func(int64) { handled.Add(1) })))
				if err != nil {
					b.Fatal(err)
				}
				riverInsertMany(b, c, workJobs)
				exec := riverpgxv5.New(pool).GetExecutor()
				start := time.Now()
				if err := c.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				waitAll(b, &handled, func() int64 {
					n, err := exec.JobCountByState(context.Background(), &riverdriver.JobCountByStateParams{State: rivertype.JobStateCompleted})
					if err != nil {
						b.Fatal(err)
					}
					return int64(n)
				})
				b.ReportMetric(workJobs/time.Since(start).Seconds(), "jobs/s")
				if err := c.Stop(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// waitAll waits until every job was handled, then until the database shows
// every job completed.
func waitAll(b *testing.B, handled *atomic.Int64, completed func() int64) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for handled.Load() < workJobs {
		if time.Now().After(deadline) {
			b.Fatalf("handled %d of %d jobs in 5 minutes", handled.Load(), workJobs)
		}
		time.Sleep(time.Millisecond)
	}
	for completed() < workJobs {
		if time.Now().After(deadline) {
			b.Fatal("jobs were handled but not all completed in 5 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// latencies records, per job id, when its transaction was about to commit
// and when its handler started.
type latencies struct {
	mu        sync.Mutex
	committed map[int64]time.Time
	started   map[int64]time.Time
}

func newLatencies() *latencies {
	return &latencies{committed: map[int64]time.Time{}, started: map[int64]time.Time{}}
}

func (l *latencies) start(id int64) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started[id] = now
}

func (l *latencies) commit(id int64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.committed[id] = at
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.started)
}

func (l *latencies) report(b *testing.B) {
	b.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var ds []time.Duration
	for id, c := range l.committed {
		ds = append(ds, l.started[id].Sub(c))
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(ds[len(ds)/2]), "p50-ms")
	b.ReportMetric(ms(ds[len(ds)*99/100]), "p99-ms")
}

// BenchmarkJobsLatency: (c) from just before COMMIT of a one-job transaction
// to the start of its handler, one job every 10ms.
func BenchmarkJobsLatency(b *testing.B) {
	ctx := context.Background()
	wait := func(b *testing.B, l *latencies) {
		deadline := time.Now().Add(time.Minute)
		for l.count() < latencyJobs {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d jobs started", l.count(), latencyJobs)
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.Run("keel-defaults", func(b *testing.B) {
		for range b.N {
			pool := keelDatabase(b)
			l := newLatencies()
			c, err := jobs.NewClient(pool, keelConfig(false, keelWorkers(l.start)))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Start(ctx); err != nil {
				b.Fatal(err)
			}
			for i := range latencyJobs {
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					row, err := c.Insert(ctx, tx, noopArgs{N: i}, nil)
					if err == nil {
						l.commit(row.ID, time.Now())
					}
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(latencyGap)
			}
			wait(b, l)
			l.report(b)
			if err := c.Stop(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tuned := range []bool{false, true} {
		b.Run("river-"+map[bool]string{false: "defaults", true: "tuned"}[tuned], func(b *testing.B) {
			for range b.N {
				pool := riverDatabase(b)
				l := newLatencies()
				c, err := river.NewClient(riverpgxv5.New(pool), riverConfig(tuned, riverWorkers(l.start)))
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Start(ctx); err != nil {
					b.Fatal(err)
				}
				for i := range latencyJobs {
					err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
						res, err := c.InsertTx(ctx, tx, noopArgs{N: i}, nil)
						if err == nil {
							l.commit(res.Job.ID, time.Now())
						}
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
					time.Sleep(latencyGap)
				}
				wait(b, l)
				l.report(b)
				if err := c.Stop(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJobsNotifyInserters: 8 goroutines each inserting 300 jobs, one
// job per transaction, in keel with a NOTIFY per insert, with the default
// debounce (one per queue per 5ms), and with practically no NOTIFY (one per
// hour), and in River as it comes.
func BenchmarkJobsNotifyInserters(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, insert func(ctx context.Context, tx pgx.Tx, n int) error, pool *pgxpool.Pool) {
		var wg sync.WaitGroup
		start := time.Now()
		for g := range inserters {
			wg.Go(func() {
				for i := range insertsEach {
					if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return insert(ctx, tx, g*insertsEach+i) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(inserters*insertsEach/time.Since(start).Seconds(), "inserts/s")
	}
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{{"keel-notify-every-insert", time.Nanosecond}, {"keel-debounced", 0}, {"keel-no-notify", time.Hour}} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				pool := keelDatabase(b)
				c, err := jobs.NewClient(pool, jobs.Config{Logger: quiet, NotifyInterval: tc.interval})
				if err != nil {
					b.Fatal(err)
				}
				run(b, func(ctx context.Context, tx pgx.Tx, n int) error {
					_, err := c.Insert(ctx, tx, noopArgs{N: n}, nil)
					return err
				}, pool)
			}
		})
	}
	b.Run("river", func(b *testing.B) {
		for range b.N {
			pool := riverDatabase(b)
			c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			run(b, func(ctx context.Context, tx pgx.Tx, n int) error {
				_, err := c.InsertTx(ctx, tx, noopArgs{N: n}, nil)
				return err
			}, pool)
		}
	})
}
