// Package listener holds the one LISTEN connection a process's keel
// components share.
//
// A [Listener] takes one connection out of the pool while any component runs
// it, LISTENs on every channel that has a subscriber and fans notifications
// out to them. Once a channel is listened on a connection — the first one,
// one made again after a lost connection, or a channel newly subscribed — its
// subscribers receive [Reconnected], since notifications sent before were
// not delivered to them: a component that looked for work before its
// Listener listened looks again. A keel.Client makes one and hands it to every component it runs;
// components used alone open their own when their config names none.
//
// Notifications only wake consumers early: every keel consumer also polls,
// so a lost connection delays work and never loses it (PgBouncer in
// transaction mode delivers none; point the Listener's pool at the server).
package listener

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/outage"
)

// LISTEN and UNLISTEN take the channel as an identifier, which sqlc cannot
// bind as a parameter; %s is filled with pgx.Identifier.Sanitize.
const (
	listenStmt   = "LISTEN %s"
	unlistenStmt = "UNLISTEN %s"
)

// Reconnected is the payload a subscriber receives once its channel is
// listened on a new connection: when the Listener first listens, and after
// it lost and re-made its connection. Anything sent before may have been
// missed.
const Reconnected = "\x00reconnected"

// Subscription receives the payloads of one channel. C is buffered; when a
// subscriber falls behind, further payloads are dropped (it polls anyway).
type Subscription struct {
	C       <-chan string
	c       chan string
	channel string
	l       *Listener
}

// Close stops the subscription. It is safe to call more than once.
func (s *Subscription) Close() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if subs := s.l.subs[s.channel]; subs != nil {
		if _, ok := subs[s]; ok {
			delete(subs, s)
			if len(subs) == 0 {
				delete(s.l.subs, s.channel)
			}
			s.l.poke()
		}
	}
}

// Listener holds the process's one LISTEN connection. Several components may
// share one: each calls Run, and the connection lives while any Run does.
type Listener struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	outage *outage.Tracker

	mu        sync.Mutex
	subs      map[string]map[*Subscription]struct{}
	interrupt context.CancelFunc // cancels the current wait, so listens are re-synced

	runMu    sync.Mutex
	runners  int                // Run calls whose context is live
	stopLoop context.CancelFunc // ends the connection's loop
	loopDone chan struct{}      // closed when that loop has returned
}

// New returns a Listener on the pool. Run must be called for it to
// receive anything.
func New(pool *pgxpool.Pool, logger *slog.Logger) *Listener {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Listener{
		pool: pool, logger: logger, outage: outage.NewTracker("listener", logger, nil),
		subs: map[string]map[*Subscription]struct{}{},
	}
}

// Subscribe returns a subscription to channel with a buffer of size payloads.
func (l *Listener) Subscribe(channel string, size int) *Subscription {
	c := make(chan string, max(size, 1))
	s := &Subscription{C: c, c: c, channel: channel, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subs[channel] == nil {
		l.subs[channel] = map[*Subscription]struct{}{}
	}
	l.subs[channel][s] = struct{}{}
	l.poke()
	return s
}

// poke makes Run re-sync its LISTENs. l.mu must be held.
func (l *Listener) poke() {
	if l.interrupt != nil {
		l.interrupt()
	}
}

// Run keeps the connection open until ctx ends, reconnecting with backoff.
// Any number of components may call Run on one Listener: the first opens the
// connection, the others share it, and it closes when the last of their
// contexts ends; that last Run returns once the connection is closed.
func (l *Listener) Run(ctx context.Context) error {
	l.runMu.Lock()
	if l.runners == 0 {
		if l.loopDone != nil {
			<-l.loopDone
		}
		loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		l.stopLoop, l.loopDone = stop, done
		go func() {
			defer close(done)
			l.loop(loopCtx)
		}()
	}
	l.runners++
	l.runMu.Unlock()

	<-ctx.Done()

	l.runMu.Lock()
	l.runners--
	last := l.runners == 0
	if last {
		l.stopLoop()
	}
	done := l.loopDone
	l.runMu.Unlock()
	if last {
		<-done
	}
	return nil
}

// loop holds the connection until ctx ends, reconnecting with a capped
// exponential backoff that starts again from its minimum once a connection
// listens. An outage is logged once (by the tracker); other errors each time.
func (l *Listener) loop(ctx context.Context) {
	backoff := outage.Backoff{Min: 100 * time.Millisecond}
	listening := func() {
		backoff.Reset()
		l.outage.Succeeded()
	}
	for {
		err := l.session(ctx, listening)
		if ctx.Err() != nil {
			return
		}
		if !l.outage.Failed(err) {
			l.logger.WarnContext(ctx, "keel: listen connection lost; reconnecting", "error", err)
		}
		if backoff.Wait(ctx) != nil {
			return
		}
	}
}

// session runs one connection's life: LISTEN, wait, dispatch. It calls
// listening once the connection listens on every subscribed channel.
func (l *Listener) session(ctx context.Context, listening func()) error {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection carries LISTEN state; never hand it back to the pool.
	defer func() { _ = conn.Hijack().Close(context.WithoutCancel(ctx)) }()
	listens := map[string]bool{}
	first := true
	for {
		l.mu.Lock()
		want := make(map[string]bool, len(l.subs))
		for ch := range l.subs {
			want[ch] = true
		}
		waitCtx, cancel := context.WithCancel(ctx)
		l.interrupt = cancel
		l.mu.Unlock()

		added, err := syncListens(ctx, conn.Conn(), listens, want)
		if err != nil {
			cancel()
			return err
		}
		for _, ch := range added {
			l.deliver(ch, Reconnected)
		}
		if first {
			first = false
			listening()
		}
		n, err := conn.Conn().WaitForNotification(waitCtx)
		interrupted := waitCtx.Err() != nil
		l.mu.Lock()
		l.interrupt = nil
		l.mu.Unlock()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if interrupted && !conn.Conn().IsClosed() {
				continue // interrupted to re-sync the LISTENs
			}
			return err
		}
		l.deliver(n.Channel, n.Payload)
	}
}

// syncListens makes the connection listen on exactly the wanted channels and
// returns the channels it began to listen on.
func syncListens(ctx context.Context, conn *pgx.Conn, listening, want map[string]bool) ([]string, error) {
	var added []string
	for ch := range want {
		if !listening[ch] {
			if _, err := conn.Exec(ctx, fmtIdent(listenStmt, ch)); err != nil {
				return nil, err
			}
			listening[ch] = true
			added = append(added, ch)
		}
	}
	for ch := range listening {
		if !want[ch] {
			if _, err := conn.Exec(ctx, fmtIdent(unlistenStmt, ch)); err != nil {
				return nil, err
			}
			delete(listening, ch)
		}
	}
	return added, nil
}

func (l *Listener) deliver(channel, payload string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs[channel] {
		select {
		case s.c <- payload:
		default:
		}
	}
}

func fmtIdent(format, name string) string {
	return fmt.Sprintf(format, pgx.Identifier{name}.Sanitize())
}
