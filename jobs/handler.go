package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
)

type jobKey struct{}

// jobContext is what a running handler's context carries.
type jobContext struct {
	c   *Client
	row *JobRow

	mu sync.Mutex
	// unstored is why the last RecordOutput could not store its value; it
	// fails the attempt even when the handler returns nil.
	unstored error
}

func withJob(ctx context.Context, c *Client, row *JobRow) (context.Context, *jobContext) {
	jc := &jobContext{c: c, row: row}
	return context.WithValue(ctx, jobKey{}, jc), jc
}

func (jc *jobContext) setUnstored(err error) {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	jc.unstored = err
}

// outputError is the error of the last RecordOutput whose value could not
// be stored, or nil.
func (jc *jobContext) outputError() error {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	return jc.unstored
}

func fromContext(ctx context.Context) (*jobContext, error) {
	jc, ok := ctx.Value(jobKey{}).(*jobContext)
	if !ok {
		return nil, ErrNotInJob
	}
	return jc, nil
}

// RecordProgress records the running job's progress, 0 to 100, so people and
// tools can watch it in keel.jobs.progress. Call it with the handler's
// context.
func RecordProgress(ctx context.Context, percent int) error {
	jc, err := fromContext(ctx)
	if err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("%w: progress %d is not 0 to 100", ErrInvalidOptions, percent)
	}
	n, err := db.New(jc.c.pool).RecordProgress(context.WithoutCancel(ctx), db.RecordProgressParams{
		Progress: int16(percent), ID: jc.row.ID, Attempt: int32(jc.row.Attempt),
	})
	return recorded("progress", jc.row.ID, n, err)
}

// RecordOutput records v, encoded as JSON, as the running job's output. Jobs
// that depend on it read it with DependencyOutputs. A later call replaces an
// earlier one. Call it with the handler's context.
//
// A value jsonb cannot store as it is (see Limits in the package doc) is
// refused with ErrEncode, and unless a later call records a value that can
// be stored, the attempt fails with that error, recorded in the job's
// errors, even when the handler returns nil.
func RecordOutput(ctx context.Context, v any) error {
	jc, err := fromContext(ctx)
	if err != nil {
		return err
	}
	out, err := validate.Marshal("output", v)
	if err != nil {
		err = fmt.Errorf("%w: job %d: %w", ErrEncode, jc.row.ID, err)
		jc.setUnstored(err)
		return err
	}
	jc.setUnstored(nil)
	n, err := db.New(jc.c.pool).RecordOutput(context.WithoutCancel(ctx), db.RecordOutputParams{
		Output: out, ID: jc.row.ID, Attempt: int32(jc.row.Attempt),
	})
	return recorded("output", jc.row.ID, n, err)
}

func recorded(what string, id, rows int64, err error) error {
	if err != nil {
		return fmt.Errorf("keel jobs: recording %s of job %d: %w", what, id, err)
	}
	if rows == 0 {
		return fmt.Errorf("%w: job %d", ErrJobNotRunning, id)
	}
	return nil
}

// DependencyOutput is one dependency of a running job and what it recorded.
type DependencyOutput struct {
	ID    int64
	Kind  string
	Task  string // its name in the workflow, if it was inserted with one
	State JobState
	// Output is the value it recorded with RecordOutput; nil when none.
	Output json.RawMessage
}

// Decode decodes the dependency's output into v.
func (d DependencyOutput) Decode(v any) error {
	if d.Output == nil {
		return fmt.Errorf("keel jobs: job %d recorded no output", d.ID)
	}
	if err := json.Unmarshal(d.Output, v); err != nil {
		return fmt.Errorf("%w: output of job %d: %w", ErrDecode, d.ID, err)
	}
	return nil
}

// DependencyOutputs returns the running job's dependencies, in id order,
// with their outputs. Call it with the handler's context.
func DependencyOutputs(ctx context.Context) ([]DependencyOutput, error) {
	jc, err := fromContext(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := db.New(jc.c.pool).DependencyOutputs(ctx, jc.row.ID)
	if err != nil {
		return nil, fmt.Errorf("keel jobs: dependency outputs of job %d: %w", jc.row.ID, err)
	}
	out := make([]DependencyOutput, len(rows))
	for i, r := range rows {
		out[i] = DependencyOutput{ID: r.ID, Kind: r.Kind, State: JobState(r.State), Output: r.Output}
		if r.Task != nil {
			out[i].Task = *r.Task
		}
	}
	return out, nil
}
