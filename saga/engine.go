package saga

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/carrier"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
)

// Engine starts, signals, cancels and inspects runs, and — once its workers
// are started — executes them. Any number of engines in any number of
// processes may share one database.
type Engine struct {
	pool     *pgxpool.Pool
	registry *Registry
	cfg      Config
	jobs     *jobs.Client
	awaiter  *awaiter
	// done debounces the run-finished notifications: a notifying commit
	// takes a database-wide lock, so one per run would serialise finishes.
	done *notify.Debouncer
	// inserted debounces the jobs' insert notifications a lone start sends
	// in its own statement (StartRunWithJob), as the jobs client does its.
	inserted *notify.Debouncer
	// jobsHook is the jobs client's hook: a lone start reports the insert
	// of its run's first job there, as Client.Insert would.
	jobsHook keeltype.Hook
	timers   *timers
	cancels  *cancels
	// commits and reads are the group commit of the executions here: see
	// group.
	commits group[commitReq, commitRes]
	reads   group[readReq, takenRun]
	starts  group[startReq, *Run]
	// runReads are Await's reads.
	runReads group[string, *Run]
	// handed holds, by job id, the runs this engine started with their
	// first job claimed by its own jobs client, until that job's execution
	// takes them (see handOff).
	handedMu sync.Mutex
	handed   map[int64]takenRun
	// closed is set by Stop: the engine writes nothing more.
	closed atomic.Bool
}

// runJob is the job that executes a run: it takes the run when the run's
// generation is still Generation, else it is stale and does nothing.
type runJob struct {
	RunID      string `json:"run_id"`
	Generation int64  `json:"generation"`
}

func (runJob) Kind() string { return runJobKind }

// NewEngine returns an engine on pool for the workflows in registry. It
// validates cfg and adds its worker to cfg.Jobs.Workers; nothing runs until
// Start.
func NewEngine(pool *pgxpool.Pool, registry *Registry, cfg Config) (*Engine, error) {
	if pool == nil || registry == nil {
		return nil, fmt.Errorf("%w: nil pool or registry", ErrInvalidOptions)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Engine{pool: pool, registry: registry, cfg: cfg, handed: map[int64]takenRun{}}
	err = jobs.AddWorkerSafely(cfg.Jobs.Workers, func(ctx context.Context, job *jobs.Job[runJob]) error {
		return e.execute(ctx, job)
	}, &jobs.WorkerOpts{Timeout: -1, CompletesJob: true})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	if e.jobs, err = jobs.NewClient(pool, cfg.Jobs); err != nil {
		return nil, fmt.Errorf("%w: jobs client: %w", ErrInvalidOptions, err)
	}
	e.awaiter = newAwaiter(pool, cfg.Jobs.Listener, cfg.Logger, randomToken())
	e.done = notify.NewDebouncer(pool, cfg.Jobs.NotifyInterval, cfg.Logger)
	e.inserted = notify.NewDebouncer(pool, cfg.Jobs.NotifyInterval, cfg.Logger)
	e.jobsHook = cfg.Jobs.Hook
	if e.jobsHook == nil {
		e.jobsHook = keeltype.NoHook{}
	}
	e.timers = newTimers(e.jobs, cfg.Logger)
	e.cancels = newCancels(e.awaiter.listener, pool, cfg.AwaitPollInterval, cfg.Logger)
	e.commits.write = e.writeCommits
	e.reads.write = e.readPending
	e.starts.write = e.writeStarts
	e.runReads.write = e.readRuns
	return e, nil
}

// Jobs returns the jobs client the engine runs on; it inserts and runs the
// application's own job kinds too when they are in Config.Jobs.Workers.
func (e *Engine) Jobs() *jobs.Client { return e.jobs }

// Start starts executing runs (and resuming parked and orphaned ones) in
// this process, on the engine's jobs client: it starts that client, so the
// application's own job kinds in Config.Jobs.Workers run too. It returns at
// once (ctx only scopes the start); after Stop it returns ErrClosed.
func (e *Engine) Start(ctx context.Context) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if err := e.jobs.Start(ctx); err != nil {
		return err
	}
	e.cancels.start()
	return nil
}

// Stop stops taking runs and waits for the executions in hand to park,
// finish or fail, as jobs.Client.Stop waits for its jobs; when ctx ends
// first their contexts are cancelled, they stop at their current step, to
// be resumed by any process, and Stop returns ctx's error. It also ends
// Await's listening. A stopped engine still reads (Get, List, Steps,
// GetValue, Await), but its writes and Start return ErrClosed.
func (e *Engine) Stop(ctx context.Context) error { return e.stop(ctx, false) }

// StopAndCancel is Stop that cancels the executions in hand at once: each
// stops at its current step, to be resumed by any process.
func (e *Engine) StopAndCancel(ctx context.Context) error { return e.stop(ctx, true) }

func (e *Engine) stop(ctx context.Context, cancel bool) error {
	e.timers.stop()
	var err error
	if cancel {
		err = e.jobs.StopAndCancel(ctx)
	} else {
		err = e.jobs.Stop(ctx)
	}
	e.cancels.stopListening()
	e.closed.Store(true)
	e.awaiter.close()
	e.done.Close()
	e.inserted.Close()
	return err
}

// notifyDone tells awaiters in every process that runs finished; they ask
// which. The payload is a random token of the engine's, the same for all
// its notifications, so they can be debounced: the engine's own awaiter
// skips them, having been handed its runs as they ended.
func (e *Engine) notifyDone(ctx context.Context, tx keeltype.DBTX) error {
	if err := e.done.Notify(ctx, tx, channelDone, e.awaiter.self); err != nil {
		return fmt.Errorf("keel saga: notifying awaiters: %w", err)
	}
	return nil
}

// StartRun starts a run of the workflow name with input, through tx — the
// caller's transaction, so the run starts if and only if tx commits — and
// returns the run as stored. With opts.RunID of a run that exists, it writes
// nothing and returns that run (starting is idempotent). An unregistered
// workflow (ErrUnknownWorkflow), an input that cannot be stored (ErrEncode)
// or an option out of its limits (ErrInvalidOptions) fails before anything
// is sent, and tx stays usable.
//
// Given the engine's own pool as tx, StartRun commits the run before it
// returns, and the StartRuns made at the same time commit together, in one
// transaction (see Group commit in the package doc).
func (e *Engine) StartRun(ctx context.Context, tx keeltype.DBTX, name string, input any, opts *StartOpts) (*Run, error) {
	if err := e.checkWrite(tx); err != nil {
		return nil, err
	}
	o, err := e.prepareStart(opts)
	if err != nil {
		return nil, err
	}
	wf, err := e.registry.get(name, o.Version)
	if err != nil {
		return nil, err
	}
	encoded, err := wf.checkInput(input)
	if err != nil {
		return nil, err
	}
	op := keeltype.Operation{Kind: keeltype.OpSagaStart, Name: wf.name, ID: o.RunID, Queue: o.Queue, Carrier: map[string]string{}}
	ctx, end := e.cfg.Hook.Start(ctx, op)
	req := startReq{
		p: db.InsertRunParams{
			ID: o.RunID, Workflow: wf.name, Version: int32(wf.version), Queue: o.Queue,
			Input: encoded, TimeoutUs: timeoutMicros(o.Timeout),
		},
		trace: carrier.Clean(op.Carrier),
	}
	var run *Run
	if p, ok := tx.(*pgxpool.Pool); ok && p == e.pool {
		run, err = e.starts.do(ctx, req)
	} else {
		err = atomically(ctx, tx, func(tx keeltype.DBTX) error {
			run, err = e.insertRun(ctx, tx, req)
			return err
		})
	}
	end(keeltype.Outcome{Err: err})
	return run, err
}

// beginner starts a transaction: *pgxpool.Pool and *pgx.Conn do.
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// atomically runs fn's statements as one: in tx when it is a transaction,
// else in a transaction begun (and committed) on the pool or connection tx,
// so a write of several statements never half-happens.
func atomically(ctx context.Context, tx keeltype.DBTX, fn func(tx keeltype.DBTX) error) error {
	b, ok := tx.(beginner)
	if _, inTx := tx.(pgx.Tx); inTx || !ok {
		return fn(tx)
	}
	return pgx.BeginFunc(ctx, b, func(t pgx.Tx) error { return fn(t) })
}

// timeoutMicros is a workflow timeout as the statement that starts a run
// takes it: the database adds it to its own clock, so the deadline is on the
// clock of every other time keel stores. None (nil) when timeout ≤ 0.
func timeoutMicros(timeout time.Duration) *int64 {
	if timeout <= 0 {
		return nil
	}
	return ptr(max(timeout.Microseconds(), 1))
}

// startReq is a run to start: its row, and the trace context of the start
// its first job carries.
type startReq struct {
	p     db.InsertRunParams
	trace *carrier.Entries
}

// insertRun inserts a run and its first job, or returns the run holding the
// id.
func (e *Engine) insertRun(ctx context.Context, tx keeltype.DBTX, req startReq) (*Run, error) {
	row, err := db.New(tx).InsertRun(ctx, req.p)
	if errors.Is(err, pgx.ErrNoRows) {
		run, callErr, err := e.existingRun(ctx, tx, req.p)
		return run, errors.Join(callErr, err)
	}
	if err != nil {
		return nil, fmt.Errorf("keel saga: start %s: %w", req.p.Workflow, err)
	}
	if _, err := e.jobs.Insert(ctx, tx, runJob{RunID: row.ID, Generation: row.Generation}, firstJobOpts(row.Queue, req.trace)); err != nil {
		return nil, fmt.Errorf("keel saga: enqueueing run %s: %w", row.ID, err)
	}
	return runFromDB(&row), nil
}

// existingRun is the run that holds p's id: a start of it again returns it
// (callErr nil), a start of another workflow fails with ErrRunIDInUse
// (callErr). err is the read's own failure.
func (e *Engine) existingRun(ctx context.Context, tx keeltype.DBTX, p db.InsertRunParams) (run *Run, callErr, err error) {
	existing, err := db.New(tx).GetRun(ctx, p.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("keel saga: start %s: reading run %s: %w", p.Workflow, p.ID, err)
	}
	if existing.Workflow != p.Workflow {
		return nil, fmt.Errorf("%w: %s is a run of %q", ErrRunIDInUse, p.ID, existing.Workflow), nil
	}
	return runFromDB(&existing), nil, nil
}

// firstJobAttempts is the attempt limit of the jobs that execute runs: a
// run's job retries for as long as the run needs it.
const firstJobAttempts = 1 << 20

// firstJobOpts are the options of a run's first job: it carries the trace
// context of the start.
func firstJobOpts(queue string, trace *carrier.Entries) *jobs.InsertOpts {
	o := &jobs.InsertOpts{Queue: queue, MaxAttempts: firstJobAttempts}
	if m := trace.Map(); m != nil {
		o.Metadata = map[string]any{keeltype.CarrierKey: m}
	}
	return o
}

// enqueue inserts the job that executes a run's generation, at runAt (zero:
// at once).
func (e *Engine) enqueue(ctx context.Context, tx keeltype.DBTX, runID string, generation int64, queue string, runAt time.Time) error {
	_, err := e.enqueueJob(ctx, tx, runID, generation, queue, runAt)
	return err
}

// enqueueJob is enqueue returning the job's id.
func (e *Engine) enqueueJob(ctx context.Context, tx keeltype.DBTX, runID string, generation int64, queue string, runAt time.Time) (int64, error) {
	job, err := e.jobs.Insert(ctx, tx, runJob{RunID: runID, Generation: generation}, &jobs.InsertOpts{
		Queue: queue, RunAt: runAt, MaxAttempts: 1 << 20,
	})
	if err != nil {
		return 0, fmt.Errorf("keel saga: enqueueing run %s: %w", runID, err)
	}
	return job.ID, nil
}

// Signal sends the signal name with value to a run, through tx (the
// caller's transaction). The run consumes it with AwaitSignal, whether it
// waits already or only later; signals of one name are consumed oldest
// first. A second signal with the same non-empty opts.IdempotencyKey to the
// run is dropped. Signalling a finished run fails with ErrRunFinished, a missing
// one with ErrRunNotFound. A name, key or value that cannot be stored fails
// with ErrInvalidOptions or ErrEncode before anything is sent.
func (e *Engine) Signal(ctx context.Context, tx keeltype.DBTX, runID, name string, value any, opts *SignalOpts) error {
	if err := e.checkWrite(tx); err != nil {
		return err
	}
	var idempotencyKey string
	if opts != nil {
		idempotencyKey = opts.IdempotencyKey
	}
	if err := checkSignal(runID, name, idempotencyKey); err != nil {
		return err
	}
	encoded, err := encode("signal value", value)
	if err != nil {
		return err
	}
	p, here := tx.(*pgxpool.Pool)
	return e.signal(ctx, tx, here && p == e.pool, runID, name, encoded, idempotencyKey)
}

// signalNotStored says why SignalRunWithJob stored nothing: the run is missing or
// final, else the idempotency key was used and the signal is there.
func (e *Engine) signalNotStored(ctx context.Context, tx keeltype.DBTX, runID string) error {
	run, err := db.New(tx).GetRun(ctx, runID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %s", ErrRunNotFound, runID)
	case err != nil:
		return fmt.Errorf("keel saga: signal %s: %w", runID, err)
	case Status(run.Status).Final():
		return fmt.Errorf("%w: run %s is %s", ErrRunFinished, runID, run.Status)
	}
	return nil
}

// errNotWoken ends the report of a signal's job insert when the run was
// not waiting, so no job was inserted.
var errNotWoken = errors.New("keel saga: run not waiting; no job inserted")

// signal stores the signal and, when the run waits, wakes it and inserts
// the job of its new generation, in one statement (SignalRunWithJob) on tx.
// Sent on the engine's own pool (here), with a worker of the engine's queue
// free in this process, the job is written claimed and runs here at once.
func (e *Engine) signal(ctx context.Context, tx keeltype.DBTX, here bool, runID, name string, encoded json.RawMessage, idempotencyKey string) error {
	var key *string
	if idempotencyKey != "" {
		key = &idempotencyKey
	}
	opCtx, meta, end, err := e.runJobInsert(ctx, e.cfg.Queue, nil, 1)
	if err != nil {
		return err
	}
	reserved, runClaimed := 0, func(context.Context, []db.KeelJob) {}
	if here {
		reserved, runClaimed = e.jobs.ReserveWorkers(e.cfg.Queue, 1)
	}
	var owner *string
	if reserved > 0 {
		owner = ptr(e.jobs.ID())
	}
	row, err := db.New(tx).SignalRunWithJob(opCtx, db.SignalRunWithJobParams{
		RunID: runID, Name: name, Value: encoded, IdempotencyKey: key, Owner: owner, ClaimQueue: e.cfg.Queue,
		JobKind: runJobKind, JobMetadata: meta, JobMaxAttempts: firstJobAttempts,
		Channel: notify.JobsChannel, Notify: reserved == 0 && e.inserted.Claim(notify.JobsChannel, e.cfg.Queue),
	})
	var claimed []db.KeelJob
	if err == nil && row.ClaimedJob != nil {
		var job db.KeelJob
		if err = json.Unmarshal(row.ClaimedJob, &job); err == nil {
			claimed = append(claimed, job)
		}
	}
	runClaimed(ctx, claimed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		end(keeltype.Outcome{Err: errNotWoken})
		return e.signalNotStored(ctx, tx, runID)
	case err != nil:
		end(keeltype.Outcome{Err: err})
		return fmt.Errorf("keel saga: signal %s: %w", runID, err)
	case row.Generation == 0:
		end(keeltype.Outcome{Err: errNotWoken})
	default:
		end(keeltype.Outcome{})
	}
	return nil
}

// wake makes a waiting run run: it re-checks what it waits for.
func (e *Engine) wake(ctx context.Context, tx keeltype.DBTX, runID string) error {
	row, err := db.New(tx).WakeRun(ctx, runID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // not waiting: it sees the change when it next waits
	}
	if err != nil {
		return fmt.Errorf("keel saga: waking run %s: %w", runID, err)
	}
	return e.enqueue(ctx, tx, runID, row.Generation, row.Queue, time.Time{})
}

// Cancel requests the cancel of a run and of its children, through tx. A
// waiting run is woken; a running one has the context of its running step
// cancelled (once tx commits; at its next step when the notification is
// lost, as behind PgBouncer in transaction mode). Each then runs
// the compensations of its completed steps in reverse order and ends
// cancelled. Cancelling a finished run fails with ErrRunFinished.
func (e *Engine) Cancel(ctx context.Context, tx keeltype.DBTX, runID string) error {
	if err := e.checkWrite(tx); err != nil {
		return err
	}
	if err := checkRunID("run id", runID); err != nil {
		return err
	}
	return atomically(ctx, tx, func(tx keeltype.DBTX) error { return e.cancel(ctx, tx, runID) })
}

func (e *Engine) cancel(ctx context.Context, tx keeltype.DBTX, runID string) error {
	rows, err := db.New(tx).RequestCancel(ctx, runID)
	if err != nil {
		return fmt.Errorf("keel saga: cancel %s: %w", runID, err)
	}
	if len(rows) == 0 {
		if _, err := e.get(ctx, tx, runID); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s", ErrRunFinished, runID)
	}
	q := db.New(tx)
	for _, r := range rows {
		if r.Woken {
			if err := e.enqueue(ctx, tx, r.ID, r.Generation, r.Queue, time.Time{}); err != nil {
				return err
			}
			continue
		}
		// A running run: its executor cancels the step it runs.
		if err := q.Notify(ctx, db.NotifyParams{Channel: channelCancel, Payload: r.ID}); err != nil {
			return fmt.Errorf("keel saga: cancel %s: %w", r.ID, err)
		}
	}
	return nil
}

// Resume makes a failed or cancelled run run again, through tx: its failed
// steps and its compensations are forgotten, its completed steps replay from
// their recorded outputs, and execution goes on from the step that failed.
// The workflow timeout is cleared.
func (e *Engine) Resume(ctx context.Context, tx keeltype.DBTX, runID string) error {
	if err := e.checkWrite(tx); err != nil {
		return err
	}
	if err := checkRunID("run id", runID); err != nil {
		return err
	}
	return atomically(ctx, tx, func(tx keeltype.DBTX) error { return e.resume(ctx, tx, runID) })
}

func (e *Engine) resume(ctx context.Context, tx keeltype.DBTX, runID string) error {
	q := db.New(tx)
	if _, err := q.DeleteStepsForResume(ctx, runID); err != nil {
		return fmt.Errorf("keel saga: resume %s: %w", runID, err)
	}
	row, err := q.ReopenRun(ctx, db.ReopenRunParams{ID: runID})
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := e.get(ctx, tx, runID); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s", ErrRunNotFinished, runID)
	}
	if err != nil {
		return fmt.Errorf("keel saga: resume %s: %w", runID, err)
	}
	return e.enqueue(ctx, tx, runID, row.Generation, row.Queue, time.Time{})
}

// ForkOpts are the options of Fork.
type ForkOpts struct {
	// RunID names the new run; a run id in use fails with ErrRunIDInUse.
	// Default: a random UUID.
	RunID string
	// Version runs the fork with another version, which must be registered
	// in this engine. Default: the source run's, which need not be: the fork
	// runs wherever that version is registered, as the source did, so a
	// process that executes no workflow (an operator's tool) can fork.
	Version int
	// Timeout is the fork's workflow timeout. Default: none.
	Timeout time.Duration
}

// Fork starts, through tx, a new run of the same workflow and input as
// runID whose history is runID's completed steps before position fromSeq
// (from 1): those replay, and execution goes on from step fromSeq. Children
// started before fromSeq are shared with the source, not started again. A
// missing source fails with ErrRunNotFound, an opts.Version this engine does
// not register with ErrUnknownWorkflow, a run id in use with ErrRunIDInUse;
// each writes nothing.
func (e *Engine) Fork(ctx context.Context, tx keeltype.DBTX, runID string, fromSeq int, opts *ForkOpts) (*Run, error) {
	if err := e.checkWrite(tx); err != nil {
		return nil, err
	}
	o, err := prepareFork(runID, fromSeq, opts)
	if err != nil {
		return nil, err
	}
	var run *Run
	err = atomically(ctx, tx, func(tx keeltype.DBTX) error {
		var err error
		run, err = e.fork(ctx, tx, runID, int32(fromSeq), o)
		return err
	})
	return run, err
}

func (e *Engine) fork(ctx context.Context, tx keeltype.DBTX, runID string, fromSeq int32, o ForkOpts) (*Run, error) {
	q := db.New(tx)
	src, err := e.get(ctx, tx, runID)
	if err != nil {
		return nil, err
	}
	version := src.Version
	if o.Version != 0 {
		wf, err := e.registry.get(src.Workflow, o.Version)
		if err != nil {
			return nil, err
		}
		version = wf.version
	}
	row, err := q.ForkRun(ctx, db.ForkRunParams{
		NewID: o.RunID, Version: int32(version), AtSeq: &fromSeq, TimeoutUs: timeoutMicros(o.Timeout), SrcID: runID,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := e.get(ctx, tx, runID); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s", ErrRunIDInUse, o.RunID)
	}
	if err != nil {
		return nil, fmt.Errorf("keel saga: fork %s: %w", runID, err)
	}
	if _, err := q.CopyHistory(ctx, db.CopyHistoryParams{NewID: o.RunID, SrcID: runID, AtSeq: fromSeq}); err != nil {
		return nil, fmt.Errorf("keel saga: fork %s: copying history: %w", runID, err)
	}
	if err := e.enqueue(ctx, tx, row.ID, row.Generation, row.Queue, time.Time{}); err != nil {
		return nil, err
	}
	return runFromDB(&row), nil
}

func ptr[T any](v T) *T { return &v }

// randomToken is 16 random hex digits.
func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
