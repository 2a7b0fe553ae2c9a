package saga

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// Step runs fn as the step called name and returns its result. Its output
// (as JSON) or its error, once its last attempt failed, is checkpointed
// before Step returns; when the run is replayed after a crash, a park or a
// restart, Step returns the recorded outcome without calling fn. A step whose
// process died before its checkpoint runs again: fn must tolerate running
// more than once (make it idempotent, or use TxStep). A failed attempt is
// retried as the step's StepOpts say; a wait before the next attempt longer
// than Config.StepParkAfter parks the run, and the replay goes on with the
// attempts where they were. A failed step returns a *StepError.
func Step[T any](wc Context, name string, fn func(ctx context.Context) (T, error), opts *StepOpts) (T, error) {
	return StepWithCompensation(wc, name, fn, nil, opts)
}

// StepWithCompensation is Step with undo, the step's compensation: when the
// run later fails, times out or is cancelled, the undos of its completed
// steps run in reverse order of the steps, each retried and checkpointed (so
// an undo, too, runs at least once and is not repeated once recorded).
func StepWithCompensation[T any](wc Context, name string, fn func(ctx context.Context) (T, error), undo func(ctx context.Context, out T) error, opts *StepOpts) (T, error) {
	ex := wc.execution()
	seq, rec := ex.nextStep(name, "step")
	var from progress
	switch {
	case rec == nil:
	case rec.Status == db.KeelSagaStepStatusWaiting:
		from = ex.resumeRetry(rec)
	default:
		out, err := replayed[T](rec)
		if err == nil && undo != nil {
			ex.registerUndo(seq, name, func(ctx context.Context) error { return undo(ctx, out) }, opts)
		}
		return out, err
	}
	out, err, stop := runStep(ex, seq, name, fn, ex.stepRetry(opts, true), from)
	if stop != nil {
		panic(abort{stop})
	}
	if err == nil && undo != nil {
		ex.registerUndo(seq, name, func(ctx context.Context) error { return undo(ctx, out) }, opts)
	}
	return out, err
}

func (ex *execution) registerUndo(seq int32, name string, undo func(context.Context) error, opts *StepOpts) {
	var policy retrying
	if opts != nil {
		policy = ex.retrying(opts.CompensationMaxAttempts, opts.CompensationRetryPolicy)
	} else {
		policy = ex.retrying(0, nil)
	}
	ex.addCompensation(compensation{seq: seq, name: name, retry: policy, undo: undo})
}

// replayed returns a recorded step's outcome.
func replayed[T any](rec *db.KeelSagaStep) (T, error) {
	var out T
	if rec.Status == db.KeelSagaStepStatusFailed {
		return out, &StepError{Step: rec.Name, Seq: int(rec.Seq), Attempts: int(rec.Attempts), Message: deref(rec.Error)}
	}
	if err := json.Unmarshal(rec.Output, &out); err != nil {
		return out, fmt.Errorf("%w: recorded output of step %d (%s) into %T: %w", ErrDecode, rec.Seq, rec.Name, out, err)
	}
	return out, nil
}

// runStep runs a step's attempts from from and checkpoints the outcome.
// With a policy that parks, it parks the run (unwinding the workflow) when
// the wait for the next attempt is long. stop is set when the workflow must
// not go on (fenced out, process stopping, a write failed).
func runStep[T any](ex *execution, seq int32, name string, fn func(ctx context.Context) (T, error), policy retrying, from progress) (out T, err error, stop error) {
	// A step resumed after a park keeps its first start: the checkpoint
	// that ends a waiting step leaves its started_at.
	p := db.CheckpointParams{Seq: seq, Name: name, Kind: "step", StartedAt: ts(ex.clock.now())}
	var encoded json.RawMessage
	end, stop := ex.runAttempts(p, policy, from, func(ctx context.Context, _ int) error {
		v, err := fn(ctx)
		if err != nil {
			return err
		}
		if encoded, err = encode("output of step "+name, v); err != nil {
			return permanent{err}
		}
		out = v
		return nil
	})
	if stop != nil {
		return out, nil, stop
	}
	p.Status, p.Output, p.Attempts = db.KeelSagaStepStatusCompleted, encoded, int32(end.attempts)
	if err = end.err; err != nil {
		msg := validate.ErrorText(err.Error())
		p.Status, p.Output, p.Error = db.KeelSagaStepStatusFailed, nil, &msg
		err = &StepError{Step: name, Seq: int(seq), Attempts: end.attempts, Message: msg, Err: err}
	}
	if cerr := ex.record(p); cerr != nil {
		return out, nil, cerr
	}
	return out, err, nil
}

// stepRetry is how a step retries; with park, a long wait for its next
// attempt parks the run. A wait of holdMax or less is never parked: it costs
// less held than parked.
func (ex *execution) stepRetry(opts *StepOpts, park bool) retrying {
	r := ex.retrying(0, nil)
	if opts != nil {
		r = ex.retrying(opts.MaxAttempts, opts.RetryPolicy)
	}
	if park {
		r.parkAfter = max(ex.e.cfg.StepParkAfter, holdMax)
	}
	return r
}

// retrying fills what a step's options leave unset from the Config.
func (ex *execution) retrying(maxAttempts int, policy keeltype.RetryPolicy) retrying {
	r := retrying{maxAttempts: maxAttempts, policy: policy}
	if r.maxAttempts <= 0 {
		r.maxAttempts = ex.e.cfg.StepMaxAttempts
	}
	if r.policy == nil {
		r.policy = ex.e.cfg.StepRetryPolicy
	}
	return r
}

// TxStep runs fn as a transactional step: fn's writes through tx and the
// step's checkpoint commit together, so its effect happens exactly once
// however often the run is replayed or its process dies. A failed attempt
// rolls back, and is retried as Step's are (a long wait parks the run). fn
// must not commit or roll back tx.
func TxStep[T any](wc Context, name string, fn func(ctx context.Context, tx pgx.Tx) (T, error), opts *StepOpts) (T, error) {
	ex := wc.execution()
	seq, rec := ex.nextStep(name, "tx")
	var from progress
	switch {
	case rec == nil:
	case rec.Status == db.KeelSagaStepStatusWaiting:
		from = ex.resumeRetry(rec)
	default:
		return replayed[T](rec)
	}
	p := db.CheckpointParams{Seq: seq, Name: name, Kind: "tx", StartedAt: ts(ex.clock.now())}
	var out T
	var cerr error // the checkpoint in an attempt's transaction failed
	end, stop := ex.runAttempts(p, ex.stepRetry(opts, true), from, func(ctx context.Context, attempt int) error {
		return pgx.BeginFunc(ctx, ex.e.pool, func(tx pgx.Tx) error {
			v, err := fn(ctx, tx)
			if err != nil {
				return err
			}
			encoded, err := encode("output of step "+name, v)
			if err != nil {
				return permanent{err}
			}
			done := p
			done.Status, done.Output, done.Attempts = db.KeelSagaStepStatusCompleted, encoded, int32(attempt)
			if err := ex.checkpoint(ctx, tx, done); err != nil {
				cerr = err
				return permanent{err}
			}
			out = v
			return nil
		})
	})
	switch {
	case cerr != nil:
		panic(abort{cerr})
	case stop != nil:
		panic(abort{stop})
	case end.err == nil:
		return out, nil
	}
	msg := validate.ErrorText(end.err.Error())
	p.Status, p.Error, p.Attempts = db.KeelSagaStepStatusFailed, &msg, int32(end.attempts)
	ex.mustRecord(p)
	return out, &StepError{Step: name, Seq: int(seq), Attempts: end.attempts, Message: msg, Err: end.err}
}

// Future is the pending result of StepAsync.
type Future[T any] struct {
	done chan struct{}
	out  T
	err  error
	stop error
}

// StepAsync starts fn as the step called name and returns at once, so
// several steps run in parallel (fan-out); Get collects each (fan-in). The
// step takes its history position when StepAsync is called, so a replay
// matches every parallel step to its own record whatever order they
// finished in. Call StepAsync and Get from the workflow function only. A
// wait that parks the run (Sleep, AwaitSignal, Child.Get) first lets the
// steps in flight finish and checkpoint.
//
// The step's retries wait in its goroutine, however long the wait: a step
// running beside others cannot park the run, so Config.StepParkAfter does
// not apply, and a crash restarts its attempts.
func StepAsync[T any](wc Context, name string, fn func(ctx context.Context) (T, error), opts *StepOpts) *Future[T] {
	ex := wc.execution()
	f := &Future[T]{done: make(chan struct{})}
	seq, rec := ex.nextStep(name, "step")
	var from progress
	switch {
	case rec == nil:
	case rec.Status == db.KeelSagaStepStatusWaiting:
		// Parked as a Step, which the workflow has since made a StepAsync of
		// (the same kind of step): the rest of the wait is spent here.
		var at time.Time
		from, at = ex.parkedRetry(rec)
		from.wait = max(at.Sub(ex.clock.now()), 0)
	default:
		f.out, f.err = replayed[T](rec)
		close(f.done)
		return f
	}
	ex.async.Add(1)
	go func() {
		defer ex.async.Done()
		defer close(f.done)
		f.out, f.err, f.stop = runStep(ex, seq, name, fn, ex.stepRetry(opts, false), from)
	}()
	return f
}

// Get waits for the step and returns its result.
// A step always ends (its context ends with the execution's), so Get never
// waits on a stopped execution for long.
func (f *Future[T]) Get(wc Context) (T, error) {
	<-f.done
	if f.stop != nil {
		panic(abort{f.stop})
	}
	return f.out, f.err
}
