package saga

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/outage"
	"github.com/keelpg/keel/listener"
)

// channelDone is notified, debounced and without a payload, when runs
// finish.
const channelDone = "keel_saga_done"

// awaiter routes run-finished notifications to the Await calls of this
// engine: on each notification it asks, in one query, which of the awaited
// runs are final, and wakes their Awaits. Its listener (the process's shared
// one when the engine's jobs.Config has it) is run from the first Await.
type awaiter struct {
	pool     *pgxpool.Pool
	listener *listener.Listener
	logger   *slog.Logger
	// outage follows the database for the awaiter and every Await.
	outage *outage.Tracker

	mu       sync.Mutex
	started  bool
	closed   bool
	stop     context.CancelFunc
	done     chan struct{}
	watchers map[string]map[chan struct{}]struct{}
}

func newAwaiter(pool *pgxpool.Pool, l *listener.Listener, logger *slog.Logger) *awaiter {
	if l == nil {
		l = listener.New(pool, logger)
	}
	return &awaiter{
		pool: pool, listener: l, logger: logger, outage: outage.NewTracker("saga await", logger, nil),
		watchers: map[string]map[chan struct{}]struct{}{},
	}
}

// watch returns a channel that receives when runID may have finished.
func (a *awaiter) watch(runID string) chan struct{} {
	c := make(chan struct{}, 1)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.watchers[runID] == nil {
		a.watchers[runID] = map[chan struct{}]struct{}{}
	}
	a.watchers[runID][c] = struct{}{}
	if !a.started && !a.closed {
		a.started = true
		ctx, stop := context.WithCancel(context.Background())
		a.stop, a.done = stop, make(chan struct{})
		l := a.listener
		sub := l.Subscribe(channelDone, 256)
		go func() {
			defer close(a.done)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = l.Run(ctx)
			}()
			a.route(ctx, sub)
			wg.Wait()
		}()
	}
	return c
}

func (a *awaiter) unwatch(runID string, c chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.watchers[runID], c)
	if len(a.watchers[runID]) == 0 {
		delete(a.watchers, runID)
	}
}

func (a *awaiter) route(ctx context.Context, sub *listener.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case payload := <-sub.C:
			a.mu.Lock()
			ids := make([]string, 0, len(a.watchers))
			for id := range a.watchers {
				ids = append(ids, id)
			}
			a.mu.Unlock()
			if len(ids) == 0 {
				continue
			}
			if payload == listener.Reconnected {
				a.signal(ids)
				continue
			}
			finished, err := db.New(a.pool).FinishedRuns(ctx, ids)
			if err != nil {
				if !a.outage.Failed(err) {
					a.logger.WarnContext(ctx, "keel saga: reading finished runs; awaits fall back to polling", "error", err)
				}
				continue
			}
			a.outage.Succeeded()
			a.signal(finished)
		}
	}
}

func (a *awaiter) signal(ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		signalAll(a.watchers[id])
	}
}

// close stops listening; Await keeps working by polling.
func (a *awaiter) close() {
	a.mu.Lock()
	a.closed = true
	stop, done := a.stop, a.done
	a.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

func signalAll(cs map[chan struct{}]struct{}) {
	for c := range cs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}
