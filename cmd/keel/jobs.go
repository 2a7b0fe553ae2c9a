package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/jobs"
)

// internalKindPrefix starts the kind of every job keel inserts for itself
// (keel.saga.run, which executes saga runs): not the application's work,
// so jobs list leaves them out unless asked.
const internalKindPrefix = "keel."

// unboundedAttempts is the most attempts jobs accepts; keel's own jobs ask
// for it to mean "retry for ever", so the CLI does not print it as a limit.
const unboundedAttempts = 1 << 20

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
	return jobView{
		ID: r.ID, Kind: r.Kind, Queue: r.Queue, State: string(r.State), Priority: r.Priority,
		Attempt: r.Attempt, MaxAttempts: r.MaxAttempts, Progress: r.Progress, RunAt: r.RunAt,
		CreatedAt: r.CreatedAt, FinalizedAt: optTime(r.FinalizedAt), Args: r.EncodedArgs, Output: r.Output, Errors: r.Errors,
		Tags: r.Tags, UniqueKey: r.UniqueKey, DependsOn: r.DependsOn, Workflow: r.Workflow, Task: r.Task,
	}
}

// jobViewFromDB is toJobView for a row jobs list read itself.
func jobViewFromDB(r *db.KeelJob) (jobView, error) {
	v := jobView{
		ID: r.ID, Kind: r.Kind, Queue: r.Queue, State: string(r.State), Priority: int(r.Priority),
		Attempt: int(r.Attempt), MaxAttempts: int(r.MaxAttempts), Progress: int(r.Progress), RunAt: r.RunAt.Time,
		CreatedAt: r.CreatedAt.Time, FinalizedAt: optTime(r.FinalizedAt.Time), Args: r.Args, Output: r.Output,
		Tags: r.Tags, UniqueKey: deref(r.UniqueKey), DependsOn: r.DependsOn, Workflow: deref(r.Workflow), Task: deref(r.Task),
	}
	if len(r.Errors) > 2 { // "[]" needs no decoding
		if err := json.Unmarshal(r.Errors, &v.Errors); err != nil {
			return v, fmt.Errorf("job %d: decoding its errors: %w", r.ID, err)
		}
	}
	return v, nil
}

func lastError(errs []jobs.AttemptError) string {
	if len(errs) == 0 {
		return ""
	}
	return errs[len(errs)-1].Error
}

// attemptLimit is a job's most attempts as the CLI prints it: "-" for none.
func attemptLimit(v jobView) string {
	if v.MaxAttempts >= unboundedAttempts {
		return "-"
	}
	return strconv.Itoa(v.MaxAttempts)
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

func jobsList(fs *flag.FlagSet) action {
	states := make([]string, 0, len(db.AllKeelJobStateValues()))
	for _, s := range db.AllKeelJobStateValues() {
		states = append(states, string(s))
	}
	state := fs.String("state", "", "only jobs in this `state`: "+orList(states)+" (default: every state)")
	queue := fs.String("queue", "", "only jobs of this `queue` (default: every queue)")
	kind := fs.String("kind", "", "only jobs of this `kind` (default: every kind)")
	limit := fs.Int("limit", 50, "show at most `n` jobs, the newest")
	all := fs.Bool("all", false, "also list keel's own jobs, whose kinds start with \""+internalKindPrefix+"\" (default: off)")
	return func(c *cli, ctx context.Context, _ []string) error {
		if *limit < 1 {
			return usageError{"--limit must be at least 1"}
		}
		// A kind of keel's own is asked for by name: list it without --all.
		hide := !*all && !strings.HasPrefix(*kind, internalKindPrefix)
		p := db.ListJobsParams{HideInternal: &hide, MaxRows: int32(min(*limit, math.MaxInt32))}
		if *state != "" {
			s := db.KeelJobState(*state)
			if !s.Valid() {
				return usageError{fmt.Sprintf("unknown state %q; one of %s", *state, orList(states))}
			}
			p.State = &s
		}
		if *queue != "" {
			p.Queue = queue
		}
		if *kind != "" {
			p.Kind = kind
		}
		return c.withDB(ctx, func(pool *pgxpool.Pool) error { return c.listJobs(ctx, db.New(pool), p) })
	}
}

func (c *cli) listJobs(ctx context.Context, q *db.Queries, p db.ListJobsParams) error {
	rows, err := q.ListJobs(ctx, p)
	if err != nil {
		return err
	}
	views := make([]jobView, len(rows))
	for i := range rows {
		if views[i], err = jobViewFromDB(&rows[i]); err != nil {
			return err
		}
	}
	return c.emit(views, []string{"ID", "STATE", "QUEUE", "KIND", "ATTEMPT", "CREATED", "LAST ERROR"}, func(row func(...string)) {
		for _, v := range views {
			row(strconv.FormatInt(v.ID, 10), v.State, v.Queue, v.Kind, fmt.Sprintf("%d/%s", v.Attempt, attemptLimit(v)), c.ago(v.CreatedAt), lastError(v.Errors))
		}
	})
}

// jobsShow is keel jobs show, retry, cancel or delete: each prints the
// job, after retrying or cancelling it, or as it was when it was deleted.
func jobsShow(verb string) action {
	return func(c *cli, ctx context.Context, args []string) error {
		id, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || id < 1 {
			return usageError{fmt.Sprintf("%q is not a job id", args[0])}
		}
		return c.withJobs(ctx, func(jc *jobs.Client) error {
			var row *jobs.JobRow
			switch verb {
			case "retry":
				row, err = jc.JobRetry(ctx, id)
			case "cancel":
				row, err = jc.JobCancel(ctx, id)
			case "delete":
				row, err = jc.JobDelete(ctx, id)
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
		if limit := attemptLimit(v); limit == "-" {
			row("attempt", fmt.Sprintf("%d (no limit)", v.Attempt))
		} else {
			row("attempt", fmt.Sprintf("%d of %s", v.Attempt, limit))
		}
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

// queues is keel queues list, pause or resume: each lists the queues, after
// pausing or resuming one.
func queues(verb string) action {
	return func(c *cli, ctx context.Context, args []string) error {
		return c.withJobs(ctx, func(jc *jobs.Client) error {
			switch verb {
			case "pause":
				if err := jc.QueuePause(ctx, args[0]); err != nil {
					return err
				}
			case "resume":
				if err := jc.QueueResume(ctx, args[0]); err != nil {
					return err
				}
			}
			return c.listQueues(ctx, jc)
		})
	}
}

func (c *cli) listQueues(ctx context.Context, jc *jobs.Client) error {
	qs, err := jc.QueueList(ctx)
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
}
