// Package outage tells a database outage from a statement's own failure and
// reports each outage once.
//
// A long-running keel component (a jobs client, a relay, a subscription, the
// listener) keeps working through an outage by retrying with a [Backoff]. It
// tells its [Tracker] of every failure and success: the tracker logs one line
// when the component loses the database and one when it has it back, however
// many attempts failed in between, and hands an [Event] to the component's
// metrics hook at both ends. Failures that a success follows within a second
// (the stale connections a server restart leaves in a pool) are no outage.
package outage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/keelpg/keel/keeltype"
)

// Event describes one outage as one component saw it.
type Event = keeltype.Outage

// PoolClosed reports whether err comes from a closed pgxpool.Pool: a loop
// that sees it cannot go on, and returns it rather than retrying for ever.
func PoolClosed(err error) bool { return errors.Is(err, puddle.ErrClosedPool) }

// Closed wraps a closed pool's error for a component's loop to return.
func Closed(component string, err error) error {
	return fmt.Errorf("keel %s: the pool was closed while it ran (stop keel's components before closing the pool): %w", component, err)
}

// Is reports whether err means the database could not be reached or went
// away — a refused or broken connection, a server shutting down, starting
// or refusing connections, a read-only server after a failover, a timeout —
// rather than a failure of the statement itself.
func Is(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08": // connection exception
			return true
		}
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", // admin shutdown, crash shutdown, cannot connect now
			"53300", // too many connections
			"25006": // read-only transaction: connected to a standby
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || pgconn.SafeToRetry(err)
}

// confirmAfter is how long attempts must keep failing, with no success in
// between, before an outage is declared. A server restart or a failover ends
// every pooled connection, and the first statement on each fails once while
// new connections already succeed; that is not an outage.
const confirmAfter = time.Second

// Tracker follows whether one component can reach the database. It is safe
// for concurrent use by the component's goroutines.
type Tracker struct {
	component string
	logger    *slog.Logger
	report    func(Event)

	mu          sync.Mutex
	current     *Event // the failures since the last success; nil while the database answers
	declared    bool   // current has been logged and reported
	lastFailure time.Time
}

// Report is a tracker's report function that hands each Event to hook as
// a keeltype.MeasureOutage measurement.
func Report(hook keeltype.Hook) func(Event) {
	return func(ev Event) {
		hook.Measure(context.Background(), keeltype.Measurement{Kind: keeltype.MeasureOutage, Name: ev.Component, Outage: &ev})
	}
}

// NewTracker returns a tracker for component that logs to logger and hands
// each outage's start and end to report (either may be nil).
func NewTracker(component string, logger *slog.Logger, report func(Event)) *Tracker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if report == nil {
		report = func(Event) {}
	}
	return &Tracker{component: component, logger: logger, report: report}
}

// Failed records a failed attempt and reports whether err is an outage
// error. Once outage errors have gone on for a second with no success, the
// outage is declared: logged once and reported. Errors that are not outages
// are left to the caller to log.
func (t *Tracker) Failed(err error) bool {
	if !Is(err) {
		return false
	}
	now := time.Now()
	t.mu.Lock()
	t.lastFailure = now
	if t.current == nil {
		t.current = &Event{Component: t.component, Start: now, Err: err}
	}
	t.current.Failures++
	if t.declared || now.Sub(t.current.Start) < confirmAfter {
		t.mu.Unlock()
		return true
	}
	t.declared = true
	ev := *t.current
	t.mu.Unlock()
	t.logger.Error("keel: database unavailable; retrying until it is back", "component", t.component, "since", ev.Start, "error", ev.Err)
	t.report(ev)
	return true
}

// Succeeded records that the database answered, which ends an outage.
func (t *Tracker) Succeeded() {
	t.mu.Lock()
	cur, declared := t.current, t.declared
	t.current, t.declared = nil, false
	var ev Event
	if cur != nil {
		ev = *cur
	}
	t.mu.Unlock()
	if !declared {
		return
	}
	ev.Over, ev.Duration = true, time.Since(ev.Start)
	t.logger.Warn("keel: database available again", "component", t.component, "after", ev.Duration.Round(time.Millisecond), "failures", ev.Failures)
	t.report(ev)
}

// FailedWithin reports whether an outage error was recorded in the last d.
// After an outage every heartbeat is stale, the live owners' as well as the
// dead ones', so a rescuer waits until the owners have had d to heartbeat.
func (t *Tracker) FailedWithin(d time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.lastFailure.IsZero() && time.Since(t.lastFailure) < d
}

// Backoff is a capped exponential backoff with jitter. The zero value waits
// from 50ms up to 2s, so a component is working again within about two
// seconds of the database's return while trying at most once a second or so
// through a long outage.
type Backoff struct {
	// Min is the first wait. Default 50ms.
	Min time.Duration
	// Max caps every wait. Default 2s.
	Max time.Duration

	next time.Duration
}

// Next returns the next wait — the last doubled, at most Max, with a fifth
// taken or added at random so that processes drift apart.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 50 * time.Millisecond
	}
	if hi <= 0 {
		hi = 2 * time.Second
	}
	if b.next < lo {
		b.next = lo
	}
	d := min(b.next, hi)
	b.next = min(d*2, hi)
	spread := int64(d / 5)
	if spread > 0 {
		d += time.Duration(rand.Int64N(2*spread+1) - spread)
	}
	return d
}

// Reset starts the backoff again from Min; call it after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Wait sleeps for Next, or until ctx ends, and returns ctx's error then.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
