package jobs

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

// stepArgs is a workflow task: it records its name and may fail.
type stepArgs struct {
	Name string `json:"name"`
	Fail bool   `json:"fail"`
}

func (stepArgs) Kind() string { return "step" }

// journal records the order in which tasks ran.
type journal struct {
	mu    sync.Mutex
	order []string
}

func (j *journal) add(name string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.order = append(j.order, name)
}

func (j *journal) index(name string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Index(j.order, name)
}

func TestWorkflowRunsInDependencyOrder(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	ran := &journal{}
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[stepArgs]) error {
		ran.add(j.Args.Name)
		if j.Args.Fail {
			return JobCancel(errors.New("step failed"))
		}
		deps, err := DependencyOutputs(ctx)
		if err != nil {
			return err
		}
		sum := 1
		for _, d := range deps {
			if d.Output == nil { // a failed dependency recorded none
				continue
			}
			var n int
			if err := d.Decode(&n); err != nil {
				return err
			}
			sum += n
		}
		return RecordOutput(ctx, sum)
	}, nil)
	c := startClient(t, pool, fastConfig(w))

	wf := NewWorkflow("diamond").
		Add("fetch", stepArgs{Name: "fetch"}, nil).
		Add("left", stepArgs{Name: "left"}, &TaskOpts{After: []string{"fetch"}}).
		Add("right", stepArgs{Name: "right"}, &TaskOpts{After: []string{"fetch"}}).
		Add("join", stepArgs{Name: "join"}, &TaskOpts{After: []string{"left", "right"}}).
		Add("broken", stepArgs{Name: "broken", Fail: true}, &TaskOpts{After: []string{"join"}}).
		Add("needs-success", stepArgs{Name: "needs-success"}, &TaskOpts{After: []string{"broken"}}).
		Add("on-failure", stepArgs{Name: "on-failure"}, &TaskOpts{After: []string{"broken"}, InsertOpts: InsertOpts{RunWhen: RunAfterFailure}}).
		Add("not-on-success", stepArgs{Name: "not-on-success"}, &TaskOpts{After: []string{"join"}, InsertOpts: InsertOpts{RunWhen: RunAfterFailure}}).
		Add("always", stepArgs{Name: "always"}, &TaskOpts{After: []string{"broken", "join"}, InsertOpts: InsertOpts{RunWhen: RunAlways}}).
		Add("after-cancelled", stepArgs{Name: "after-cancelled"}, &TaskOpts{After: []string{"needs-success"}})
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := c.InsertWorkflow(ctx, tx, wf)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]JobState{
		"fetch": StateCompleted, "left": StateCompleted, "right": StateCompleted, "join": StateCompleted,
		"broken": StateCancelled, "needs-success": StateCancelled, "on-failure": StateCompleted,
		"not-on-success": StateCancelled, "always": StateCompleted, "after-cancelled": StateCancelled,
	}
	rows := map[string]*JobRow{}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for name := range want {
			r, _ := c.JobGet(context.Background(), ids[name])
			t.Logf("%s: %s %+v", name, r.State, r.Errors)
		}
	})
	for name, state := range want {
		rows[name] = waitState(t, c, ids[name], state)
	}
	for _, edge := range [][2]string{{"fetch", "left"}, {"fetch", "right"}, {"left", "join"}, {"right", "join"},
		{"join", "broken"}, {"broken", "on-failure"}, {"broken", "always"}} {
		if ran.index(edge[0]) < 0 || ran.index(edge[0]) > ran.index(edge[1]) {
			t.Fatalf("%s ran before %s: %v", edge[1], edge[0], ran.order)
		}
	}
	for _, name := range []string{"needs-success", "not-on-success", "after-cancelled"} {
		if ran.index(name) >= 0 {
			t.Fatalf("%s ran: %v", name, ran.order)
		}
	}
	// Outputs flow: fetch 1, left and right 2 each, join 1+2+2.
	if string(rows["join"].Output) != "5" {
		t.Fatalf("join's output %s, want 5", rows["join"].Output)
	}
	if rows["join"].Workflow != "diamond" || rows["join"].Task != "join" || len(rows["join"].DependsOn) != 2 {
		t.Fatalf("join row: %+v", rows["join"])
	}
}

func TestWorkflowRejectsBadGraphsWritingNothing(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[stepArgs]) error { return nil }, nil)
	c, err := NewClient(pool, Config{Workers: w})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		wf   *Workflow
	}{
		{"cycle", NewWorkflow("w").
			Add("a", stepArgs{}, &TaskOpts{After: []string{"c"}}).
			Add("b", stepArgs{}, &TaskOpts{After: []string{"a"}}).
			Add("c", stepArgs{}, &TaskOpts{After: []string{"b"}}).
			Add("free", stepArgs{}, nil)},
		{"self loop", NewWorkflow("w").Add("a", stepArgs{}, &TaskOpts{After: []string{"a"}})},
		{"unknown task", NewWorkflow("w").Add("a", stepArgs{}, &TaskOpts{After: []string{"nope"}})},
		{"duplicate task", NewWorkflow("w").Add("a", stepArgs{}, nil).Add("a", stepArgs{}, nil)},
		{"unnamed task", NewWorkflow("w").Add("", stepArgs{}, nil)},
		{"unnamed workflow", NewWorkflow("").Add("a", stepArgs{}, nil)},
		{"empty", NewWorkflow("w")},
		{"bad task options", NewWorkflow("w").Add("a", stepArgs{}, nil).Add("b", stepArgs{}, &TaskOpts{InsertOpts: InsertOpts{Priority: 7}})},
		{"unique key", NewWorkflow("w").Add("a", stepArgs{}, &TaskOpts{InsertOpts: InsertOpts{UniqueKey: "k"}})},
		{"unknown external dependency", NewWorkflow("w").Add("a", stepArgs{}, &TaskOpts{InsertOpts: InsertOpts{DependsOn: []int64{1 << 40}}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := c.InsertWorkflow(context.Background(), pool, tc.wf)
			if !errors.Is(err, ErrInvalidOptions) || ids != nil {
				t.Fatalf("got %v, %v; want ErrInvalidOptions", ids, err)
			}
		})
	}
	if n, err := countState(c, ""); err != nil || n != 0 {
		t.Fatalf("%d jobs written (%v)", n, err)
	}
}

func TestDependsOnExistingJobs(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	w := NewWorkers()
	release := make(chan struct{})
	AddWorker(w, func(ctx context.Context, j *Job[stepArgs]) error {
		if j.Args.Fail {
			<-release
			return errors.New("fails for good")
		}
		return nil
	}, nil)
	c := startClient(t, pool, fastConfig(w))
	first := insert(t, c, stepArgs{Name: "first", Fail: true}, &InsertOpts{MaxAttempts: 1})
	cleanup := insert(t, c, stepArgs{Name: "cleanup"}, &InsertOpts{DependsOn: []int64{first.ID}, RunWhen: RunAfterFailure})
	if cleanup.State != StatePending {
		t.Fatalf("dependent inserted as %s", cleanup.State)
	}
	if row, err := c.JobRetry(context.Background(), cleanup.ID); err != nil || row.State != StatePending {
		t.Fatalf("retry of a pending job: %v, %v; want it left pending", row, err)
	}
	close(release)
	waitState(t, c, first.ID, StateDiscarded)
	waitState(t, c, cleanup.ID, StateCompleted)
}
