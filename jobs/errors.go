package jobs

import (
	"errors"
	"fmt"
	"time"
)

// Errors a caller can test for with errors.Is.
var (
	// ErrUnknownKind: no handler is registered for the job's kind. Insert
	// returns it when the client has workers and none for the kind; a worker
	// that claims such a job records it as the attempt's error and retries
	// (a newer deploy may know the kind) until the job is discarded.
	ErrUnknownKind = errors.New("keel jobs: unknown job kind")
	// ErrDuplicate: a non-final job holds the unique key. The error is a
	// *DuplicateError naming the job that holds it.
	ErrDuplicate = errors.New("keel jobs: a job with this unique key is already queued")
	// ErrInvalidOptions: insert options, a worker's options, a client's
	// configuration, a workflow, a filter or a queue name are not valid, or
	// the DBTX is nil; nothing was written. When a value is one Postgres
	// cannot store (see Limits in the package doc), the message names the
	// field and the limit it broke.
	ErrInvalidOptions = errors.New("keel jobs: invalid options")
	// ErrEncode: job args, or a handler's output, do not encode as JSON that
	// jsonb stores as it is; nothing was written. A refused output fails the
	// attempt (see RecordOutput).
	ErrEncode = errors.New("keel jobs: value does not encode")
	// ErrDecode: a job's stored args do not decode into its kind's Go type.
	// It is recorded as the attempt's error and the job is retried.
	ErrDecode = errors.New("keel jobs: job args do not decode")
	// ErrNotFound: no job has that id.
	ErrNotFound = errors.New("keel jobs: no such job")
	// ErrNotInJob: a handler helper was called with a context that does not
	// belong to a running job.
	ErrNotInJob = errors.New("keel jobs: context is not a running job's")
	// ErrJobNotRunning: a handler helper was called after the attempt ended
	// (it was rescued or cancelled elsewhere).
	ErrJobNotRunning = errors.New("keel jobs: the job's attempt is no longer running")
	// ErrJobRunning: JobDelete was asked to delete a running job. Cancel it
	// with JobCancel and delete it once it is final.
	ErrJobRunning = errors.New("keel jobs: the job is running")
	// ErrJobHasDependents: JobDelete was asked to delete a job that a pending
	// job depends on, which would then never run. Cancel it with JobCancel
	// instead: its dependents then run or are cancelled by their RunWhen.
	ErrJobHasDependents = errors.New("keel jobs: pending jobs depend on the job")
	// ErrCancelRequested is the cause of a running job's context when the job
	// was cancelled with Client.Cancel.
	ErrCancelRequested = errors.New("keel jobs: job cancelled")
	// ErrNoWorkers: Start was called on a client configured without workers.
	ErrNoWorkers = errors.New("keel jobs: client has no workers; it can only insert")
	// ErrStarted: Start was called twice.
	ErrStarted = errors.New("keel jobs: client already started")
)

// DuplicateError is returned when a unique key is already held by a job that
// is not final. errors.Is(err, ErrDuplicate) is true.
type DuplicateError struct {
	UniqueKey string
	// ExistingID is the id of the job holding the key.
	ExistingID int64
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("keel jobs: unique key %q is held by job %d", e.UniqueKey, e.ExistingID)
}

// Is makes errors.Is(err, ErrDuplicate) true.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// SnoozeError is returned by a handler (through Snooze) to run the job again
// after Duration without using up an attempt.
type SnoozeError struct {
	Duration time.Duration
}

func (e *SnoozeError) Error() string { return fmt.Sprintf("keel jobs: snoozed for %s", e.Duration) }

// JobSnooze returns an error that, returned by a handler, puts the job back to
// run again after d without counting the attempt. d ≤ 0 makes it available at
// once.
func JobSnooze(d time.Duration) error { return &SnoozeError{Duration: d} }

// CancelError is returned by a handler (through Cancel) to stop the job for
// good: it becomes cancelled and is not retried.
type CancelError struct {
	Err error
}

func (e *CancelError) Error() string {
	if e.Err == nil {
		return "keel jobs: cancelled by its handler"
	}
	return "keel jobs: cancelled by its handler: " + e.Err.Error()
}

func (e *CancelError) Unwrap() error { return e.Err }

// JobCancel returns an error that, returned by a handler, cancels the job: it
// is recorded with err and never retried.
func JobCancel(err error) error { return &CancelError{Err: err} }

// PanicError is the error recorded when a handler panics.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("keel jobs: handler panicked: %v", e.Value) }
