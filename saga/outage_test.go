package saga_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testcluster"
	"github.com/keelpg/keel/saga"
)

// While runs execute and callers Await them, the server goes away for 3s,
// for 30s, or restarts. Afterwards every run has succeeded and every Await
// returned it: neither the engine nor Await gives up during an outage.
func TestOutage(t *testing.T) {
	t.Parallel()
	for _, tt := range testcluster.Outages() {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			const runs = 200
			cluster := testcluster.New(t)
			pool := openPool(t, cluster.URL(), 20)
			reg := saga.NewRegistry()
			var steps atomic.Int64
			step := func(context.Context) (int, error) {
				steps.Add(1)
				time.Sleep(40 * time.Millisecond)
				return 1, nil
			}
			saga.Register(reg, "three", 1, func(ctx saga.Context, n int) (int, error) {
				sum := 0
				for i := range 3 {
					v, err := saga.Step(ctx, fmt.Sprintf("s%d", i), step, nil)
					if err != nil {
						return 0, err
					}
					sum += v
				}
				return sum, nil
			})
			e := newEngine(t, pool, reg, true)
			var wg sync.WaitGroup
			var awaited atomic.Int64
			errs := make(chan error, runs)
			for i := range runs {
				run := start(t, e, pool, "three", i, nil)
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
					defer cancel()
					done, err := e.Await(ctx, run.ID)
					if err == nil && done.Status != saga.StatusSucceeded {
						err = fmt.Errorf("run %s ended %s", run.ID, done.Status)
					}
					if err != nil {
						errs <- err
					}
					awaited.Add(1)
				})
			}
			for steps.Load() < runs {
				time.Sleep(5 * time.Millisecond)
			}
			if n := awaited.Load(); n == runs {
				t.Fatal("every run finished before the outage")
			}
			tt.Cause(cluster)
			back := time.Now()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.Logf("all %d runs awaited %s after the server was back; %d of %d steps ran again",
				runs, time.Since(back).Round(time.Millisecond), steps.Load()-3*runs, 3*runs)
		})
	}
}
