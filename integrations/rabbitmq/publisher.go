package keelrabbit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/keelpg/keel/outbox"
)

// The headers a Publisher sets on every message, beside the message's own.
// The message id and type travel in the AMQP properties message-id and type.
const (
	// HeaderTopic is the outbox topic.
	HeaderTopic = "Keel-Topic"
	// HeaderKey is the order key; absent when the message has none.
	HeaderKey = "Keel-Key"
)

// ErrInvalidArgument is returned by NewPublisher and NewConsumer when they
// are given something they cannot use: no URL or queue, a nil inbox or
// handler, a config out of range.
var ErrInvalidArgument = errors.New("keel rabbitmq: invalid argument")

// ErrClosed is the failure of every delivery handed to a closed Publisher.
var ErrClosed = errors.New("keel rabbitmq: publisher closed")

// ErrUnroutable is the failure of a delivery the broker returned: no queue
// is bound to take it from its exchange with its routing key. It comes
// wrapped in a *ReturnedError.
var ErrUnroutable = errors.New("keel rabbitmq: message unroutable")

// ReturnedError is the broker's basic.return of a mandatory message.
type ReturnedError struct {
	ID         string // the outbox message id
	Exchange   string
	RoutingKey string
	Code       uint16 // the AMQP reply code, 312 NO_ROUTE
	Text       string
}

func (e *ReturnedError) Error() string {
	return fmt.Sprintf("keel rabbitmq: message %s returned from exchange %q with routing key %q: %d %s",
		e.ID, e.Exchange, e.RoutingKey, e.Code, e.Text)
}

// Is makes errors.Is(err, ErrUnroutable) true.
func (e *ReturnedError) Is(target error) bool { return target == ErrUnroutable }

// ErrNacked is the failure of a delivery the broker refused with a
// basic.nack (an internal error of the queue).
var ErrNacked = errors.New("keel rabbitmq: broker nacked the message")

// ErrConnectionLost is the failure of a delivery whose channel or
// connection closed before the broker confirmed it. The broker may have
// taken it: the relay publishes it again, and the consumer's inbox drops a
// second copy.
var ErrConnectionLost = errors.New("keel rabbitmq: connection lost before the confirm")

// ErrConfirmTimeout is the failure of a delivery whose confirm did not
// arrive within PublisherConfig.ConfirmTimeout. The Publisher then drops its
// connection and makes a new one for the next batch.
var ErrConfirmTimeout = errors.New("keel rabbitmq: no confirm from the broker in time")

// ErrUnsendable is the failure of a delivery AMQP cannot carry: an exchange
// name, routing key or header name longer than 255 bytes. The relay records
// it like any failure; such a message ends dead. It comes wrapped in an
// *UnsendableError.
var ErrUnsendable = errors.New("keel rabbitmq: message cannot be sent")

// UnsendableError says which part of a delivery AMQP cannot carry.
type UnsendableError struct {
	ID     string // the outbox message id
	Reason string
}

func (e *UnsendableError) Error() string {
	return fmt.Sprintf("keel rabbitmq: message %s: %s", e.ID, e.Reason)
}

// Is makes errors.Is(err, ErrUnsendable) true.
func (e *UnsendableError) Is(target error) bool { return target == ErrUnsendable }

// maxShortString is AMQP's limit of a short string: exchange and queue
// names, routing keys, header names, message ids and types.
const maxShortString = 255

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// URL is the broker's AMQP URI, amqp://user:password@host:port/vhost.
	// Required.
	URL string
	// AMQP configures the connection (TLS, heartbeat, client properties).
	// Default: amqp091's defaults (a 10s heartbeat), with 10s to connect
	// and shake hands.
	AMQP amqp.Config
	// Exchange returns the exchange a delivery is published to. Default:
	// "" (DefaultExchange), the broker's default exchange, which routes a
	// message to the queue its routing key names.
	Exchange func(outbox.Delivery) string
	// RoutingKey returns a delivery's routing key. Default: the topic
	// (TopicRoutingKey), with the key in the Keel-Key header.
	RoutingKey func(outbox.Delivery) string
	// ConfirmTimeout bounds the wait for a batch's confirms; a delivery
	// whose confirm has not come by then fails with ErrConfirmTimeout. Keep
	// it below the relay's Lease. Default: 10s.
	ConfirmTimeout time.Duration
	// Logger receives the publisher's logs (connections lost and made).
	// Default: nothing is logged.
	Logger *slog.Logger
}

// DefaultExchange is PublisherConfig.Exchange's default: every message to
// the default exchange.
func DefaultExchange(outbox.Delivery) string { return "" }

// TopicRoutingKey is PublisherConfig.RoutingKey's default: the topic.
func TopicRoutingKey(d outbox.Delivery) string { return d.Topic }

// Publisher publishes outbox messages to RabbitMQ with publisher confirms.
// It implements outbox.Publisher. It holds one connection and channel,
// made at the first Publish and made again at the next Publish after they
// closed, so a broker restart costs the batches in flight and no more.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger

	mu     sync.Mutex // serialises batches: one channel's confirms at a time
	link   *link
	closed bool
}

// NewPublisher returns a Publisher; it connects at the first Publish. No
// URL, a URL that is not an AMQP URI, or a negative ConfirmTimeout fails
// with ErrInvalidArgument.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if err := checkURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.ConfirmTimeout < 0 {
		return nil, fmt.Errorf("%w: ConfirmTimeout %s is negative", ErrInvalidArgument, cfg.ConfirmTimeout)
	}
	if cfg.Exchange == nil {
		cfg.Exchange = DefaultExchange
	}
	if cfg.RoutingKey == nil {
		cfg.RoutingKey = TopicRoutingKey
	}
	if cfg.ConfirmTimeout == 0 {
		cfg.ConfirmTimeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{cfg: cfg, log: log}, nil
}

func checkURL(url string) error {
	if url == "" {
		return fmt.Errorf("%w: the URL is empty", ErrInvalidArgument)
	}
	if _, err := amqp.ParseURI(url); err != nil {
		return fmt.Errorf("%w: URL: %w", ErrInvalidArgument, err)
	}
	return nil
}

// Close closes the connection. Publish fails with ErrClosed afterwards.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.link == nil {
		return nil
	}
	err := p.link.close()
	p.link = nil
	return err
}

// Publish implements outbox.Publisher. It publishes the batch as
// persistent, mandatory messages on a channel in confirm mode and then
// awaits every confirm: a delivery is delivered when the broker acked it
// and did not return it. A message's id is its AMQP message-id.
func (p *Publisher) Publish(ctx context.Context, batch []outbox.Delivery) []error {
	errs := make([]error, len(batch))
	p.mu.Lock()
	defer p.mu.Unlock()
	l, err := p.connect(ctx)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	waits := make([]<-chan error, len(batch))
	for i, d := range batch {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		waits[i], errs[i] = p.publish(ctx, l, d)
	}
	wait, cancel := context.WithTimeout(ctx, p.cfg.ConfirmTimeout)
	defer cancel()
	for i, w := range waits {
		if w == nil {
			continue
		}
		select {
		case errs[i] = <-w:
		case <-wait.Done():
			if errs[i] = ctx.Err(); errs[i] == nil {
				errs[i] = fmt.Errorf("%w: message %s", ErrConfirmTimeout, batch[i].ID)
			}
		}
	}
	if wait.Err() != nil {
		// Confirms still owed would arrive out of step with the next batch:
		// start it on a new connection.
		p.drop()
	}
	return errs
}

// publish sends one delivery and returns where its confirm will come.
func (p *Publisher) publish(ctx context.Context, l *link, d outbox.Delivery) (<-chan error, error) {
	id := d.ID.String()
	exchange, routingKey := p.cfg.Exchange(d), p.cfg.RoutingKey(d)
	msg, err := publishing(d, exchange, routingKey)
	if err != nil {
		return nil, err
	}
	tag := l.ch.GetNextPublishSeqNo()
	done := l.confirms.expect(tag, id, exchange, routingKey)
	if err := l.ch.PublishWithContext(ctx, exchange, routingKey, true, false, msg); err != nil {
		l.confirms.forget(tag)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: message %s: %w", ErrConnectionLost, id, err)
	}
	return done, nil
}

// publishing builds the AMQP message of a delivery.
func publishing(d outbox.Delivery, exchange, routingKey string) (amqp.Publishing, error) {
	id := d.ID.String()
	for what, s := range map[string]string{"exchange": exchange, "routing key": routingKey} {
		if len(s) > maxShortString {
			return amqp.Publishing{}, &UnsendableError{ID: id, Reason: fmt.Sprintf("%s of %d bytes, over AMQP's %d", what, len(s), maxShortString)}
		}
	}
	headers := amqp.Table{}
	for name, value := range d.Headers {
		if len(name) > maxShortString {
			return amqp.Publishing{}, &UnsendableError{ID: id, Reason: fmt.Sprintf("header name of %d bytes, over AMQP's %d", len(name), maxShortString)}
		}
		headers[name] = value
	}
	headers[HeaderTopic] = d.Topic
	delete(headers, HeaderKey)
	if d.Key != "" {
		headers[HeaderKey] = d.Key
	}
	return amqp.Publishing{
		Headers:      headers,
		ContentType:  d.Headers["Content-Type"],
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Type:         d.Type,
		Timestamp:    d.EnqueuedAt,
		Body:         d.Payload,
	}, nil
}

// connect returns the open link, making a new one when there is none or
// the old one closed.
func (p *Publisher) connect(ctx context.Context) (*link, error) {
	if p.closed {
		return nil, ErrClosed
	}
	if p.link != nil && !p.link.conn.IsClosed() && !p.link.ch.IsClosed() {
		return p.link, nil
	}
	if p.link != nil {
		p.log.WarnContext(ctx, "keel rabbitmq: publisher lost its connection; connecting again")
		p.drop()
	}
	l, err := dial(p.cfg.URL, p.cfg.AMQP)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	if err := l.ch.Confirm(false); err != nil {
		_ = l.close()
		return nil, fmt.Errorf("%w: confirm mode: %w", ErrConnectionLost, err)
	}
	l.confirms = newConfirmer(l.ch)
	p.link = l
	return l, nil
}

// drop closes the link, if any, so the next Publish makes a new one.
func (p *Publisher) drop() {
	if p.link != nil {
		_ = p.link.close()
		p.link = nil
	}
}

// link is one connection with one channel.
type link struct {
	conn     *amqp.Connection
	ch       *amqp.Channel
	confirms *confirmer
}

// dialTimeout bounds connecting and the AMQP handshake when
// amqp.Config.Dial is not set.
const dialTimeout = 10 * time.Second

func dial(url string, cfg amqp.Config) (*link, error) {
	if cfg.Dial == nil {
		cfg.Dial = amqp.DefaultDial(dialTimeout)
	}
	conn, err := amqp.DialConfig(url, cfg)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &link{conn: conn, ch: ch}, nil
}

// closeWait bounds the close handshake of a connection that may be dead.
const closeWait = 2 * time.Second

// close closes the connection and waits until its confirms are settled.
func (l *link) close() error {
	err := l.conn.CloseDeadline(time.Now().Add(closeWait))
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	if l.confirms != nil {
		<-l.confirms.done
	}
	return err
}
