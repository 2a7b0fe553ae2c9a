// Package notify is the sending side of keel's LISTEN/NOTIFY, shared by every
// feature (the receiving side is the public package listener), and the
// rechecks a woken consumer makes.
//
// A [Debouncer] decides when a writer should send a NOTIFY. A notifying
// commit takes a database-wide lock, so writers that notify on every insert
// serialise on it. The Debouncer lets one notification per channel through
// per interval; a writer whose notification is held back gets a trailing one
// sent for it once the interval ends, so the last insert of a burst still
// wakes consumers promptly.
package notify

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
)

// JobsChannel is the channel an insert of jobs notifies, with the queue's
// name as payload: the jobs client listens on it, and the saga engine, whose
// start writes a run's first job in a statement of its own, notifies it too.
const JobsChannel = "keel_jobs"

// ErrClosed is returned by a Debouncer's Notify after Close.
var ErrClosed = errors.New("keel notify: debouncer closed")

// Debouncer limits NOTIFYs to one per channel per interval for one process.
type Debouncer struct {
	pool     *pgxpool.Pool
	interval time.Duration
	logger   *slog.Logger

	mu       sync.Mutex
	last     map[string]time.Time
	trailing map[string]string // channel → payload of a held-back notification
	timers   map[string]*time.Timer
	closed   bool
}

// NewDebouncer returns a Debouncer that sends held-back notifications through
// the pool. An interval of 0 means 5ms.
func NewDebouncer(pool *pgxpool.Pool, interval time.Duration, logger *slog.Logger) *Debouncer {
	if interval <= 0 {
		interval = 5 * time.Millisecond
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Debouncer{
		pool: pool, interval: interval, logger: logger,
		last: map[string]time.Time{}, trailing: map[string]string{}, timers: map[string]*time.Timer{},
	}
}

// Claim is Notify for a writer that sends the NOTIFY itself, inside a
// statement of its own: it reports whether a notification on channel is
// due now (and counts it as sent); when not, the trailing notification with
// payload is scheduled as Notify would.
func (d *Debouncer) Claim(channel, payload string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	now := time.Now()
	if last, ok := d.last[channel]; ok && now.Sub(last) < d.interval {
		d.trailing[channel] = payload
		if d.timers[channel] == nil {
			d.timers[channel] = time.AfterFunc(d.interval-now.Sub(last)+d.interval, func() { d.flush(channel) })
		}
		return false
	}
	d.last[channel] = now
	return true
}

// Notify sends a NOTIFY on channel through dbtx (so, in a transaction, it
// fires on commit) unless one went out on that channel within the interval;
// then a trailing notification is sent through the pool when the interval
// ends, after the writer has most likely committed.
func (d *Debouncer) Notify(ctx context.Context, dbtx db.DBTX, channel, payload string) error {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !d.Claim(channel, payload) {
		return nil
	}
	return db.New(dbtx).Notify(ctx, db.NotifyParams{Channel: channel, Payload: payload})
}

func (d *Debouncer) flush(channel string) {
	d.mu.Lock()
	payload, ok := d.trailing[channel]
	delete(d.trailing, channel)
	delete(d.timers, channel)
	if ok {
		d.last[channel] = time.Now()
	}
	closed := d.closed
	d.mu.Unlock()
	if !ok || closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.New(d.pool).Notify(ctx, db.NotifyParams{Channel: channel, Payload: payload}); err != nil {
		d.logger.Warn("keel: trailing notify failed", "channel", channel, "error", err)
	}
}

// Close stops pending trailing notifications.
func (d *Debouncer) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for ch, t := range d.timers {
		t.Stop()
		delete(d.timers, ch)
	}
}
