// Package jobs is keel's durable background job queue on PostgreSQL, in the
// manner of River: typed job args, handlers registered per kind, inserts in
// the caller's transaction, workers that claim with FOR UPDATE SKIP LOCKED.
//
// # Jobs and handlers
//
// A job's arguments are a Go type with a Kind; its value is stored as jsonb in
// keel.jobs.args, so psql shows it. A handler is registered per kind and
// receives the decoded args with the job's row (id, attempt, queue …):
//
//	type WelcomeArgs struct{ Email string `json:"email"` }
//
//	func (WelcomeArgs) Kind() string { return "welcome_email" }
//
//	workers := jobs.NewWorkers()
//	jobs.AddWorker(workers, func(ctx context.Context, job *jobs.Job[WelcomeArgs]) error {
//		return send(ctx, job.Args.Email)
//	}, nil)
//	client, err := jobs.NewClient(pool, jobs.Config{Workers: workers})
//	err = client.Start(ctx)
//	defer client.Stop(ctx)
//
// # Inserting
//
// Client.Insert writes one job through a keeltype.DBTX — normally the caller's
// pgx.Tx, so the job commits or rolls back with the caller's own rows. A
// rolled-back insert never runs. Client.InsertMany writes many with one COPY.
// InsertOpts set the queue, priority (1 first … 4 last), run-at or delay, max
// attempts, a per-job timeout, tags, metadata, a unique key and
// dependencies; a kind can carry defaults by implementing
// JobArgsWithInsertOpts. Everything is validated and encoded before the first
// write, so bad input fails with a typed error (ErrInvalidOptions,
// ErrEncode, ErrUnknownKind) and nothing half-written.
//
// An insert sends a NOTIFY that fires on commit. Because a notifying commit
// takes a database-wide lock, a client sends at most one per queue per
// Config.NotifyInterval (5ms) and a trailing one for inserts held back.
// Workers LISTEN on one connection per client, or on the process's shared
// one when the client belongs to a keel.Client (or Config.Listener is set),
// and also poll every Config.FetchPollInterval (1s), so no job waits on a
// lost notification for longer than that.
//
// # States
//
// keel.jobs.state is a Postgres enum: pending (waits for dependencies),
// scheduled (waits for its run-at time), available, running, retryable
// (failed, runs again at run_at), and the final completed, cancelled and
// discarded (the dead letter: out of attempts). Every failed attempt appends
// {attempt, at, error, stack (for panics)} to the row's errors.
//
// # Working
//
// A client works the queues in Config.Queues, each with its own MaxWorkers
// (default: queue "default", 500 workers). A queue's fetcher claims as many
// jobs as it has free workers (up to 1,000) in one statement, in (priority,
// run_at, id) order, and starts a goroutine per job; while jobs keep coming
// it claims again as soon as half its workers are free, or once
// FetchCooldown (2ms) has passed with fewer free.
// Completions are queued and written in batches, one UPDATE per batch, by
// one goroutine per client: under load the batches grow by themselves.
//
// A handler's error makes the attempt fail: the job is retried after its
// kind's keeltype.RetryPolicy (default 2^attempt seconds with ±10% jitter)
// until MaxAttempts (default 25), then discarded. Returning
// JobSnooze(d) runs it again after d without using an attempt; returning
// JobCancel(err) cancels it for good. A panic is recovered and recorded with
// its stack. A job of a kind the client does not know is failed with
// ErrUnknownKind and retried (a newer deploy may know it); args that do not
// decode fail with ErrDecode the same way. Client.JobRetry makes a discarded,
// cancelled or completed job run again; Client.JobCancel cancels a queued job,
// or cancels the context of a running one in whichever process runs it
// (through a notification, and the next heartbeat at the latest).
// Client.JobDelete removes a job that is not running and that no pending
// job waits on.
//
// Each attempt's context has a deadline: the job's InsertOpts.Timeout, else
// its kind's WorkerOpts.Timeout, else Config.JobTimeout (1 minute). A
// handler reports progress (0–100) with RecordProgress and a JSON output
// with RecordOutput; jobs that depend on it read its output with
// DependencyOutputs.
//
// Client.Stop stops claiming, lets running jobs finish until its context
// ends, then cancels their contexts and waits for them; StopAndCancel
// cancels at once. Either writes the results before returning. Stopping
// ends working, not inserting: an insert-only client is never started and a
// stopped client may Start again, so a stopped client still inserts.
// QueuePause and QueueResume pause a queue for every client in every
// process (the claim checks keel.job_queues).
//
// # Crashes
//
// A client refreshes the heartbeat_at of the jobs it runs every
// HeartbeatInterval (5s). A running job whose heartbeat is older than
// RescueAfter (30s) — its process was killed, lost its connection or hangs
// in a way that stopped the whole client — is returned to retryable (or
// discarded when out of attempts) and runs again elsewhere. Delivery is at
// least once: a handler may run again after a crash, so make its effects
// idempotent or write them in the database with the job's id.
//
// # Outages
//
// A client rides out a database outage of any length. Claims, heartbeats
// and maintenance retry with a capped exponential backoff; an attempt's
// outcome — a completion or a failure — is held and written once the
// database is back, and a job whose outcome is held keeps being
// heartbeated, so nothing that ran is lost or run again. After an outage
// every heartbeat is stale, so a client rescues nothing until RescueAfter
// has passed since it last failed to reach the database: the owners that
// live heartbeat again first. The client logs one line when it loses the
// database and one when it has it back, and reports both to Config.Hook. Stop waits for held outcomes until its context ends; the jobs it
// abandons then stay running and are rescued.
//
// # Maintenance
//
// Duties run in every client under Postgres transaction-level advisory
// locks (pg_try_advisory_xact_lock), so one process does each pass: promote scheduled and
// retryable jobs whose time came (MaintenanceInterval, 1s), rescue orphaned
// jobs, move pending jobs whose dependencies settled (also right after this
// client finished jobs), and delete final jobs past their retention
// (completed 24h, cancelled and discarded 7 days by default).
//
// # Periodic jobs
//
// Config.PeriodicJobs are inserted on cron schedules (robfig/cron/v3 syntax,
// with optional seconds). Every client may carry the same schedules: a tick
// is recorded in keel.job_schedules in the same transaction as its job, and
// a tick that is already recorded is skipped, so each tick is inserted once
// however many processes run, with no leader. Its job also carries a unique
// key per tick. RunOnStart catches up the most recent missed tick.
//
// # Dependencies and workflows
//
// InsertOpts.DependsOn makes a job wait (pending) for other jobs to be
// final; RunWhen says whether it then runs after success (the default; a
// failed dependency cancels it), after failure, or always. A Workflow names
// tasks and their dependencies; Client.InsertWorkflow checks the graph
// (unknown names, duplicates, cycles) before writing anything and inserts it
// whole with one COPY in the caller's transaction.
//
// # Limits
//
// Everything an insert is given is checked and encoded before its first
// statement, so a value Postgres would refuse fails the call with a typed
// error whose message names the field and the limit, nothing is written,
// and the caller's transaction stays usable. Lengths are in bytes:
//
//   - kind: 1 to 255; queue: 1 to 128; unique key: at most 1,024 (it is
//     indexed; the schema has the same CHECK); workflow, task and periodic
//     job names: 1 to 255; Config.ID: at most 255.
//   - Every string — those, tags, the strings in args, metadata and outputs —
//     must be UTF-8 without NUL bytes. Invalid UTF-8 is refused, never
//     stored as U+FFFD as encoding/json would.
//   - Args, metadata and outputs must encode as JSON that jsonb stores as
//     it is: no \u0000 escape or lone surrogate, numbers within numeric's
//     range, at most 1,000 levels deep and 32 MiB.
//   - RunAt must fall in the years 1 to 9999 (UTC), the range JSON can
//     write.
//
// Refused names, tags, keys, times and metadata fail with ErrInvalidOptions,
// refused args with ErrEncode, and a nil DBTX, workflow or args with
// ErrInvalidOptions. Tags have no length limit. The filters of JobList,
// JobCount and QueuePaused are checked the same way.
//
// At run time, a handler's output that cannot be stored is refused by
// RecordOutput with ErrEncode and fails the attempt with that error in the
// job's errors. Error text is not refused: keel writes a handler's error
// (and a panic's stack) with NUL bytes and invalid UTF-8 replaced by U+FFFD,
// cut to 16 KiB, so an attempt's outcome is always written.
//
// # Observing
//
// Logs go to Config.Logger (log/slog); Config.Hook, a keeltype.Hook, sees
// every insert and attempt (the handler runs with the context it returned,
// so a tracer's span is the handler's parent), claims and outages. The trace
// context the hook gives an insert (Operation.Carrier) is stored in each
// job's metadata under keeltype.CarrierKey and handed back to the hook with
// every attempt, so a job's trace goes on in the process that runs it.
// keel.jobs and its columns carry comments, so \d+ keel.jobs in psql
// explains them.
package jobs
