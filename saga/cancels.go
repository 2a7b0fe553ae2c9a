package saga

import (
	"context"
	"sync"

	"github.com/keelpg/keel/listener"
)

// channelCancel is notified, with the run's id, when a cancel is requested
// for a running run, so the process executing it cancels its running step
// rather than letting it run to its end. Lost notifications (PgBouncer in
// transaction mode) only delay the cancel to the run's next checkpoint.
const channelCancel = "keel_saga_cancel"

// cancels tracks the executions this engine runs, by run id, and cancels
// the steps of those whose cancel is notified.
type cancels struct {
	listener *listener.Listener

	mu      sync.Mutex
	running map[string]map[*execution]struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

func newCancels(l *listener.Listener) *cancels {
	return &cancels{listener: l, running: map[string]map[*execution]struct{}{}}
}

// start listens for cancel notifications until stop.
func (c *cancels) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	c.stop, c.done = stop, make(chan struct{})
	sub := c.listener.Subscribe(channelCancel, 256)
	go func() {
		defer close(c.done)
		var wg sync.WaitGroup
		wg.Go(func() { _ = c.listener.Run(ctx) })
		c.route(ctx, sub)
		wg.Wait()
	}()
}

func (c *cancels) route(ctx context.Context, sub *listener.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case runID := <-sub.C:
			c.mu.Lock()
			for ex := range c.running[runID] {
				ex.cancelSteps()
			}
			c.mu.Unlock()
		}
	}
}

func (c *cancels) stopListening() {
	c.mu.Lock()
	stop, done := c.stop, c.done
	c.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// track registers ex while it runs; the returned func forgets it.
func (c *cancels) track(ex *execution) func() {
	id := ex.run.ID
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running[id] == nil {
		c.running[id] = map[*execution]struct{}{}
	}
	c.running[id][ex] = struct{}{}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.running[id], ex)
		if len(c.running[id]) == 0 {
			delete(c.running, id)
		}
	}
}
