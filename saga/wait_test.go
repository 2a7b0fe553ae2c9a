package saga_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

func TestSleepSurvivesARestart(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	var before, after atomic.Int64
	const nap = 1500 * time.Millisecond
	saga.Register(reg, "nap", 1, func(ctx saga.Context, _ struct{}) (time.Time, error) {
		if _, err := saga.Step(ctx, "before", func(context.Context) (time.Time, error) { before.Add(1); return time.Now(), nil }, nil); err != nil {
			return time.Time{}, err
		}
		saga.Sleep(ctx, nap)
		return saga.Step(ctx, "after", func(context.Context) (time.Time, error) { after.Add(1); return time.Now(), nil }, nil)
	})
	first, err := saga.NewEngine(pool, reg, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Stop(context.Background()) })
	started := time.Now()
	run := start(t, first, pool, "nap", struct{}{}, nil)
	parked := waitStatus(t, first, pool, run.ID, saga.StatusWaiting)
	if parked.WaitReason != "timer" || parked.WakeAt.Before(started.Add(nap)) {
		t.Fatalf("parked run waits for %q until %s", parked.WaitReason, parked.WakeAt)
	}
	// The job that parked the run ends (its completion is written in a
	// batch just after), and nothing holds a worker while the run sleeps.
	waitFor(t, "no job to run while the run sleeps", func() bool {
		var running int
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM keel.jobs WHERE state = 'running'").Scan(&running); err != nil {
			t.Fatal(err)
		}
		return running == 0
	})
	// Still asleep, unless the nap is over: a loaded machine may take longer
	// than the nap to get here, and then the first engine may rightly have
	// woken the run. The time is read after the row, so a run seen awake
	// with the clock still short of its wake time woke early.
	r, err := first.Get(context.Background(), pool, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if checked := time.Now(); r.Status != saga.StatusWaiting && checked.Before(parked.WakeAt) {
		t.Fatalf("run %s at %s, before its wake time %s", r.Status, checked, parked.WakeAt)
	}
	if err := first.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	second := newEngine(t, pool, reg, true)
	done := await(t, second, run.ID)
	woke, err := saga.Result[time.Time](done)
	if err != nil {
		t.Fatal(err)
	}
	if woke.Before(started.Add(nap)) {
		t.Fatalf("woke %s after start, before the %s sleep ended", woke.Sub(started), nap)
	}
	if before.Load() != 1 || after.Load() != 1 || done.Resumes != 2 {
		t.Fatalf("before ran %d, after %d, resumes %d; want 1, 1, 2", before.Load(), after.Load(), done.Resumes)
	}
}

type approval struct {
	By string `json:"by"`
	OK bool   `json:"ok"`
}

// approvalFlow waits for two approvals; each wait times out after the
// input's milliseconds.
func approvalFlow(reg *saga.Registry) {
	saga.Register(reg, "approve", 1, func(ctx saga.Context, timeoutMS int) ([]string, error) {
		var got []string
		for range 2 {
			a, err := saga.AwaitSignal[approval](ctx, "approval", time.Duration(timeoutMS)*time.Millisecond)
			if errors.Is(err, saga.ErrSignalTimeout) {
				got = append(got, "timeout")
				continue
			}
			if err != nil {
				return nil, err
			}
			got = append(got, a.By)
			if err := saga.SetValue(ctx, "approved", len(got)); err != nil {
				return nil, err
			}
		}
		return got, nil
	})
}

func TestSignals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// early signals are sent before any executor runs; late ones once the
		// run waits.
		early, late []string
		timeoutMS   int
		want        []string
	}{
		{name: "sent before the wait", early: []string{"ann", "bob"}, want: []string{"ann", "bob"}},
		{name: "sent after the wait", late: []string{"ann", "bob"}, want: []string{"ann", "bob"}},
		{name: "one before, one after", early: []string{"ann"}, late: []string{"bob"}, want: []string{"ann", "bob"}},
		{name: "idempotency key drops the repeat", early: []string{"ann", "ann"}, timeoutMS: 300, want: []string{"ann", "timeout"}},
		{name: "timeout", timeoutMS: 200, want: []string{"timeout", "timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := openPool(t, testdb.NewURL(t), 8)
			reg := saga.NewRegistry()
			approvalFlow(reg)
			e := newEngine(t, pool, reg, false)
			run := start(t, e, pool, "approve", tt.timeoutMS, nil)
			send := func(by string) {
				if err := e.Signal(ctx, pool, run.ID, "approval", approval{By: by, OK: true}, &saga.SignalOpts{IdempotencyKey: "key-" + by}); err != nil {
					t.Fatal(err)
				}
			}
			for _, by := range tt.early {
				send(by)
			}
			if err := e.Start(ctx); err != nil {
				t.Fatal(err)
			}
			for i, by := range tt.late {
				waitFor(t, "the run to wait", func() bool {
					r, err := e.Get(ctx, pool, run.ID)
					if err != nil {
						t.Fatal(err)
					}
					var n int
					if err := e.GetValue(ctx, run.ID, "approved", &n); err != nil && !errors.Is(err, saga.ErrRunNotFound) {
						t.Fatal(err)
					}
					return r.Status == saga.StatusWaiting && n == len(tt.early)+i
				})
				send(by)
			}
			done := await(t, e, run.ID)
			got, err := saga.Result[[]string](done)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestPublishedValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	saga.Register(reg, "progress", 1, func(ctx saga.Context, _ int) (int, error) {
		for _, pct := range []int{10, 50, 100} {
			if err := saga.SetValue(ctx, "progress", pct); err != nil {
				return 0, err
			}
		}
		_, err := saga.AwaitSignal[int](ctx, "go", 0)
		return 0, err
	})
	e := newEngine(t, pool, reg, true)
	run := start(t, e, pool, "progress", 0, nil)
	waitStatus(t, e, pool, run.ID, saga.StatusWaiting)
	var pct int
	if err := e.GetValue(ctx, run.ID, "progress", &pct); err != nil || pct != 100 {
		t.Fatalf("progress = %d, %v", pct, err)
	}
	if err := e.GetValue(ctx, run.ID, "missing", &pct); !errors.Is(err, saga.ErrRunNotFound) {
		t.Fatalf("missing value: %v", err)
	}
}

// A sleep of a few tens of milliseconds is slept in the process, with no
// park; a longer one parks, and its wake-up job is due a little before the
// wake time, so the run is claimed and replayed by then and resumes on
// time. Neither resumes before its time.
func TestTimers(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	saga.Register(reg, "sleeper", 1, func(ctx saga.Context, ms int) (time.Time, error) {
		saga.Sleep(ctx, time.Duration(ms)*time.Millisecond)
		return saga.Step(ctx, "after", func(context.Context) (time.Time, error) { return time.Now(), nil }, nil)
	})
	e := newEngine(t, pool, reg, true)
	tests := []struct {
		name        string
		sleep       time.Duration
		wantResumes int
	}{
		{"held", 15 * time.Millisecond, 1},
		{"parked", 400 * time.Millisecond, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			started := time.Now()
			run := start(t, e, pool, "sleeper", int(tc.sleep/time.Millisecond), nil)
			done := await(t, e, run.ID)
			woke, err := saga.Result[time.Time](done)
			if err != nil {
				t.Fatal(err)
			}
			if woke.Before(started.Add(tc.sleep)) {
				t.Errorf("woke %s after the start, before the %s sleep ended", woke.Sub(started), tc.sleep)
			}
			if done.Resumes != tc.wantResumes {
				t.Errorf("%d executions, want %d", done.Resumes, tc.wantResumes)
			}
			if tc.wantResumes == 1 {
				return
			}
			var early time.Duration
			err = pool.QueryRow(context.Background(), `SELECT (s.output #>> '{}')::timestamptz - j.run_at
				FROM keel.jobs j, keel.saga_steps s
				WHERE j.args->>'run_id' = $1 AND s.run_id = $1 AND s.kind = 'sleep'
				ORDER BY j.id DESC LIMIT 1`, run.ID).Scan(&early)
			if err != nil {
				t.Fatal(err)
			}
			// The job is scheduled a few tens of milliseconds before the
			// wake time; the in-process timer that makes it available may
			// fire late on a loaded machine (then run_at is when it fired,
			// after the wake time), so only a job due far too early fails.
			if early > 100*time.Millisecond {
				t.Errorf("the wake-up job was due %s before the wake time, want at most a few tens of milliseconds", early)
			}
		})
	}
}
