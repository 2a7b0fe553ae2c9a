package keelrabbit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/keelpg/keel/internal/inboxdelivery"
	"github.com/keelpg/keel/internal/service"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// ErrHandlerPanic is the error of a delivery whose handler panicked; the
// transaction rolls back and the message is requeued.
var ErrHandlerPanic = errors.New("keel rabbitmq: handler panicked")

// ErrStarted is returned by Start on a Consumer that runs already.
var ErrStarted = errors.New("keel rabbitmq: already started")

// Message is an AMQP delivery as a Consumer's handler sees it.
type Message struct {
	// ID is the AMQP message-id, what the inbox deduplicates by.
	ID string
	// Topic is the Keel-Topic header, else the routing key.
	Topic string
	// Key is the Keel-Key header, empty when absent.
	Key string
	// Type is the AMQP type property.
	Type string
	// Payload is the message body.
	Payload []byte
	// Headers are the message's other headers whose values are strings
	// (keel's left out).
	Headers map[string]string
	// Exchange and RoutingKey are where the message was published.
	Exchange, RoutingKey string
	// Attempt counts attempts at the message, from 1: a quorum queue's
	// x-delivery-count, else this Consumer's own count of its failures.
	Attempt int
}

// Handler makes a message's effect in tx, the transaction in which the
// inbox records the message as processed. An error rolls both back and
// the message is requeued after the retry delay.
type Handler func(ctx context.Context, tx pgx.Tx, m Message) error

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// URL is the broker's AMQP URI, amqp://user:password@host:port/vhost.
	// Required.
	URL string
	// AMQP configures the connection (TLS, heartbeat, client properties).
	// Default: amqp091's defaults (a 10s heartbeat), with 10s to connect
	// and shake hands.
	AMQP amqp.Config
	// Queue is the queue to consume; it must exist. Required.
	Queue string
	// Name is the inbox consumer name the messages are deduplicated under:
	// UTF-8 without NUL, 1 to 255 bytes. Default: the queue's name.
	Name string
	// Prefetch is how many unacked messages the broker hands the Consumer
	// at once (basic.qos). 1 keeps per-key order through failures; more is
	// faster. Default: 1.
	Prefetch int
	// RetryPolicy gives how long a message whose handler failed is held
	// before it is requeued (basic.nack with requeue). Holding it, rather
	// than requeueing at once, is the backoff: with Prefetch 1 nothing after
	// it is handled meanwhile. Keep it well below the broker's
	// consumer_timeout (30 minutes by default). Default:
	// keeltype.ExponentialBackoff{Initial: 1s, Max: 1m, Jitter: 0.25}.
	RetryPolicy keeltype.RetryPolicy
	// Logger receives the consumer's logs. Default: nothing is logged.
	Logger *slog.Logger
}

// Consumer runs each message of a RabbitMQ queue through an outbox.Inbox
// and acks it once the inbox transaction committed. It handles one message
// at a time, in delivery order, and connects again whenever its connection
// or channel closes.
type Consumer struct {
	inbox  *outbox.Inbox
	handle Handler
	cfg    ConsumerConfig
	log    *slog.Logger
	// failures counts failed attempts per message id; only the consuming
	// goroutine touches it.
	failures map[string]int
	runner   service.Runner
}

// maxTracked bounds Consumer.failures: past it the counts start over.
const maxTracked = 10000

// NewConsumer returns a Consumer of cfg.Queue. Start (or Run) runs it;
// it connects then. A nil inbox or handler, no URL or queue, a URL that is
// not an AMQP URI or a negative Prefetch fails with ErrInvalidArgument.
func NewConsumer(inbox *outbox.Inbox, handle Handler, cfg ConsumerConfig) (*Consumer, error) {
	switch {
	case inbox == nil:
		return nil, fmt.Errorf("%w: NewConsumer needs an outbox.Inbox", ErrInvalidArgument)
	case handle == nil:
		return nil, fmt.Errorf("%w: NewConsumer needs a handler", ErrInvalidArgument)
	case cfg.Queue == "":
		return nil, fmt.Errorf("%w: ConsumerConfig.Queue is empty", ErrInvalidArgument)
	case cfg.Prefetch < 0:
		return nil, fmt.Errorf("%w: Prefetch %d is negative", ErrInvalidArgument, cfg.Prefetch)
	}
	if err := checkURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Queue
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = 1
	}
	if cfg.RetryPolicy == nil {
		cfg.RetryPolicy = keeltype.ExponentialBackoff{Initial: time.Second, Max: time.Minute, Jitter: 0.25}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Consumer{
		inbox: inbox, handle: handle, cfg: cfg, failures: map[string]int{},
		log: log.With("consumer", cfg.Name, "queue", cfg.Queue),
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

// Stop stops taking messages, lets the one in hand commit and be acked,
// closes the connection (the broker requeues what it had handed over) and
// returns once the consumer has stopped. When ctx ends first, the message
// in hand is abandoned too and Stop returns ctx's error.
func (c *Consumer) Stop(ctx context.Context) error { return c.runner.Stop(ctx) }

// StopAndCancel is Stop that also cancels the message in hand at once: its
// transaction rolls back and it is requeued.
func (c *Consumer) StopAndCancel(ctx context.Context) error { return c.runner.StopAndCancel(ctx) }

// Run consumes until ctx ends, then returns nil: Start and Stop in one
// blocking call. A lost connection is made again, so Run returns no other
// error.
func (c *Consumer) Run(ctx context.Context) error { return c.run(ctx, ctx) }

// The wait before connecting again doubles from minReconnectWait up to
// maxReconnectWait, and starts over once a connection handled a message.
const (
	minReconnectWait = 100 * time.Millisecond
	maxReconnectWait = 30 * time.Second
)

func (c *Consumer) run(loop, work context.Context) error {
	wait := minReconnectWait
	lost := false
	for {
		handled, err := c.session(loop, work, &lost)
		if loop.Err() != nil {
			return nil
		}
		if !lost {
			c.log.WarnContext(loop, "keel rabbitmq: consumer lost the broker; connecting again", "error", err)
			lost = true
		}
		if handled {
			wait = minReconnectWait
		}
		select {
		case <-loop.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, maxReconnectWait)
	}
}

// session consumes on one connection until loop ends or the connection
// or channel closes; it reports whether it handled a message.
func (c *Consumer) session(loop, work context.Context, lost *bool) (bool, error) {
	l, err := dial(c.cfg.URL, c.cfg.AMQP)
	if err != nil {
		return false, err
	}
	defer func() { _ = l.close() }()
	closed := l.ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := l.ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return false, err
	}
	deliveries, err := l.ch.Consume(c.cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return false, err
	}
	if *lost {
		c.log.InfoContext(loop, "keel rabbitmq: consumer has the broker back")
		*lost = false
	}
	handled := false
	for {
		select {
		case <-loop.Done():
			return handled, nil
		case d, ok := <-deliveries:
			if !ok {
				if reason := <-closed; reason != nil {
					return handled, reason
				}
				return handled, ErrConnectionLost
			}
			c.process(loop, work, d)
			handled = true
		}
	}
}

// process runs one delivery through the inbox and acks it after the
// commit; a failure requeues it after the retry delay.
func (c *Consumer) process(loop, work context.Context, d amqp.Delivery) {
	m := c.message(d)
	if m.ID == "" {
		c.log.ErrorContext(work, "keel rabbitmq: message without message-id rejected; a dead-letter exchange of the queue keeps it",
			"exchange", m.Exchange, "routing_key", m.RoutingKey)
		c.settle(work, "reject", d.Reject(false))
		return
	}
	res := inboxdelivery.Process(work, c.inbox, c.cfg.Name, m.ID, ErrHandlerPanic, func(ctx context.Context, tx pgx.Tx) error {
		return c.handle(ctx, tx, m)
	})
	switch res.Outcome {
	case inboxdelivery.Drop:
		c.log.ErrorContext(work, "keel rabbitmq: message id cannot be recorded; message rejected", "id", m.ID, "error", res.Err)
		c.settle(work, "reject", d.Reject(false))
	case inboxdelivery.Requeue:
		c.settle(work, "requeue", d.Nack(false, true))
	case inboxdelivery.Retry:
		c.failed(loop, work, d, m, res.Err)
	default:
		delete(c.failures, m.ID)
		if res.Duplicate {
			c.log.DebugContext(work, "keel rabbitmq: duplicate skipped", "id", m.ID)
		}
		c.settle(work, "ack", d.Ack(false))
	}
}

// failed holds a failed delivery for the retry delay, or until the
// consumer stops, and requeues it.
func (c *Consumer) failed(loop, work context.Context, d amqp.Delivery, m Message, err error) {
	if len(c.failures) >= maxTracked {
		clear(c.failures)
	}
	c.failures[m.ID]++
	delay := max(c.cfg.RetryPolicy.NextRetry(m.Attempt, err), 0)
	c.log.WarnContext(work, "keel rabbitmq: handling a message failed; it is requeued", "id", m.ID, "attempt", m.Attempt, "delay", delay, "error", err)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-loop.Done():
	case <-work.Done():
	}
	c.settle(work, "requeue", d.Nack(false, true))
}

// settle logs an ack, nack or reject that could not be sent. Nothing more
// is needed: the broker requeues an unacked message when the channel
// closes, and the inbox recognises it if it was processed.
func (c *Consumer) settle(ctx context.Context, what string, err error) {
	if err != nil {
		c.log.DebugContext(ctx, "keel rabbitmq: "+what+" not sent; the message comes again", "error", err)
	}
}

// message reads a delivery into a Message.
func (c *Consumer) message(d amqp.Delivery) Message {
	m := Message{
		ID: d.MessageId, Type: d.Type, Payload: d.Body, Exchange: d.Exchange, RoutingKey: d.RoutingKey,
		Attempt: c.failures[d.MessageId] + 1,
	}
	if count, ok := d.Headers["x-delivery-count"].(int64); ok {
		m.Attempt = max(m.Attempt, int(count)+1)
	}
	m.Topic, _ = d.Headers[HeaderTopic].(string)
	if m.Topic == "" {
		m.Topic = d.RoutingKey
	}
	m.Key, _ = d.Headers[HeaderKey].(string)
	for name, v := range d.Headers {
		s, ok := v.(string)
		if !ok || name == HeaderTopic || name == HeaderKey {
			continue
		}
		if m.Headers == nil {
			m.Headers = make(map[string]string, len(d.Headers))
		}
		m.Headers[name] = s
	}
	return m
}
