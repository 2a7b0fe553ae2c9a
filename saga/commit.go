package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/carrier"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
)

// commitReq is what an execution writes through the engine's group commit:
// a step's checkpoint, or the end of a run that has no parent to wake and no
// children to cancel.
type commitReq struct {
	step   *db.CheckpointParams
	finish *finishReq
}

// finishReq ends a run and completes the job that executed it, in one
// transaction.
type finishReq struct {
	run db.FinishRunParams
	job *jobs.Job[runJob]
}

// commitRes is how a commitReq went: whether it was written (else the
// executor no longer holds the run) and, for a checkpoint, whether a cancel
// was requested.
type commitRes struct {
	written         bool
	cancelRequested bool
}

// stepItem is a checkpoint in CheckpointMany's JSON array.
type stepItem struct {
	I         int                   `json:"i"`
	RunID     string                `json:"run_id"`
	Epoch     int64                 `json:"epoch"`
	Seq       int32                 `json:"seq"`
	Name      string                `json:"name"`
	Kind      string                `json:"kind"`
	Status    db.KeelSagaStepStatus `json:"status"`
	Output    json.RawMessage       `json:"output,omitempty"`
	Error     *string               `json:"error,omitempty"`
	Attempts  int32                 `json:"attempts"`
	StartedAt *time.Time            `json:"started_at,omitempty"`
	Publish   bool                  `json:"publish,omitempty"`
}

// finishItem is a run's end in FinishRuns's JSON array, with the job that
// executed it.
type finishItem struct {
	ID         string               `json:"id"`
	Epoch      int64                `json:"epoch"`
	Status     db.KeelSagaRunStatus `json:"status"`
	Output     json.RawMessage      `json:"output,omitempty"`
	Error      json.RawMessage      `json:"error,omitempty"`
	JobID      int64                `json:"job_id"`
	JobAttempt int                  `json:"job_attempt"`
}

// writeCommits writes a group of checkpoints and finishes: the checkpoints
// with one statement, the finishes with another, which also completes their
// runs' jobs and notifies awaiters. Each is written and fails on its own; a
// batch the database refuses for something in it is written again call by
// call, so one bad request fails alone.
func (e *Engine) writeCommits(ctx context.Context, batch []*call[commitReq, commitRes]) {
	var steps, ends []*call[commitReq, commitRes]
	for _, c := range batch {
		c.res, c.err = commitRes{}, nil
		if c.req.step != nil {
			steps = append(steps, c)
		} else {
			ends = append(ends, c)
		}
	}
	if len(steps) > 0 {
		e.writeSteps(ctx, steps)
	}
	if len(ends) > 0 {
		e.writeEnds(ctx, ends)
	}
}

// writeSteps checkpoints a group of steps.
func (e *Engine) writeSteps(ctx context.Context, batch []*call[commitReq, commitRes]) {
	err := e.trySteps(ctx, batch)
	switch {
	case err == nil:
	case len(batch) > 1 && blamesBatch(err):
		alone(ctx, batch, e.writeSteps)
	default:
		for _, c := range batch {
			c.res, c.err = commitRes{}, err
		}
	}
}

func (e *Engine) trySteps(ctx context.Context, batch []*call[commitReq, commitRes]) error {
	q := db.New(e.pool)
	if len(batch) == 1 { // alone: the plain statement, which costs the server less
		c := batch[0]
		cancel, err := q.Checkpoint(ctx, *c.req.step)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		c.res = commitRes{written: err == nil, cancelRequested: cancel}
		return err
	}
	items := make([]stepItem, len(batch))
	for i, c := range batch {
		p := c.req.step
		items[i] = stepItem{
			I: i, RunID: p.RunID, Epoch: p.Epoch, Seq: p.Seq, Name: p.Name, Kind: p.Kind, Status: p.Status,
			Output: p.Output, Error: p.Error, Attempts: p.Attempts, Publish: p.Publish,
		}
		if p.StartedAt.Valid {
			items[i].StartedAt = &p.StartedAt.Time
		}
	}
	encoded, err := json.Marshal(items)
	if err != nil {
		return err
	}
	rows, err := q.CheckpointMany(ctx, db.CheckpointManyParams{Steps: encoded, Owner: ptr(e.jobs.ID())})
	if err != nil {
		return fmt.Errorf("group commit of %d checkpoints: %w", len(batch), err)
	}
	for _, r := range rows {
		batch[r.I].res = commitRes{written: true, cancelRequested: r.CancelRequested}
	}
	return nil
}

// writeEnds ends a group of runs and completes their jobs, in one
// statement, and hands the ended runs to this engine's awaits.
func (e *Engine) writeEnds(ctx context.Context, batch []*call[commitReq, commitRes]) {
	finished, err := e.tryEnds(ctx, batch)
	switch {
	case err == nil:
		e.awaiter.deliver(finished)
	case len(batch) > 1 && blamesBatch(err):
		alone(ctx, batch, e.writeEnds)
	default:
		for _, c := range batch {
			c.res, c.err = commitRes{}, err
		}
	}
}

func (e *Engine) tryEnds(ctx context.Context, batch []*call[commitReq, commitRes]) ([]*Run, error) {
	type runEpoch struct {
		id    string
		epoch int64
	}
	items := make([]finishItem, len(batch))
	ending := make(map[runEpoch]*call[commitReq, commitRes], len(batch))
	for i, c := range batch {
		p, job := c.req.finish.run, c.req.finish.job
		items[i] = finishItem{
			ID: p.ID, Epoch: p.Epoch, Status: p.Status, Output: p.Output, Error: p.Error,
			JobID: job.ID, JobAttempt: job.Attempt,
		}
		ending[runEpoch{p.ID, p.Epoch}] = c
	}
	encoded, err := json.Marshal(items)
	if err != nil {
		return nil, err
	}
	rows, err := db.New(e.pool).FinishRuns(ctx, db.FinishRunsParams{
		Runs: encoded, Channel: channelDone, Payload: e.awaiter.self, Notify: e.done.Claim(channelDone, e.awaiter.self),
	})
	if err != nil {
		return nil, fmt.Errorf("group commit of %d finishes: %w", len(batch), err)
	}
	finished := make([]*Run, len(rows))
	for i := range rows {
		row := db.KeelSagaRun(rows[i])
		ending[runEpoch{row.ID, row.Epoch}].res.written = true
		finished[i] = runFromDB(&row)
	}
	return finished, nil
}

// readReq asks for a pending run of a job's generation.
type readReq struct {
	RunID      string `json:"id"`
	Generation int64  `json:"generation"`
}

// readPending reads the pending runs of a group of first attempts, with
// their histories, in one statement. A run not pending at that generation
// gets pgx.ErrNoRows.
func (e *Engine) readPending(ctx context.Context, batch []*call[readReq, db.ClaimRunRow]) {
	reqs := make([]readReq, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	encoded, err := json.Marshal(reqs)
	var rows []db.ReadPendingRunsRow
	if err == nil {
		rows, err = db.New(e.pool).ReadPendingRuns(ctx, encoded)
	}
	if err != nil && len(batch) > 1 && blamesBatch(err) {
		alone(ctx, batch, e.readPending)
		return
	}
	byID := make(map[string]*db.ReadPendingRunsRow, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	for _, c := range batch {
		switch r := byID[c.req.RunID]; {
		case err != nil:
			c.err = err
		case r == nil:
			c.err = pgx.ErrNoRows
		default:
			c.res = db.ClaimRunRow(*r)
		}
	}
}

// runItem is a run to start in InsertRuns's JSON array.
type runItem struct {
	ID        string          `json:"id"`
	Workflow  string          `json:"workflow"`
	Version   int32           `json:"version"`
	Queue     string          `json:"queue"`
	Input     json.RawMessage `json:"input"`
	TimeoutUs *int64          `json:"timeout_us,omitempty"`
}

// writeStarts starts a group of runs StartRun was given the engine's pool
// for: one transaction inserts the runs with one statement and their first
// jobs with another. One start alone goes the way of a start in a caller's
// transaction. A batch refused for something in it is written again start
// by start.
func (e *Engine) writeStarts(ctx context.Context, batch []*call[startReq, *Run]) {
	err := e.tryStarts(ctx, batch)
	switch {
	case err == nil:
	case len(batch) > 1 && (blamesBatch(err) || errors.Is(err, jobs.ErrInvalidOptions)):
		alone(ctx, batch, e.writeStarts)
	default:
		for _, c := range batch {
			c.res, c.err = nil, err
		}
	}
}

// errRunExists ends the report of a lone start's job insert when the run
// existed, so its job was not inserted.
var errRunExists = errors.New("keel saga: run exists; its first job was not inserted")

// startAlone starts one run and inserts its first job in one statement
// (StartRunWithJob): one round trip and one commit, where a transaction of
// InsertRun and the job's insert takes five. The job is written as the
// jobs client writes it: its insert is reported to the jobs' hook, whose
// trace context it stores when the start has none, and it sends the jobs'
// insert notification, debounced.
func (e *Engine) startAlone(ctx context.Context, req startReq) (*Run, error) {
	meta := json.RawMessage(`{}`)
	if m := req.trace.Map(); m != nil {
		encoded, err := json.Marshal(map[string]any{keeltype.CarrierKey: m})
		if err != nil {
			return nil, err
		}
		meta = encoded
	}
	op := keeltype.Operation{Kind: keeltype.OpJobInsert, Name: runJobKind, Queue: req.p.Queue, Count: 1, Carrier: map[string]string{}}
	opCtx, end := e.jobsHook.Start(ctx, op)
	row, err := db.New(e.pool).StartRunWithJob(opCtx, db.StartRunWithJobParams{
		ID: req.p.ID, Workflow: req.p.Workflow, Version: req.p.Version, Queue: req.p.Queue, Input: req.p.Input,
		TimeoutUs: req.p.TimeoutUs, JobKind: runJobKind, JobMetadata: carrier.Clean(op.Carrier).Metadata(meta),
		JobMaxAttempts: firstJobAttempts, Channel: notify.JobsChannel, Notify: e.inserted.Claim(notify.JobsChannel, req.p.Queue),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		end(keeltype.Outcome{Err: errRunExists})
		run, callErr, err := e.existingRun(ctx, e.pool, req.p)
		return run, errors.Join(callErr, err)
	}
	end(keeltype.Outcome{Err: err})
	if err != nil {
		return nil, fmt.Errorf("keel saga: start %s: %w", req.p.Workflow, err)
	}
	run := db.KeelSagaRun(row)
	return runFromDB(&run), nil
}

func (e *Engine) tryStarts(ctx context.Context, batch []*call[startReq, *Run]) error {
	if len(batch) == 1 {
		c := batch[0]
		var err error
		c.res, c.err = nil, nil
		if c.res, err = e.startAlone(ctx, c.req); errors.Is(err, ErrRunIDInUse) {
			c.err, err = err, nil
		}
		return err
	}
	items := make([]runItem, len(batch))
	for i, c := range batch {
		p := c.req.p
		items[i] = runItem{ID: p.ID, Workflow: p.Workflow, Version: p.Version, Queue: p.Queue, Input: p.Input, TimeoutUs: p.TimeoutUs}
	}
	encoded, err := json.Marshal(items)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		rows, err := db.New(tx).InsertRuns(ctx, encoded)
		if err != nil {
			return fmt.Errorf("keel saga: starting %d runs: %w", len(batch), err)
		}
		inserted := make(map[string]*db.KeelSagaRun, len(rows))
		for i := range rows {
			inserted[rows[i].ID] = &rows[i]
		}
		first := make([]jobs.InsertManyParams, 0, len(rows))
		for _, c := range batch {
			c.res, c.err = nil, nil
			if row := inserted[c.req.p.ID]; row != nil {
				delete(inserted, row.ID) // a later start of the same id finds it existing
				c.res = runFromDB(row)
				first = append(first, jobs.InsertManyParams{
					Args: runJob{RunID: row.ID, Generation: row.Generation},
					Opts: firstJobOpts(row.Queue, c.req.trace),
				})
				continue
			}
			if c.res, c.err, err = e.existingRun(ctx, tx, c.req.p); err != nil {
				return err
			}
		}
		if _, err := e.jobs.InsertMany(ctx, tx, first); err != nil {
			return fmt.Errorf("keel saga: enqueueing %d runs: %w", len(first), err)
		}
		return nil
	})
}
