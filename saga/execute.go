package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
)

// execute is the jobs handler of runJob: it takes the run, loads its history
// once, replays the workflow function over it and records how it ended. A
// returned error makes jobs retry the execution (a write failed, or the
// process is stopping); everything about the workflow itself is recorded in
// the run.
func (e *Engine) execute(ctx context.Context, job *jobs.Job[runJob]) error {
	q := db.New(e.pool)
	taken, handed, err := e.takeRun(ctx, job)
	if handed {
		defer e.awaiter.endLive(job.Args.RunID)
	}
	run, clockAt := taken.row, taken.at
	if errors.Is(err, pgx.ErrNoRows) {
		// A stale job: the run parked, woke or ended since it was queued.
		return e.completeStale(ctx, job)
	}
	if err != nil {
		return fmt.Errorf("keel saga: taking run %s: %w", job.Args.RunID, err)
	}
	wf, err := e.registry.get(run.Workflow, int(run.Version))
	if err != nil {
		msg := validate.ErrorText(fmt.Sprintf("waiting for a process that registers version %d of workflow %q (process %s does not: %v)",
			run.Version, run.Workflow, e.jobs.ID(), err))
		if _, err := q.RecordLastError(ctx, db.RecordLastErrorParams{ID: run.ID, Epoch: run.Epoch, LastError: &msg}); err != nil {
			return fmt.Errorf("keel saga: run %s: %w", run.ID, err)
		}
		e.cfg.Logger.WarnContext(ctx, "keel saga: run of an unregistered version waits", "run", run.ID, "workflow", run.Workflow, "version", run.Version)
		return jobs.JobSnooze(e.cfg.UnknownVersionRetry)
	}
	var steps []db.KeelSagaStep
	if err := json.Unmarshal(run.History, &steps); err != nil {
		return fmt.Errorf("keel saga: decoding the history of run %s: %w", run.ID, err)
	}
	ctx, end := e.cfg.Hook.Start(ctx, keeltype.Operation{Kind: keeltype.OpSagaRun, Name: run.Workflow, ID: run.ID, Attempt: job.Attempt})
	ex := newExecution(e, wf, job, run, steps, ctx, clockAt)
	defer e.cancels.track(ex)()
	err = ex.execute()
	if err == nil && !ex.jobDone {
		// Fenced out, or the run ended by another executor: nothing of
		// the execution's completed its job.
		err = e.completeStale(ctx, job)
	}
	if ex.outcome.State == "" {
		ex.outcome.Err = err
	}
	end(ex.outcome)
	return err
}

// completeStale completes a job that has nothing left to do (the engine's
// worker completes its own jobs: WorkerOpts.CompletesJob).
func (e *Engine) completeStale(ctx context.Context, job *jobs.Job[runJob]) error {
	err := jobs.JobCompleteTx(ctx, e.pool, job)
	if err != nil && !errors.Is(err, jobs.ErrJobNotRunning) {
		return fmt.Errorf("keel saga: completing the job of run %s: %w", job.Args.RunID, err)
	}
	return nil
}

// handOff gives the execution of the first job of a run this engine
// started, written claimed by its jobs client, the run as the start
// statement returned it, with no history yet: the execution takes it
// without a read, as the first attempt of a pending run's job does.
// The run is live for Await from then until that execution stops.
func (e *Engine) handOff(jobID int64, run takenRun) {
	e.awaiter.setLive(run.row.ID)
	e.handedMu.Lock()
	e.handed[jobID] = run
	e.handedMu.Unlock()
}

// takeRun takes the run of job's generation and reads its history, in one
// round trip. A run handed off by its start is taken as handed. The first
// attempt of a pending run's job only reads; any other execution bumps the
// run's epoch, fencing out earlier executors.
func (e *Engine) takeRun(ctx context.Context, job *jobs.Job[runJob]) (run takenRun, handed bool, err error) {
	e.handedMu.Lock()
	run, handed = e.handed[job.ID]
	delete(e.handed, job.ID)
	e.handedMu.Unlock()
	if handed {
		return run, true, nil
	}
	if job.Attempt == 1 {
		run, err := e.reads.do(ctx, readReq{RunID: job.Args.RunID, Generation: job.Args.Generation})
		if err == nil {
			return run, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return takenRun{}, false, err
		}
	}
	sent := time.Now()
	row, err := db.New(e.pool).ClaimRun(ctx, db.ClaimRunParams{ID: job.Args.RunID, Generation: job.Args.Generation, Owner: ptr(e.jobs.ID())})
	// The claim read the database's clock somewhere in its round trip; its
	// middle is the best guess of when, for the execution's clock.
	return takenRun{row: row, at: sent.Add(time.Since(sent) / 2)}, false, err
}

func (ex *execution) execute() error {
	out, werr, stopped := ex.call()
	ex.async.Wait()
	if err := ex.backgroundErr(); err != nil && stopped == nil {
		stopped = err
	}
	if stopped != nil {
		var nd *NondeterminismError
		var f failure
		switch {
		case stopped == errParked:
			ex.outcome.State = "parked"
			return nil
		case stopped == errFenced:
			return nil
		case errors.As(stopped, &f):
			return ex.compensateAndFinish(StatusFailed, &storedError{Kind: FailureWorkflow, Message: f.err.Error()})
		case errors.As(stopped, &nd):
			ex.e.cfg.Logger.ErrorContext(ex.ctx, "keel saga: nondeterministic replay", "run", ex.run.ID, "error", nd)
			return ex.finish(StatusFailed, nil, &storedError{
				Kind: FailureNondeterminism, Message: nd.Error(), Seq: nd.Seq, Recorded: nd.Recorded, Got: nd.Got,
			})
		case stopped == ErrCancelled:
			return ex.compensateAndFinish(StatusCancelled, &storedError{Kind: FailureCancelled, Message: "cancelled"})
		case stopped == ErrTimeout:
			return ex.compensateAndFinish(StatusFailed, &storedError{Kind: FailureTimeout, Message: ErrTimeout.Error()})
		case stopped == errHistoryChanged:
			return jobs.JobSnooze(0)
		}
		return stopped // the process stops, or a write failed: jobs runs it again
	}
	if werr != nil {
		return ex.compensateAndFinish(StatusFailed, &storedError{Kind: FailureWorkflow, Message: werr.Error()})
	}
	return ex.finish(StatusSucceeded, out, nil)
}

// call runs the workflow function, turning an abort into its reason and a
// panic of the function into its error.
func (ex *execution) call() (out json.RawMessage, err error, stopped error) {
	defer func() {
		if v := recover(); v != nil {
			if a, ok := v.(abort); ok {
				stopped = a.reason
				return
			}
			err = fmt.Errorf("keel saga: workflow %q panicked: %v\n%s", ex.wf.name, v, debug.Stack())
		}
	}()
	out, err = ex.wf.run(&workflowContext{Context: ex.ctx, ex: ex}, ex.run.Input)
	return out, err, nil
}

// compensateAndFinish runs the compensations of the completed steps in
// reverse order, each checkpointed, and ends the run.
func (ex *execution) compensateAndFinish(status Status, why *storedError) error {
	comps := ex.compensations()
	if len(comps) > 0 {
		n, err := db.New(ex.e.pool).SetCompensating(ex.ctx, db.SetCompensatingParams{ID: ex.run.ID, Epoch: ex.run.Epoch})
		if err != nil {
			return fmt.Errorf("keel saga: run %s: %w", ex.run.ID, err)
		}
		if n == 0 {
			return nil // fenced out
		}
	}
	for _, c := range comps {
		failed, err := ex.compensate(c)
		if err == errFenced {
			return nil
		}
		if err == errHistoryChanged {
			return jobs.JobSnooze(0)
		}
		if err != nil {
			return err
		}
		if failed != "" {
			status = StatusFailed
			why = &storedError{Kind: FailureCompensation, Message: fmt.Sprintf(
				"%s; then compensating step %d (%s) failed: %s", why.Message, c.seq, c.name, failed)}
			break
		}
	}
	return ex.finish(status, nil, why)
}

// compensate runs one undo unless the history holds its outcome; failed is
// the error of its last attempt.
func (ex *execution) compensate(c compensation) (failed string, err error) {
	if rec, ok := ex.history[-c.seq]; ok {
		return deref(rec.Error), nil
	}
	started := ts(ex.clock.now())
	attempts, runErr := retry(ex.ctx, c.retry, c.undo)
	if ex.ctx.Err() != nil {
		return "", context.Cause(ex.ctx)
	}
	p := db.CheckpointParams{
		Seq: -c.seq, Name: c.name, Kind: "compensation", Status: db.KeelSagaStepStatusCompleted,
		Attempts: int32(attempts), StartedAt: started,
	}
	if runErr != nil {
		failed = validate.ErrorText(runErr.Error())
		p.Status, p.Error = db.KeelSagaStepStatusFailed, &failed
	}
	return failed, ex.record(p)
}

// finish ends the run, wakes its parent, cancels its children when it did
// not succeed and notifies awaiters (debounced). Fenced out, it does
// nothing. out has been checked by encode; the texts of why are made
// storable here.
func (ex *execution) finish(status Status, out json.RawMessage, why *storedError) error {
	ex.outcome.State = string(status)
	var stored json.RawMessage
	if why != nil {
		ex.outcome.Err = errors.New(why.Message)
		s := *why
		s.Message, s.Recorded, s.Got = validate.ErrorText(s.Message), validate.ErrorText(s.Recorded), validate.ErrorText(s.Got)
		stored, _ = json.Marshal(s) // valid UTF-8 without NUL and ints always encode
	}
	ex.mu.Lock()
	children := append([]string(nil), ex.children...)
	ex.mu.Unlock()
	cascade := status != StatusSucceeded && len(children) > 0
	p := db.FinishRunParams{ID: ex.run.ID, Epoch: ex.run.Epoch, Status: db.KeelSagaRunStatus(status), Output: out, Error: stored}
	if ex.run.ParentID == nil && !cascade {
		// Through the group commit, whose statement also completes the
		// run's job.
		if _, err := ex.e.commits.do(ex.ctx, commitReq{finish: &finishReq{run: p, job: ex.job}}); err != nil {
			return fmt.Errorf("keel saga: finishing run %s: %w", ex.run.ID, err)
		}
		ex.jobDone = true
		return nil
	}
	var finished db.KeelSagaRun
	err := pgx.BeginFunc(ex.ctx, ex.e.pool, func(tx pgx.Tx) error {
		var err error
		finished, err = db.New(tx).FinishRun(ex.ctx, p)
		if errors.Is(err, pgx.ErrNoRows) {
			return errFenced
		}
		if err != nil {
			return err
		}
		if finished.ParentID != nil {
			if err := ex.e.wake(ex.ctx, tx, *finished.ParentID); err != nil {
				return err
			}
		}
		if cascade {
			for _, child := range children {
				if err := ex.e.cancel(ex.ctx, tx, child); err != nil && !errors.Is(err, ErrRunFinished) {
					return err
				}
			}
		}
		if err := ex.completeJob(tx); err != nil {
			return err
		}
		return ex.e.notifyDone(ex.ctx, tx)
	})
	switch {
	case err == errFenced:
		return nil
	case err != nil:
		return fmt.Errorf("keel saga: finishing run %s: %w", ex.run.ID, err)
	}
	ex.jobDone = true
	ex.e.awaiter.deliver([]*Run{runFromDB(&finished)})
	return nil
}
