package keelnats_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	keelnats "github.com/keelpg/keel/integrations/nats"
	"github.com/keelpg/keel/outbox"
)

// A batch goes out with one result per delivery: stored messages carry the
// payload, the message's headers and keel's, under the default subject;
// deliveries NATS cannot carry unchanged, or that no stream takes, fail
// alone; and publishing the batch again stores nothing new, since
// JetStream's dedup window knows the Nats-Msg-Id.
func TestPublish(t *testing.T) {
	t.Parallel()
	_, js := sharedJetStream(t)
	stream, prefix := testStream(t, js)
	pub, err := keelnats.NewPublisher(js, keelnats.PublisherConfig{AckTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	delivery := func(topic, key string, headers map[string]string) outbox.Delivery {
		return outbox.Delivery{Message: outbox.Message{
			ID: uuid.New(), Topic: topic, Key: key, Type: "OrderPlaced", Payload: []byte(`{"order":42}`), Headers: headers,
		}, Attempt: 1}
	}
	orders := prefix + ".orders"
	cases := []struct {
		name    string
		d       outbox.Delivery
		wantErr error // nil: stored
	}{
		{"keyed with headers", delivery(orders, "order-42", map[string]string{"Content-Type": "application/json", "Keel-Key": "forged"}), nil},
		{"without key", delivery(orders, "", nil), nil},
		{"key with a line break", delivery(orders, "order\n42", nil), keelnats.ErrUnsendable},
		{"header with outer space", delivery(orders, "k", map[string]string{"X-Trace": " t1"}), keelnats.ErrUnsendable},
		{"header name with a colon", delivery(orders, "k", map[string]string{"X:Trace": "t1"}), keelnats.ErrUnsendable},
		{"subject with a space", delivery(prefix+".two words", "k", nil), keelnats.ErrUnsendable},
		{"subject with a wildcard", delivery(prefix+".*", "k", nil), keelnats.ErrUnsendable},
		{"no stream takes the subject", delivery("keeltest-nowhere."+prefix, "k", nil), jetstream.ErrNoStreamResponse},
	}
	batch := make([]outbox.Delivery, len(cases))
	for i, tc := range cases {
		batch[i] = tc.d
	}
	ctx := context.Background()
	for round := range 2 {
		errs := pub.Publish(ctx, batch)
		if len(errs) != len(batch) {
			t.Fatalf("%d results for %d deliveries", len(errs), len(batch))
		}
		for i, tc := range cases {
			if tc.wantErr == nil && errs[i] != nil || tc.wantErr != nil && !errors.Is(errs[i], tc.wantErr) {
				t.Errorf("round %d, %s: error %v, want %v", round, tc.name, errs[i], tc.wantErr)
			}
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 2 {
			t.Errorf("round %d: the stream holds %d messages, want 2", round, info.State.Msgs)
		}
	}

	first, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Nats-Msg-Id":     batch[0].ID.String(),
		"Keel-Message-Id": batch[0].ID.String(),
		"Keel-Topic":      orders,
		"Keel-Key":        "order-42",
		"Keel-Type":       "OrderPlaced",
		"Content-Type":    "application/json",
	}
	for k, v := range want {
		if got := first.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if first.Subject != orders || string(first.Data) != `{"order":42}` {
		t.Errorf("stored %q on %q", first.Data, first.Subject)
	}
	second, err := stream.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := second.Header["Keel-Key"]; ok {
		t.Errorf("a message without key has Keel-Key %q", second.Header.Get("Keel-Key"))
	}
}

// A batch handed over with a context already cancelled publishes nothing
// and fails every delivery with the context's error.
func TestPublishCancelled(t *testing.T) {
	t.Parallel()
	_, js := sharedJetStream(t)
	stream, prefix := testStream(t, js)
	pub, err := keelnats.NewPublisher(js, keelnats.PublisherConfig{Subject: keelnats.PrefixSubject(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errs := pub.Publish(ctx, []outbox.Delivery{{Message: outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte("x")}}})
	if !errors.Is(errs[0], context.Canceled) {
		t.Errorf("error %v, want context.Canceled", errs[0])
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("the stream holds %d messages", info.State.Msgs)
	}
}

func TestNewPublisherRefuses(t *testing.T) {
	t.Parallel()
	_, js := sharedJetStream(t)
	for name, tc := range map[string]struct {
		js  jetstream.JetStream
		cfg keelnats.PublisherConfig
	}{
		"nil JetStream":        {nil, keelnats.PublisherConfig{}},
		"negative ack timeout": {js, keelnats.PublisherConfig{AckTimeout: -time.Second}},
	} {
		if _, err := keelnats.NewPublisher(tc.js, tc.cfg); !errors.Is(err, keelnats.ErrInvalidArgument) {
			t.Errorf("%s: error %v, want ErrInvalidArgument", name, err)
		}
	}
}
