package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/keeltype"
)

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// progress is how far a step's attempts got: how many were made, the last
// one's error and, while another is due, the wait before it.
type progress struct {
	attempts int
	err      error
	wait     time.Duration
}

// resume waits p.wait, then calls fn with each next attempt's number until
// it succeeds, fails permanently, uses up the policy's attempts or ctx ends;
// an end of ctx during a wait leaves the last attempt's error standing. It
// returns early, with the wait, when the wait before the next attempt is
// longer than r.parkAfter: the caller parks the run rather than hold its
// worker that long.
func (r retrying) resume(ctx context.Context, p progress, fn func(ctx context.Context, attempt int) error) progress {
	for p.attempts < r.maxAttempts {
		if p.wait > 0 && !sleepCtx(ctx, p.wait) {
			break
		}
		p.attempts++
		p.err = callSafely(ctx, p.attempts, fn)
		if _, ok := p.err.(permanent); ok || p.err == nil || p.attempts >= r.maxAttempts || ctx.Err() != nil {
			break
		}
		p.wait = max(r.policy.NextRetry(p.attempts, p.err), 0)
		if r.parkAfter > 0 && p.wait > r.parkAfter {
			return p
		}
	}
	p.wait = 0
	return p
}

// retry calls fn until it succeeds, fails permanently, uses up the policy's
// attempts or ctx ends, waiting in the process between attempts, and
// returns the attempts made and the last error.
func retry(ctx context.Context, policy retrying, fn func(ctx context.Context) error) (int, error) {
	policy.parkAfter = 0
	p := policy.resume(ctx, progress{}, func(ctx context.Context, _ int) error { return fn(ctx) })
	return p.attempts, p.err
}

// sleepCtx sleeps d unless ctx ends first, and reports whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func callSafely(ctx context.Context, attempt int, fn func(ctx context.Context, attempt int) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("keel saga: step panicked: %v\n%s", v, debug.Stack())
		}
	}()
	return fn(ctx, attempt)
}

// retryWait is the recorded state of a step parked between attempts.
type retryWait struct {
	RetryAt time.Time `json:"retry_at"`
}

// runAttempts runs the attempts of step (its position, name, kind and
// start) from p, each stretch of them between parks one step operation for
// the hook. A wait longer than policy.parkAfter checkpoints the step waiting
// — its attempts so far in attempts, the last error, the retry time in
// output — and parks the run until the retry time; the replay resumes the
// attempts there (see parkedRetry). Only the workflow goroutine may pass a
// policy that parks. stop is set when the workflow must not go on.
func (ex *execution) runAttempts(step db.CheckpointParams, policy retrying, p progress, try func(ctx context.Context, attempt int) error) (_ progress, stop error) {
	for {
		ctx, cancel, end := ex.stepContext(step.Name)
		p = policy.resume(ctx, p, try)
		o := keeltype.Outcome{Err: p.err}
		if p.wait > 0 {
			o.State = "parked"
		}
		end(o)
		cancel()
		if stop := ex.stepStop(); stop != nil || p.wait == 0 {
			return p, stop
		}
		ex.parkRetry(step, p)
		p.wait = 0 // the retry time came before the run parked
	}
}

// parkRetry checkpoints step as waiting for its next attempt, p.wait from
// now, and parks the run until then; it returns when that time is so near
// that the run waits in the process instead.
func (ex *execution) parkRetry(step db.CheckpointParams, p progress) {
	at := ex.clock.now().Add(p.wait)
	out, err := encode(fmt.Sprintf("retry time of step %d (%s)", step.Seq, step.Name), retryWait{RetryAt: at})
	if err != nil {
		panic(abort{failure{err}})
	}
	step.Status, step.Output, step.Attempts = db.KeelSagaStepStatusWaiting, out, int32(p.attempts)
	step.Error = ptr(p.err.Error())
	ex.mustRecord(step)
	ex.retryLeft(step.Name, at)
}

// parkedRetry is where the attempts of the step rec, recorded waiting for
// its next attempt, resume, and when that attempt is due. It stops the
// workflow when it must not start anything new (a cancel, the timeout), as
// a step that has yet to run would.
func (ex *execution) parkedRetry(rec *db.KeelSagaStep) (progress, time.Time) {
	var w retryWait
	if err := json.Unmarshal(rec.Output, &w); err != nil {
		panic(abort{failure{fmt.Errorf("%w: retry time of step %d (%s): %w", ErrDecode, rec.Seq, rec.Name, err)}})
	}
	ex.checkStop()
	return progress{attempts: int(rec.Attempts), err: errors.New(deref(rec.Error))}, w.RetryAt
}

// resumeRetry is where the attempts of the step rec, recorded waiting for
// its next attempt, resume, once that attempt is due: it parks the run
// again when resumed early.
func (ex *execution) resumeRetry(rec *db.KeelSagaStep) progress {
	p, at := ex.parkedRetry(rec)
	ex.retryLeft(rec.Name, at)
	return p
}

// retryLeft waits until at, when the next attempt of the step called name
// is due: parked, as a sleep's wait is, unless at (or the workflow
// deadline, if sooner) is at most holdMax away, when it waits in the
// process.
func (ex *execution) retryLeft(name string, at time.Time) {
	ex.checkStop()
	ex.sleepLeft("retry "+name, at)
}
