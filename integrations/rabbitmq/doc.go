// Package keelrabbit carries keel's outbox messages over RabbitMQ (AMQP
// 0-9-1): a [Publisher] for the outbox relay and a [Consumer] that runs
// each message through an outbox.Inbox. It is a Go module of its own
// (github.com/keelpg/keel/integrations/rabbitmq), so keel's own module does
// not depend on the AMQP client.
//
// # Publishing
//
// A [Publisher] is an outbox.Publisher that holds one connection and one
// channel in confirm mode:
//
//	pub, _ := keelrabbit.NewPublisher(keelrabbit.PublisherConfig{URL: "amqp://guest:guest@127.0.0.1:5672/"})
//	defer pub.Close()
//	relay, _ := outbox.NewRelay(pool, pub, outbox.RelayConfig{})
//	relay.Start(ctx)
//
// It publishes a whole batch and then awaits the broker's confirms, one
// result per message. A message is delivered when the broker acked it; it
// fails when the broker nacked it ([ErrNacked]), returned it because no
// queue took it ([ErrUnroutable]: every message is published mandatory), or
// when the connection closed first ([ErrConnectionLost]) or the confirm did
// not come within PublisherConfig.ConfirmTimeout ([ErrConfirmTimeout],
// default 10s). A message AMQP cannot carry (an exchange, routing key or
// header name over 255 bytes) fails with [ErrUnsendable].
//
// Each message is persistent (delivery mode 2), with the payload as its
// body, the outbox message id as its message-id, the type as its type,
// the enqueue time as its timestamp, the Content-Type header as its content
// type, the outbox headers as AMQP headers, and keel's:
//
//	Keel-Topic   the topic
//	Keel-Key     the order key, when there is one
//
// By default a message goes to the default exchange with the topic as its
// routing key ([DefaultExchange], [TopicRoutingKey]): the topic names the
// queue, which must exist (declare it durable). The default exchange
// always exists, so a topic without a queue costs only that message, as a
// return. PublisherConfig.Exchange and RoutingKey route otherwise, say to a
// topic exchange by topic and key; publishing to an exchange that does not
// exist makes the broker close the channel, which fails the batch in hand,
// and the next Publish connects again.
//
// The Publisher connects at its first Publish and again at the next Publish
// whenever the connection or channel closed (a broker restart, a network
// cut), so an outage costs the batches in flight and the relay retries
// them. A message whose confirm was lost may have reached the queue: the
// relay publishes it again, and the consumer's inbox drops the copy.
//
// # Consuming
//
// A [Consumer] consumes a queue and hands each message to a [Handler]
// inside outbox.Inbox.Process: the handler's writes and the inbox's record
// of the message-id commit in one transaction, and the message is acked
// only after that commit. A message delivered again — its ack was lost, it
// was published twice — finds its id recorded and is acked without running
// the handler, so each message takes effect once in the database:
//
//	c, _ := keelrabbit.NewConsumer(inbox, func(ctx context.Context, tx pgx.Tx, m keelrabbit.Message) error {
//		_, err := tx.Exec(ctx, "INSERT INTO charges …", …)
//		return err
//	}, keelrabbit.ConsumerConfig{URL: url, Queue: "payments"})
//	c.Start(ctx)
//
// The inbox consumer name is the queue's unless ConsumerConfig.Name gives
// one. A message without message-id cannot be deduplicated; it is rejected
// without requeue (a dead-letter exchange of the queue keeps it) and
// logged, as is one whose id the inbox cannot store.
//
// A handler that fails (or panics) rolls its transaction back, and the
// message is held for a delay from ConsumerConfig.RetryPolicy (default
// about 1s, 2s, 4s … up to a minute) and then requeued with basic.nack,
// never acked. The Consumer handles one message at a time, with a prefetch
// of 1 by default: a failed message is then retried before any later one
// is handled, so per-key order holds through failures and reconnects. A
// larger ConsumerConfig.Prefetch is faster but lets later messages pass a
// requeued one.
//
// The Consumer connects when it starts and again, with a capped backoff,
// whenever its connection or channel closes; the broker requeues what it
// had handed over and not seen acked. Start, Stop and StopAndCancel run it
// in the background as keel's other components do; Run is the blocking
// form. Stop lets the message in hand commit and be acked; StopAndCancel
// rolls it back and requeues it.
//
// # Tests
//
// The tests run against the machine's RabbitMQ (RABBITMQ_URL, default
// amqp://guest:guest@127.0.0.1:5672/) and PostgreSQL (DATABASE_URL), each
// on queues of its own, and skip when the broker cannot be reached. The
// shared broker is never stopped or restarted. Two tests take a broker
// away twice while a relay publishes and a Consumer consumes, then check
// that every message took effect once and in per-key order:
// TestBrokerRestart restarts a real broker, a private RabbitMQ node it
// boots (its own node name, ports, config and data directory; rabbitmqctl
// stop_app and start_app: every connection drops, the durable queue keeps
// its persistent messages) and shuts down at the end, and skips when no
// such node can start (it needs rabbitmq-server, run as root or the
// rabbitmq user); TestBrokerOutage puts a TCP proxy of its own between the
// clients and the shared broker and cuts it — every connection closed at
// once with what was in flight, new ones refused.
package keelrabbit
