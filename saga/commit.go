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

// stepItem is a checkpoint in CommitMany's JSON array of steps.
type stepItem struct {
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

// finishItem is a run's end in CommitMany's JSON array of ends, with the job that
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

// writeCommits writes a group of checkpoints and finishes in one statement
// (CommitMany), which also completes the finished runs' jobs and notifies
// other processes' awaits, and hands the ended runs to this engine's
// awaits. A lone checkpoint takes the plainer Checkpoint. A batch the
// database refuses for something in it is written again call by call, so
// one bad request fails alone.
func (e *Engine) writeCommits(ctx context.Context, batch []*call[commitReq, commitRes]) {
	finished, err := e.tryCommits(ctx, batch)
	switch {
	case err == nil:
		e.awaiter.deliver(finished)
	case len(batch) > 1 && blamesBatch(err):
		alone(ctx, batch, e.writeCommits)
	default:
		for _, c := range batch {
			c.res, c.err = commitRes{}, err
		}
	}
}

func (e *Engine) tryCommits(ctx context.Context, batch []*call[commitReq, commitRes]) ([]*Run, error) {
	for _, c := range batch {
		c.res, c.err = commitRes{}, nil
	}
	if len(batch) == 1 && batch[0].req.step != nil { // alone: the plain statement, which costs the server less
		c := batch[0]
		cancel, err := db.New(e.pool).Checkpoint(ctx, *c.req.step)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		c.res = commitRes{written: err == nil, cancelRequested: cancel}
		return nil, err
	}
	// A step is known by its run, position and epoch: of two executors of
	// one run in a batch only the one holding the run's epoch writes.
	type stepKey struct {
		runID string
		seq   int32
		epoch int64
	}
	type runEpoch struct {
		id    string
		epoch int64
	}
	steps := make([]stepItem, 0, len(batch))
	stepping := make(map[stepKey]*call[commitReq, commitRes], len(batch))
	ends := make([]finishItem, 0, len(batch))
	ending := make(map[runEpoch]*call[commitReq, commitRes], len(batch))
	for _, c := range batch {
		if p := c.req.step; p != nil {
			item := stepItem{
				RunID: p.RunID, Epoch: p.Epoch, Seq: p.Seq, Name: p.Name, Kind: p.Kind, Status: p.Status,
				Output: p.Output, Error: p.Error, Attempts: p.Attempts, Publish: p.Publish,
			}
			if p.StartedAt.Valid {
				item.StartedAt = &p.StartedAt.Time
			}
			steps = append(steps, item)
			stepping[stepKey{p.RunID, p.Seq, p.Epoch}] = c
			continue
		}
		p, job := c.req.finish.run, c.req.finish.job
		ends = append(ends, finishItem{
			ID: p.ID, Epoch: p.Epoch, Status: p.Status, Output: p.Output, Error: p.Error,
			JobID: job.ID, JobAttempt: job.Attempt,
		})
		ending[runEpoch{p.ID, p.Epoch}] = c
	}
	encodedSteps, err := json.Marshal(steps)
	if err != nil {
		return nil, err
	}
	encodedEnds, err := json.Marshal(ends)
	if err != nil {
		return nil, err
	}
	rows, err := db.New(e.pool).CommitMany(ctx, db.CommitManyParams{
		Steps: encodedSteps, Owner: ptr(e.jobs.ID()), Ends: encodedEnds,
		Channel: channelDone, Payload: e.awaiter.self, Notify: len(ends) > 0 && e.done.Claim(channelDone, e.awaiter.self),
	})
	if err != nil {
		return nil, fmt.Errorf("group commit of %d checkpoints and %d ends: %w", len(steps), len(ends), err)
	}
	var finished []*Run
	for _, r := range rows {
		if r.Ended == nil {
			if c := stepping[stepKey{r.RunID, r.Seq, r.Epoch}]; c != nil {
				c.res = commitRes{written: true, cancelRequested: r.CancelRequested}
			}
			continue
		}
		var row db.KeelSagaRun
		if err := json.Unmarshal(r.Ended, &row); err != nil {
			return nil, fmt.Errorf("group commit: reading an ended run: %w", err)
		}
		ending[runEpoch{row.ID, row.Epoch}].res.written = true
		finished = append(finished, runFromDB(&row))
	}
	return finished, nil
}

// readReq asks for a pending run of a job's generation.
type readReq struct {
	RunID      string `json:"id"`
	Generation int64  `json:"generation"`
}

// takenRun is a run an execution took, with when, on this process's
// monotonic clock, the database most likely read its clock for it (db_now):
// the middle of the statement's round trip.
type takenRun struct {
	row db.ClaimRunRow
	at  time.Time
}

// readPending reads the pending runs of a group of first attempts, with
// their histories, in one statement. A run not pending at that generation
// gets pgx.ErrNoRows. Each run's time is the statement's own round trip,
// not the wait of its call for the group's turn.
func (e *Engine) readPending(ctx context.Context, batch []*call[readReq, takenRun]) {
	reqs := make([]readReq, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	encoded, err := json.Marshal(reqs)
	var rows []db.ReadPendingRunsRow
	sent := time.Now()
	if err == nil {
		rows, err = db.New(e.pool).ReadPendingRuns(ctx, encoded)
	}
	at := sent.Add(time.Since(sent) / 2)
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
			c.res = takenRun{row: db.ClaimRunRow(*r), at: at}
		}
	}
}

// runItem is a run to start in StartRunsWithJobs's JSON array, with the
// metadata of its first job.
type runItem struct {
	ID          string          `json:"id"`
	Workflow    string          `json:"workflow"`
	Version     int32           `json:"version"`
	Queue       string          `json:"queue"`
	Input       json.RawMessage `json:"input"`
	TimeoutUs   *int64          `json:"timeout_us,omitempty"`
	JobMetadata json.RawMessage `json:"job_metadata"`
	// Claim writes the job claimed by the engine's jobs client, which
	// reserved a worker for it.
	Claim bool `json:"claim,omitempty"`
}

// writeStarts starts a group of runs StartRun was given the engine's pool
// for, each with its first job, in one statement: one round trip and one
// commit however many there are. A batch refused for something in it is
// written again start by start.
func (e *Engine) writeStarts(ctx context.Context, batch []*call[startReq, *Run]) {
	err := e.tryStarts(ctx, batch)
	switch {
	case err == nil:
	case len(batch) > 1 && blamesBatch(err):
		alone(ctx, batch, e.writeStarts)
	default:
		for _, c := range batch {
			c.res, c.err = nil, err
		}
	}
}

// errRunExists ends the report of a start's job insert when the run
// existed, so its job was not inserted.
var errRunExists = errors.New("keel saga: run exists; its first job was not inserted")

// firstJob reports the insert of a start's first job to the jobs' hook and
// returns the job's metadata: the start's trace context, else what the hook
// put in the operation's carrier. end closes the report.
func (e *Engine) firstJob(ctx context.Context, req startReq, count int) (opCtx context.Context, meta json.RawMessage, end func(keeltype.Outcome), err error) {
	return e.runJobInsert(ctx, req.p.Queue, req.trace, count)
}

// runJobInsert reports the insert of count run jobs of queue, written by a
// statement of the engine's own, to the jobs' hook, as Client.Insert
// reports its inserts, and returns the jobs' metadata: trace, else what the
// hook put in the operation's carrier. end closes the report.
func (e *Engine) runJobInsert(ctx context.Context, queue string, trace *carrier.Entries, count int) (opCtx context.Context, meta json.RawMessage, end func(keeltype.Outcome), err error) {
	meta = json.RawMessage(`{}`)
	if m := trace.Map(); m != nil {
		if meta, err = json.Marshal(map[string]any{keeltype.CarrierKey: m}); err != nil {
			return nil, nil, nil, err
		}
	}
	op := keeltype.Operation{Kind: keeltype.OpJobInsert, Name: runJobKind, Queue: queue, Count: count, Carrier: map[string]string{}}
	opCtx, end = e.jobsHook.Start(ctx, op)
	return opCtx, carrier.Clean(op.Carrier).Metadata(meta), end, nil
}

// startAlone starts one run and inserts its first job in one statement
// (StartRunWithJob), the plainer statement for one. The job is written as
// the jobs client writes it: its insert is reported to the jobs' hook,
// whose trace context it stores when the start has none. With a worker of
// the run's queue free here, the job is written claimed and runs here at
// once (see handOff); else the statement sends the jobs' insert
// notification, debounced.
func (e *Engine) startAlone(ctx context.Context, req startReq) (*Run, error) {
	opCtx, meta, end, err := e.firstJob(ctx, req, 1)
	if err != nil {
		return nil, err
	}
	reserved, runClaimed := e.jobs.ReserveWorkers(req.p.Queue, 1)
	var owner *string
	if reserved > 0 {
		owner = ptr(e.jobs.ID())
	}
	sent := time.Now()
	row, err := db.New(e.pool).StartRunWithJob(opCtx, db.StartRunWithJobParams{
		ID: req.p.ID, Workflow: req.p.Workflow, Version: req.p.Version, Queue: req.p.Queue, Input: req.p.Input,
		TimeoutUs: req.p.TimeoutUs, Owner: owner, JobKind: runJobKind, JobMetadata: meta, JobMaxAttempts: firstJobAttempts,
		Channel: notify.JobsChannel, Notify: reserved == 0 && e.inserted.Claim(notify.JobsChannel, req.p.Queue),
	})
	at := sent.Add(time.Since(sent) / 2)
	var started *db.KeelSagaRun
	var claimed []db.KeelJob
	if err == nil {
		started, claimed, err = e.decodeStarted(db.StartRunsWithJobsRow(row), claimed, at)
	}
	runClaimed(ctx, claimed)
	if errors.Is(err, pgx.ErrNoRows) {
		end(keeltype.Outcome{Err: errRunExists})
		run, callErr, err := e.existingRun(ctx, e.pool, req.p)
		return run, errors.Join(callErr, err)
	}
	end(keeltype.Outcome{Err: err})
	if err != nil {
		return nil, fmt.Errorf("keel saga: start %s: %w", req.p.Workflow, err)
	}
	return runFromDB(started), nil
}

// decodeStarted reads a run a start statement inserted and, when its first
// job was written claimed by the engine's jobs client, appends the job to
// claimed and hands the run to the job's execution, taken at at.
func (e *Engine) decodeStarted(row db.StartRunsWithJobsRow, claimed []db.KeelJob, at time.Time) (*db.KeelSagaRun, []db.KeelJob, error) {
	var run db.KeelSagaRun
	if err := json.Unmarshal(row.Run, &run); err != nil {
		return nil, claimed, fmt.Errorf("reading a started run: %w", err)
	}
	if row.ClaimedJob == nil {
		return &run, claimed, nil
	}
	var job db.KeelJob
	if err := json.Unmarshal(row.ClaimedJob, &job); err != nil {
		return nil, claimed, fmt.Errorf("reading a started run's claimed job: %w", err)
	}
	e.handOff(job.ID, takenRun{row: db.ClaimRunRow{
		ID: run.ID, Workflow: run.Workflow, Version: run.Version, Queue: run.Queue, Input: run.Input,
		ParentID: run.ParentID, Epoch: run.Epoch, Deadline: run.Deadline, CancelRequestedAt: run.CancelRequestedAt,
		History: json.RawMessage("[]"), DbNow: row.DbNow,
	}, at: at})
	return &run, append(claimed, job), nil
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
	ends := make([]func(keeltype.Outcome), len(batch))
	for i, c := range batch {
		p := c.req.p
		_, meta, end, err := e.firstJob(ctx, c.req, 1)
		if err != nil {
			for _, end := range ends[:i] {
				end(keeltype.Outcome{Err: err})
			}
			return err
		}
		ends[i] = end
		items[i] = runItem{ID: p.ID, Workflow: p.Workflow, Version: p.Version, Queue: p.Queue, Input: p.Input, TimeoutUs: p.TimeoutUs, JobMetadata: meta}
	}
	lanes, notifyQueues := e.reserveFirstJobs(items)
	encoded, err := json.Marshal(items)
	var rows []db.StartRunsWithJobsRow
	sent := time.Now()
	if err == nil {
		rows, err = db.New(e.pool).StartRunsWithJobs(ctx, db.StartRunsWithJobsParams{
			Owner: ptr(e.jobs.ID()), Runs: encoded, JobKind: runJobKind, JobMaxAttempts: firstJobAttempts,
			Channel: notify.JobsChannel, Notify: notifyQueues,
		})
	}
	at := sent.Add(time.Since(sent) / 2)
	inserted := make(map[string]*db.KeelSagaRun, len(rows))
	for i := 0; err == nil && i < len(rows); i++ {
		var run *db.KeelSagaRun
		var claimed []db.KeelJob
		if run, claimed, err = e.decodeStarted(rows[i], nil, at); err == nil {
			inserted[run.ID] = run
			if len(claimed) > 0 {
				lanes[run.Queue].claimed = append(lanes[run.Queue].claimed, claimed...)
			}
		}
	}
	for _, l := range lanes {
		l.run(ctx, l.claimed)
	}
	if err != nil {
		for _, end := range ends {
			end(keeltype.Outcome{Err: err})
		}
		return fmt.Errorf("keel saga: starting %d runs: %w", len(batch), err)
	}
	for i, c := range batch {
		c.res, c.err = nil, nil
		if row := inserted[c.req.p.ID]; row != nil {
			delete(inserted, row.ID) // a later start of the same id finds it existing
			ends[i](keeltype.Outcome{})
			c.res = runFromDB(row)
			continue
		}
		ends[i](keeltype.Outcome{Err: errRunExists})
		run, callErr, err := e.existingRun(ctx, e.pool, c.req.p)
		c.res, c.err = run, errors.Join(callErr, err)
	}
	return nil
}

// lane is what a group of starts reserved of one queue's workers here.
type lane struct {
	run     func(context.Context, []db.KeelJob)
	claimed []db.KeelJob
}

// reserveFirstJobs reserves, queue by queue, a worker of the engine's jobs
// client for as many of items' first jobs as it has free, and marks those
// items to be written claimed. It returns the reservations by queue and
// whether the statement is to notify: when a job is left for the fetchers
// and the debouncer lets the notification through.
func (e *Engine) reserveFirstJobs(items []runItem) (map[string]*lane, bool) {
	wanted := map[string]int{}
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if !seen[it.ID] {
			seen[it.ID] = true
			wanted[it.Queue]++
		}
	}
	lanes := make(map[string]*lane, len(wanted))
	left := make(map[string]int, len(wanted))
	notifyQueues := false
	for queue, n := range wanted {
		reserved, run := e.jobs.ReserveWorkers(queue, n)
		lanes[queue] = &lane{run: run}
		left[queue] = reserved
		if reserved < n {
			notifyQueues = e.inserted.Claim(notify.JobsChannel, queue) || notifyQueues
		}
	}
	clear(seen)
	for i := range items {
		if it := &items[i]; !seen[it.ID] && left[it.Queue] > 0 {
			seen[it.ID] = true
			left[it.Queue]--
			it.Claim = true
		}
	}
	return lanes, notifyQueues
}
