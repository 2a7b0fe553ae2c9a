package jobs

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/hooktest"
	"github.com/keelpg/keel/internal/testcluster"
	"github.com/keelpg/keel/internal/testdb"
)

// While jobs run, the server goes away: for 3 s, for 30 s, or for a fast
// restart. Afterwards every job is completed — none stuck running, none
// lost — and the metrics hook heard of the outage's start and end.
func TestOutage(t *testing.T) {
	t.Parallel()
	for _, tt := range testcluster.Outages() {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			const total = 5000
			cluster := testcluster.New(t)
			pool := testdb.OpenSized(t, cluster.URL(), 20)
			ctx := context.Background()
			runs := newCounter()
			w := NewWorkers()
			AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
				runs.add(j.ID)
				time.Sleep(20 * time.Millisecond) // 5,000 jobs take about 2s at 50 at a time
				return nil
			}, nil)
			m := &hooktest.Recorder{}
			cfg := fastConfig(w)
			cfg.Hook = m
			cfg.Queues = map[string]QueueConfig{DefaultQueue: {MaxWorkers: 50}}
			cfg.HeartbeatInterval = 200 * time.Millisecond
			cfg.RescueAfter = 2 * time.Second
			c := startClient(t, pool, cfg)
			params := make([]InsertManyParams, total)
			for i := range params {
				params[i] = InsertManyParams{Args: testArgs{N: i}}
			}
			if _, err := c.InsertMany(ctx, pool, params); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a third of the jobs to run", func() bool { return runs.len() >= total/3 })
			if runs.len() == total {
				t.Fatal("every job ran before the outage")
			}
			tt.Cause(cluster)
			back := time.Now()
			waitFor(t, "every job to be completed", func() bool {
				n, err := c.JobCount(ctx, StateCompleted)
				return err == nil && n == total
			})
			t.Logf("all %d jobs completed %s after the server was back; %d ran twice", total,
				time.Since(back).Round(time.Millisecond), runs.total()-runs.len())
			if n, err := c.JobCount(ctx, ""); err != nil || n != total {
				t.Fatalf("%d jobs in the table (%v), want %d", n, err, total)
			}
			evs := m.Outages()
			if tt.Declared && (len(evs) < 2 || evs[0].Over || !evs[len(evs)-1].Over || evs[len(evs)-1].Duration <= 0) {
				t.Fatalf("the metrics hook heard %+v, want an outage's start and end", evs)
			}
		})
	}
}

// A handler that returns while the server refuses connections: its
// completion is kept and written once the server is back, so the job is
// completed without running again.
func TestCompletionSurvivesOutage(t *testing.T) {
	t.Parallel()
	cluster := testcluster.New(t)
	pool := testdb.OpenSized(t, cluster.URL(), 8)
	var (
		stopped = make(chan struct{})
		started = make(chan struct{})
		runs    atomic.Int32
	)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error {
		if runs.Add(1) == 1 {
			close(started)
			<-stopped
		}
		if j.Args.N == 1 {
			return errors.New("fails, and its failure is recorded after the outage")
		}
		return nil
	}, nil)
	cfg := fastConfig(w)
	cfg.HeartbeatInterval = 200 * time.Millisecond
	cfg.RescueAfter = 2 * time.Second
	c := startClient(t, pool, cfg)
	job := insert(t, c, testArgs{N: 0}, nil)
	<-started
	cluster.Stop()
	close(stopped)
	time.Sleep(3 * time.Second)
	cluster.Start()
	// Had the completion been lost, or written too late, the job would have
	// been rescued (an error recorded) and run again (attempt 2): the row
	// shows it whatever the machine's speed, so no time is asserted.
	row := waitState(t, c, job.ID, StateCompleted)
	if row.Attempt != 1 || runs.Load() != 1 || len(row.Errors) != 0 {
		t.Fatalf("attempt %d, handler ran %d times, errors %+v; want the first attempt's completion kept", row.Attempt, runs.Load(), row.Errors)
	}
}
