package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/outage"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// Status is where a run is; it is the Postgres enum keel.saga_run_status.
type Status string

// The statuses of a run. Succeeded, Failed and Cancelled are final.
const (
	StatusPending      Status = "pending"      // its job is queued, or its version waits for a process (LastError)
	StatusRunning      Status = "running"      // an executor runs it
	StatusWaiting      Status = "waiting"      // parked on a timer, a signal or a child
	StatusCompensating Status = "compensating" // undoing its completed steps
	StatusSucceeded    Status = "succeeded"
	StatusFailed       Status = "failed"
	StatusCancelled    Status = "cancelled"
)

// Final reports whether a run in this status never runs again on its own.
func (s Status) Final() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled
}

// Run is a run as stored in keel.saga_runs.
type Run struct {
	ID       string
	Workflow string
	Version  int
	Status   Status
	Queue    string
	Input    json.RawMessage
	// Output is the workflow's result once it succeeded.
	Output json.RawMessage
	// Error is why it failed or was cancelled; nil otherwise.
	Error *RunError
	// LastError is what keeps it from progressing, e.g. no process
	// registers its version.
	LastError string
	ParentID  string
	// ForkedFrom and ForkedAtSeq are set on a fork.
	ForkedFrom  string
	ForkedAtSeq int
	// Resumes counts the executions that took the run.
	Resumes int
	// WakeAt and WaitReason say what a waiting run waits for.
	WakeAt          time.Time
	WaitReason      string
	CancelRequested bool
	Deadline        time.Time
	CreatedAt       time.Time
	StartedAt       time.Time
	UpdatedAt       time.Time
	FinishedAt      time.Time
}

// Err is the run's error: nil unless it failed or was cancelled.
func (r *Run) Err() error {
	if r.Error == nil {
		return nil
	}
	return r.Error
}

// Result decodes a finished run's output into Out, or returns its error.
func Result[Out any](r *Run) (Out, error) {
	var out Out
	if err := r.Err(); err != nil {
		return out, err
	}
	if r.Status != StatusSucceeded {
		return out, fmt.Errorf("keel saga: run %s is %s, not finished", r.ID, r.Status)
	}
	if err := json.Unmarshal(r.Output, &out); err != nil {
		return out, fmt.Errorf("%w: output of run %s: %w", ErrDecode, r.ID, err)
	}
	return out, nil
}

func runFromDB(r *db.KeelSagaRun) *Run {
	run := &Run{
		ID: r.ID, Workflow: r.Workflow, Version: int(r.Version), Status: Status(r.Status), Queue: r.Queue,
		Input: r.Input, Output: r.Output, LastError: deref(r.LastError), ParentID: deref(r.ParentID),
		ForkedFrom: deref(r.ForkedFrom), Resumes: int(r.Resumes),
		WakeAt: fromTS(r.WakeAt), WaitReason: deref(r.WaitReason), CancelRequested: r.CancelRequestedAt.Valid,
		Deadline: fromTS(r.Deadline), CreatedAt: fromTS(r.CreatedAt), StartedAt: fromTS(r.StartedAt),
		UpdatedAt: fromTS(r.UpdatedAt), FinishedAt: fromTS(r.FinishedAt),
	}
	if r.ForkedAtSeq != nil {
		run.ForkedAtSeq = int(*r.ForkedAtSeq)
	}
	if len(r.Error) > 0 {
		var se storedError
		if err := json.Unmarshal(r.Error, &se); err != nil {
			se = storedError{Kind: FailureWorkflow, Message: string(r.Error)}
		}
		run.Error = &RunError{RunID: r.ID, Status: run.Status, Kind: se.Kind, Message: se.Message}
		if se.Kind == FailureNondeterminism {
			run.Error.Nondeterminism = &NondeterminismError{Seq: se.Seq, Recorded: se.Recorded, Got: se.Got}
		}
	}
	return run
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func fromTS(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time
}

// Get returns the run with that id, or ErrRunNotFound. tx may be the
// caller's transaction, a connection or the pool.
func (e *Engine) Get(ctx context.Context, tx keeltype.DBTX, runID string) (*Run, error) {
	if err := checkTx(tx); err != nil {
		return nil, err
	}
	if err := checkRunID("run id", runID); err != nil {
		return nil, err
	}
	return e.get(ctx, tx, runID)
}

func (e *Engine) get(ctx context.Context, tx keeltype.DBTX, runID string) (*Run, error) {
	row, err := db.New(tx).GetRun(ctx, runID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrRunNotFound, runID)
	}
	if err != nil {
		return nil, fmt.Errorf("keel saga: get %s: %w", runID, err)
	}
	return runFromDB(&row), nil
}

// ListParams filters List. Zero fields do not filter.
type ListParams struct {
	Status   Status
	Workflow string
	// ParentID lists the children of a run.
	ParentID string
	// Limit caps the runs returned. Default 100.
	Limit int
}

// List returns runs, newest first.
func (e *Engine) List(ctx context.Context, opts *ListParams) ([]*Run, error) {
	var o ListParams
	if opts != nil {
		o = *opts
	}
	if err := checkList(o); err != nil {
		return nil, err
	}
	if o.Limit <= 0 {
		o.Limit = 100
	}
	p := db.ListRunsParams{Max: int32(min(o.Limit, math.MaxInt32))}
	if o.Status != "" {
		s := db.KeelSagaRunStatus(o.Status)
		p.Status = &s
	}
	if o.Workflow != "" {
		p.Workflow = &o.Workflow
	}
	if o.ParentID != "" {
		p.ParentID = &o.ParentID
	}
	rows, err := db.New(e.pool).ListRuns(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("keel saga: list runs: %w", err)
	}
	runs := make([]*Run, len(rows))
	for i := range rows {
		runs[i] = runFromDB(&rows[i])
	}
	return runs, nil
}

// StepInfo is one recorded step of a run, as stored in keel.saga_steps.
type StepInfo struct {
	// Seq is its position, from 1; a compensation has minus the position of
	// the step it undoes.
	Seq  int
	Name string
	// Kind is step, tx, sleep, signal, child, await, value or compensation.
	Kind       string
	Status     string // completed, failed or waiting (a timer, a signal wait, a step between attempts)
	Output     json.RawMessage
	Error      string
	Attempts   int
	StartedAt  time.Time
	FinishedAt time.Time // zero while the step waits
}

// Steps returns a run's recorded history in position order (compensations,
// at negative positions, first).
func (e *Engine) Steps(ctx context.Context, runID string) ([]StepInfo, error) {
	if err := checkRunID("run id", runID); err != nil {
		return nil, err
	}
	rows, err := db.New(e.pool).LoadHistory(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("keel saga: steps of %s: %w", runID, err)
	}
	steps := make([]StepInfo, len(rows))
	for i, r := range rows {
		steps[i] = StepInfo{
			Seq: int(r.Seq), Name: r.Name, Kind: r.Kind, Status: string(r.Status), Output: r.Output,
			Error: deref(r.Error), Attempts: int(r.Attempts), StartedAt: fromTS(r.StartedAt), FinishedAt: fromTS(r.FinishedAt),
		}
	}
	return steps, nil
}

// GetValue decodes into v the latest value the run published under name
// with SetValue. It returns ErrRunNotFound when the run has published no
// such value (or does not exist).
func (e *Engine) GetValue(ctx context.Context, runID, name string, v any) error {
	if err := checkRunID("run id", runID); err != nil {
		return err
	}
	if err := validate.Text("value name", name, validate.MaxName); err != nil {
		return invalid(err)
	}
	raw, err := db.New(e.pool).GetValue(ctx, db.GetValueParams{RunID: runID, Name: name})
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: run %s published no value %q", ErrRunNotFound, runID, name)
	}
	if err != nil {
		return fmt.Errorf("keel saga: value %q of %s: %w", name, runID, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: value %q of run %s: %w", ErrDecode, name, runID, err)
	}
	return nil
}

// awaitRead reads a run for Await, with the reads of the Awaits made at the
// same time in one statement.
func (e *Engine) awaitRead(ctx context.Context, runID string) (*Run, error) {
	if err := checkRunID("run id", runID); err != nil {
		return nil, err
	}
	return e.runReads.do(ctx, runID)
}

// readRuns reads a group of runs for Await; a missing one gets
// ErrRunNotFound.
func (e *Engine) readRuns(ctx context.Context, batch []*call[string, *Run]) {
	ids := make([]string, len(batch))
	for i, c := range batch {
		ids[i] = c.req
	}
	rows, err := db.New(e.pool).GetRuns(ctx, ids)
	byID := make(map[string]*db.KeelSagaRun, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	for _, c := range batch {
		switch row := byID[c.req]; {
		case err != nil:
			c.err = fmt.Errorf("keel saga: get %s: %w", c.req, err)
		case row == nil:
			c.err = fmt.Errorf("%w: %s", ErrRunNotFound, c.req)
		default:
			c.res = runFromDB(row)
		}
	}
}

// Await waits until the run is final and returns it; use Result or Run.Err
// for its outcome. A run that ends in this process is handed over as it
// commits; one that ends elsewhere wakes Await by a notification, and Await
// reads the run every Config.AwaitPollInterval besides. A run this engine
// started and is still executing from its start is not read until its
// execution stops. Through a database
// outage it keeps trying, with a capped backoff; it returns ctx's error when
// ctx ends first, and any other error at once.
func (e *Engine) Await(ctx context.Context, runID string) (*Run, error) {
	w, live := e.awaiter.watch(runID)
	defer e.awaiter.unwatch(runID, w)
	var backoff outage.Backoff
	for {
		wait := e.cfg.AwaitPollInterval
		var run *Run
		var err error
		if !live {
			run, err = e.awaitRead(ctx, runID)
		}
		live = false
		switch {
		case run == nil && err == nil: // executing here: nothing to read yet
		case err == nil:
			e.awaiter.outage.Succeeded()
			backoff.Reset()
			if run.Status.Final() {
				return run, nil
			}
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case e.awaiter.outage.Failed(err):
			wait = backoff.Next()
		default:
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case r := <-w:
			if r != nil {
				t.Stop()
				return r, nil
			}
		case <-t.C:
		}
		t.Stop()
	}
}
