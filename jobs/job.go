package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
)

// JobArgs is the Go type of a job's arguments. Kind names the kind of job,
// picks its handler and must not change once jobs of it are queued. The value
// is stored as jsonb, so exported fields and json tags decide what is kept.
type JobArgs interface {
	Kind() string
}

// JobArgsWithInsertOpts is implemented by args that carry default insert
// options for their kind. Options given at insert time override them field by
// field.
type JobArgsWithInsertOpts interface {
	JobArgs
	InsertOpts() InsertOpts
}

// JobState is where a job is in its life; it is the Postgres enum
// keel.job_state.
type JobState string

// The states of a job. Completed, Cancelled and Discarded are final.
const (
	StatePending   JobState = "pending"   // waits for its dependencies
	StateScheduled JobState = "scheduled" // waits for its run-at time (or a snooze)
	StateAvailable JobState = "available" // ready to be claimed
	StateRunning   JobState = "running"   // claimed by a worker
	StateRetryable JobState = "retryable" // failed; runs again at its run-at time
	StateCompleted JobState = "completed" // its handler returned nil
	StateCancelled JobState = "cancelled" // cancelled by a handler, a caller or a failed dependency
	StateDiscarded JobState = "discarded" // failed its last attempt: the dead letter
)

// Final reports whether a job in this state never runs again on its own.
func (s JobState) Final() bool {
	return s == StateCompleted || s == StateCancelled || s == StateDiscarded
}

// RunWhen is the condition on a job's dependencies under which it runs once
// they are all final; it is the Postgres enum keel.job_run_when.
type RunWhen string

// Run conditions. The zero value means RunAfterSuccess.
const (
	// RunAfterSuccess runs the job when every dependency completed; when one
	// is cancelled or discarded the job is cancelled.
	RunAfterSuccess RunWhen = "success"
	// RunAfterFailure runs the job when at least one dependency was cancelled
	// or discarded, and cancels it when all completed.
	RunAfterFailure RunWhen = "failure"
	// RunAlways runs the job once every dependency is final, however it ended.
	RunAlways RunWhen = "always"
)

// AttemptError is the record of one failed attempt, kept in the job row's
// errors array.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
	// Stack is the goroutine stack when the handler panicked.
	Stack string `json:"stack,omitempty"`
}

// JobRow is a job as stored in keel.jobs, with its arguments still encoded.
type JobRow struct {
	ID          int64
	Kind        string
	Queue       string
	State       JobState
	Priority    int
	EncodedArgs json.RawMessage
	Metadata    json.RawMessage
	Tags        []string
	// Attempt counts attempts started; inside a handler it is the current
	// attempt, from 1.
	Attempt     int
	MaxAttempts int
	// Timeout is the job's own run timeout; 0 means its kind's.
	Timeout     time.Duration
	RunAt       time.Time
	CreatedAt   time.Time
	AttemptedAt time.Time // zero before the first attempt
	FinalizedAt time.Time // zero until the job is final
	Errors      []AttemptError
	Progress    int
	Output      json.RawMessage
	UniqueKey   string
	DependsOn   []int64
	RunWhen     RunWhen
	Workflow    string
	Task        string
	// CancelRequested is true once a cancel was requested for the job.
	CancelRequested bool

	// completed is set on a row its client runs: JobCompleteTx marks it.
	completed *completedTx
}

// Job is what a handler receives: the row and its decoded arguments.
type Job[T JobArgs] struct {
	*JobRow
	Args T
}

func rowFromDB(r *db.KeelJob) (*JobRow, error) {
	j := &JobRow{
		ID:              r.ID,
		Kind:            r.Kind,
		Queue:           r.Queue,
		State:           JobState(r.State),
		Priority:        int(r.Priority),
		EncodedArgs:     r.Args,
		Metadata:        r.Metadata,
		Tags:            r.Tags,
		Attempt:         int(r.Attempt),
		MaxAttempts:     int(r.MaxAttempts),
		Timeout:         time.Duration(r.TimeoutMs) * time.Millisecond,
		RunAt:           fromTS(r.RunAt),
		CreatedAt:       fromTS(r.CreatedAt),
		AttemptedAt:     fromTS(r.AttemptedAt),
		FinalizedAt:     fromTS(r.FinalizedAt),
		Progress:        int(r.Progress),
		Output:          r.Output,
		DependsOn:       r.DependsOn,
		RunWhen:         RunWhen(r.RunWhen),
		CancelRequested: r.CancelRequestedAt.Valid,
	}
	if r.UniqueKey != nil {
		j.UniqueKey = *r.UniqueKey
	}
	if r.Workflow != nil {
		j.Workflow = *r.Workflow
	}
	if r.Task != nil {
		j.Task = *r.Task
	}
	if len(r.Errors) > 2 { // "[]" needs no decoding
		if err := json.Unmarshal(r.Errors, &j.Errors); err != nil {
			return nil, fmt.Errorf("keel jobs: job %d: decoding its errors: %w", r.ID, err)
		}
	}
	return j, nil
}

func fromTS(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time
}

func ts(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: true}
}
