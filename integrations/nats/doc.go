// Package keelnats carries keel's outbox messages over NATS JetStream: a
// [Publisher] for the outbox relay and a [Consumer] that runs each message
// through an outbox.Inbox. It is a Go module of its own
// (github.com/keelpg/keel/integrations/nats), so keel's own module does not
// depend on the NATS client.
//
// # Publishing
//
// A [Publisher] is an outbox.Publisher over a jetstream.JetStream:
//
//	nc, _ := nats.Connect(url, nats.MaxReconnects(-1))
//	js, _ := jetstream.New(nc)
//	pub, _ := keelnats.NewPublisher(js, keelnats.PublisherConfig{Subject: keelnats.PrefixSubject("keel")})
//	relay, _ := outbox.NewRelay(pool, pub, outbox.RelayConfig{})
//	relay.Start(ctx)
//
// It sends a whole batch with PublishMsgAsync and then awaits every ack, one
// result per message; a message is delivered once a stream acked it. Each
// message carries the payload as its data, the outbox headers as NATS
// headers, and keel's:
//
//	Nats-Msg-Id       the message id, for JetStream's dedup window
//	Keel-Message-Id   the message id
//	Keel-Topic        the topic
//	Keel-Key          the order key, when there is one
//	Keel-Type         the type, when there is one
//
// The relay publishes at least once: a message whose ack was lost (a server
// restart, a timeout) is published again. JetStream drops the second copy
// when it comes within the stream's dedup window (StreamConfig.Duplicates,
// default 2 minutes), by Nats-Msg-Id; a copy that comes later is stored and
// left to the consumer's inbox. Keep the window above the relay's longest
// retry wait if the stream should hold each message once.
//
// The subject is the topic by default ([TopicSubject]); [PrefixSubject]
// puts a prefix before it so one stream takes every topic, and
// PublisherConfig.Subject can build any subject. The key is not part of the
// default subject, because a key is free text (up to 1024 bytes that may
// hold dots, wildcards and spaces) and a subject is not, and because a
// subject per key makes a stream track state for every key ever seen.
// Order needs no subject of its own either: the relay publishes a key's
// next message only after the previous one is acked, so a stream holds each
// key's messages in order whatever their subjects. Build the subject from
// the key yourself when consumers filter by it.
//
// A message NATS cannot carry unchanged fails with [ErrUnsendable]: a
// subject that is not a valid publish subject, a header name with a
// character NATS forbids, or a header value (the key included) with a line
// break or outer white space, which the client would rewrite. It is
// retried and ends dead like any failure, for a person to see. A batch whose
// acks do not all come within PublisherConfig.AckTimeout (default 10s)
// fails the rest with [ErrAckTimeout].
//
// Connect with nats.MaxReconnects(-1): the client then rides out a server
// restart, buffering what is published meanwhile, and a Publisher's
// failures during it are retried by the relay. A closed connection fails
// every message until the process makes a new one.
//
// # Consuming
//
// A [Consumer] takes messages from a jetstream.Consumer (a pull consumer
// with explicit acks) and hands each to a [Handler] inside
// outbox.Inbox.Process: the handler's writes and the inbox's record of the
// message id commit in one transaction, and the message is acked only
// after that commit. A message delivered again — its ack was lost, it was
// published twice — finds its id recorded and is acked without running the
// handler, so each message takes effect once in the database:
//
//	cons, _ := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
//		Durable: "billing", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1,
//	})
//	c, _ := keelnats.NewConsumer(inbox, cons, func(ctx context.Context, tx pgx.Tx, m keelnats.Message) error {
//		_, err := tx.Exec(ctx, "INSERT INTO charges …", …)
//		return err
//	}, keelnats.ConsumerConfig{})
//	c.Start(ctx)
//
// The id is the Keel-Message-Id header, else Nats-Msg-Id, else the
// message's stream and sequence. The inbox consumer name is the JetStream
// consumer's name unless ConsumerConfig.Name gives one; use a durable
// consumer, so the name outlives the process.
//
// A handler that fails (or panics) rolls its transaction back, and the
// message is nak'ed with a delay from ConsumerConfig.RetryPolicy (default
// about 1s, 2s, 4s … up to a minute), never acked; the JetStream consumer's
// MaxDeliver bounds the attempts. A message id the inbox cannot store
// (longer than 1024 bytes, not UTF-8) is terminated with a log line. While
// a handler runs longer than half the consumer's AckWait, the message is
// marked in progress, so JetStream does not deliver it again meanwhile.
//
// A Consumer handles one message at a time, in the order JetStream delivers
// them. For per-key order to hold also when a handler fails or the server
// restarts, give the JetStream consumer MaxAckPending 1: a nak'ed message
// then comes again before any later one. Run more Consumers (on more
// JetStream consumers, by subject) for more throughput.
//
// Start, Stop and StopAndCancel run a Consumer in the background as keel's
// other components do; Run is the blocking form. Stop lets the message in
// hand commit and be acked; StopAndCancel rolls it back and naks it.
//
// # Tests
//
// The tests run against the machine's NATS server with JetStream (NATS_URL,
// default nats://127.0.0.1:4222) and PostgreSQL (DATABASE_URL), and skip
// when the NATS server cannot be reached. The server-restart test starts a
// private nats-server of its own on a free port, with its store in a
// temporary directory, kills it with SIGKILL twice while a relay publishes
// and a Consumer consumes, and checks that every message took effect once,
// in per-key order, and that the stream holds each message once.
package keelnats
