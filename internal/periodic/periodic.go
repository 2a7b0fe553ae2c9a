// Package periodic runs keel's singleton duties — promoting scheduled work,
// rescuing stuck work, retention, cron ticks, sequencing — in any number of
// processes at once, with one of them doing each pass.
//
// Each pass runs in its own transaction that first takes a transaction-level
// advisory lock with the duty's key (pg_try_advisory_xact_lock). The process
// that gets it does the work; the others skip that pass. No leader is elected
// and no connection is held between passes, so a process that dies mid-pass
// simply rolls back and releases the lock, and the next pass anywhere picks up.
package periodic

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/outage"
	"github.com/keelpg/keel/internal/service"
)

// Duty is one periodic job of work.
type Duty struct {
	// Name identifies the duty in logs.
	Name string
	// Key is the advisory lock key; every process must use the same key for
	// the same duty, and different duties different keys.
	Key int64
	// Interval between passes. A tenth of it is added or taken at random each
	// time, so processes started together drift apart.
	Interval time.Duration
	// Pass does the work inside tx, which already holds the lock. It returns
	// true when there may be more to do at once (a full batch), and the next
	// pass then runs without waiting.
	Pass func(ctx context.Context, tx pgx.Tx) (more bool, err error)
}

// RunOnce runs one pass if no other process is running one. It reports
// whether this process ran it and whether there is more to do.
func RunOnce(ctx context.Context, pool *pgxpool.Pool, d Duty) (ran, more bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		ok, err := db.New(tx).TryAdvisoryXactLock(ctx, d.Key)
		if err != nil || !ok {
			return err
		}
		ran = true
		more, err = d.Pass(ctx, tx)
		return err
	})
	if err != nil {
		return false, false, fmt.Errorf("keel %s: %w", d.Name, err)
	}
	return ran, more, nil
}

// RunOnceWaiting runs one pass, first waiting for a pass another process is
// running to end, so that everything committed before the call is seen by
// this pass or was handled by that one.
func RunOnceWaiting(ctx context.Context, pool *pgxpool.Pool, d Duty) (more bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := db.New(tx).AdvisoryXactLock(ctx, d.Key); err != nil {
			return err
		}
		more, err = d.Pass(ctx, tx)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("keel %s: %w", d.Name, err)
	}
	return more, nil
}

// Run runs the duty every Interval until ctx ends, then returns nil, and
// goes on whatever fails except a closed pool, which it returns. Each pass's outcome goes to tracker (nil: none), which logs an outage
// once; other errors are logged to logger. While the database is away the
// passes are spaced by a capped exponential backoff when it exceeds
// Interval.
func Run(ctx context.Context, pool *pgxpool.Pool, d Duty, logger *slog.Logger, tracker *outage.Tracker) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var backoff outage.Backoff
	for {
		passCtx, cancel := service.Statement(ctx)
		_, more, err := RunOnce(passCtx, pool, d)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		wait := jitter(d.Interval)
		switch {
		case err == nil:
			backoff.Reset()
			if tracker != nil {
				tracker.Succeeded()
			}
			if more {
				continue
			}
		case outage.PoolClosed(err):
			return outage.Closed(d.Name, err)
		case outage.Is(err):
			if tracker != nil {
				tracker.Failed(err)
			}
			wait = max(wait, backoff.Next())
		default:
			logger.WarnContext(ctx, "keel: periodic duty failed", "duty", d.Name, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Second
	}
	spread := int64(d / 10)
	if spread == 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1))
}
