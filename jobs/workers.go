package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keelpg/keel/keeltype"
)

// WorkerOpts configures the handler of one kind. The zero value takes the
// client's defaults.
type WorkerOpts struct {
	// Timeout bounds each attempt (the handler's context gets a deadline). A
	// job's own InsertOpts.Timeout takes precedence. 0 means
	// Config.JobTimeout; a negative value means no timeout.
	Timeout time.Duration
	// RetryPolicy decides when a failed attempt runs again. nil means
	// Config.RetryPolicy.
	RetryPolicy keeltype.RetryPolicy
	// CompletesJob says the handler completes its own job when it
	// succeeds — with JobCompleteTx, or a statement of its own that sets
	// the job completed where its attempt is still running — so that the
	// completion commits with the handler's writes. The client then writes
	// no completion after a nil return. A job the handler left running is
	// rescued once its heartbeat times out, and runs again.
	CompletesJob bool
}

// Workers holds the handlers a client runs, one per kind. Build it with
// NewWorkers and AddWorker before NewClient; it is not safe to add workers
// once a client uses it.
type Workers struct {
	kinds map[string]*worker
}

type worker struct {
	kind string
	opts WorkerOpts
	// work decodes the row's args and calls the typed handler.
	work func(ctx context.Context, row *JobRow) error
}

// NewWorkers returns an empty set of handlers.
func NewWorkers() *Workers { return &Workers{kinds: map[string]*worker{}} }

// AddWorker registers handle as the handler of T's kind. It panics when the
// kind is empty or already registered, or the options are invalid — mistakes
// in the program, found when it starts. Use AddWorkerSafely to get an error.
func AddWorker[T JobArgs](w *Workers, handle func(ctx context.Context, job *Job[T]) error, opts *WorkerOpts) {
	if err := AddWorkerSafely(w, handle, opts); err != nil {
		panic(err)
	}
}

// AddWorkerSafely is AddWorker returning an error (wrapping
// ErrInvalidOptions) instead of panicking.
func AddWorkerSafely[T JobArgs](w *Workers, handle func(ctx context.Context, job *Job[T]) error, opts *WorkerOpts) error {
	var zero T
	kind := zero.Kind()
	if err := checkKind(kind); err != nil {
		return fmt.Errorf("%w: %T: %w", ErrInvalidOptions, zero, err)
	}
	if handle == nil {
		return fmt.Errorf("%w: nil handler for kind %q", ErrInvalidOptions, kind)
	}
	if _, dup := w.kinds[kind]; dup {
		return fmt.Errorf("%w: kind %q registered twice", ErrInvalidOptions, kind)
	}
	var o WorkerOpts
	if opts != nil {
		o = *opts
	}
	w.kinds[kind] = &worker{
		kind: kind,
		opts: o,
		work: func(ctx context.Context, row *JobRow) error {
			var args T
			if err := json.Unmarshal(row.EncodedArgs, &args); err != nil {
				return fmt.Errorf("%w: kind %q: %w", ErrDecode, kind, err)
			}
			return handle(ctx, &Job[T]{JobRow: row, Args: args})
		},
	}
	return nil
}
