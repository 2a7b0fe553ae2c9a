package keelnats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keelpg/keel/outbox"
)

// The headers a Publisher sets on every message, beside the message's own.
const (
	// HeaderMessageID is the outbox message id. JetStream's own
	// Nats-Msg-Id (jetstream.MsgIDHeader) holds the same value.
	HeaderMessageID = "Keel-Message-Id"
	// HeaderTopic is the outbox topic.
	HeaderTopic = "Keel-Topic"
	// HeaderKey is the order key; absent when the message has none.
	HeaderKey = "Keel-Key"
	// HeaderType is the message type; absent when the message has none.
	HeaderType = "Keel-Type"
)

// ErrInvalidArgument is returned by NewPublisher and NewConsumer when they
// are given something they cannot use: a nil JetStream, consumer, inbox or
// handler, or a config out of range.
var ErrInvalidArgument = errors.New("keel nats: invalid argument")

// ErrUnsendable is the failure of a delivery that cannot travel as a NATS
// message unchanged: its subject is not a valid publish subject (empty, with
// whitespace or a wildcard token), a header name is not a NATS header name
// (printable ASCII without ()/,:;<=>?@[\]{}"), or a header value (the key
// among them) holds a CR or LF or begins or ends with white space, which
// NATS would rewrite. The relay records it like any failure; such a message
// ends dead. It comes wrapped in an *UnsendableError.
var ErrUnsendable = errors.New("keel nats: message cannot be sent unchanged")

// UnsendableError says which part of a delivery NATS cannot carry.
type UnsendableError struct {
	ID     string // the outbox message id
	Reason string
}

func (e *UnsendableError) Error() string {
	return fmt.Sprintf("keel nats: message %s: %s", e.ID, e.Reason)
}

// Is makes errors.Is(err, ErrUnsendable) true.
func (e *UnsendableError) Is(target error) bool { return target == ErrUnsendable }

// ErrAckTimeout is the failure of a delivery whose JetStream ack did not
// arrive within PublisherConfig.AckTimeout. The stream may have stored it:
// the relay publishes it again, with the same Nats-Msg-Id.
var ErrAckTimeout = errors.New("keel nats: no ack from JetStream in time")

// PublisherConfig configures a Publisher. The zero value is ready to use.
type PublisherConfig struct {
	// Subject returns the subject a delivery is published to. Default: the
	// topic (TopicSubject), with the key in the Keel-Key header.
	Subject func(outbox.Delivery) string
	// AckTimeout bounds the wait for a batch's acks; a delivery whose ack
	// has not come by then fails with ErrAckTimeout. Keep it below the
	// relay's Lease. Default: 10s.
	AckTimeout time.Duration
}

// TopicSubject is PublisherConfig.Subject's default: the topic is the
// subject.
func TopicSubject(d outbox.Delivery) string { return d.Topic }

// PrefixSubject returns a PublisherConfig.Subject that publishes to
// "<prefix>.<topic>", so one stream can take every topic (subjects
// "<prefix>.>").
func PrefixSubject(prefix string) func(outbox.Delivery) string {
	return func(d outbox.Delivery) string { return prefix + "." + d.Topic }
}

// Publisher publishes outbox messages to JetStream. It implements
// outbox.Publisher.
type Publisher struct {
	js  jetstream.JetStream
	cfg PublisherConfig
}

// NewPublisher returns a Publisher on js. A nil js, or a negative
// AckTimeout, fails with ErrInvalidArgument.
func NewPublisher(js jetstream.JetStream, cfg PublisherConfig) (*Publisher, error) {
	switch {
	case js == nil:
		return nil, fmt.Errorf("%w: NewPublisher needs a JetStream", ErrInvalidArgument)
	case cfg.AckTimeout < 0:
		return nil, fmt.Errorf("%w: AckTimeout %s is negative", ErrInvalidArgument, cfg.AckTimeout)
	}
	if cfg.Subject == nil {
		cfg.Subject = TopicSubject
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = 10 * time.Second
	}
	return &Publisher{js: js, cfg: cfg}, nil
}

// Publish implements outbox.Publisher. It sends the whole batch with
// PublishMsgAsync and then awaits every ack, so a batch costs about one
// round trip. A delivery's error is nil once JetStream acked it, also as a
// duplicate its dedup window dropped: the stream holds it.
func (p *Publisher) Publish(ctx context.Context, batch []outbox.Delivery) []error {
	errs := make([]error, len(batch))
	acks := make([]jetstream.PubAckFuture, len(batch))
	for i, d := range batch {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		msg, err := p.message(d)
		if err != nil {
			errs[i] = err
			continue
		}
		acks[i], err = p.js.PublishMsgAsync(msg, jetstream.WithMsgID(d.ID.String()))
		if err != nil {
			errs[i] = fmt.Errorf("keel nats: publishing %s to %q: %w", d.ID, msg.Subject, err)
		}
	}
	wait, cancel := context.WithTimeout(ctx, p.cfg.AckTimeout)
	defer cancel()
	for i, ack := range acks {
		if ack != nil {
			errs[i] = awaitAck(wait, ctx, ack, batch[i].ID.String())
		}
	}
	return errs
}

// awaitAck waits for one ack until wait ends; an ack that is already there
// counts even then.
func awaitAck(wait, ctx context.Context, ack jetstream.PubAckFuture, id string) error {
	select {
	case <-ack.Ok():
		return nil
	case err := <-ack.Err():
		return fmt.Errorf("keel nats: message %s: %w", id, err)
	default:
	}
	select {
	case <-ack.Ok():
		return nil
	case err := <-ack.Err():
		return fmt.Errorf("keel nats: message %s: %w", id, err)
	case <-wait.Done():
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("%w: message %s", ErrAckTimeout, id)
	}
}

// message builds the NATS message of a delivery: the payload as data, the
// delivery's headers and keel's.
func (p *Publisher) message(d outbox.Delivery) (*nats.Msg, error) {
	id := d.ID.String()
	subject := p.cfg.Subject(d)
	if reason := badSubject(subject); reason != "" {
		return nil, &UnsendableError{ID: id, Reason: fmt.Sprintf("subject %q %s", subject, reason)}
	}
	msg := nats.NewMsg(subject)
	msg.Data = d.Payload
	for name, value := range d.Headers {
		if err := setHeader(msg.Header, id, name, value); err != nil {
			return nil, err
		}
	}
	keel := [][2]string{
		{HeaderMessageID, id}, {HeaderTopic, d.Topic}, {HeaderKey, d.Key}, {HeaderType, d.Type},
	}
	for _, h := range keel {
		delete(msg.Header, h[0]) // a message's own header never stands for keel's
		if h[1] != "" {
			if err := setHeader(msg.Header, id, h[0], h[1]); err != nil {
				return nil, err
			}
		}
	}
	return msg, nil
}

func setHeader(h nats.Header, id, name, value string) error {
	if !validHeaderName(name) {
		return &UnsendableError{ID: id, Reason: fmt.Sprintf("header name %q is not a NATS header name", name)}
	}
	if strings.ContainsAny(value, "\r\n") || strings.TrimSpace(value) != value {
		return &UnsendableError{ID: id, Reason: fmt.Sprintf("header %s holds a line break or begins or ends with white space", name)}
	}
	h.Set(name, value)
	return nil
}

// validHeaderName is NATS's rule for header names: printable ASCII without
// the separators it forbids.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 33 || c > 126 || strings.IndexByte(`"()/,:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// badSubject says what makes subject unusable for a publish, or "" when
// nothing does.
func badSubject(subject string) string {
	if subject == "" {
		return "is empty"
	}
	if strings.IndexFunc(subject, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "holds white space or a control character"
	}
	for token := range strings.SplitSeq(subject, ".") {
		switch token {
		case "":
			return "has an empty token"
		case "*", ">":
			return "has a wildcard token"
		}
	}
	return ""
}
