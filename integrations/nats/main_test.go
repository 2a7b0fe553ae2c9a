package keelnats_test

import (
	"cmp"
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keelpg/keel/internal/brokertest"
)

// natsURL is the machine's shared NATS server with JetStream, which the
// examples and most tests use: NATS_URL, else nats://127.0.0.1:4222.
func natsURL() string { return cmp.Or(os.Getenv("NATS_URL"), nats.DefaultURL) }

// TestMain gives the tests their databases. When the shared NATS server
// cannot be reached, it runs no example (they need it) and says so once;
// the tests then skip one by one.
func TestMain(m *testing.M) {
	brokertest.Main(m, "keelnats: NATS at "+natsURL(), func() error {
		nc, err := nats.Connect(natsURL(), nats.Timeout(2*time.Second))
		if err == nil {
			nc.Close()
		}
		return err
	})
}

// sharedJetStream connects to the shared server, or skips the test when it
// cannot be reached.
func sharedJetStream(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(natsURL(), nats.Timeout(2*time.Second))
	if err != nil {
		t.Skipf("NATS at %s unreachable: %v", natsURL(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// testStream makes a stream of its own for the test, taking the subjects
// "<prefix>.>", and deletes it when the test ends.
func testStream(t *testing.T, js jetstream.JetStream) (jetstream.Stream, string) {
	t.Helper()
	suffix := brokertest.RandomHex()
	prefix := "keeltest." + suffix
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "KEELTEST_" + suffix, Subjects: []string{prefix + ".>"}, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), s.CachedInfo().Config.Name) })
	return s, prefix
}

// orderedConsumer makes a durable consumer that hands out one message at a
// time, which keeps per-key order also through redeliveries.
func orderedConsumer(t *testing.T, s jetstream.Stream, ackWait time.Duration) jetstream.Consumer {
	t.Helper()
	c, err := s.CreateOrUpdateConsumer(context.Background(), jetstream.ConsumerConfig{
		Durable: "keeltest", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1, AckWait: ackWait,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
