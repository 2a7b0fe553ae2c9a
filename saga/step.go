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
	"github.com/keelpg/keel/keeltype"
)

// Step runs fn as the step called name and returns its result. Its output
// (as JSON) or its error, once its last attempt failed, is checkpointed
// before Step returns; when the run is replayed after a crash, a park or a
// restart, Step returns the recorded outcome without calling fn. A step whose
// process died before its checkpoint runs again: fn must tolerate running
// more than once (make it idempotent, or use TxStep). A failed step returns a
// *StepError.
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
	if rec != nil {
		out, err := replayed[T](rec)
		if err == nil && undo != nil {
			ex.registerUndo(seq, name, func(ctx context.Context) error { return undo(ctx, out) }, opts)
		}
		return out, err
	}
	out, err, stop := runStep(ex, seq, name, fn, opts)
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

// runStep runs a step's attempts and checkpoints the outcome. stop is set
// when the workflow must not go on (fenced out, process stopping, a write
// failed).
func runStep[T any](ex *execution, seq int32, name string, fn func(ctx context.Context) (T, error), opts *StepOpts) (out T, err error, stop error) {
	policy := ex.stepRetry(opts)
	started := ts(ex.clock.now())
	ctx, cancel, end := ex.stepContext(name)
	defer cancel()
	var encoded json.RawMessage
	attempts, err := retry(ctx, policy, func(ctx context.Context) error {
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
	end(keeltype.Outcome{Err: err})
	if stop := ex.stepStop(); stop != nil {
		return out, nil, stop
	}
	p := db.CheckpointParams{Seq: seq, Name: name, Kind: "step", Status: db.KeelSagaStepStatusCompleted, Output: encoded, Attempts: int32(attempts), StartedAt: started}
	if err != nil {
		msg := validate.ErrorText(err.Error())
		p.Status, p.Output, p.Error = db.KeelSagaStepStatusFailed, nil, &msg
		err = &StepError{Step: name, Seq: int(seq), Attempts: attempts, Message: msg, Err: err}
	}
	if cerr := ex.checkpoint(ex.ctx, ex.e.pool, p); cerr != nil {
		return out, nil, cerr
	}
	return out, err, nil
}

func (ex *execution) stepRetry(opts *StepOpts) retrying {
	if opts == nil {
		return ex.retrying(0, nil)
	}
	return ex.retrying(opts.MaxAttempts, opts.RetryPolicy)
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

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// retry calls fn until it succeeds, fails permanently, uses up the policy's
// attempts or ctx ends, and returns the attempts made and the last error.
func retry(ctx context.Context, policy retrying, fn func(ctx context.Context) error) (int, error) {
	for attempt := 1; ; attempt++ {
		err := callSafely(ctx, fn)
		if err == nil {
			return attempt, nil
		}
		if _, ok := err.(permanent); ok || attempt >= policy.maxAttempts || ctx.Err() != nil {
			return attempt, err
		}
		t := time.NewTimer(max(policy.policy.NextRetry(attempt, err), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, err
		case <-t.C:
		}
	}
}

func callSafely(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("keel saga: step panicked: %v\n%s", v, debug.Stack())
		}
	}()
	return fn(ctx)
}

// TxStep runs fn as a transactional step: fn's writes through tx and the
// step's checkpoint commit together, so its effect happens exactly once
// however often the run is replayed or its process dies. A failed attempt
// rolls back. fn must not commit or roll back tx.
func TxStep[T any](wc Context, name string, fn func(ctx context.Context, tx pgx.Tx) (T, error), opts *StepOpts) (T, error) {
	ex := wc.execution()
	seq, rec := ex.nextStep(name, "tx")
	if rec != nil {
		return replayed[T](rec)
	}
	policy := ex.stepRetry(opts)
	started := ts(ex.clock.now())
	ctx, cancel, end := ex.stepContext(name)
	defer cancel()
	var out T
	var stop error
	attempts, err := retry(ctx, policy, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, ex.e.pool, func(tx pgx.Tx) error {
			v, err := fn(ctx, tx)
			if err != nil {
				return err
			}
			encoded, err := encode("output of step "+name, v)
			if err != nil {
				return permanent{err}
			}
			err = ex.checkpoint(ctx, tx, db.CheckpointParams{
				Seq: seq, Name: name, Kind: "tx", Status: db.KeelSagaStepStatusCompleted,
				Output: encoded, StartedAt: started,
			})
			if err != nil {
				stop = err
				return permanent{err}
			}
			out = v
			return nil
		})
	})
	end(keeltype.Outcome{Err: errors.Join(err, stop)})
	switch {
	case stop != nil:
		panic(abort{stop})
	case ex.stepStop() != nil:
		panic(abort{ex.stepStop()})
	case err == nil:
		return out, nil
	}
	msg := validate.ErrorText(err.Error())
	ex.mustCheckpoint(ex.e.pool, db.CheckpointParams{
		Seq: seq, Name: name, Kind: "tx", Status: db.KeelSagaStepStatusFailed,
		Error: &msg, Attempts: int32(attempts), StartedAt: started,
	})
	return out, &StepError{Step: name, Seq: int(seq), Attempts: attempts, Message: msg, Err: err}
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
func StepAsync[T any](wc Context, name string, fn func(ctx context.Context) (T, error), opts *StepOpts) *Future[T] {
	ex := wc.execution()
	f := &Future[T]{done: make(chan struct{})}
	seq, rec := ex.nextStep(name, "step")
	if rec != nil {
		f.out, f.err = replayed[T](rec)
		close(f.done)
		return f
	}
	ex.async.Add(1)
	go func() {
		defer ex.async.Done()
		defer close(f.done)
		f.out, f.err, f.stop = runStep(ex, seq, name, fn, opts)
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
