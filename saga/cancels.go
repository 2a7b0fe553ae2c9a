package saga

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/outage"
	"github.com/keelpg/keel/listener"
)

// channelCancel is notified, with the run's id, when a cancel is requested
// for a running run, so the process executing it cancels its running step
// rather than letting it run to its end. A lost notification (the listener
// not connected yet or away, PgBouncer in transaction mode) delays the
// cancel to the engine's next check, every Config.AwaitPollInterval, or to
// the run's next checkpoint if sooner.
const channelCancel = "keel_saga_cancel"

// cancels tracks the executions this engine runs, by run id, and cancels
// the steps of those whose cancel is notified or found on its check.
type cancels struct {
	listener *listener.Listener
	pool     *pgxpool.Pool
	interval time.Duration
	logger   *slog.Logger
	// outage follows the database for the check: one line per outage.
	outage *outage.Tracker

	mu      sync.Mutex
	running map[string]map[*execution]struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

func newCancels(l *listener.Listener, pool *pgxpool.Pool, interval time.Duration, logger *slog.Logger) *cancels {
	return &cancels{
		listener: l, pool: pool, interval: interval, logger: logger,
		outage: outage.NewTracker("saga cancel check", logger, nil), running: map[string]map[*execution]struct{}{},
	}
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
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.check(ctx)
		case runID := <-sub.C:
			if runID == listener.Reconnected {
				c.check(ctx)
				continue
			}
			c.cancel([]string{runID})
		}
	}
}

// check reads which of the runs executing here have a cancel requested,
// and cancels their steps.
func (c *cancels) check(ctx context.Context) {
	c.mu.Lock()
	ids := make([]string, 0, len(c.running))
	for id := range c.running {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	requested, err := db.New(c.pool).CancelsRequested(ctx, ids)
	if err != nil {
		if ctx.Err() == nil && !c.outage.Failed(err) {
			c.logger.WarnContext(ctx, "keel saga: checking for cancel requests", "error", err)
		}
		return
	}
	c.outage.Succeeded()
	c.cancel(requested)
}

func (c *cancels) cancel(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		for ex := range c.running[id] {
			ex.cancelSteps()
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
