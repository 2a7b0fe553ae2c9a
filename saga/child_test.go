package saga_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

func TestChildResultAndFailure(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	saga.Register(reg, "square", 1, func(ctx saga.Context, n int) (int, error) {
		if n < 0 {
			return 0, errors.New("negative")
		}
		return saga.Step(ctx, "square", func(context.Context) (int, error) { return n * n, nil }, nil)
	})
	saga.Register(reg, "parent", 1, func(ctx saga.Context, n int) (string, error) {
		child := saga.StartChild[int](ctx, "square", n, nil)
		v, err := child.Get(ctx)
		if errors.Is(err, saga.ErrChildFailed) {
			return "child failed: " + child.ID(), nil
		}
		return fmt.Sprint(v), err
	})
	saga.Register(reg, "clash", 1, func(ctx saga.Context, n int) (string, error) {
		_, err := saga.StartChild[int](ctx, "square", n, &saga.ChildOpts{RunID: "p7"}).Get(ctx)
		if errors.Is(err, saga.ErrRunIDInUse) {
			return "id in use", nil
		}
		return "", fmt.Errorf("child start with a taken id: %v", err)
	})
	e := newEngine(t, pool, reg, true)
	tests := []struct {
		in   int
		want string
	}{{7, "49"}, {-1, "child failed: p-1/1"}}
	for _, tt := range tests {
		run := start(t, e, pool, "parent", tt.in, &saga.StartOpts{RunID: fmt.Sprintf("p%d", tt.in)})
		got, err := saga.Result[string](await(t, e, run.ID))
		if err != nil || got != tt.want {
			t.Fatalf("parent(%d) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		children, err := e.List(context.Background(), &saga.ListParams{ParentID: run.ID})
		if err != nil || len(children) != 1 || children[0].ID != run.ID+"/1" {
			t.Fatalf("children of %s: %v, %v", run.ID, children, err)
		}
	}
	got, err := saga.Result[string](await(t, e, start(t, e, pool, "clash", 2, nil).ID))
	if err != nil || got != "id in use" {
		t.Fatalf("clash = %q, %v", got, err)
	}
}

func TestCancelCascadesToChildren(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	saga.Register(reg, "forever", 1, func(ctx saga.Context, _ int) (int, error) {
		return saga.AwaitSignal[int](ctx, "never", 0)
	})
	saga.Register(reg, "parent", 1, func(ctx saga.Context, _ int) (int, error) {
		a := saga.StartChild[int](ctx, "forever", 0, nil)
		b := saga.StartChild[int](ctx, "forever", 0, nil)
		x, err := a.Get(ctx)
		if err != nil {
			return 0, err
		}
		y, err := b.Get(ctx)
		return x + y, err
	})
	e := newEngine(t, pool, reg, true)
	run := start(t, e, pool, "parent", 0, &saga.StartOpts{RunID: "tree"})
	waitStatus(t, e, pool, run.ID, saga.StatusWaiting)
	for _, child := range []string{"tree/1", "tree/2"} {
		waitStatus(t, e, pool, child, saga.StatusWaiting)
	}
	if err := e.Cancel(ctx, pool, run.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"tree", "tree/1", "tree/2"} {
		done := await(t, e, id)
		if done.Status != saga.StatusCancelled || !errors.Is(done.Err(), saga.ErrCancelled) {
			t.Fatalf("run %s: %s, %v", id, done.Status, done.Err())
		}
	}
}

func TestParallelFanOutAndIn(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	var mu sync.Mutex
	runs := map[string]int{}
	count := func(name string) {
		mu.Lock()
		defer mu.Unlock()
		runs[name]++
	}
	const n = 8
	saga.Register(reg, "double", 1, func(ctx saga.Context, x int) (int, error) {
		return saga.Step(ctx, "double", func(context.Context) (int, error) { count(fmt.Sprint("child", x)); return 2 * x, nil }, nil)
	})
	saga.Register(reg, "fan", 1, func(ctx saga.Context, _ int) (int, error) {
		var steps []*saga.Future[int]
		for i := range n {
			steps = append(steps, saga.StepAsync(ctx, fmt.Sprint("part", i), func(context.Context) (int, error) {
				// Finish in reverse order, so completion order differs from call order.
				time.Sleep(time.Duration(n-i) * 5 * time.Millisecond)
				count(fmt.Sprint("part", i))
				return i, nil
			}, nil))
		}
		var children []*saga.Child[int]
		for i := range n {
			children = append(children, saga.StartChild[int](ctx, "double", i, nil))
		}
		saga.Sleep(ctx, 300*time.Millisecond) // parks, so all of the above replays
		sum := 0
		for _, f := range steps {
			v, err := f.Get(ctx)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		for _, c := range children {
			v, err := c.Get(ctx)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})
	e := newEngine(t, pool, reg, true)
	run := start(t, e, pool, "fan", 0, nil)
	done := await(t, e, run.ID)
	sum, err := saga.Result[int](done)
	if err != nil || sum != 3*n*(n-1)/2 {
		t.Fatalf("sum = %d, %v; want %d", sum, err, 3*n*(n-1)/2)
	}
	if done.Resumes < 2 {
		t.Fatalf("run was not replayed (resumes %d)", done.Resumes)
	}
	mu.Lock()
	defer mu.Unlock()
	for name, c := range runs {
		if c != 1 {
			t.Errorf("%s ran %d times", name, c)
		}
	}
	if len(runs) != 2*n {
		t.Errorf("%d distinct steps ran, want %d", len(runs), 2*n)
	}
}
