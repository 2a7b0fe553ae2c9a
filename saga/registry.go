package saga

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
)

// Registry holds the workflows a process can run, by name and version.
// Build it before NewEngine; registering while an engine runs is safe.
type Registry struct {
	mu        sync.RWMutex
	workflows map[string]map[int]*workflow
}

// workflow is one registered version, with its types erased.
type workflow struct {
	name    string
	version int
	// run decodes the input, calls the function and encodes its output.
	run func(ctx Context, input json.RawMessage) (json.RawMessage, error)
	// checkInput encodes an input given to Start, so a wrong type fails
	// before anything is written.
	checkInput func(input any) (json.RawMessage, error)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{workflows: map[string]map[int]*workflow{}}
}

// Register registers fn as version of the workflow name. A run records the
// version it started with and only a process that registered that version
// runs it; bump the version when a change to fn would replay old histories
// differently, and keep the old version registered until its runs are done.
// It panics on a mistake in the program (an empty name, a version below 1, a
// nil fn, a duplicate); RegisterSafely returns the error instead.
func Register[In, Out any](r *Registry, name string, version int, fn func(ctx Context, in In) (Out, error)) {
	if err := RegisterSafely(r, name, version, fn); err != nil {
		panic(err)
	}
}

// RegisterSafely is Register returning an error (wrapping ErrInvalidOptions)
// instead of panicking.
func RegisterSafely[In, Out any](r *Registry, name string, version int, fn func(ctx Context, in In) (Out, error)) error {
	switch {
	case r == nil:
		return fmt.Errorf("%w: nil registry", ErrInvalidOptions)
	case fn == nil:
		return fmt.Errorf("%w: workflow %q: nil function", ErrInvalidOptions, name)
	}
	if err := checkRegistration(name, version); err != nil {
		return err
	}
	w := &workflow{
		name:    name,
		version: version,
		run: func(ctx Context, input json.RawMessage) (json.RawMessage, error) {
			var in In
			if err := json.Unmarshal(input, &in); err != nil {
				return nil, fmt.Errorf("%w: input of workflow %q: %w", ErrDecode, name, err)
			}
			out, err := fn(ctx, in)
			if err != nil {
				return nil, err
			}
			return encode(fmt.Sprintf("output of workflow %q", name), out)
		},
		checkInput: func(input any) (json.RawMessage, error) {
			in, ok := input.(In)
			if !ok {
				if p, isPtr := input.(*In); isPtr && p != nil {
					in, ok = *p, true
				}
			}
			if !ok {
				var zero In
				return nil, fmt.Errorf("%w: workflow %q takes %T, got %T", ErrInvalidOptions, name, zero, input)
			}
			return encode(fmt.Sprintf("input of workflow %q", name), in)
		},
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.workflows[name] == nil {
		r.workflows[name] = map[int]*workflow{}
	}
	if _, dup := r.workflows[name][version]; dup {
		return fmt.Errorf("%w: workflow %q version %d registered twice", ErrInvalidOptions, name, version)
	}
	r.workflows[name][version] = w
	return nil
}

// get returns the given version of name; version 0 means the newest.
func (r *Registry) get(name string, version int) (*workflow, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	versions := r.workflows[name]
	if len(versions) == 0 {
		return nil, fmt.Errorf("%w: %q is not registered", ErrUnknownWorkflow, name)
	}
	if version == 0 {
		for v := range versions {
			version = max(version, v)
		}
	}
	w := versions[version]
	if w == nil {
		return nil, fmt.Errorf("%w: %q has no version %d (registered: %v)", ErrUnknownWorkflow, name, version, sortedVersions(versions))
	}
	return w, nil
}

func sortedVersions(m map[int]*workflow) []int {
	vs := make([]int, 0, len(m))
	for v := range m {
		vs = append(vs, v)
	}
	sort.Ints(vs)
	return vs
}

// Context is what a workflow function receives: a context.Context that ends
// when the execution must stop (the process stops, the run is cancelled or
// times out), and the handle every workflow helper (Step, Sleep,
// AwaitSignal, StartChild …) takes. Pass it only to those helpers; give
// steps the context.Context their function receives.
type Context interface {
	context.Context
	// RunID is the id of the running run.
	RunID() string
	// Workflow and Version name the registered workflow being run.
	Workflow() string
	Version() int
	execution() *execution
}
