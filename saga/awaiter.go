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

// channelDone is notified, debounced, when runs finish; the payload is a
// token of the engine that ended them.
const channelDone = "keel_saga_done"

// awaiter routes run-finished notifications to the Await calls of this
// engine: on each notification it asks, in one query, which of the awaited
// runs are final, and wakes their Awaits. Its listener (the process's shared
// one when the engine's jobs.Config has it) is run from the first Await.
type awaiter struct {
	pool     *pgxpool.Pool
	listener *listener.Listener
	logger   *slog.Logger
	// self is the payload of the engine's own notifications, which it
	// skips: their runs were delivered as they ended.
	self string
	// outage follows the database for the awaiter and every Await.
	outage *outage.Tracker

	mu       sync.Mutex
	started  bool
	closed   bool
	stop     context.CancelFunc
	done     chan struct{}
	watchers map[string]map[chan *Run]struct{}
	// live holds the runs executing here since this engine started them
	// (see Engine.handOff): their end is delivered here as it commits, or,
	// when the execution stops short of it, their Awaits are told to read.
	live map[string]struct{}
}

func newAwaiter(pool *pgxpool.Pool, l *listener.Listener, logger *slog.Logger, self string) *awaiter {
	if l == nil {
		l = listener.New(pool, logger)
	}
	return &awaiter{
		pool: pool, listener: l, logger: logger, self: self, outage: outage.NewTracker("saga await", logger, nil),
		watchers: map[string]map[chan *Run]struct{}{}, live: map[string]struct{}{},
	}
}

// watch returns a channel that receives the run once it finished, or nil
// when it may have (the run is to be read again). live reports that the run
// is executing here since its start: it has not ended, and the channel
// hears of it when it does or when its execution stops short of it.
func (a *awaiter) watch(runID string) (c chan *Run, live bool) {
	c = make(chan *Run, 1)
	a.mu.Lock()
	defer a.mu.Unlock()
	_, live = a.live[runID]
	if a.watchers[runID] == nil {
		a.watchers[runID] = map[chan *Run]struct{}{}
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
	return c, live
}

// setLive records that a run this engine started executes here from its
// start.
func (a *awaiter) setLive(runID string) {
	a.mu.Lock()
	a.live[runID] = struct{}{}
	a.mu.Unlock()
}

// endLive records that the execution of a live run stopped: the Awaits of a
// run it did not end (it parked, was fenced out, failed or the process
// stops) read it again.
func (a *awaiter) endLive(runID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.live[runID]; ok {
		delete(a.live, runID)
		sendAll(a.watchers[runID], nil)
	}
}

func (a *awaiter) unwatch(runID string, c chan *Run) {
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
			if len(ids) == 0 || payload == a.self {
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
			runs := make([]*Run, len(finished))
			for i := range finished {
				runs[i] = runFromDB(&finished[i])
			}
			a.deliver(runs)
		}
	}
}

// signal tells the awaits of ids to read their runs again.
func (a *awaiter) signal(ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		sendAll(a.watchers[id], nil)
	}
}

// deliver hands finished runs to their awaits: from a notification's read,
// or at once from the group commit that ended them in this process.
func (a *awaiter) deliver(runs []*Run) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range runs {
		delete(a.live, r.ID)
		sendAll(a.watchers[r.ID], r)
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

// sendAll sends r to each channel, replacing what it holds unread: a
// finished run over a request to read again.
func sendAll(cs map[chan *Run]struct{}, r *Run) {
	for c := range cs {
		select {
		case c <- r:
		default:
			if r != nil {
				select {
				case <-c:
				default:
				}
				select {
				case c <- r:
				default:
				}
			}
		}
	}
}
