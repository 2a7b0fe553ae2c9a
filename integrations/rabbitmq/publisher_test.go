package keelrabbit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	keelrabbit "github.com/keelpg/keel/integrations/rabbitmq"
	"github.com/keelpg/keel/outbox"
)

func delivery(topic, key string, headers map[string]string) outbox.Delivery {
	return outbox.Delivery{Message: outbox.Message{
		ID: uuid.New(), Topic: topic, Key: key, Type: "OrderPlaced", Payload: []byte(`{"order":42}`), Headers: headers,
	}, Attempt: 1, EnqueuedAt: time.Unix(1700000000, 0)}
}

// A batch goes out with one result per delivery, from the broker's
// confirms: a routable message is confirmed and stored persistent with its
// id, type, headers and keel's; one no queue takes is returned and fails
// alone; one AMQP cannot carry fails before it is sent.
func TestPublish(t *testing.T) {
	t.Parallel()
	queue := testQueue(t)
	pub, err := keelrabbit.NewPublisher(keelrabbit.PublisherConfig{URL: sharedBroker(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	long := strings.Repeat("h", 256)
	cases := []struct {
		name    string
		d       outbox.Delivery
		wantErr error // nil: confirmed
	}{
		{"keyed with headers", delivery(queue, "order-42", map[string]string{"Content-Type": "application/json", "Keel-Key": "forged"}), nil},
		{"without key", delivery(queue, "", nil), nil},
		{"key with a line break", delivery(queue, "order\n42", nil), nil},
		{"no queue takes it", delivery(queue+"-nowhere", "k", nil), keelrabbit.ErrUnroutable},
		{"header name over 255 bytes", delivery(queue, "k", map[string]string{long: "v"}), keelrabbit.ErrUnsendable},
		{"routing key over 255 bytes", delivery(long, "k", nil), keelrabbit.ErrUnsendable},
	}
	batch := make([]outbox.Delivery, len(cases))
	for i, tc := range cases {
		batch[i] = tc.d
	}
	errs := pub.Publish(context.Background(), batch)
	if len(errs) != len(batch) {
		t.Fatalf("%d results for %d deliveries", len(errs), len(batch))
	}
	for i, tc := range cases {
		if tc.wantErr == nil && errs[i] != nil || tc.wantErr != nil && !errors.Is(errs[i], tc.wantErr) {
			t.Errorf("%s: error %v, want %v", tc.name, errs[i], tc.wantErr)
		}
	}
	var returned *keelrabbit.ReturnedError
	if !errors.As(errs[3], &returned) || returned.Code != amqp.NoRoute || returned.RoutingKey != queue+"-nowhere" {
		t.Errorf("returned: %#v", errs[3])
	}

	ch := channel(t)
	if n := queueDepth(t, ch, queue); n != 3 {
		t.Fatalf("the queue holds %d messages, want 3", n)
	}
	got, ok, err := ch.Get(queue, true)
	if err != nil || !ok {
		t.Fatalf("get: %v, %v", ok, err)
	}
	d := batch[0]
	if got.MessageId != d.ID.String() || got.Type != "OrderPlaced" || got.DeliveryMode != amqp.Persistent ||
		got.ContentType != "application/json" || string(got.Body) != `{"order":42}` || !got.Timestamp.Equal(d.EnqueuedAt) {
		t.Errorf("stored %+v", got)
	}
	want := amqp.Table{"Keel-Topic": queue, "Keel-Key": "order-42", "Content-Type": "application/json"}
	if len(got.Headers) != len(want) {
		t.Errorf("headers %v, want %v", got.Headers, want)
	}
	for k, v := range want {
		if got.Headers[k] != v {
			t.Errorf("header %s = %v, want %v", k, got.Headers[k], v)
		}
	}
	second, _, err := ch.Get(queue, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := second.Headers["Keel-Key"]; ok {
		t.Errorf("a message without key has Keel-Key %v", second.Headers["Keel-Key"])
	}
}

// Publishing to an exchange that does not exist makes the broker close the
// channel: the batch fails, and the next Publish connects again and
// delivers.
func TestPublishReconnectsAfterChannelClose(t *testing.T) {
	t.Parallel()
	queue := testQueue(t)
	missing := "keeltest-missing-" + queue
	pub, err := keelrabbit.NewPublisher(keelrabbit.PublisherConfig{
		URL: sharedBroker(t),
		Exchange: func(d outbox.Delivery) string {
			if d.Key == "lost" {
				return missing
			}
			return ""
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	ctx := context.Background()
	errs := pub.Publish(ctx, []outbox.Delivery{delivery(queue, "lost", nil)})
	if !errors.Is(errs[0], keelrabbit.ErrConnectionLost) {
		t.Errorf("to a missing exchange: %v, want ErrConnectionLost", errs[0])
	}
	errs = pub.Publish(ctx, []outbox.Delivery{delivery(queue, "a", nil), delivery(queue, "b", nil)})
	for i, err := range errs {
		if err != nil {
			t.Errorf("after the channel closed, delivery %d: %v", i, err)
		}
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	errs = pub.Publish(ctx, []outbox.Delivery{delivery(queue, "c", nil)})
	if !errors.Is(errs[0], keelrabbit.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", errs[0])
	}
	if n := queueDepth(t, channel(t), queue); n != 2 {
		t.Errorf("the queue holds %d messages, want 2", n)
	}
}

// While the broker cannot be reached every delivery fails with
// ErrConnectionLost, at once.
func TestPublishWithoutBroker(t *testing.T) {
	t.Parallel()
	pub, err := keelrabbit.NewPublisher(keelrabbit.PublisherConfig{URL: "amqp://guest:guest@127.0.0.1:1/"}) // nothing listens on port 1
	if err != nil {
		t.Fatal(err)
	}
	errs := pub.Publish(context.Background(), []outbox.Delivery{delivery("q", "a", nil), delivery("q", "b", nil)})
	for i, err := range errs {
		if !errors.Is(err, keelrabbit.ErrConnectionLost) {
			t.Errorf("delivery %d: %v, want ErrConnectionLost", i, err)
		}
	}
}

// A batch cancelled before it is sent fails with the context's error.
func TestPublishCancelled(t *testing.T) {
	t.Parallel()
	queue := testQueue(t)
	live, err := keelrabbit.NewPublisher(keelrabbit.PublisherConfig{URL: sharedBroker(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if errs := live.Publish(ctx, []outbox.Delivery{delivery(queue, "a", nil)}); !errors.Is(errs[0], context.Canceled) {
		t.Errorf("cancelled: %v", errs[0])
	}
}

func TestNewPublisherRefuses(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]keelrabbit.PublisherConfig{
		"no URL":                  {},
		"not an AMQP URI":         {URL: "http://127.0.0.1:5672/"},
		"negative confirm timout": {URL: "amqp://127.0.0.1/", ConfirmTimeout: -time.Second},
	} {
		if _, err := keelrabbit.NewPublisher(cfg); !errors.Is(err, keelrabbit.ErrInvalidArgument) {
			t.Errorf("%s: error %v, want ErrInvalidArgument", name, err)
		}
	}
}
