package saga

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/notify"
)

// channelDone is notified with a run's id when the run finishes (see the
// FinishRun query).
const channelDone = "keel_saga_done"

// awaiter routes run-finished notifications to the Await calls of this
// engine. Its LISTEN connection is opened by the first Await.
type awaiter struct {
	pool   *pgxpool.Pool
	logger *slog.Logger

	mu       sync.Mutex
	started  bool
	closed   bool
	stop     context.CancelFunc
	done     chan struct{}
	watchers map[string]map[chan struct{}]struct{}
}

func newAwaiter(pool *pgxpool.Pool, logger *slog.Logger) *awaiter {
	return &awaiter{pool: pool, logger: logger, watchers: map[string]map[chan struct{}]struct{}{}}
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
		l := notify.NewListener(a.pool, a.logger)
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

func (a *awaiter) route(ctx context.Context, sub *notify.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case runID := <-sub.C:
			a.mu.Lock()
			if runID == notify.Reconnected {
				for _, cs := range a.watchers {
					signalAll(cs)
				}
			} else {
				signalAll(a.watchers[runID])
			}
			a.mu.Unlock()
		}
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
