// Package saga runs durable workflows on PostgreSQL: plain Go functions
// whose steps are checkpointed in the database, so a run survives crashes,
// restarts and deploys, and — as a saga — undoes its completed steps when it
// fails or is cancelled. It is keel's answer to DBOS Transact, Temporal and
// the Durable Task Framework, with no server besides Postgres.
//
// # Workflows and runs
//
// A workflow is a function of a [Context] and a typed input returning a
// typed output and an error. Register it under a name and an explicit
// version, then start runs of it in your own transaction:
//
//	reg := saga.NewRegistry()
//	saga.Register(reg, "checkout", 1, func(ctx saga.Context, o Order) (Receipt, error) {
//		id, err := saga.StepWithCompensation(ctx, "charge",
//			func(ctx context.Context) (string, error) { return payments.Charge(ctx, o) },
//			func(ctx context.Context, id string) error { return payments.Refund(ctx, id) }, nil)
//		if err != nil {
//			return Receipt{}, err
//		}
//		saga.Sleep(ctx, 24*time.Hour)
//		return saga.Step(ctx, "ship", func(ctx context.Context) (Receipt, error) { return ship(ctx, o, id) }, nil)
//	})
//	engine, err := saga.NewEngine(pool, reg, saga.Config{})
//	err = engine.Start(ctx)
//	run, err := engine.StartRun(ctx, tx, "checkout", order, &saga.StartOpts{RunID: "order-" + order.ID})
//	// … commit tx: the run starts if and only if your own writes commit.
//	done, err := engine.Await(ctx, run.ID)
//	receipt, err := saga.Result[Receipt](done)
//
// Starting with a RunID that exists returns the existing run and writes
// nothing, so a retried request starts one run. Await blocks until the run
// is final, woken by a NOTIFY when it finishes and reading the run every
// Config.AwaitPollInterval besides; Get, List and Steps read runs later.
//
// # Execution on jobs
//
// A run is executed by a job of kind keel.saga.run in package jobs, in the
// queue Config.Queue ("saga"), so runs inherit jobs' claiming with SKIP
// LOCKED, per-queue concurrency, LISTEN/NOTIFY wake-ups, heartbeats and the
// rescue of jobs whose process died: a run whose process was killed is
// resumed by whichever process claims its job next, with no other service.
//
// Each execution takes the run and loads its history once, in one round
// trip, and calls the workflow function from the top. An execution that may
// have a live predecessor (a rescued job, a run woken from a wait) bumps the
// run's epoch, a fencing token; the first execution of a new run only reads.
// A step already in the history returns its recorded output (or error)
// without running; the first step that is not runs, and its outcome is
// checkpointed by an INSERT that writes only while the run's epoch is still
// the executor's — no lock on the run. An executor that lost the run (it was
// thought dead and the run was taken elsewhere) finds its checkpoint refused
// and stops.
//
// # Group commit
//
// The runs executing in one engine write together. A checkpoint, a run's
// end, or the read that takes a new run, made while no write of its kind is
// in flight, is written at once and alone, so a lone run waits for nothing;
// those made while one is in flight queue up and go in the next write, for
// all of them: the checkpoints and the ends of many runs in one statement
// (CommitMany), which also completes the ended runs' jobs and notifies
// awaiters (the engine's worker completes its own jobs:
// [jobs.WorkerOpts].CompletesJob; a park completes its job in the park's
// transaction); the reads of newly claimed runs; the reads of Awaits; and
// the StartRuns given the engine's pool, each run with its first job. Each
// is one statement and one commit. Each run still goes on only once its own
// checkpoint is durable; fencing is per run, inside the statement; and a
// batch the database refuses for one request in it is written again request
// by request, so only that one fails. A run that ends here is handed to this
// engine's [Engine.Await] callers as it commits, without waiting for the
// notification. Under load a run costs a share of a commit per step rather
// than one.
//
// A run started on the engine's own pool by a started engine with a worker
// of the run's queue free starts executing here at once: its first job is
// written already claimed by the engine's jobs client, in the start's own
// statement, so it needs no notification, no claim and no read, and an
// Await of it in this engine reads nothing until its execution stops. A
// [Engine.Signal] on the engine's pool that wakes a run of the engine's
// queue writes its job the same way. With no worker free, the queue
// paused, or the start made in a transaction of the caller's, the job is
// written available, for any process to claim. A process that dies with a
// run so taken loses nothing: the job is rescued like any claimed one.
//
// A step whose process dies before its checkpoint runs again: steps run at
// least once. [TxStep] gives a step a pgx.Tx; its writes and its checkpoint
// commit together, so its effect happens exactly once.
//
// # Determinism
//
// The workflow function must take the same steps in the same order on
// every replay; anything that varies (time, randomness, I/O) belongs in a
// step. Each step is recorded with its position, kind and name, and a replay
// that reaches a different step than the history holds fails the run with a
// [*NondeterminismError] naming the position and both steps. The workflow
// function unwinds with a panic the executor recovers when it must stop
// (parked, cancelled, fenced out): do not recover panics you did not raise.
//
// Versions are explicit: a run records the version it started with and only
// a process that registered that version runs it. Bump the version when a
// change would replay old histories differently and keep the old version
// registered until its runs end. A run whose version no process registers
// stays pending, with the reason in keel.saga_runs.last_error, and is
// looked at again every Config.UnknownVersionRetry by any process.
//
// # Retries and compensation
//
// A failed step is retried: Config.StepMaxAttempts attempts (default 3)
// spaced by Config.StepRetryPolicy (a keeltype.RetryPolicy; default 100ms
// doubling to 10s), or what its [StepOpts] say; the error of its last
// attempt is checkpointed and returned as a [*StepError] (replayed, only its
// message is kept). What the workflow does with it is up to its code: return
// it and the run fails. A wait between attempts of up to
// Config.StepParkAfter (default 1s) is spent in the process; a longer one
// parks the run as a sleep does: the step is recorded waiting, with its
// attempts so far, the last error and the retry time ({"retry_at": …} in
// keel.saga_steps.output), the run waits with the reason "retry <step>"
// holding no worker, and the execution that resumes it — in any process,
// after a restart too — goes on with the next attempt at the retry time, so
// MaxAttempts counts every attempt however often the run parked or its
// process died. A cancel or the workflow timeout ends a parked step's
// retries as it ends a sleep. Steps started with [StepAsync] and
// compensations always wait in the process, and start their attempts again
// after a crash.
//
// A step registered with [StepWithCompensation] carries its undo. When the
// run fails (its function returns an error or panics), times out or is
// cancelled, the undos of its completed steps run in reverse order of the
// steps, each retried and checkpointed at minus the position of the step it
// undoes, so a crash in the middle resumes the compensation where it was.
// An undo that fails its last attempt stops the compensation and fails the
// run with ErrCompensation; a person can read why in keel.saga_steps.
//
// # Waiting: timers, signals, children
//
// [Sleep] and [SleepUntil] park the run: the execution ends, the run is
// marked waiting and a job is scheduled 20ms before the wake time, so no
// goroutine or worker is held and the wake-up survives restarts. The process
// that parked the run also keeps a timer that makes the job available at its
// time; if that process is gone, jobs' promotion (every
// Jobs.MaintenanceInterval) does. The execution that takes the job sleeps
// the rest in its process, so the run goes on at the wake time; a sleep of
// 40ms or less is slept that way without parking. [AwaitSignal] consumes a
// signal sent with [Engine.Signal] (in the sender's transaction, with an
// optional idempotency key); a signal sent before the wait is kept until a
// wait consumes it, oldest first; the wait parks the run until a signal or
// its timeout. [SetValue] publishes a value (progress, a status) that callers
// read with [Engine.GetValue].
//
// [StartChild] starts a child run, recorded as a step so a replay never
// starts it twice; [Child.Get] parks the parent until the child ends.
// Cancelling a run cancels its unfinished descendants, and a run that does
// not succeed cancels its unfinished children. Start several children, or
// several steps with [StepAsync], before collecting them to fan out and in:
// each takes its history position when it is started, so parallel work
// replays deterministically whatever order it finished in.
//
// A wait decides whether to park in a transaction holding the run's row
// lock — the lock Signal, Cancel and a finishing child take too — so a
// wake-up is never lost between checking and parking.
//
// # Control and inspection
//
// [Engine.Cancel] requests a cancel: a waiting run is woken, a running one
// has its running step's context cancelled (cause ErrCancelled; the step is
// not recorded) by the process executing it, and each compensates and ends
// cancelled. A cancel whose notification is lost (PgBouncer in transaction
// mode, a listener reconnecting) reaches a running step at the engine's
// next check of its runs, every Config.AwaitPollInterval.
// [StartOpts.Timeout] bounds a run the same way, ending it failed with
// ErrTimeout, and bounds its steps' contexts.
// [Engine.Resume] re-runs a failed or cancelled run from the step that
// failed (completed steps replay; its compensation records are dropped).
// [Engine.Fork] starts a new run from position N of another's history.
//
// Runs, steps, signals and published values are the tables keel.saga_runs,
// keel.saga_steps, keel.saga_signals and keel.saga_values, each commented
// for psql (\d+ keel.saga_runs); statuses are the enums keel.saga_run_status
// and keel.saga_step_status.
//
// # Limits
//
// Every call checks what it is given before its first statement, so a call
// refused for what Postgres could not store sends nothing and the caller's
// transaction stays usable. Text must be valid UTF-8 without NUL bytes, and
// these lengths, in bytes, hold (the schema checks them too):
//
//   - run ids (StartOpts, ForkOpts, ChildOpts): 1 to 255;
//   - queues (Config, StartOpts, ChildOpts): 1 to 128;
//   - workflow, signal and published value names: 1 to 255;
//   - signal idempotency keys: at most 1,024.
//
// Inputs, outputs, signal and published values are encoded as JSON that
// jsonb stores as it is: no \u0000, at most 1,000 levels deep, numbers within
// numeric's range, at most 32 MiB. Invalid UTF-8 in a Go string is refused,
// not replaced by U+FFFD. A refused id, name or option is ErrInvalidOptions,
// a refused value ErrEncode, each naming the field and the limit; a nil DBTX
// is ErrInvalidOptions, and a stopped engine's writes return ErrClosed.
//
// At run time the same checks keep a run from looping on what cannot be
// stored. A step whose result cannot be stored fails at once, without
// retries, with a [*StepError] wrapping ErrEncode; SetValue returns ErrEncode
// for such a value, and a child whose input cannot be stored is not started
// (Child.Get returns why). A workflow output that cannot be stored fails the
// run, and so does a step, signal or value name, a child's run id or queue,
// or a wake time that cannot be stored, after the run's compensations. The
// reason is in keel.saga_runs.error (and keel.saga_steps.error). Error text is the one
// text keel rewrites rather than refuses: in a step's, compensation's or
// run's error, NUL and invalid UTF-8 become U+FFFD, and it is cut at 64 KiB.
package saga
