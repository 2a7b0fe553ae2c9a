package keelnats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keelpg/keel/internal/inboxdelivery"
	"github.com/keelpg/keel/internal/service"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// ErrHandlerPanic is the error of a delivery whose handler panicked; the
// transaction rolls back and the message is delivered again.
var ErrHandlerPanic = errors.New("keel nats: handler panicked")

// ErrStarted is returned by Start on a Consumer that runs already.
var ErrStarted = errors.New("keel nats: already started")

// Message is a JetStream message as a Consumer's handler sees it.
type Message struct {
	// ID is what the inbox deduplicates by: the Keel-Message-Id header,
	// else Nats-Msg-Id, else "<stream>:<stream sequence>" (a redelivery of a
	// stored message keeps its sequence).
	ID string
	// Subject is the subject the message was published to.
	Subject string
	// Topic is the Keel-Topic header, else the subject.
	Topic string
	// Key and Type are the Keel-Key and Keel-Type headers, empty when absent.
	Key, Type string
	// Payload is the message's data.
	Payload []byte
	// Headers are the message's other headers (keel's and JetStream's
	// Nats-* left out), the first value of each.
	Headers map[string]string
	// Delivered counts JetStream's deliveries of the message, from 1.
	Delivered int
}

// Handler makes a message's effect in tx, the transaction in which the
// inbox records the message as processed. An error rolls both back and
// the message is delivered again after the retry delay.
type Handler func(ctx context.Context, tx pgx.Tx, m Message) error

// ConsumerConfig configures a Consumer. The zero value is ready to use.
type ConsumerConfig struct {
	// Name is the inbox consumer name the messages are deduplicated under:
	// UTF-8 without NUL, 1 to 255 bytes. Keep it stable across restarts.
	// Default: the JetStream consumer's name (give a durable consumer).
	Name string
	// RetryPolicy gives the delay of the NakWithDelay after a failed
	// attempt; attempt is the message's delivery count. Default:
	// keeltype.ExponentialBackoff{Initial: 1s, Max: 1m, Jitter: 0.25}.
	// The JetStream consumer's MaxDeliver bounds the attempts.
	RetryPolicy keeltype.RetryPolicy
	// Logger receives the consumer's logs. Default: nothing is logged.
	Logger *slog.Logger
}

// Consumer runs each message of a JetStream consumer through an
// outbox.Inbox and acks it once the inbox transaction committed. It
// handles one message at a time, in delivery order.
type Consumer struct {
	inbox  *outbox.Inbox
	source jetstream.Consumer
	handle Handler
	cfg    ConsumerConfig
	log    *slog.Logger
	// ackWait is the JetStream consumer's AckWait: a handler that runs
	// longer is kept alive with InProgress every half of it.
	ackWait time.Duration
	runner  service.Runner
}

// NewConsumer returns a Consumer of source's messages. Start (or Run) runs
// it. A nil inbox, source or handler, or no Name to be had, fails with
// ErrInvalidArgument.
func NewConsumer(inbox *outbox.Inbox, source jetstream.Consumer, handle Handler, cfg ConsumerConfig) (*Consumer, error) {
	switch {
	case inbox == nil:
		return nil, fmt.Errorf("%w: NewConsumer needs an outbox.Inbox", ErrInvalidArgument)
	case source == nil:
		return nil, fmt.Errorf("%w: NewConsumer needs a jetstream.Consumer", ErrInvalidArgument)
	case handle == nil:
		return nil, fmt.Errorf("%w: NewConsumer needs a handler", ErrInvalidArgument)
	}
	info := source.CachedInfo()
	var ackWait time.Duration
	if info != nil {
		ackWait = info.Config.AckWait
		if cfg.Name == "" {
			cfg.Name = info.Name
		}
	}
	if cfg.Name == "" {
		return nil, fmt.Errorf("%w: ConsumerConfig.Name is empty and the consumer has no name", ErrInvalidArgument)
	}
	if cfg.RetryPolicy == nil {
		cfg.RetryPolicy = keeltype.ExponentialBackoff{Initial: time.Second, Max: time.Minute, Jitter: 0.25}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Consumer{
		inbox: inbox, source: source, handle: handle, cfg: cfg, ackWait: ackWait,
		log: log.With("consumer", cfg.Name),
	}, nil
}

// Start runs the consumer in the background and returns at once (ctx only
// scopes the start); Stop or StopAndCancel ends it. It returns ErrStarted
// while the consumer runs.
func (c *Consumer) Start(ctx context.Context) error {
	err := c.runner.Start(ctx, c.run)
	if errors.Is(err, service.ErrStarted) {
		return ErrStarted
	}
	return err
}

// Stop stops taking messages, lets the one in hand commit and be acked, and
// returns once the consumer has stopped. When ctx ends first, the message
// in hand is abandoned (JetStream delivers it again) and Stop returns ctx's
// error. It returns the error the consumer stopped on by itself, if it did
// (a closed NATS connection).
func (c *Consumer) Stop(ctx context.Context) error { return c.runner.Stop(ctx) }

// StopAndCancel is Stop that also cancels the message in hand at once: its
// transaction rolls back and it is nak'ed.
func (c *Consumer) StopAndCancel(ctx context.Context) error { return c.runner.StopAndCancel(ctx) }

// Run consumes until ctx ends, then returns nil: Start and Stop in one
// blocking call. It returns an error only when it cannot go on: the NATS
// connection was closed.
func (c *Consumer) Run(ctx context.Context) error { return c.run(ctx, ctx) }

// Pull iterators survive reconnects on their own; one is made again only
// when it ends with an error (a deleted consumer, missed heartbeats), after
// a wait that doubles up to maxIteratorWait.
const (
	minIteratorWait = 100 * time.Millisecond
	maxIteratorWait = 30 * time.Second
)

func (c *Consumer) run(loop, work context.Context) error {
	wait := minIteratorWait
	for {
		handled, err := c.consume(loop, work)
		if loop.Err() != nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed) {
			return fmt.Errorf("keel nats: consumer %s: %w", c.cfg.Name, err)
		}
		if handled {
			wait = minIteratorWait
		}
		c.log.WarnContext(loop, "keel nats: consuming failed; trying again", "error", err, "wait", wait)
		select {
		case <-loop.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, maxIteratorWait)
	}
}

// consume handles messages from one pull iterator until loop ends or the
// iterator fails; it reports whether it handled any.
func (c *Consumer) consume(loop, work context.Context) (bool, error) {
	it, err := c.source.Messages()
	if err != nil {
		return false, err
	}
	defer it.Stop()
	handled := false
	for {
		msg, err := it.Next(jetstream.NextContext(loop))
		if err != nil {
			return handled, err
		}
		c.process(work, msg)
		handled = true
	}
}

// process runs one message through the inbox and acks it after the commit;
// a failure naks it with the retry delay.
func (c *Consumer) process(ctx context.Context, msg jetstream.Msg) {
	m := message(msg)
	stop := c.keepAlive(msg)
	res := inboxdelivery.Process(ctx, c.inbox, c.cfg.Name, m.ID, ErrHandlerPanic, func(ctx context.Context, tx pgx.Tx) error {
		return c.handle(ctx, tx, m)
	})
	stop()
	switch res.Outcome {
	case inboxdelivery.Drop:
		c.log.ErrorContext(ctx, "keel nats: message id cannot be recorded; message terminated", "id", m.ID, "subject", m.Subject, "error", res.Err)
		c.settle(ctx, "term", msg.TermWithReason("keel: message id cannot be recorded"))
	case inboxdelivery.Requeue:
		c.settle(ctx, "nak", msg.Nak())
	case inboxdelivery.Retry:
		delay := max(c.cfg.RetryPolicy.NextRetry(m.Delivered, res.Err), 0)
		c.log.WarnContext(ctx, "keel nats: handling a message failed; it comes again", "id", m.ID, "subject", m.Subject, "delivered", m.Delivered, "delay", delay, "error", res.Err)
		c.settle(ctx, "nak", msg.NakWithDelay(delay))
	default:
		if res.Duplicate {
			c.log.DebugContext(ctx, "keel nats: duplicate skipped", "id", m.ID, "subject", m.Subject)
		}
		c.settle(ctx, "ack", msg.Ack())
	}
}

// settle logs an ack or nak that could not be sent. Nothing more is needed:
// JetStream delivers the message again after AckWait, and the inbox
// recognises it if it was processed.
func (c *Consumer) settle(ctx context.Context, what string, err error) {
	if err != nil {
		c.log.DebugContext(ctx, "keel nats: "+what+" not sent; the message comes again", "error", err)
	}
}

// keepAlive tells JetStream the message is in progress every half AckWait
// while its handler runs, so a slow handler's message is not delivered
// again meanwhile. The returned func stops it.
func (c *Consumer) keepAlive(msg jetstream.Msg) func() {
	if c.ackWait <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(c.ackWait / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

// message reads a JetStream message into a Message.
func message(msg jetstream.Msg) Message {
	h := msg.Headers()
	m := Message{
		ID: h.Get(HeaderMessageID), Subject: msg.Subject(), Topic: h.Get(HeaderTopic),
		Key: h.Get(HeaderKey), Type: h.Get(HeaderType), Payload: msg.Data(), Delivered: 1,
	}
	if m.ID == "" {
		m.ID = h.Get(jetstream.MsgIDHeader)
	}
	if meta, err := msg.Metadata(); err == nil {
		m.Delivered = int(meta.NumDelivered)
		if m.ID == "" {
			m.ID = fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream)
		}
	}
	if m.Topic == "" {
		m.Topic = m.Subject
	}
	for name, values := range h {
		switch {
		case len(values) == 0, strings.HasPrefix(name, "Nats-"):
		case name == HeaderMessageID, name == HeaderTopic, name == HeaderKey, name == HeaderType:
		default:
			if m.Headers == nil {
				m.Headers = make(map[string]string, len(h))
			}
			m.Headers[name] = values[0]
		}
	}
	return m
}
