package saga

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
)

// Sleep is a durable timer: SleepUntil now plus d, where now is the
// database's clock, read once, when the run first reaches the sleep.
func Sleep(wc Context, d time.Duration) {
	sleepUntil(wc, func(ex *execution) time.Time { return ex.clock.now().Add(d) })
}

// SleepUntil parks the run until t: its execution ends, holding no goroutine
// or worker, and a job scheduled just before t resumes it — in any process,
// across restarts — and sleeps the last few milliseconds in its process, so
// it goes on at t rather than a claim's latency later. A sleep of 40ms or
// less is slept in the process without parking. The wake time is
// checkpointed, so a replay sleeps only what is left. A cancel or the
// workflow timeout ends the sleep early.
func SleepUntil(wc Context, t time.Time) {
	sleepUntil(wc, func(*execution) time.Time { return t })
}

// sleepUntil records a sleep that has time left as waiting, with its wake
// time as output, and completes it when the run resumes at or after that
// time, so its finished_at says when it ended. A sleep recorded completed
// before its time (as keel did before) still sleeps what is left.
func sleepUntil(wc Context, wakeAt func(ex *execution) time.Time) {
	ex := wc.execution()
	seq, rec := ex.nextStep("sleep", "sleep")
	var at time.Time
	if rec != nil {
		if err := json.Unmarshal(rec.Output, &at); err != nil {
			panic(abort{failure{fmt.Errorf("%w: wake time of sleep %d: %w", ErrDecode, seq, err)}})
		}
	} else {
		at = wakeAt(ex)
	}
	if rec != nil && rec.Status != db.KeelSagaStepStatusWaiting {
		ex.sleepLeft("timer", at)
		return
	}
	out, err := encode(fmt.Sprintf("wake time of sleep %d", seq), at)
	if err != nil {
		panic(abort{failure{err}})
	}
	p := db.CheckpointParams{Seq: seq, Name: "sleep", Kind: "sleep", Status: db.KeelSagaStepStatusWaiting, Output: out}
	if rec == nil && ex.clock.now().Before(at) {
		ex.mustRecord(p)
	}
	ex.sleepLeft("timer", at)
	// The run goes on at once: what follows does not need the sleep's
	// completion, and a replay completes a sleep whose time has come.
	p.Status = db.KeelSagaStepStatusCompleted
	ex.recordInBackground(p)
}

// timerLead is how early a parked sleep's wake-up job is due: the claim,
// the history read and the replay that resume a run take a few
// milliseconds, so the job runs that much before the wake time and the run
// sleeps the rest in its process (see hold), resuming on time rather than
// that late. holdMax is the longest a run sleeps in its process rather
// than park: a wait this short costs less held than parked.
const (
	timerLead = 20 * time.Millisecond
	holdMax   = 2 * timerLead
)

// sleepLeft parks the run until at, for reason, unless at has come, or
// sleeps the rest in the process when at (or the workflow deadline, if
// sooner) is at most holdMax away.
func (ex *execution) sleepLeft(reason string, at time.Time) {
	if !ex.clock.now().Before(at) {
		return
	}
	ex.checkStop()
	wake := at
	if dl := ex.run.Deadline; dl.Valid && dl.Time.Before(wake) {
		wake = dl.Time
	}
	if wake.Sub(ex.clock.now()) > holdMax {
		ex.wait(reason, at, nil)
		return
	}
	ex.hold(wake)
	ex.checkStop() // the deadline, a stop
}

// hold sleeps in the process until at, on the database's clock, or until
// the execution stops or a cancel request reaches it.
func (ex *execution) hold(at time.Time) {
	t := time.NewTimer(at.Sub(ex.clock.now()))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ex.stepsCtx.Done(): // a stop or a cancel request
	}
}

// signalWait is the recorded state of a signal wait that has not ended.
type signalWait struct {
	Deadline time.Time `json:"deadline,omitzero"`
}

// AwaitSignal waits for the signal name and returns its value. A signal sent
// before the wait is kept and consumed here; otherwise the run parks (holding
// no worker) until one is sent or timeout passes, when it returns an error
// wrapping ErrSignalTimeout. timeout ≤ 0 waits for ever. The consumed value
// is checkpointed, so each wait consumes exactly one signal.
func AwaitSignal[T any](wc Context, name string, timeout time.Duration) (T, error) {
	var zero T
	ex := wc.execution()
	seq, rec := ex.nextStep(name, "signal")
	var state signalWait
	switch {
	case rec == nil:
		if timeout > 0 {
			state.Deadline = ex.clock.now().Add(timeout)
		}
	case rec.Status == db.KeelSagaStepStatusCompleted:
		return replayed[T](rec)
	case rec.Status == db.KeelSagaStepStatusFailed:
		return zero, fmt.Errorf("%w: %q", ErrSignalTimeout, name)
	default:
		if err := json.Unmarshal(rec.Output, &state); err != nil {
			panic(abort{failure{fmt.Errorf("%w: state of signal wait %d: %w", ErrDecode, seq, err)}})
		}
		ex.checkStop()
	}
	if v, ok := ex.takeSignal(seq, name); ok {
		return decodeSignal[T](name, v)
	}
	var value json.RawMessage
	timedOut := false
	ex.wait("signal "+name, state.Deadline, func(tx pgx.Tx) (bool, error) {
		q := db.New(tx)
		v, err := q.ConsumeSignal(ex.ctx, db.ConsumeSignalParams{RunID: ex.run.ID, Name: name, Seq: ptr(seq)})
		p := db.CheckpointParams{Seq: seq, Name: name, Kind: "signal", Status: db.KeelSagaStepStatusCompleted}
		switch {
		case err == nil:
			value, p.Output = v, v
		case !errors.Is(err, pgx.ErrNoRows):
			return false, fmt.Errorf("keel saga: consuming signal %q of run %s: %w", name, ex.run.ID, err)
		case !state.Deadline.IsZero() && !ex.clock.now().Before(state.Deadline):
			timedOut = true
			p.Status, p.Error = db.KeelSagaStepStatusFailed, ptr("no signal before the timeout")
		case rec == nil:
			p.Status = db.KeelSagaStepStatusWaiting
			p.Output, _ = json.Marshal(state) // a time always encodes
			return false, ex.checkpoint(ex.ctx, tx, p)
		default:
			return false, nil
		}
		return true, ex.checkpoint(ex.ctx, tx, p)
	})
	if timedOut {
		return zero, fmt.Errorf("%w: %q", ErrSignalTimeout, name)
	}
	return decodeSignal[T](name, value)
}

func decodeSignal[T any](name string, value json.RawMessage) (T, error) {
	var out T
	if err := json.Unmarshal(value, &out); err != nil {
		return out, fmt.Errorf("%w: signal %q into %T: %w", ErrDecode, name, out, err)
	}
	return out, nil
}

// takeSignal is a signal wait's quick path: when the signal is there, one
// statement consumes it and records the wait (TakeSignal) — no
// transaction of its own, as the wait's park decision needs. Steps in
// flight are checkpointed first, as before any wait.
func (ex *execution) takeSignal(seq int32, name string) (json.RawMessage, bool) {
	ex.async.Wait()
	if err := ex.backgroundErr(); err != nil {
		panic(abort{err})
	}
	v, err := db.New(ex.e.pool).TakeSignal(ex.ctx, db.TakeSignalParams{
		RunID: ex.run.ID, Epoch: ex.run.Epoch, Name: name, Seq: seq, Owner: ptr(ex.e.jobs.ID()),
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, false
	case err != nil:
		panic(abort{fmt.Errorf("keel saga: taking signal %q of run %s: %w", name, ex.run.ID, err)})
	}
	return v, true
}

// SetValue publishes v under name for callers to read with
// Engine.GetValue (progress, a status, an intermediate result). It is a
// step: replays do not publish again.
func SetValue(wc Context, name string, v any) error {
	ex := wc.execution()
	seq, rec := ex.nextStep(name, "value")
	if rec != nil {
		return nil
	}
	out, err := encode(fmt.Sprintf("value %q", name), v)
	if err != nil {
		return err
	}
	ex.mustRecord(db.CheckpointParams{Seq: seq, Name: name, Kind: "value", Status: db.KeelSagaStepStatusCompleted, Output: out, Publish: true})
	return nil
}
