package saga

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
)

// execution is one executor's pass over a run: the run as it claimed it,
// the history it loaded once, and what the replay learnt on the way.
type execution struct {
	e       *Engine
	wf      *workflow
	job     *jobs.Job[runJob]
	run     db.ClaimRunRow
	history map[int32]db.KeelSagaStep
	// ctx is the job's context: it ends when the process stops.
	ctx   context.Context
	clock dbClock

	mu        sync.Mutex
	seq       int32
	cancelReq bool
	comps     []compensation
	children  []string
	// async counts step goroutines and background checkpoints still
	// running; bgErr is the first error of a background checkpoint, which
	// stops the execution once they are waited for.
	async sync.WaitGroup
	bgErr error
	// outcome is how the execution ended, for the hook.
	outcome keeltype.Outcome
	// jobDone is set once the execution's job was completed in a write of
	// the execution's (its run's end, its park): the engine's worker
	// completes its own jobs (WorkerOpts.CompletesJob).
	jobDone bool
	// stepsCtx is the context the steps' contexts derive from: a cancel
	// request notified while the run executes here ends it (cancelSteps),
	// so a running step stops; compensations run on ctx.
	stepsCtx    context.Context
	cancelSteps context.CancelFunc
}

// compensation is the undo of a completed step.
type compensation struct {
	seq   int32
	name  string
	retry retrying
	undo  func(ctx context.Context) error
}

// abort unwinds the workflow function (as a panic the executor recovers)
// when it must not go on: the run parked, the executor was fenced out, the
// run was cancelled or timed out, the replay left the history, or the
// process is stopping.
type abort struct{ reason error }

// failure is an abort that fails the run with err (compensating first): a
// name or value the workflow gave that cannot be stored, or a history that
// does not decode. Running the workflow again would only meet it again.
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }
func (f failure) Unwrap() error { return f.err }

var (
	errParked = errors.New("keel saga: run parked")
	errFenced = errors.New("keel saga: another executor took the run")
	// errHistoryChanged: a checkpoint found its position taken although the
	// executor holds the run — a fenced-out executor's write landed after
	// the history was loaded. The run is replayed with the new history.
	errHistoryChanged = errors.New("keel saga: the run's history changed under its executor; replaying")
)

// workflowContext is the Context a workflow function receives.
type workflowContext struct {
	context.Context
	ex *execution
}

func (c *workflowContext) RunID() string         { return c.ex.run.ID }
func (c *workflowContext) Workflow() string      { return c.ex.run.Workflow }
func (c *workflowContext) Version() int          { return int(c.ex.run.Version) }
func (c *workflowContext) execution() *execution { return c.ex }

// dbClock is the database's clock as an executor keeps it: the time the
// database said when the run was taken, advanced by the process's monotonic
// clock since. Every time a run stores (a step's start, a wake-up time, a
// signal deadline) or compares with one (the workflow deadline) is read from
// it, so they agree with the database's now() — which wakes timers, stamps
// the other columns and is what a person's tools show — however far the
// process's wall clock is off. It reads a little behind the database (by the
// claim's return trip), so a step never seems to start after it finished.
type dbClock struct {
	at    time.Time // the database's clock_timestamp() in the claim
	since time.Time // when, on this process's monotonic clock, the database read at
}

func (c dbClock) now() time.Time { return c.at.Add(time.Since(c.since)) }

// localTime is the process's wall-clock time at t on the database's clock:
// what a Go context deadline needs.
func (c dbClock) localTime(t time.Time) time.Time { return time.Now().Add(t.Sub(c.now())) }

func newExecution(e *Engine, wf *workflow, job *jobs.Job[runJob], run db.ClaimRunRow, steps []db.KeelSagaStep, ctx context.Context, clockAt time.Time) *execution {
	ex := &execution{
		e: e, wf: wf, job: job, run: run, ctx: ctx,
		clock:     dbClock{at: run.DbNow.Time, since: clockAt},
		history:   make(map[int32]db.KeelSagaStep, len(steps)),
		cancelReq: run.CancelRequestedAt.Valid,
	}
	for _, s := range steps {
		ex.history[s.Seq] = s
	}
	stepsCtx, cancel := context.WithCancelCause(ctx)
	ex.stepsCtx = stepsCtx
	ex.cancelSteps = func() {
		ex.mu.Lock()
		ex.cancelReq = true
		ex.mu.Unlock()
		cancel(ErrCancelled)
	}
	return ex
}

// stepStop is why the steps stopped, if they did: the execution's stop, or
// ErrCancelled when a cancel request reached the running step.
func (ex *execution) stepStop() error {
	if ex.ctx.Err() != nil {
		return context.Cause(ex.ctx)
	}
	if ex.stepsCtx.Err() != nil {
		return ErrCancelled
	}
	return nil
}

// nextStep hands out the next history position to a step called name of
// kind. It returns the recorded step when the history has one there, and
// stops the workflow when the replay left the history, or when the run was
// cancelled, timed out or its process stops before a step that has yet to
// run. A new step whose name cannot be stored fails the run.
func (ex *execution) nextStep(name, kind string) (int32, *db.KeelSagaStep) {
	ex.mu.Lock()
	ex.seq++
	seq := ex.seq
	rec, ok := ex.history[seq]
	ex.mu.Unlock()
	if ok {
		if rec.Name != name || rec.Kind != kind {
			panic(abort{&NondeterminismError{Seq: int(seq), Recorded: rec.Kind + " " + rec.Name, Got: kind + " " + name}})
		}
		return seq, &rec
	}
	ex.checkStop()
	if err := checkStepName(kind, name); err != nil {
		panic(abort{failure{err}})
	}
	return seq, nil
}

// checkStop stops the workflow when it must not start anything new.
func (ex *execution) checkStop() {
	ex.mu.Lock()
	cancelled := ex.cancelReq
	ex.mu.Unlock()
	switch {
	case cancelled:
		panic(abort{ErrCancelled})
	case ex.run.Deadline.Valid && !ex.clock.now().Before(ex.run.Deadline.Time):
		panic(abort{ErrTimeout})
	case ex.ctx.Err() != nil:
		panic(abort{context.Cause(ex.ctx)})
	}
}

// stepContext is the context a step function runs with: the process's,
// bounded by the workflow timeout.
func (ex *execution) stepContext(name string) (context.Context, context.CancelFunc, func(keeltype.Outcome)) {
	ctx, cancel := context.WithCancel(ex.stepsCtx)
	if ex.run.Deadline.Valid {
		ctx, cancel = context.WithDeadlineCause(ex.stepsCtx, ex.clock.localTime(ex.run.Deadline.Time), ErrTimeout)
	}
	ctx, end := ex.e.cfg.Hook.Start(ctx, keeltype.Operation{Kind: keeltype.OpSagaStep, Name: name, ID: ex.run.ID})
	return ctx, cancel, end
}

// record checkpoints a step's outcome through the engine's group commit:
// in one statement with the checkpoints other runs executing here make at
// the same time. It returns once the checkpoint is durable, and learns
// whether a cancel was requested. A refused checkpoint means another
// executor holds the run.
func (ex *execution) record(p db.CheckpointParams) error {
	ex.fill(&p)
	res, err := ex.e.commits.do(ex.ctx, commitReq{step: &p})
	if err != nil {
		return fmt.Errorf("keel saga: checkpointing step %d (%s) of run %s: %w", p.Seq, p.Name, ex.run.ID, err)
	}
	return ex.recorded(ex.ctx, res.written, res.cancelRequested)
}

// checkpoint is record through tx, a transaction of the execution's own (a
// transactional step's, a wait's).
func (ex *execution) checkpoint(ctx context.Context, tx pgx.Tx, p db.CheckpointParams) error {
	ex.fill(&p)
	cancel, err := db.New(tx).Checkpoint(ctx, p)
	if errors.Is(err, pgx.ErrNoRows) {
		return ex.recorded(ctx, false, false)
	}
	if err != nil {
		return fmt.Errorf("keel saga: checkpointing step %d (%s) of run %s: %w", p.Seq, p.Name, ex.run.ID, err)
	}
	return ex.recorded(ctx, true, cancel)
}

// fill completes a checkpoint with what the execution knows.
func (ex *execution) fill(p *db.CheckpointParams) {
	p.RunID, p.Epoch, p.Owner = ex.run.ID, ex.run.Epoch, ptr(ex.e.jobs.ID())
	if p.Attempts == 0 {
		p.Attempts = 1
	}
	if p.Error != nil {
		p.Error = ptr(validate.ErrorText(*p.Error))
	}
}

// recorded takes in what a checkpoint learnt: whether it was written and
// whether a cancel was requested.
func (ex *execution) recorded(ctx context.Context, written, cancel bool) error {
	if !written {
		holds, err := db.New(ex.e.pool).HoldsRun(ctx, db.HoldsRunParams{ID: ex.run.ID, Epoch: ex.run.Epoch})
		if err != nil {
			return fmt.Errorf("keel saga: run %s: %w", ex.run.ID, err)
		}
		if holds {
			return errHistoryChanged
		}
		return errFenced
	}
	if cancel {
		ex.mu.Lock()
		ex.cancelReq = true
		ex.mu.Unlock()
	}
	return nil
}

// recordInBackground records p while the workflow goes on, for an outcome
// nothing that follows depends on; waits and the end of the execution wait
// for it, and its error stops the execution there.
func (ex *execution) recordInBackground(p db.CheckpointParams) {
	ex.async.Add(1)
	go func() {
		defer ex.async.Done()
		if err := ex.record(p); err != nil {
			ex.mu.Lock()
			if ex.bgErr == nil {
				ex.bgErr = err
			}
			ex.mu.Unlock()
		}
	}()
}

// backgroundErr is the first error of a background checkpoint; call it
// after async.Wait.
func (ex *execution) backgroundErr() error {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.bgErr
}

// mustRecord is record for the workflow goroutine: a failure stops the
// workflow.
func (ex *execution) mustRecord(p db.CheckpointParams) {
	if err := ex.record(p); err != nil {
		panic(abort{err})
	}
}

func (ex *execution) addCompensation(c compensation) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.comps = append(ex.comps, c)
}

func (ex *execution) addChild(id string) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.children = append(ex.children, id)
}

// compensations returns the registered undos in reverse step order.
func (ex *execution) compensations() []compensation {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	cs := append([]compensation(nil), ex.comps...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].seq > cs[j].seq })
	return cs
}

// wait makes the workflow wait, holding no worker, for what decide checks.
// decide runs in a transaction that holds the run's row lock — the same lock
// Signal, Cancel and a child's end take — so a wake-up is never lost
// between the check and the park. When decide reports done, its writes
// commit and wait returns; otherwise the run parks until wakeAt (zero: until
// woken; the workflow timeout bounds it) and the workflow stops.
//
// Steps started with StepAsync are checkpointed first: once the run parks,
// its wake-up may start another executor, which would run again any step
// still running here.
func (ex *execution) wait(reason string, wakeAt time.Time, decide func(tx pgx.Tx) (bool, error)) {
	ex.async.Wait()
	if err := ex.backgroundErr(); err != nil {
		panic(abort{err})
	}
	done, err := ex.waitTx(reason, wakeAt, decide)
	if err != nil {
		panic(abort{err})
	}
	if !done {
		panic(abort{errParked})
	}
}

func (ex *execution) waitTx(reason string, wakeAt time.Time, decide func(tx pgx.Tx) (bool, error)) (done bool, err error) {
	tx, err := ex.e.pool.Begin(ex.ctx)
	if err != nil {
		return false, fmt.Errorf("keel saga: run %s: %w", ex.run.ID, err)
	}
	defer func() {
		if err != nil || !done {
			_ = tx.Rollback(context.WithoutCancel(ex.ctx))
		}
	}()
	q := db.New(tx)
	cancel, err := q.LockRun(ex.ctx, db.LockRunParams{ID: ex.run.ID, Epoch: ex.run.Epoch})
	if errors.Is(err, pgx.ErrNoRows) {
		return false, errFenced
	}
	if err != nil {
		return false, fmt.Errorf("keel saga: locking run %s: %w", ex.run.ID, err)
	}
	if cancel {
		ex.mu.Lock()
		ex.cancelReq = true
		ex.mu.Unlock()
		return false, ErrCancelled
	}
	if decide != nil {
		if done, err = decide(tx); err != nil {
			return false, err
		}
		if done {
			if err = tx.Commit(ex.ctx); err != nil {
				return false, fmt.Errorf("keel saga: run %s: %w", ex.run.ID, err)
			}
			return true, nil
		}
	}
	if dl := ex.run.Deadline; dl.Valid && (wakeAt.IsZero() || dl.Time.Before(wakeAt)) {
		wakeAt = dl.Time
	}
	park := db.ParkRunParams{ID: ex.run.ID, Epoch: ex.run.Epoch, WaitReason: &reason}
	if !wakeAt.IsZero() {
		park.WakeAt = pgtype.Timestamptz{Time: wakeAt, Valid: true}
	}
	row, err := q.ParkRun(ex.ctx, park)
	if err != nil {
		return false, fmt.Errorf("keel saga: parking run %s: %w", ex.run.ID, err)
	}
	var wakeJob int64
	jobAt := wakeAt
	if decide == nil { // a timer: due timerLead early, the rest slept in hold
		jobAt = wakeAt.Add(-timerLead)
	}
	if !wakeAt.IsZero() {
		if wakeJob, err = ex.e.enqueueJob(ex.ctx, tx, ex.run.ID, row.Generation, row.Queue, jobAt); err != nil {
			return false, err
		}
	}
	if err = ex.completeJob(tx); err != nil {
		return false, err
	}
	if err = tx.Commit(ex.ctx); err != nil {
		return false, fmt.Errorf("keel saga: parking run %s: %w", ex.run.ID, err)
	}
	ex.jobDone = true
	if wakeJob != 0 {
		ex.e.timers.add(wakeJob, jobAt.Sub(ex.clock.now()))
	}
	return false, nil
}

// completeJob completes the execution's job in tx, the transaction that
// parks or ends its run, once tx commits. A job no longer running (rescued
// and running elsewhere) is left to that attempt.
func (ex *execution) completeJob(tx pgx.Tx) error {
	err := jobs.JobCompleteTx(ex.ctx, tx, ex.job)
	if err != nil && !errors.Is(err, jobs.ErrJobNotRunning) {
		return fmt.Errorf("keel saga: completing the job of run %s: %w", ex.run.ID, err)
	}
	return nil
}

func ts(t time.Time) pgtype.Timestamptz { return pgtype.Timestamptz{Time: t, Valid: true} }
