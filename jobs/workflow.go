package jobs

import (
	"context"
	"fmt"

	"github.com/keelpg/keel/internal/carrier"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// Workflow is a set of named tasks, each a job, with dependencies between
// them (a DAG). Build it with NewWorkflow and Add, and insert it whole with
// Client.InsertWorkflow.
type Workflow struct {
	name  string
	tasks []*task
}

type task struct {
	name string
	args JobArgs
	opts TaskOpts
}

// TaskOpts are the options of one task of a workflow.
type TaskOpts struct {
	InsertOpts
	// After names the tasks of the same workflow this one depends on; its
	// RunWhen applies to them (and to any InsertOpts.DependsOn ids).
	After []string
}

// NewWorkflow returns an empty workflow; name is stored in keel.jobs.workflow
// and, like task names, must be 1 to 255 bytes of UTF-8 without NUL.
func NewWorkflow(name string) *Workflow { return &Workflow{name: name} }

// Add adds a task and returns the workflow, so calls chain. Mistakes (a
// duplicate name, an unknown dependency, a cycle) are reported by
// InsertWorkflow.
func (w *Workflow) Add(name string, args JobArgs, opts *TaskOpts) *Workflow {
	t := &task{name: name, args: args}
	if opts != nil {
		t.opts = *opts
	}
	w.tasks = append(w.tasks, t)
	return w
}

// InsertWorkflow inserts every task of w through tx with one COPY and
// returns each task's job id by name. Tasks with dependencies wait (pending)
// until their dependencies are final, then run or are cancelled according to
// their RunWhen. It rejects, before writing anything, an empty or unnamed
// workflow, duplicate or unknown task names, cycles, unique keys (COPY cannot
// skip duplicates) and anything Insert rejects.
func (c *Client) InsertWorkflow(ctx context.Context, tx keeltype.DBTX, w *Workflow) (map[string]int64, error) {
	if err := checkDBTX(tx); err != nil {
		return nil, err
	}
	order, err := w.validate()
	if err != nil {
		return nil, err
	}
	now := c.now()
	prepared := make([]*job, len(w.tasks))
	var external []int64
	for i, t := range w.tasks {
		j, err := c.prepare(t.args, &t.opts.InsertOpts, now)
		if err != nil {
			return nil, fmt.Errorf("workflow %q, task %q: %w", w.name, t.name, err)
		}
		if j.uniqueKey != "" {
			return nil, fmt.Errorf("%w: workflow %q, task %q: workflow tasks cannot have unique keys", ErrInvalidOptions, w.name, t.name)
		}
		external = append(external, j.dependsOn...)
		prepared[i] = j
	}
	op := keeltype.Operation{Kind: keeltype.OpJobInsert, Count: len(prepared), Carrier: map[string]string{}}
	ctx, end := c.cfg.Hook.Start(ctx, op)
	if entries := carrier.Clean(op.Carrier); entries != nil {
		for _, j := range prepared {
			j.meta = entries.Metadata(j.meta)
		}
	}
	byName, err := c.insertWorkflow(ctx, tx, w, order, prepared, external)
	end(keeltype.Outcome{Err: err})
	return byName, err
}

func (c *Client) insertWorkflow(ctx context.Context, tx keeltype.DBTX, w *Workflow, order []int, prepared []*job, external []int64) (map[string]int64, error) {
	if len(external) > 0 {
		if err := checkDependencies(ctx, tx, external); err != nil {
			return nil, err
		}
	}
	ids, err := db.New(tx).ReserveJobIDs(ctx, int32(len(w.tasks)))
	if err != nil {
		return nil, fmt.Errorf("keel jobs: workflow %q: reserving ids: %w", w.name, err)
	}
	byName := make(map[string]int64, len(w.tasks))
	for i, t := range w.tasks {
		byName[t.name] = ids[i]
	}
	rows := make([]db.InsertWorkflowJobsParams, 0, len(w.tasks))
	queues := map[string]bool{}
	for _, i := range order {
		t, j := w.tasks[i], prepared[i]
		for _, dep := range t.opts.After {
			j.dependsOn = append(j.dependsOn, byName[dep])
		}
		if len(j.dependsOn) > 0 {
			j.state = StatePending
		}
		if j.state == StateAvailable {
			queues[j.queue] = true
		}
		rows = append(rows, db.InsertWorkflowJobsParams{
			ID: ids[i], Kind: j.kind, Queue: j.queue, State: db.KeelJobState(j.state), Priority: j.priority,
			Args: j.args, Metadata: j.meta, Tags: j.tags, MaxAttempts: j.maxAttempts, TimeoutMs: j.timeoutMS,
			RunAt: ts(j.runAt), DependsOn: j.dependsOn, RunWhen: db.KeelJobRunWhen(j.runWhen),
			Workflow: &w.name, Task: &t.name,
		})
	}
	if _, err := db.New(tx).InsertWorkflowJobs(ctx, rows); err != nil {
		return nil, fmt.Errorf("keel jobs: workflow %q: %w", w.name, err)
	}
	for q := range queues {
		if err := c.notifyQueue(ctx, tx, q); err != nil {
			return nil, err
		}
	}
	return byName, nil
}

// validate checks names and dependencies and returns the tasks' indexes in
// dependency order (Kahn's algorithm); a cycle leaves tasks unordered.
func (w *Workflow) validate() ([]int, error) {
	if w == nil {
		return nil, fmt.Errorf("%w: nil workflow", ErrInvalidOptions)
	}
	if err := validate.Name("workflow name", w.name, validate.MaxName); err != nil {
		return nil, invalid(err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: workflow %q: %s", ErrInvalidOptions, w.name, fmt.Sprintf(format, a...))
	}
	if len(w.tasks) == 0 {
		return nil, bad("no tasks")
	}
	index := make(map[string]int, len(w.tasks))
	for i, t := range w.tasks {
		if err := validate.Name("task name", t.name, validate.MaxName); err != nil {
			return nil, fmt.Errorf("%w: workflow %q: task %d: %w", ErrInvalidOptions, w.name, i, err)
		}
		if _, dup := index[t.name]; dup {
			return nil, bad("two tasks named %q", t.name)
		}
		index[t.name] = i
	}
	waiting := make([]int, len(w.tasks))      // dependencies not yet ordered
	dependents := make([][]int, len(w.tasks)) // task → tasks after it
	for i, t := range w.tasks {
		seen := map[string]bool{}
		for _, dep := range t.opts.After {
			j, ok := index[dep]
			switch {
			case !ok:
				return nil, bad("task %q depends on unknown task %q", t.name, dep)
			case seen[dep]:
				return nil, bad("task %q names %q twice", t.name, dep)
			}
			seen[dep] = true
			waiting[i]++
			dependents[j] = append(dependents[j], i)
		}
	}
	var order, ready []int
	for i := range w.tasks {
		if waiting[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		i := ready[0]
		ready = ready[1:]
		order = append(order, i)
		for _, d := range dependents[i] {
			if waiting[d]--; waiting[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if len(order) < len(w.tasks) {
		var stuck []string
		for i, t := range w.tasks {
			if waiting[i] > 0 {
				stuck = append(stuck, t.name)
			}
		}
		return nil, bad("dependency cycle among tasks %q", stuck)
	}
	return order, nil
}
