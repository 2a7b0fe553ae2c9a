// Package hooktest is a keeltype.Hook that records what it is told, for
// keel's own tests of what each package reports.
package hooktest

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/keelpg/keel/keeltype"
)

// Ended is an operation that ended, with its outcome.
type Ended struct {
	Op      keeltype.Operation
	Outcome keeltype.Outcome
}

// Recorder is a keeltype.Hook that keeps every operation that ended and
// every measurement. It is safe for concurrent use.
type Recorder struct {
	// Inject are the entries Start puts in the Carrier of every write, as a
	// tracer puts its trace context there. Set it before the Recorder is
	// used.
	Inject map[string]string

	mu       sync.Mutex
	started  []keeltype.Operation
	ended    []Ended
	measured []keeltype.Measurement
}

type carriedKey struct{}

// Start implements keeltype.Hook. It fills a write's Carrier with Inject,
// and keeps a copy of the Carrier with the operation. The context it
// returns carries a mark that Carried reports on.
func (r *Recorder) Start(ctx context.Context, op keeltype.Operation) (context.Context, func(keeltype.Outcome)) {
	switch op.Kind {
	case keeltype.OpJobInsert, keeltype.OpOutboxEnqueue, keeltype.OpEventsAppend:
		maps.Copy(op.Carrier, r.Inject)
	}
	op.Carrier = maps.Clone(op.Carrier)
	r.mu.Lock()
	r.started = append(r.started, op)
	r.mu.Unlock()
	ctx = context.WithValue(ctx, carriedKey{}, op)
	return ctx, func(o keeltype.Outcome) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ended = append(r.ended, Ended{Op: op, Outcome: o})
	}
}

// Measure implements keeltype.Hook.
func (r *Recorder) Measure(_ context.Context, m keeltype.Measurement) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.measured = append(r.measured, m)
}

// Carried reports whether ctx was made by Start for an operation of kind.
func Carried(ctx context.Context, kind keeltype.OperationKind) bool {
	op, ok := ctx.Value(carriedKey{}).(keeltype.Operation)
	return ok && op.Kind == kind
}

// Started returns the operations of kind that started, in order.
func (r *Recorder) Started(kind keeltype.OperationKind) []keeltype.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []keeltype.Operation
	for _, op := range r.started {
		if op.Kind == kind {
			out = append(out, op)
		}
	}
	return out
}

// Ended returns the operations of kind that ended, in order.
func (r *Recorder) Ended(kind keeltype.OperationKind) []Ended {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Ended
	for _, e := range r.ended {
		if e.Op.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// Measured returns the measurements of kind, in order.
func (r *Recorder) Measured(kind keeltype.MeasurementKind) []keeltype.Measurement {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(r.measured), func(m keeltype.Measurement) bool { return m.Kind != kind })
}

// Outages returns the outages measured, in order.
func (r *Recorder) Outages() []keeltype.Outage {
	var out []keeltype.Outage
	for _, m := range r.Measured(keeltype.MeasureOutage) {
		out = append(out, *m.Outage)
	}
	return out
}
