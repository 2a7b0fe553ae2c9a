package jobs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// JobGet returns the job with that id, or ErrNotFound.
func (c *Client) JobGet(ctx context.Context, id int64) (*JobRow, error) {
	row, err := db.New(c.pool).GetJob(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("keel jobs: get %d: %w", id, err)
	}
	return rowFromDB(&row)
}

// JobCancel cancels a job from any process. A job that is not running becomes
// cancelled at once. A running job gets a cancel request: the process running
// it cancels its context (with cause ErrCancelRequested) at once through a
// notification or at its next heartbeat at the latest, and the job ends
// cancelled unless its handler completes anyway. A final job is left as it
// is. JobCancel returns the job as it is after the request.
func (c *Client) JobCancel(ctx context.Context, id int64) (*JobRow, error) {
	row, err := db.New(c.pool).CancelJob(ctx, db.CancelJobParams{Now: ts(c.now()), ID: id})
	if errors.Is(err, pgx.ErrNoRows) {
		return c.JobGet(ctx, id) // final already, or no such job
	}
	if err != nil {
		return nil, fmt.Errorf("keel jobs: cancel %d: %w", id, err)
	}
	if row.State == db.KeelJobStateRunning {
		if err := c.control(ctx, controlCancel+strconv.FormatInt(id, 10)); err != nil {
			return nil, err
		}
	}
	return rowFromDB(&row)
}

// JobRetry makes a job available to run at once — a discarded, cancelled or
// completed job, or one waiting to be retried or scheduled. A job that used
// all its attempts gets one more. A running job, or one pending on its
// dependencies, is returned as it is. JobRetry returns ErrNotFound when no job
// has the id, and a *DuplicateError when another job now holds its unique
// key.
func (c *Client) JobRetry(ctx context.Context, id int64) (*JobRow, error) {
	row, err := db.New(c.pool).RetryJob(ctx, db.RetryJobParams{Now: ts(c.now()), ID: id})
	if errors.Is(err, pgx.ErrNoRows) {
		existing, getErr := c.JobGet(ctx, id)
		if getErr != nil {
			return nil, getErr
		}
		return existing, nil // running or pending: left alone
	}
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.ConstraintName == uniqueIndex {
		return nil, c.duplicateOf(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("keel jobs: retry %d: %w", id, err)
	}
	if err := c.notifyQueue(ctx, c.pool, row.Queue); err != nil {
		return nil, err
	}
	return rowFromDB(&row)
}

// JobDelete deletes a job that is not running and returns its row as it
// was, as River's JobDelete does. It refuses, deleting nothing:
//   - a running job, with ErrJobRunning: cancel it with JobCancel, and
//     delete it once it is final;
//   - a job that a pending job depends on, with ErrJobHasDependents:
//     dependency resolution reads only the dependencies that exist, so a job
//     that waited on it alone would stay pending for ever. Cancel it
//     instead; its dependents then run or are cancelled by their RunWhen.
//     Deleting the dependents first lets it go too.
//
// The job is locked while it is checked and deleted, so a worker cannot
// claim it in between. JobDelete returns ErrNotFound when no job has the id.
// A keel.saga.run job executes a saga run: deleting it leaves the run with
// nothing to execute it, so cancel the run through its saga engine instead.
func (c *Client) JobDelete(ctx context.Context, id int64) (*JobRow, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("keel jobs: delete %d: %w", id, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := db.New(tx)
	job, err := q.LockJobForDelete(ctx, id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("%w: %d", ErrNotFound, id)
	case err != nil:
		return nil, fmt.Errorf("keel jobs: delete %d: %w", id, err)
	case job.State == db.KeelJobStateRunning:
		return nil, fmt.Errorf("%w: cannot delete job %d; cancel it first", ErrJobRunning, id)
	case job.HasDependents:
		return nil, fmt.Errorf("%w: cannot delete job %d; cancel it instead", ErrJobHasDependents, id)
	}
	row, err := q.DeleteJob(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("keel jobs: delete %d: %w", id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("keel jobs: delete %d: %w", id, err)
	}
	return rowFromDB(&row)
}

// QueuePause stops every client in every process from claiming the queue's
// jobs; running jobs finish. It applies to queues no client works yet.
func (c *Client) QueuePause(ctx context.Context, queue string) error {
	if err := checkQueue(queue); err != nil {
		return invalid(err)
	}
	err := db.New(c.pool).SetQueuePaused(ctx, db.SetQueuePausedParams{Name: queue, PausedAt: ts(c.now())})
	if err != nil {
		return fmt.Errorf("keel jobs: pause %q: %w", queue, err)
	}
	return nil
}

// QueueResume undoes QueuePause and wakes the queue's workers everywhere.
func (c *Client) QueueResume(ctx context.Context, queue string) error {
	if err := checkQueue(queue); err != nil {
		return invalid(err)
	}
	err := db.New(c.pool).SetQueuePaused(ctx, db.SetQueuePausedParams{Name: queue, PausedAt: pgtype.Timestamptz{}})
	if err != nil {
		return fmt.Errorf("keel jobs: resume %q: %w", queue, err)
	}
	return c.control(ctx, controlResume+queue)
}

// QueuePaused reports whether the queue is paused.
func (c *Client) QueuePaused(ctx context.Context, queue string) (bool, error) {
	if err := checkQueue(queue); err != nil {
		return false, invalid(err)
	}
	paused, err := db.New(c.pool).QueuePaused(ctx, queue)
	if err != nil {
		return false, fmt.Errorf("keel jobs: queue %q: %w", queue, err)
	}
	return paused, nil
}

func (c *Client) control(ctx context.Context, payload string) error {
	if err := db.New(c.pool).Notify(ctx, db.NotifyParams{Channel: channelControl, Payload: payload}); err != nil {
		return fmt.Errorf("keel jobs: notify %q: %w", payload, err)
	}
	return nil
}

// uniqueIndex is the index that keeps unique keys unique among non-final jobs.
const uniqueIndex = "jobs_unique_key_idx"

// duplicateOf builds the *DuplicateError for a job whose unique key another
// job holds.
func (c *Client) duplicateOf(ctx context.Context, id int64) error {
	job, err := c.JobGet(ctx, id)
	if err != nil {
		return err
	}
	holder, err := db.New(c.pool).ActiveJobByUniqueKey(ctx, &job.UniqueKey)
	if err != nil {
		return fmt.Errorf("keel jobs: finding the holder of unique key %q: %w", job.UniqueKey, err)
	}
	return &DuplicateError{UniqueKey: job.UniqueKey, ExistingID: holder}
}

// JobCount counts the jobs in a state; the empty state counts every job.
func (c *Client) JobCount(ctx context.Context, state JobState) (int64, error) {
	s, err := stateFilter(state)
	if err != nil {
		return 0, err
	}
	n, err := db.New(c.pool).CountJobs(ctx, s)
	if err != nil {
		return 0, fmt.Errorf("keel jobs: count %q: %w", state, err)
	}
	return n, nil
}

// JobListParams filters JobList. The zero value lists the 100 newest jobs.
type JobListParams struct {
	State JobState // only jobs in this state; "" for any
	Queue string   // only jobs of this queue; "" for any
	Kind  string   // only jobs of this kind; "" for any
	Limit int      // at most this many; 0 means 100
}

// stateFilter is the filter on state s; "" is none.
func stateFilter(s JobState) (*db.KeelJobState, error) {
	if s == "" {
		return nil, nil
	}
	state := db.KeelJobState(s)
	if !state.Valid() {
		return nil, fmt.Errorf("%w: unknown state %q", ErrInvalidOptions, s)
	}
	return &state, nil
}

// query checks the filters, as an insert checks what it stores (a queue or
// kind no job can have is refused, not searched for), and returns the query.
func (p JobListParams) query() (db.ListJobsParams, error) {
	var q db.ListJobsParams
	switch {
	case p.Limit < 0:
		return q, fmt.Errorf("%w: negative limit", ErrInvalidOptions)
	case p.Limit == 0:
		q.MaxRows = 100
	default:
		q.MaxRows = int32(min(p.Limit, math.MaxInt32))
	}
	var err error
	if q.State, err = stateFilter(p.State); err != nil {
		return q, err
	}
	if err := validate.Text("queue", p.Queue, validate.MaxQueue); err != nil {
		return q, invalid(err)
	}
	if err := validate.Text("kind", p.Kind, validate.MaxName); err != nil {
		return q, invalid(err)
	}
	if p.Queue != "" {
		q.Queue = &p.Queue
	}
	if p.Kind != "" {
		q.Kind = &p.Kind
	}
	return q, nil
}

// JobList returns jobs, newest first; nil params list the 100 newest.
func (c *Client) JobList(ctx context.Context, params *JobListParams) ([]*JobRow, error) {
	return c.JobListTx(ctx, c.pool, params)
}

// JobListTx is JobList read through tx, so it sees what tx wrote and has
// not committed.
func (c *Client) JobListTx(ctx context.Context, tx keeltype.DBTX, params *JobListParams) ([]*JobRow, error) {
	if tx == nil {
		return nil, fmt.Errorf("%w: nil tx", ErrInvalidOptions)
	}
	var p JobListParams
	if params != nil {
		p = *params
	}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	rows, err := db.New(tx).ListJobs(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("keel jobs: list: %w", err)
	}
	out := make([]*JobRow, len(rows))
	for i := range rows {
		if out[i], err = rowFromDB(&rows[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// QueueState is a queue as Queues reports it.
type QueueState struct {
	Name   string
	Paused bool
}

// QueueList lists every queue that has jobs or was ever paused.
func (c *Client) QueueList(ctx context.Context) ([]QueueState, error) {
	rows, err := db.New(c.pool).ListQueues(ctx)
	if err != nil {
		return nil, fmt.Errorf("keel jobs: queues: %w", err)
	}
	out := make([]QueueState, len(rows))
	for i, r := range rows {
		out[i] = QueueState{Name: r.Name, Paused: r.Paused}
	}
	return out, nil
}
