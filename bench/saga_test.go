package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/saga"
)

// The saga benchmarks compare keel's saga with DBOS Transact Go on the same
// server, each in a fresh database of its own:
//
//	cd bench && go test -run '^$' -bench Saga -benchtime 1x
//
// Both get a pool of benchMaxConn connections on a database of their own
// (freshDB). They report workflows/s for a no-op three-step workflow started
// and awaited by 32 concurrent callers and by one, the time one step (its
// checkpoint) adds to a workflow, and the latency from a signal's send
// (commit included) and from a timer's due time to the workflow running
// again (p50, p99).

const (
	sagaCallers   = 32
	sagaWorkflows = 3000
)

func noop(context.Context) (int, error) { return 1, nil }

// keelEngine registers the benchmark workflows and starts an engine.
func keelEngine(b *testing.B, pool *pgxpool.Pool) *saga.Engine {
	b.Helper()
	reg := saga.NewRegistry()
	saga.Register(reg, "steps", 1, func(ctx saga.Context, n int) (int, error) {
		sum := 0
		for i := range n {
			v, err := saga.Step(ctx, fmt.Sprint("s", i), noop, nil)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})
	saga.Register(reg, "timed", 1, func(ctx saga.Context, n int) (time.Duration, error) {
		begin := time.Now()
		for i := range n {
			if _, err := saga.Step(ctx, fmt.Sprint("s", i), noop, nil); err != nil {
				return 0, err
			}
		}
		return time.Since(begin), nil
	})
	saga.Register(reg, "signalled", 1, func(ctx saga.Context, _ int) (time.Time, error) {
		if _, err := saga.AwaitSignal[int](ctx, "go", 0); err != nil {
			return time.Time{}, err
		}
		return saga.Step(ctx, "resumed", func(context.Context) (time.Time, error) { return time.Now(), nil }, nil)
	})
	saga.Register(reg, "timer", 1, func(ctx saga.Context, due time.Time) (time.Time, error) {
		saga.SleepUntil(ctx, due)
		return saga.Step(ctx, "resumed", func(context.Context) (time.Time, error) { return time.Now(), nil }, nil)
	})
	e, err := saga.NewEngine(pool, reg, saga.Config{MaxConcurrentRuns: 200})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Stop(context.Background()) })
	return e
}

// dbosRuntime is a launched DBOS context with the benchmark workflows.
type dbosRuntime struct {
	ctx       dbos.Context
	steps     func(ctx dbos.Context, n int) (int, error)
	timed     func(ctx dbos.Context, n int) (time.Duration, error)
	signalled func(ctx dbos.Context, _ int) (time.Time, error)
	timer     func(ctx dbos.Context, due time.Time) (time.Time, error)
}

func dbosLaunch(b *testing.B, pool *pgxpool.Pool) *dbosRuntime {
	b.Helper()
	ctx, err := dbos.NewContext(context.Background(), dbos.Config{
		AppName: "keel-bench", SystemDBPool: pool, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	r := &dbosRuntime{ctx: ctx}
	r.steps = func(ctx dbos.Context, n int) (int, error) {
		sum := 0
		for i := range n {
			v, err := dbos.RunAsStep(ctx, noop, dbos.WithStepName(fmt.Sprint("s", i)))
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	}
	r.timed = func(ctx dbos.Context, n int) (time.Duration, error) {
		begin := time.Now()
		for i := range n {
			if _, err := dbos.RunAsStep(ctx, noop, dbos.WithStepName(fmt.Sprint("s", i))); err != nil {
				return 0, err
			}
		}
		return time.Since(begin), nil
	}
	r.signalled = func(ctx dbos.Context, _ int) (time.Time, error) {
		if err := dbos.SetEvent(ctx, "ready", true); err != nil {
			return time.Time{}, err
		}
		if _, err := dbos.Recv[int](ctx, "go", time.Minute); err != nil {
			return time.Time{}, err
		}
		return dbos.RunAsStep(ctx, func(context.Context) (time.Time, error) { return time.Now(), nil })
	}
	r.timer = func(ctx dbos.Context, due time.Time) (time.Time, error) {
		if _, err := dbos.Sleep(ctx, time.Until(due)); err != nil {
			return time.Time{}, err
		}
		return dbos.RunAsStep(ctx, func(context.Context) (time.Time, error) { return time.Now(), nil })
	}
	dbos.RegisterWorkflow(ctx, r.steps)
	dbos.RegisterWorkflow(ctx, r.timed)
	dbos.RegisterWorkflow(ctx, r.signalled)
	dbos.RegisterWorkflow(ctx, r.timer)
	if err := dbos.Launch(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dbos.Shutdown(ctx, 10*time.Second) })
	return r
}

// throughput runs total workflows from callers goroutines, each starting one
// and waiting for its result before the next, and returns workflows/s.
func throughput(b *testing.B, callers, total int, run func() error) float64 {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	begin := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(total) {
				if err := run(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return float64(total) / elapsed.Seconds()
}

// sagaLoneWorkflows is how many workflows the one-caller case runs.
const sagaLoneWorkflows = 300

func BenchmarkSagaThroughput(b *testing.B) {
	b.Run("keel", func(b *testing.B) { keelSagaThroughput(b, sagaCallers, sagaWorkflows, 0) })
	b.Run("keel/callers=1", func(b *testing.B) { keelSagaThroughput(b, 1, sagaLoneWorkflows, 0) })
	for _, n := range historySizes(b) {
		b.Run("keel/"+historyName(n), func(b *testing.B) { keelSagaThroughput(b, sagaCallers, sagaWorkflows, n) })
	}
	b.Run("sql", benchSagaFloor)
	b.Run("dbos", func(b *testing.B) { dbosSagaThroughput(b, sagaCallers, sagaWorkflows) })
	b.Run("dbos/callers=1", func(b *testing.B) { dbosSagaThroughput(b, 1, sagaLoneWorkflows) })
}

func dbosSagaThroughput(b *testing.B, callers, total int) {
	r := dbosLaunch(b, freshDB(b, false, benchMaxConn))
	for range b.N {
		wfs := throughput(b, callers, total, func() error {
			h, err := dbos.RunWorkflow(r.ctx, r.steps, 3)
			if err != nil {
				return err
			}
			_, err = h.GetResult()
			return err
		})
		b.ReportMetric(wfs, "workflows/s")
	}
}

// keelSagaThroughput measures keel's three-step workflows from callers
// callers, after history finished runs.
func keelSagaThroughput(b *testing.B, callers, total, history int) {
	pool := freshDB(b, true, benchMaxConn)
	if history > 0 {
		sagaHistory(b, pool, history)
	}
	e := keelEngine(b, pool)
	ctx := context.Background()
	for range b.N {
		wfs := throughput(b, callers, total, func() error {
			run, err := e.StartRun(ctx, pool, "steps", 3, nil)
			if err != nil {
				return err
			}
			done, err := e.Await(ctx, run.ID)
			if err != nil {
				return err
			}
			_, err = saga.Result[int](done)
			return err
		})
		b.ReportMetric(wfs, "workflows/s")
	}
}

// stepOverhead runs workflows of stepsPerRun no-op steps one after another;
// each measures, inside the workflow function, the time its steps took. It
// returns the mean time per step: the step's checkpoint.
func stepOverhead(b *testing.B, run func(steps int) (time.Duration, error)) time.Duration {
	b.Helper()
	const runs, stepsPerRun = 30, 20
	var total time.Duration
	for range runs {
		d, err := run(stepsPerRun)
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	return total / (runs * stepsPerRun)
}

func BenchmarkSagaStepOverhead(b *testing.B) {
	b.Run("keel", func(b *testing.B) {
		pool := freshDB(b, true, benchMaxConn)
		e := keelEngine(b, pool)
		ctx := context.Background()
		for range b.N {
			d := stepOverhead(b, func(n int) (time.Duration, error) {
				run, err := e.StartRun(ctx, pool, "timed", n, nil)
				if err != nil {
					return 0, err
				}
				done, err := e.Await(ctx, run.ID)
				if err != nil {
					return 0, err
				}
				return saga.Result[time.Duration](done)
			})
			b.ReportMetric(float64(d.Microseconds()), "µs/step")
		}
	})
	b.Run("dbos", func(b *testing.B) {
		r := dbosLaunch(b, freshDB(b, false, benchMaxConn))
		for range b.N {
			d := stepOverhead(b, func(n int) (time.Duration, error) {
				h, err := dbos.RunWorkflow(r.ctx, r.timed, n)
				if err != nil {
					return 0, err
				}
				return h.GetResult()
			})
			b.ReportMetric(float64(d.Microseconds()), "µs/step")
		}
	})
}

// reportLatencies reports p50 and p99 of ds under name.
func reportLatencies(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	pct := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), name+"-p50-ms")
	b.ReportMetric(pct(0.99), name+"-p99-ms")
}

const latencyRuns = 100

func BenchmarkSagaSignalResume(b *testing.B) {
	b.Run("keel", func(b *testing.B) {
		pool := freshDB(b, true, benchMaxConn)
		e := keelEngine(b, pool)
		ctx := context.Background()
		for range b.N {
			var ds []time.Duration
			for range latencyRuns {
				run, err := e.StartRun(ctx, pool, "signalled", 0, nil)
				if err != nil {
					b.Fatal(err)
				}
				for {
					r, err := e.Get(ctx, pool, run.ID)
					if err != nil {
						b.Fatal(err)
					}
					if r.Status == saga.StatusWaiting {
						break
					}
					time.Sleep(time.Millisecond)
				}
				sent := time.Now()
				if err := e.Signal(ctx, pool, run.ID, "go", 1, nil); err != nil {
					b.Fatal(err)
				}
				done, err := e.Await(ctx, run.ID)
				if err != nil {
					b.Fatal(err)
				}
				resumed, err := saga.Result[time.Time](done)
				if err != nil {
					b.Fatal(err)
				}
				ds = append(ds, resumed.Sub(sent))
			}
			reportLatencies(b, "signal", ds)
		}
	})
	b.Run("dbos", func(b *testing.B) {
		r := dbosLaunch(b, freshDB(b, false, benchMaxConn))
		for range b.N {
			var ds []time.Duration
			for range latencyRuns {
				h, err := dbos.RunWorkflow(r.ctx, r.signalled, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := dbos.GetEvent[bool](r.ctx, h.GetWorkflowID(), "ready", time.Minute); err != nil {
					b.Fatal(err)
				}
				sent := time.Now()
				if err := dbos.Send(r.ctx, h.GetWorkflowID(), 1, "go"); err != nil {
					b.Fatal(err)
				}
				resumed, err := h.GetResult()
				if err != nil {
					b.Fatal(err)
				}
				ds = append(ds, resumed.Sub(sent))
			}
			reportLatencies(b, "signal", ds)
		}
	})
}

// timerLatencies starts latencyRuns workflows due 10ms apart from 1s on and
// returns how late each ran after its due time.
func timerLatencies(b *testing.B, start func(due time.Time) (func() (time.Time, error), error)) []time.Duration {
	b.Helper()
	first := time.Now().Add(time.Second)
	dues := make([]time.Time, latencyRuns)
	results := make([]func() (time.Time, error), latencyRuns)
	for i := range dues {
		dues[i] = first.Add(time.Duration(i) * 10 * time.Millisecond)
		get, err := start(dues[i])
		if err != nil {
			b.Fatal(err)
		}
		results[i] = get
	}
	ds := make([]time.Duration, latencyRuns)
	for i, get := range results {
		resumed, err := get()
		if err != nil {
			b.Fatal(err)
		}
		ds[i] = resumed.Sub(dues[i])
	}
	return ds
}

func BenchmarkSagaTimerResume(b *testing.B) {
	b.Run("keel", func(b *testing.B) {
		pool := freshDB(b, true, benchMaxConn)
		e := keelEngine(b, pool)
		ctx := context.Background()
		for range b.N {
			ds := timerLatencies(b, func(due time.Time) (func() (time.Time, error), error) {
				run, err := e.StartRun(ctx, pool, "timer", due, nil)
				if err != nil {
					return nil, err
				}
				return func() (time.Time, error) {
					done, err := e.Await(ctx, run.ID)
					if err != nil {
						return time.Time{}, err
					}
					return saga.Result[time.Time](done)
				}, nil
			})
			reportLatencies(b, "timer", ds)
		}
	})
	b.Run("dbos", func(b *testing.B) {
		r := dbosLaunch(b, freshDB(b, false, benchMaxConn))
		for range b.N {
			ds := timerLatencies(b, func(due time.Time) (func() (time.Time, error), error) {
				h, err := dbos.RunWorkflow(r.ctx, r.timer, due)
				if err != nil {
					return nil, err
				}
				return func() (time.Time, error) { return h.GetResult() }, nil
			})
			reportLatencies(b, "timer", ds)
		}
	})
}
