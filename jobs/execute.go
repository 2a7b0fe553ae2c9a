package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/keelpg/keel/internal/carrier"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// writeTimeout bounds the statements that record an attempt's result.
const writeTimeout = 30 * time.Second

// runningJob is a job this client is running, so a cancel request can reach
// its context.
type runningJob struct {
	cancel context.CancelCauseFunc
}

// execute runs one claimed job and records how its attempt ended.
func (c *Client) execute(r *run, dbRow *db.KeelJob) {
	ctx, cancel := context.WithCancelCause(r.jobsCtx)
	defer cancel(nil)
	r.mu.Lock()
	r.running[dbRow.ID] = &runningJob{cancel: cancel}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.running, dbRow.ID)
		r.mu.Unlock()
	}()

	row, err := rowFromDB(dbRow)
	if err != nil {
		c.cfg.Logger.Error("keel jobs: cannot read claimed job", "id", dbRow.ID, "error", err)
		return // it stays running and is rescued
	}
	row.completed = &completedTx{}
	ctx, end := c.cfg.Hook.Start(ctx, keeltype.Operation{
		Kind: keeltype.OpJobRun, Name: row.Kind, ID: strconv.FormatInt(row.ID, 10),
		Queue: row.Queue, Attempt: row.Attempt, Scheduled: row.RunAt, Carrier: carrier.FromMetadata(row.Metadata),
	})
	w := c.workers.kinds[row.Kind]
	if w == nil {
		err = fmt.Errorf("%w: %q (no worker registered in client %s)", ErrUnknownKind, row.Kind, c.id)
	} else {
		if timeout := c.timeout(w, row); timeout > 0 {
			var cancelTimeout context.CancelFunc
			ctx, cancelTimeout = context.WithTimeoutCause(ctx, timeout,
				fmt.Errorf("keel jobs: job %d timed out after %s: %w", row.ID, timeout, context.DeadlineExceeded))
			defer cancelTimeout()
		}
		jobCtx, jc := withJob(ctx, c, row)
		err = runHandler(jobCtx, w, row)
		if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			err = context.Cause(ctx) // say why: a timeout, a cancel request, a stop
		}
		if err == nil {
			err = jc.outputError()
		}
	}
	c.finish(r, row, err, end)
}

// timeout is the attempt's timeout: the job's, else its kind's, else the
// client's; 0 means none.
func (c *Client) timeout(w *worker, row *JobRow) time.Duration {
	switch {
	case row.Timeout > 0:
		return row.Timeout
	case w.opts.Timeout > 0:
		return w.opts.Timeout
	case w.opts.Timeout < 0 || c.cfg.JobTimeout < 0:
		return 0
	}
	return c.cfg.JobTimeout
}

func runHandler(ctx context.Context, w *worker, row *JobRow) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: string(debug.Stack())}
		}
	}()
	return w.work(ctx, row)
}

// finish records the end of an attempt: completions go to the batching
// completer (unless the handler completed the job itself: JobCompleteTx,
// WorkerOpts.CompletesJob), everything else is written at once. end tells
// the hook.
func (c *Client) finish(r *run, row *JobRow, err error, end func(keeltype.Outcome)) {
	if w := c.workers.kinds[row.Kind]; err == nil && (row.completed.done.Load() || w != nil && w.opts.CompletesJob) {
		end(keeltype.Outcome{State: string(StateCompleted)})
		return
	}
	if err == nil {
		r.completer.add(completion{id: row.ID, attempt: int32(row.Attempt)})
		end(keeltype.Outcome{State: string(StateCompleted)})
		return
	}
	var ev struct{ State JobState }
	now := c.now()
	p := db.FinishAttemptParams{ID: row.ID, Attempt: int32(row.Attempt), Now: ts(now)}
	var snooze *SnoozeError
	var cancelled *CancelError
	switch {
	case errors.As(err, &snooze):
		ev.State = StateScheduled
		if snooze.Duration <= 0 {
			ev.State = StateAvailable
		}
		p.RunAt = ts(now.Add(max(snooze.Duration, 0)))
		p.Refund = 1
	case errors.As(err, &cancelled) || errors.Is(err, ErrCancelRequested):
		ev.State = StateCancelled
	case row.Attempt >= row.MaxAttempts:
		ev.State = StateDiscarded
	default:
		ev.State = StateRetryable
		policy := c.cfg.RetryPolicy
		if w := c.workers.kinds[row.Kind]; w != nil && w.opts.RetryPolicy != nil {
			policy = w.opts.RetryPolicy
		}
		p.RunAt = ts(now.Add(max(policy.NextRetry(row.Attempt, err), 0)))
	}
	p.State = db.KeelJobState(ev.State)
	if snooze == nil {
		entry := AttemptError{Attempt: row.Attempt, At: now, Error: validate.ErrorText(err.Error())}
		var panicked *PanicError
		if errors.As(err, &panicked) {
			entry.Stack = validate.ErrorText(panicked.Stack)
		}
		p.Error, _ = json.Marshal(entry) // storable strings and a time always encode
	}
	if werr := c.writeOutcome(r, func(ctx context.Context) error {
		_, err := db.New(c.pool).FinishAttempt(ctx, p)
		return err
	}); werr != nil {
		c.cfg.Logger.Error("keel jobs: failed attempt abandoned at stop; the job will be rescued", "id", row.ID, "error", werr)
		end(keeltype.Outcome{Err: errors.Join(err, werr), State: string(StateRunning)})
		return // it stays running and is rescued
	}
	end(keeltype.Outcome{Err: err, State: string(ev.State)})
	level := slog.LevelDebug
	if errors.Is(err, ErrUnknownKind) {
		// A misrouted job: a client works a queue whose kinds it lacks.
		level = slog.LevelWarn
	}
	c.cfg.Logger.Log(context.Background(), level, "keel jobs: attempt failed", "id", row.ID, "kind", row.Kind, "attempt", row.Attempt, "state", ev.State, "error", err)
	switch {
	case ev.State == StateAvailable:
		if q := r.queues[row.Queue]; q != nil {
			q.wakeUp()
		}
	case ev.State.Final():
		r.kick()
	}
}

func (r *run) kick() {
	select {
	case r.kickResolve <- struct{}{}:
	default:
	}
}
