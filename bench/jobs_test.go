package bench

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/keelpg/keel/jobs"
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

// noopArgs is the no-op job, for keel and River alike.
type noopArgs struct {
	N int `json:"n"`
}

func (noopArgs) Kind() string { return "noop" }

func riverDatabase(b *testing.B) *pgxpool.Pool {
	b.Helper()
	pool := freshDB(b, false, benchMaxConn)
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Migrate(context.Background(), rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	return pool
}

// system is a job queue under test, on a database of its own.
type system interface {
	// insertMany inserts n no-op jobs in batches of insertBatch, one COPY each.
	insertMany(ctx context.Context, n int) error
	// insertOne inserts one no-op job in tx and returns its id.
	insertOne(ctx context.Context, tx pgx.Tx, n int) (int64, error)
	start(ctx context.Context) error
	stop(ctx context.Context) error
	// addHistory writes n completed jobs finalized over the last day.
	addHistory(b *testing.B, n int)
	// completed counts the completed jobs that are not history.
	completed(ctx context.Context) (int64, error)
	pool() *pgxpool.Pool
}

// The jobs completed since the history: $1 is the history's last id.
const (
	countKeelCompleted  = "SELECT count(*) FROM keel.jobs WHERE state = 'completed' AND id > $1"
	countRiverCompleted = "SELECT count(*) FROM river_job WHERE state = 'completed' AND id > $1"
)

// contender makes a system whose no-op handler calls onStart with the job's id.
type contender struct {
	name string
	make func(b *testing.B, onStart func(id int64)) system
}

// keelDefaults is keel as a user gets it without settings.
func keelDefaults() contender {
	return contender{"keel/defaults", func(b *testing.B, onStart func(int64)) system {
		return newKeel(b, jobs.Config{Workers: keelWorkers(onStart)})
	}}
}

// keelDefaults100 is keel's defaults with River's default worker count, to
// show what keel's larger default buys.
func keelDefaults100() contender {
	return contender{"keel/defaults-100-workers", func(b *testing.B, onStart func(int64)) system {
		return newKeel(b, jobs.Config{
			Workers: keelWorkers(onStart),
			Queues:  map[string]jobs.QueueConfig{jobs.DefaultQueue: {MaxWorkers: 100}},
		})
	}}
}

// keelTuned takes the settings of River's own benchmark, as riverTuned does.
func keelTuned() contender {
	return contender{"keel/tuned", func(b *testing.B, onStart func(int64)) system {
		return newKeel(b, jobs.Config{
			Workers:           keelWorkers(onStart),
			Queues:            map[string]jobs.QueueConfig{jobs.DefaultQueue: {MaxWorkers: 2000}},
			FetchCooldown:     2 * time.Millisecond,
			FetchPollInterval: 20 * time.Millisecond,
		})
	}}
}

// riverDefaults is River with the worker count of its documentation and
// otherwise its defaults (FetchCooldown 100ms, FetchPollInterval 1s).
func riverDefaults() contender {
	return contender{"river/defaults", func(b *testing.B, onStart func(int64)) system {
		return newRiver(b, &river.Config{
			Workers: riverWorkers(onStart),
			Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}},
		})
	}}
}

// riverTuned is River with the settings of its own benchmark.
func riverTuned() contender {
	return contender{"river/tuned", func(b *testing.B, onStart func(int64)) system {
		return newRiver(b, &river.Config{
			Workers:           riverWorkers(onStart),
			Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2000}},
			FetchCooldown:     2 * time.Millisecond,
			FetchPollInterval: 20 * time.Millisecond,
		})
	}}
}

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

type keelSystem struct {
	db      *pgxpool.Pool
	c       *jobs.Client
	history int64 // the last id of the history
}

func newKeel(b *testing.B, cfg jobs.Config) system {
	b.Helper()
	pool := freshDB(b, true, benchMaxConn)
	cfg.Logger = slog.New(slog.DiscardHandler)
	c, err := jobs.NewClient(pool, cfg)
	if err != nil {
		b.Fatal(err)
	}
	return &keelSystem{db: pool, c: c}
}

func (k *keelSystem) pool() *pgxpool.Pool { return k.db }

func (k *keelSystem) insertMany(ctx context.Context, n int) error {
	params := make([]jobs.InsertManyParams, 0, insertBatch)
	for i := 0; i < n; i += insertBatch {
		params = params[:0]
		for j := i; j < min(i+insertBatch, n); j++ {
			params = append(params, jobs.InsertManyParams{Args: noopArgs{N: j}})
		}
		if _, err := k.c.InsertMany(ctx, k.db, params); err != nil {
			return err
		}
	}
	return nil
}

func (k *keelSystem) insertOne(ctx context.Context, tx pgx.Tx, n int) (int64, error) {
	row, err := k.c.Insert(ctx, tx, noopArgs{N: n}, nil)
	if err != nil {
		return 0, err
	}
	return row.ID, nil
}

func (k *keelSystem) start(ctx context.Context) error { return k.c.Start(ctx) }
func (k *keelSystem) stop(ctx context.Context) error  { return k.c.Stop(ctx) }
func (k *keelSystem) addHistory(b *testing.B, n int)  { k.history = jobsHistory(b, k.db, n) }
func (k *keelSystem) completed(ctx context.Context) (int64, error) {
	var n int64
	err := k.db.QueryRow(ctx, countKeelCompleted, k.history).Scan(&n)
	return n, err
}

type riverSystem struct {
	db      *pgxpool.Pool
	c       *river.Client[pgx.Tx]
	history int64 // the last id of the history
}

func newRiver(b *testing.B, cfg *river.Config) system {
	b.Helper()
	pool := riverDatabase(b)
	cfg.Logger = slog.New(slog.DiscardHandler)
	c, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		b.Fatal(err)
	}
	return &riverSystem{db: pool, c: c}
}

func (r *riverSystem) pool() *pgxpool.Pool { return r.db }

func (r *riverSystem) insertMany(ctx context.Context, n int) error {
	params := make([]river.InsertManyParams, 0, insertBatch)
	for i := 0; i < n; i += insertBatch {
		params = params[:0]
		for j := i; j < min(i+insertBatch, n); j++ {
			params = append(params, river.InsertManyParams{Args: noopArgs{N: j}})
		}
		if _, err := r.c.InsertManyFast(ctx, params); err != nil {
			return err
		}
	}
	return nil
}

func (r *riverSystem) insertOne(ctx context.Context, tx pgx.Tx, n int) (int64, error) {
	res, err := r.c.InsertTx(ctx, tx, noopArgs{N: n}, nil)
	if err != nil {
		return 0, err
	}
	return res.Job.ID, nil
}

func (r *riverSystem) start(ctx context.Context) error { return r.c.Start(ctx) }
func (r *riverSystem) stop(ctx context.Context) error  { return r.c.Stop(ctx) }
func (r *riverSystem) addHistory(b *testing.B, n int)  { r.history = riverHistory(b, r.db, n) }
func (r *riverSystem) completed(ctx context.Context) (int64, error) {
	var n int64
	err := r.db.QueryRow(ctx, countRiverCompleted, r.history).Scan(&n)
	return n, err
}

// BenchmarkJobsInsert: (a) 50,000 jobs inserted in batches of 1,000, each
// batch one COPY (keel InsertMany, River InsertManyFast).
func BenchmarkJobsInsert(b *testing.B) {
	for _, c := range []contender{
		{"keel", func(b *testing.B, _ func(int64)) system { return newKeel(b, jobs.Config{}) }},
		{"river", func(b *testing.B, _ func(int64)) system { return newRiver(b, &river.Config{}) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				sys := c.make(b, nil)
				start := time.Now()
				if err := sys.insertMany(context.Background(), insertJobs); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(insertJobs/time.Since(start).Seconds(), "jobs/s")
			}
		})
	}
}

// BenchmarkJobsWork: (b) 50,000 pre-inserted no-op jobs, from Start until
// every row is completed in the database; keel and River with their
// defaults and tuned also with a day of completed jobs in the table.
func BenchmarkJobsWork(b *testing.B) {
	for _, c := range []contender{keelDefaults(), keelDefaults100(), riverDefaults(), keelTuned(), riverTuned(), sqlJobsFloor()} {
		b.Run(c.name, func(b *testing.B) { runJobsWork(b, c, 0) })
	}
	for _, n := range historySizes(b) {
		for _, c := range []contender{keelDefaults(), riverDefaults(), keelTuned(), riverTuned()} {
			b.Run(c.name+"/"+historyName(n), func(b *testing.B) { runJobsWork(b, c, n) })
		}
	}
}

// runJobsWork runs BenchmarkJobsWork's workload with history completed jobs
// in the table first.
func runJobsWork(b *testing.B, c contender, history int) {
	ctx := context.Background()
	for range b.N {
		var handled atomic.Int64
		sys := c.make(b, func(int64) { handled.Add(1) })
		if history > 0 {
			sys.addHistory(b, history)
		}
		if err := sys.insertMany(ctx, workJobs); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := sys.start(ctx); err != nil {
			b.Fatal(err)
		}
		waitAll(b, &handled, func() int64 {
			n, err := sys.completed(ctx)
			if err != nil {
				b.Fatal(err)
			}
			return n
		})
		b.ReportMetric(workJobs/time.Since(start).Seconds(), "jobs/s")
		if err := sys.stop(ctx); err != nil {
			b.Fatal(err)
		}
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

// latencies records, per job id, when its transaction committed and when its
// handler started.
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

// BenchmarkJobsLatency: (c) from the COMMIT of a one-job transaction (the
// moment it was sent) to the start of the job's handler, one job every 10ms.
func BenchmarkJobsLatency(b *testing.B) {
	ctx := context.Background()
	// Named system/case for benchreport: keel's defaults against River's
	// defaults, and River tuned as a peer variant of the same case.
	for _, c := range []contender{
		{"keel/light-load", keelDefaults().make},
		{"river/light-load", riverDefaults().make},
		{"river/light-load/tuned", riverTuned().make},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				l := newLatencies()
				sys := c.make(b, l.start)
				if err := sys.start(ctx); err != nil {
					b.Fatal(err)
				}
				for i := range latencyJobs {
					tx, err := sys.pool().Begin(ctx)
					if err != nil {
						b.Fatal(err)
					}
					id, err := sys.insertOne(ctx, tx, i)
					if err != nil {
						b.Fatal(err)
					}
					l.commit(id, time.Now())
					if err := tx.Commit(ctx); err != nil {
						b.Fatal(err)
					}
					time.Sleep(latencyGap)
				}
				deadline := time.Now().Add(time.Minute)
				for l.count() < latencyJobs {
					if time.Now().After(deadline) {
						b.Fatalf("%d of %d jobs started", l.count(), latencyJobs)
					}
					time.Sleep(time.Millisecond)
				}
				l.report(b)
				if err := sys.stop(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJobsNotifyInserters: 8 goroutines each inserting 300 jobs, one
// job per transaction: keel with a NOTIFY per insert, with the default
// debounce (one per queue per 5ms) and with practically no NOTIFY (one per
// hour), and River as it comes.
func BenchmarkJobsNotifyInserters(b *testing.B) {
	ctx := context.Background()
	keelNotifying := func(interval time.Duration) func(*testing.B, func(int64)) system {
		return func(b *testing.B, _ func(int64)) system { return newKeel(b, jobs.Config{NotifyInterval: interval}) }
	}
	for _, c := range []contender{
		{"keel/8-inserters-notify-every-insert", keelNotifying(time.Nanosecond)},
		{"keel/8-inserters", keelNotifying(0)},
		{"keel/8-inserters-no-notify", keelNotifying(time.Hour)},
		{"river/8-inserters", func(b *testing.B, _ func(int64)) system { return newRiver(b, &river.Config{}) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				sys := c.make(b, nil)
				var wg sync.WaitGroup
				start := time.Now()
				for g := range inserters {
					wg.Go(func() {
						for i := range insertsEach {
							err := pgx.BeginFunc(ctx, sys.pool(), func(tx pgx.Tx) error {
								_, err := sys.insertOne(ctx, tx, g*insertsEach+i)
								return err
							})
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(inserters*insertsEach/time.Since(start).Seconds(), "inserts/s")
			}
		})
	}
}
