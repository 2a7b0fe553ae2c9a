package saga

import (
	"errors"
	"fmt"
	"strings"
)

// Errors a caller can test for with errors.Is.
var (
	// ErrUnknownWorkflow: no workflow of that name (or version) is registered
	// in this process; nothing was written.
	ErrUnknownWorkflow = errors.New("keel saga: unknown workflow")
	// ErrInvalidOptions: a registration, an option or a configuration is not
	// valid; nothing was written.
	ErrInvalidOptions = errors.New("keel saga: invalid options")
	// ErrEncode: an input, output, signal or value does not encode as JSON;
	// nothing was written.
	ErrEncode = errors.New("keel saga: value does not encode")
	// ErrDecode: a stored value does not decode into the Go type asked for.
	ErrDecode = errors.New("keel saga: value does not decode")
	// ErrRunNotFound: no run has that id.
	ErrRunNotFound = errors.New("keel saga: no such run")
	// ErrRunFinished: the run is final (succeeded, failed or cancelled), so it
	// takes no signal and cannot be cancelled.
	ErrRunFinished = errors.New("keel saga: run already finished")
	// ErrRunNotFinished: Resume was asked for a run that is not failed or
	// cancelled.
	ErrRunNotFinished = errors.New("keel saga: run is not failed or cancelled")
	// ErrRunIDInUse: Start was given a run id that a run of another workflow
	// holds, or Fork a run id that any run holds; nothing was written.
	ErrRunIDInUse = errors.New("keel saga: run id in use")
	// ErrClosed: the engine was stopped; it writes nothing more.
	ErrClosed = errors.New("keel saga: engine stopped")
	// ErrCancelled: the run was cancelled. It is the error of a cancelled
	// run, and the cause of a running step's context once the run is
	// cancelled.
	ErrCancelled = errors.New("keel saga: run cancelled")
	// ErrTimeout: the run passed its workflow timeout.
	ErrTimeout = errors.New("keel saga: workflow timed out")
	// ErrSignalTimeout: AwaitSignal's timeout passed before a signal came.
	ErrSignalTimeout = errors.New("keel saga: no signal before the timeout")
	// ErrNondeterminism: a replay reached a different step than the history
	// recorded. The error is a *NondeterminismError.
	ErrNondeterminism = errors.New("keel saga: workflow replayed differently")
	// ErrCompensation: a compensation failed its last attempt; the run
	// failed with the compensations after it not run.
	ErrCompensation = errors.New("keel saga: compensation failed")
	// ErrNotInWorkflow: a workflow helper was called with a Context that is
	// not a running workflow's (or after its workflow returned).
	ErrNotInWorkflow = errors.New("keel saga: not in a running workflow")
)

// NondeterminismError says where a replay left the recorded history.
// errors.Is(err, ErrNondeterminism) is true.
type NondeterminismError struct {
	// Seq is the position in the history, from 1.
	Seq int
	// Recorded is the step the history holds at Seq ("kind name"); Got is
	// the step the workflow function reached there.
	Recorded, Got string
}

func (e *NondeterminismError) Error() string {
	return fmt.Sprintf("keel saga: nondeterministic replay at step %d: history recorded %q, workflow reached %q", e.Seq, e.Recorded, e.Got)
}

// Is makes errors.Is(err, ErrNondeterminism) true.
func (e *NondeterminismError) Is(target error) bool { return target == ErrNondeterminism }

// StepError is what a step returns once it failed its last attempt, live
// or replayed. Only its message survives replay: the original error's type
// is gone once it is read back from the history.
type StepError struct {
	Step     string
	Seq      int
	Attempts int
	Message  string
	// Err is the original error when the step failed in this execution;
	// nil when it was replayed.
	Err error
}

func (e *StepError) Error() string {
	attempts := "1 attempt"
	if e.Attempts != 1 {
		attempts = fmt.Sprintf("%d attempts", e.Attempts)
	}
	return fmt.Sprintf("keel saga: step %q (position %d) failed after %s: %s", e.Step, e.Seq, attempts, e.Message)
}

func (e *StepError) Unwrap() error { return e.Err }

// RunError is the error of a run that did not succeed. It unwraps to
// ErrCancelled, ErrTimeout, ErrCompensation or a *NondeterminismError by
// Kind.
type RunError struct {
	RunID  string
	Status Status
	// Kind says why the run did not succeed.
	Kind FailureKind
	// Message is the reason as stored in the run.
	Message string
	// Nondeterminism is set when Kind is nondeterminism.
	Nondeterminism *NondeterminismError
}

func (e *RunError) Error() string {
	return fmt.Sprintf("keel saga: run %s %s (%s): %s", e.RunID, e.Status, e.Kind, strings.TrimPrefix(e.Message, "keel saga: "))
}

func (e *RunError) Unwrap() error {
	switch e.Kind {
	case FailureCancelled:
		return ErrCancelled
	case FailureTimeout:
		return ErrTimeout
	case FailureCompensation:
		return ErrCompensation
	case FailureNondeterminism:
		if e.Nondeterminism != nil {
			return e.Nondeterminism
		}
		return ErrNondeterminism
	}
	return nil
}

// FailureKind says why a run did not succeed; it is stored in
// keel.saga_runs.error as "kind".
type FailureKind string

// The kinds of a run's failure.
const (
	// FailureWorkflow: the workflow function returned an error or panicked.
	FailureWorkflow FailureKind = "workflow"
	// FailureCancelled: the run was cancelled (Engine.Cancel).
	FailureCancelled FailureKind = "cancelled"
	// FailureTimeout: the run passed its StartOpts.Timeout.
	FailureTimeout FailureKind = "timeout"
	// FailureNondeterminism: a replay reached a step other than the
	// history's (RunError.Nondeterminism says which).
	FailureNondeterminism FailureKind = "nondeterminism"
	// FailureCompensation: a compensation failed its last attempt after the
	// run failed or was cancelled.
	FailureCompensation FailureKind = "compensation"
)

// storedError is the JSON of keel.saga_runs.error.
type storedError struct {
	Kind     FailureKind `json:"kind"`
	Message  string      `json:"message"`
	Seq      int         `json:"seq,omitempty"`
	Recorded string      `json:"recorded,omitempty"`
	Got      string      `json:"got,omitempty"`
}
