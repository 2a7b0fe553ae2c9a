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
	// Metrics receives counts of appends and conflicts and subscription lag.
	// Default: none.
	Metrics Metrics
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

// Metrics is the hook through which the store reports what it does. Calls
// are made synchronously; keep them cheap.
type Metrics interface {
	// Appended reports a successful append of n events to a stream.
	Appended(streamID string, n int)
	// Conflicted reports an append refused for its expected version.
	Conflicted(streamID string)
	// SubscriptionLag reports, after each batch a subscription handles, how
	// many stamped events of the feed lie beyond its checkpoint and how long
	// ago its newest handled event was recorded.
	SubscriptionLag(name string, events int64, age time.Duration)
	// Outage is called when the store's subscriptions or sequencer lose the
	// database (ev.Over false) and when they have it back (ev.Over true).
	Outage(ev keeltype.Outage)
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
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
