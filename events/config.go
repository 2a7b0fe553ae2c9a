package events

import (
	"context"
	"log/slog"
	"time"

	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/listener"
)

// Config configures a Store. The zero value is ready to use.
type Config struct {
	// Logger receives the store's and its subscriptions' logs.
	// Default: nothing is logged.
	Logger *slog.Logger
	// Hook observes the store and its subscriptions: each Append
	// (keeltype.OpEventsAppend; a version conflict is its outcome's error),
	// each event a subscription handles (keeltype.OpEventsHandle), each
	// subscription's lag after a batch (keeltype.MeasureSubscriptionLag) and
	// outages. Default: none.
	Hook keeltype.Hook
	// InlineProjections run inside every Append, in the appending
	// transaction, after the events are written. An error from one fails the
	// Append (and the caller should roll back). Default: none.
	InlineProjections []InlineProjection
	// NotifyInterval is the least time between two wake-up notifications
	// this process sends to subscribers; appends in between share one
	// trailing notification. Default: 5ms.
	NotifyInterval time.Duration
	// Listener is the LISTEN connection the store's subscriptions share with
	// the process's other keel components (see package listener). Default: the
	// store opens its own.
	Listener *listener.Listener
	// DisableNotify stops appends from sending wake-up notifications;
	// subscriptions then rely on polling alone. Default: false.
	DisableNotify bool
	// SequencerBatch is the most appends one sequencer pass gives
	// positions (an append is the events one Append call wrote).
	// Default: 10000.
	SequencerBatch int
	// SequencerInterval is how often the sequencer (Store.Start) gives new events positions.
	// Default: 50ms.
	SequencerInterval time.Duration
}

// InlineProjection updates a read model inside the appending transaction, so
// it is exactly as current as the events. The events have no Position yet.
type InlineProjection func(ctx context.Context, tx keeltype.DBTX, evs []RecordedEvent) error

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Hook == nil {
		c.Hook = keeltype.NoHook{}
	}
	if c.NotifyInterval <= 0 {
		c.NotifyInterval = 5 * time.Millisecond
	}
	if c.SequencerBatch <= 0 {
		c.SequencerBatch = 10000
	}
	if c.SequencerInterval <= 0 {
		c.SequencerInterval = 50 * time.Millisecond
	}
	return c
}
