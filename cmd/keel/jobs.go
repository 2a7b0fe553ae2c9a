package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/jobs"
)

// jobView is how the CLI shows a job, in tables and JSON.
type jobView struct {
	ID          int64               `json:"id"`
	Kind        string              `json:"kind"`
	Queue       string              `json:"queue"`
	State       string              `json:"state"`
	Priority    int                 `json:"priority"`
	Attempt     int                 `json:"attempt"`
	MaxAttempts int                 `json:"max_attempts"`
	Progress    int                 `json:"progress"`
	RunAt       time.Time           `json:"run_at"`
	CreatedAt   time.Time           `json:"created_at"`
	FinalizedAt *time.Time          `json:"finalized_at,omitempty"`
	Args        json.RawMessage     `json:"args"`
	Output      json.RawMessage     `json:"output,omitempty"`
	Errors      []jobs.AttemptError `json:"errors,omitempty"`
	Tags        []string            `json:"tags,omitempty"`
	UniqueKey   string              `json:"unique_key,omitempty"`
	DependsOn   []int64             `json:"depends_on,omitempty"`
	Workflow    string              `json:"workflow,omitempty"`
	Task        string              `json:"task,omitempty"`
}

func toJobView(r *jobs.JobRow) jobView {
	v := jobView{
		ID: r.ID, Kind: r.Kind, Queue: r.Queue, State: string(r.State), Priority: r.Priority,
		Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, Progress: r.Progress, RunAt: r.RunAt,
		CreatedAt: r.CreatedAt, Args: r.EncodedArgs, Output: r.Output, Errors: r.Errors,
		Tags: r.Tags, UniqueKey: r.UniqueKey, DependsOn: r.DependsOn, Workflow: r.Workflow, Task: r.Task,
	}
	if !r.FinalizedAt.IsZero() {
		v.FinalizedAt = &r.FinalizedAt
	}
	return v
}

func lastError(errs []jobs.AttemptError) string {
	if len(errs) == 0 {
		return ""
	}
	return errs[len(errs)-1].Error
}

// withJobs connects and hands fn a jobs client that inserts and controls
// jobs but works none.
func (c *cli) withJobs(ctx context.Context, fn func(jc *jobs.Client) error) error {
	return c.withDB(ctx, func(pool *pgxpool.Pool) error {
		jc, err := jobs.NewClient(pool, jobs.Config{})
		if err != nil {
			return err
		}
		return fn(jc)
	})
}

func (c *cli) jobs(ctx context.Context, args []string) error {
	var state, queue, kind *string
	var limit *int
	id := []string{"job id"}
	sub, fs, err := c.subcommand("jobs", args, []verb{{"list", nil}, {"show", id}, {"retry", id}, {"cancel", id}}, func(fs *flag.FlagSet) {
		state = fs.String("state", "", "only jobs in this state")
		queue = fs.String("queue", "", "only jobs of this queue")
		kind = fs.String("kind", "", "only jobs of this kind")
		limit = fs.Int("limit", 50, "at most this many jobs")
	})
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		if *limit < 1 {
			return usageError{"jobs list: --limit must be at least 1"}
		}
		return c.withJobs(ctx, func(jc *jobs.Client) error {
			rows, err := jc.JobList(ctx, jobs.JobListParams{State: jobs.JobState(*state), Queue: *queue, Kind: *kind, Limit: *limit})
			if err != nil {
				return err
			}
			views := make([]jobView, len(rows))
			for i, r := range rows {
				views[i] = toJobView(r)
			}
			return c.emit(views, []string{"ID", "STATE", "QUEUE", "KIND", "ATTEMPT", "CREATED", "LAST ERROR"}, func(row func(...string)) {
				for _, v := range views {
					row(strconv.FormatInt(v.ID, 10), v.State, v.Queue, v.Kind, fmt.Sprintf("%d/%d", v.Attempt, v.MaxAttempts), ago(v.CreatedAt), lastError(v.Errors))
				}
			})
		})
	default:
		id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || id < 1 {
			return usageError{fmt.Sprintf("jobs %s: %q is not a job id", sub, fs.Arg(0))}
		}
		return c.withJobs(ctx, func(jc *jobs.Client) error {
			var row *jobs.JobRow
			switch sub {
			case "retry":
				row, err = jc.Retry(ctx, id)
			case "cancel":
				row, err = jc.Cancel(ctx, id)
			default:
				row, err = jc.JobGet(ctx, id)
			}
			if err != nil {
				return err
			}
			return c.showJob(toJobView(row))
		})
	}
}

func (c *cli) showJob(v jobView) error {
	return c.emit(v, []string{"FIELD", "VALUE"}, func(row func(...string)) {
		row("id", strconv.FormatInt(v.ID, 10))
		row("kind", v.Kind)
		row("queue", v.Queue)
		row("state", v.State)
		row("priority", strconv.Itoa(v.Priority))
		row("attempt", fmt.Sprintf("%d of %d", v.Attempt, v.MaxAttempts))
		row("progress", strconv.Itoa(v.Progress)+"%")
		row("run at", v.RunAt.UTC().Format(time.RFC3339Nano))
		row("created", v.CreatedAt.UTC().Format(time.RFC3339Nano))
		if v.FinalizedAt != nil {
			row("finalized", v.FinalizedAt.UTC().Format(time.RFC3339Nano))
		}
		row("args", string(v.Args))
		if len(v.Output) > 0 {
			row("output", string(v.Output))
		}
		if v.Workflow != "" {
			row("workflow", v.Workflow+" / "+v.Task)
		}
		for _, e := range v.Errors {
			row(fmt.Sprintf("attempt %d", e.Attempt), e.At.UTC().Format(time.RFC3339)+"  "+e.Error)
		}
	})
}

func (c *cli) queues(ctx context.Context, args []string) error {
	name := []string{"queue name"}
	sub, fs, err := c.subcommand("queues", args, []verb{{"list", nil}, {"pause", name}, {"resume", name}}, nil)
	if err != nil {
		return err
	}
	return c.withJobs(ctx, func(jc *jobs.Client) error {
		switch sub {
		case "pause":
			if err := jc.PauseQueue(ctx, fs.Arg(0)); err != nil {
				return err
			}
		case "resume":
			if err := jc.ResumeQueue(ctx, fs.Arg(0)); err != nil {
				return err
			}
		}
		qs, err := jc.Queues(ctx)
		if err != nil {
			return err
		}
		type queueView struct {
			Name   string `json:"name"`
			Paused bool   `json:"paused"`
		}
		views := make([]queueView, len(qs))
		for i, q := range qs {
			views[i] = queueView{q.Name, q.Paused}
		}
		return c.emit(views, []string{"QUEUE", "STATE"}, func(row func(...string)) {
			for _, v := range views {
				state := "running"
				if v.Paused {
					state = "paused"
				}
				row(v.Name, state)
			}
		})
	})
}
