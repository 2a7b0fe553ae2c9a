package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/saga"
)

// runView is how the CLI shows a workflow run.
type runView struct {
	ID         string          `json:"id"`
	Workflow   string          `json:"workflow"`
	Version    int             `json:"version"`
	Status     string          `json:"status"`
	Queue      string          `json:"queue"`
	ParentID   string          `json:"parent_id,omitempty"`
	Resumes    int             `json:"resumes"`
	WaitReason string          `json:"wait_reason,omitempty"`
	WakeAt     *time.Time      `json:"wake_at,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Output     json.RawMessage `json:"output,omitempty"`
	Error      string          `json:"error,omitempty"`
	LastError  string          `json:"last_error,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Steps      []stepView      `json:"steps,omitempty"`
}

type stepView struct {
	Seq        int             `json:"seq"`
	Name       string          `json:"name"`
	Kind       string          `json:"kind"`
	Status     string          `json:"status"`
	Attempts   int             `json:"attempts"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Took       string          `json:"took,omitempty"`
	Output     json.RawMessage `json:"output,omitempty"`
	Error      string          `json:"error,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toRunView(r *saga.Run) runView {
	v := runView{
		ID: r.ID, Workflow: r.Workflow, Version: r.Version, Status: string(r.Status), Queue: r.Queue,
		ParentID: r.ParentID, Resumes: r.Resumes, WaitReason: r.WaitReason, WakeAt: optTime(r.WakeAt),
		Input: r.Input, Output: r.Output, LastError: r.LastError, CreatedAt: r.CreatedAt, StartedAt: optTime(r.StartedAt), FinishedAt: optTime(r.FinishedAt),
	}
	if err := r.Err(); err != nil {
		v.Error = err.Error()
	}
	return v
}

// withEngine connects and hands fn a saga engine that registers no
// workflow: it reads, signals and cancels runs but executes none.
func (c *cli) withEngine(ctx context.Context, fn func(pool *pgxpool.Pool, e *saga.Engine) error) error {
	return c.withDB(ctx, func(pool *pgxpool.Pool) error {
		e, err := saga.NewEngine(pool, saga.NewRegistry(), saga.Config{})
		if err != nil {
			return err
		}
		return fn(pool, e)
	})
}

func sagasList(fs *flag.FlagSet) action {
	status := fs.String("status", "", "only runs in this `status`: "+orList(runStatuses())+" (default: every status)")
	workflow := fs.String("workflow", "", "only runs of this `workflow` (default: every workflow)")
	limit := fs.Int("limit", 50, "show at most `n` runs, the newest")
	return func(c *cli, ctx context.Context, _ []string) error {
		if *limit < 1 {
			return usageError{"--limit must be at least 1"}
		}
		return c.withEngine(ctx, func(_ *pgxpool.Pool, e *saga.Engine) error {
			runs, err := e.List(ctx, &saga.ListParams{Status: saga.Status(*status), Workflow: *workflow, Limit: *limit})
			if err != nil {
				return err
			}
			views := make([]runView, len(runs))
			for i, r := range runs {
				views[i] = toRunView(r)
			}
			return c.emit(views, []string{"ID", "WORKFLOW", "STATUS", "WAITING FOR", "CREATED", "ERROR"}, func(row func(...string)) {
				for _, v := range views {
					errText := v.Error
					if errText == "" {
						errText = v.LastError
					}
					row(v.ID, fmt.Sprintf("%s v%d", v.Workflow, v.Version), v.Status, v.WaitReason, c.ago(v.CreatedAt), errText)
				}
			})
		})
	}
}

func runStatuses() []string {
	all := db.AllKeelSagaRunStatusValues()
	out := make([]string, len(all))
	for i, s := range all {
		out[i] = string(s)
	}
	return out
}

// sagaAction is keel sagas show or cancel: each prints the run with its
// steps, after cancelling it.
func sagaAction(verb string) action {
	return func(c *cli, ctx context.Context, args []string) error {
		return c.withEngine(ctx, func(pool *pgxpool.Pool, e *saga.Engine) error {
			if verb == "cancel" {
				if err := e.Cancel(ctx, pool, args[0]); err != nil {
					return err
				}
			}
			return c.showRun(ctx, pool, e, args[0])
		})
	}
}

func sagasSignal(fs *flag.FlagSet) action {
	value := fs.String("value", "null", "the signal's `value`, as JSON")
	key := fs.String("key", "", "an idempotency `key`: a second signal with the same key is ignored (default: none)")
	return func(c *cli, ctx context.Context, args []string) error {
		if err := validate.JSON("--value", []byte(*value)); err != nil {
			return usageError{err.Error()}
		}
		return c.withEngine(ctx, func(pool *pgxpool.Pool, e *saga.Engine) error {
			if err := e.Signal(ctx, pool, args[0], args[1], json.RawMessage(*value), &saga.SignalOpts{IdempotencyKey: *key}); err != nil {
				return err
			}
			return c.showRun(ctx, pool, e, args[0])
		})
	}
}

func (c *cli) showRun(ctx context.Context, pool *pgxpool.Pool, e *saga.Engine, runID string) error {
	r, err := e.Get(ctx, pool, runID)
	if err != nil {
		return err
	}
	steps, err := e.Steps(ctx, runID)
	if err != nil {
		return err
	}
	v := toRunView(r)
	for _, s := range steps {
		sv := stepView{Seq: s.Seq, Name: s.Name, Kind: s.Kind, Status: s.Status, Attempts: s.Attempts,
			StartedAt: s.StartedAt, FinishedAt: optTime(s.FinishedAt), Output: s.Output, Error: s.Error}
		if sv.FinishedAt != nil {
			sv.Took = s.FinishedAt.Sub(s.StartedAt).Round(time.Microsecond).String()
		}
		v.Steps = append(v.Steps, sv)
	}
	if c.jsonOut {
		return c.emit(v, nil, nil)
	}
	fmt.Fprintf(c.out, "run %s: %s v%d, %s", v.ID, v.Workflow, v.Version, v.Status)
	if v.WaitReason != "" {
		fmt.Fprintf(c.out, " (waiting for %s)", v.WaitReason)
	}
	fmt.Fprintln(c.out)
	if v.Error != "" {
		fmt.Fprintf(c.out, "error: %s\n", v.Error)
	}
	if v.LastError != "" {
		fmt.Fprintf(c.out, "last error: %s\n", v.LastError)
	}
	fmt.Fprintf(c.out, "input: %s\n", v.Input)
	if len(v.Output) > 0 {
		fmt.Fprintf(c.out, "output: %s\n", v.Output)
	}
	return c.emit(nil, []string{"SEQ", "STEP", "KIND", "STATUS", "ATTEMPTS", "STARTED", "TOOK", "ERROR"}, func(row func(...string)) {
		for _, s := range v.Steps {
			row(strconv.Itoa(s.Seq), s.Name, s.Kind, s.Status, strconv.Itoa(s.Attempts), s.StartedAt.UTC().Format(time.RFC3339Nano), s.Took, s.Error)
		}
	})
}
