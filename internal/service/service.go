// Package service gives keel's long-running components one lifecycle, the
// one jobs.Client has: Start runs the component in the background and
// returns, Stop asks it to finish what it holds and waits for it, and
// StopAndCancel also cancels what it is doing.
//
// A component's loop takes two contexts. loop ends on Stop: the loop stops
// taking new work and returns once the work it holds is done. work ends on
// StopAndCancel (and when Stop's own context ends): the work in hand is
// abandoned, to be done again by whoever takes it next. A component that
// also offers a blocking Run(ctx) runs the same loop with ctx as both.
package service

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Runner runs one component's loop in the background. The zero value is
// ready; a Runner may be started again once stopped.
type Runner struct {
	mu       sync.Mutex
	stopLoop context.CancelFunc
	stopWork context.CancelFunc
	done     chan struct{}
	err      error
}

// ErrStarted is what Start returns while the loop runs; packages wrap it in
// their own sentinel.
var ErrStarted = errors.New("already started")

// Start runs run in the background and returns at once. ctx only scopes
// the start: the loop's contexts do not end with it. It returns ErrStarted
// while an earlier Start still runs.
func (r *Runner) Start(ctx context.Context, run func(loop, work context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return ErrStarted
	}
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	loop, stopLoop := context.WithCancel(work)
	done := make(chan struct{})
	r.stopLoop, r.stopWork, r.done, r.err = stopLoop, stopWork, done, nil
	go func() {
		defer close(done)
		err := run(loop, work)
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
	}()
	return nil
}

// Stop ends the loop and waits until it returned; when ctx ends first it
// cancels the work in hand too and returns ctx's error. It returns the
// loop's own error, if it had one. Stop on a Runner that is not running
// returns nil.
func (r *Runner) Stop(ctx context.Context) error { return r.stop(ctx, false) }

// StopAndCancel is Stop that also cancels the work in hand at once.
func (r *Runner) StopAndCancel(ctx context.Context) error { return r.stop(ctx, true) }

func (r *Runner) stop(ctx context.Context, cancelWork bool) error {
	r.mu.Lock()
	done, stopLoop, stopWork := r.done, r.stopLoop, r.stopWork
	r.mu.Unlock()
	if done == nil {
		return nil
	}
	stopLoop()
	if cancelWork {
		stopWork()
	}
	select {
	case <-done:
	case <-ctx.Done():
		stopWork()
		return ctx.Err()
	}
	stopWork()
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.err
	if r.done == done {
		r.done, r.err = nil, nil
	}
	return err
}

// stopGrace is how long a statement in flight may outlive its loop's stop.
const stopGrace = 2 * time.Second

// Statement returns the context for one statement (or one short
// transaction) of a background loop: it ends stopGrace after ctx does. A
// stop so lets the statement in flight finish — a statement cut off by a
// cancel costs its connection, which pgx then closes in the background,
// still counted as acquired — but does not wait on one that hangs.
func Statement(ctx context.Context) (context.Context, context.CancelFunc) {
	stmt, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(stopGrace, cancel) })
	return stmt, func() {
		stop()
		cancel()
	}
}
