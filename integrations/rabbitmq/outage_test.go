package keelrabbit_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	keelrabbit "github.com/keelpg/keel/integrations/rabbitmq"
	"github.com/keelpg/keel/internal/brokertest"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// Through two broker outages — every connection of the relay's publisher
// and of the consumer cut at once, with what was in flight, and new ones
// refused for a while — every message takes effect once, in per-key order:
// the publisher connects again at the next batch, the consumer reconnects
// on its own, what the broker got twice is dropped by the inbox.
//
// The outage is a TCP proxy the test cuts, not a restart of the shared
// broker; see the package doc.
func TestBrokerOutage(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(sharedBroker(t))
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	queue := testQueue(t)
	outagesThrough(t, p.url(), queue, p.cut, p.restore)
}

// outagesThrough runs brokertest.Outages through the broker at url: a relay
// publishing to queue and a consumer of it, with down and up making and
// ending each outage.
func outagesThrough(t *testing.T, url, queue string, down, up func()) {
	t.Helper()
	pool := testdb.New(t)
	brokertest.CreateEffects(t, pool)
	pub, err := keelrabbit.NewPublisher(keelrabbit.PublisherConfig{URL: url, ConfirmTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := keelrabbit.NewConsumer(inbox, func(ctx context.Context, tx pgx.Tx, m keelrabbit.Message) error {
		return brokertest.WriteEffect(ctx, tx, m.ID, m.Key, m.Payload)
	}, keelrabbit.ConsumerConfig{URL: url, Queue: queue, RetryPolicy: keeltype.ExponentialBackoff{Initial: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Outages(t, brokertest.Outage{
		Pool: pool, Publisher: pub, Consumer: consumer, Topic: queue,
		Down: down, Up: up,
	})
}
