package keel

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/notify"
)

// Listener is a LISTEN connection that keel's long-running components share,
// so a process holds one however many of them it runs. Give the same
// Listener to jobs.Config, outbox.RelayConfig and events.Config (a saga
// engine uses the one in its jobs.Config); each component subscribes to its
// channels and calls Run, and the connection lives while any of them runs.
// A component given none opens its own.
//
// Notifications only wake consumers early: every consumer also polls, so a
// lost connection delays work and never loses it.
type Listener = notify.Listener

// NewListener returns a Listener that takes its connection from pool when
// the first component runs and keeps it out of the pool until the last one
// stops. logger receives reconnect warnings; nil discards them.
func NewListener(pool *pgxpool.Pool, logger *slog.Logger) *Listener {
	return notify.NewListener(pool, logger)
}
