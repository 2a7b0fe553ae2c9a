// Package outbox is keel's transactional outbox, its relay, and the
// consumer-side inbox.
//
// # Enqueue in your transaction
//
// An [Outbox] writes messages in the transaction you give it, next to your
// own rows. They are published once that transaction commits, and never if
// it rolls back:
//
//	box := outbox.New(pool, outbox.Config{})
//	tx, _ := pool.Begin(ctx)
//	// … your own writes with tx …
//	box.Enqueue(ctx, tx, outbox.Message{Topic: "orders", Key: orderID, Type: "OrderPlaced", Payload: body})
//	tx.Commit(ctx)
//
// Each message has an id (a UUIDv7 unless you give your own; enqueueing an
// id twice stores it once), a topic, an optional order key, a type, a
// payload, headers and an optional not-before time. Enqueue sends a NOTIFY
// that fires on commit to wake relays at once, at most one per NotifyInterval
// per process, since every notifying commit takes a database-wide lock.
//
// # Relay
//
// A [Relay] claims batches of committed messages with FOR UPDATE SKIP
// LOCKED, hands them to your [Publisher] (Kafka, NATS, SQS, or the ready
// HTTP publisher in package webhook) and records the outcomes, one statement
// per batch. Run as many relays in as many processes as you like. What they
// guarantee:
//
//   - At least once. A claim is a lease (RelayConfig.Lease); a message claimed
//     by a relay that died is taken again when the lease runs out. A message
//     may therefore be published more than once: consumers deduplicate by id,
//     which is what the [Inbox] is for.
//   - Per-key order. A message is not published while an earlier message with
//     the same key is undelivered — claimed by a relay or waiting to retry.
//     Messages without a key flow in parallel. A batch never holds two
//     messages of one key. A dead message stops blocking its key (the later
//     messages go on); requeueing it puts it back in line behind them.
//   - Retries. A failed attempt is recorded in the row (last_error, and every
//     attempt in errors) and retried after an exponential backoff with jitter
//     (RelayConfig.RetryPolicy, default about 1s, 2s, 4s … up to an hour). After MaxAttempts
//     (default 10) the message is dead: state 'dead' in keel.outbox, for a
//     person to look at and [Requeue] — or, once the cause is fixed,
//     [RequeueDead] for every dead message of a topic at once.
//   - Retention. Delivered messages are deleted after RelayConfig.Retention
//     (default 24h) by whichever relay holds the retention lock; dead
//     messages are kept.
//
// Relays wake on NOTIFY and also poll every PollInterval, so a lost
// notification (a dropped connection, PgBouncer in transaction mode) only
// delays delivery. Stopping a relay (cancelling Run's context) records what
// was delivered and hands back what was not, without using an attempt.
//
// Through a database outage a relay keeps trying with a capped exponential
// backoff, and holds the outcome of a batch it published until it can
// record it, so a delivered message is not published again because its
// outcome met an outage. It logs one line when it loses the database and
// one when it has it back, and reports both to RelayConfig.Hook.
//
// # Inbox
//
// On the consuming side, an [Inbox] records each message id a named consumer
// processed in the same transaction as the consumer's own writes. A second
// delivery of the id is recognised and skipped — also when both deliveries
// race in parallel: the second waits for the first transaction and then sees
// it. Records are kept for a dedup window (default 7 days).
//
// # Limits
//
// Every write checks what it is given before its first statement. What
// Postgres would refuse is refused with a typed error, nothing is sent, and
// the caller's transaction stays usable:
//
//   - Lengths, in bytes: a topic 1 to 255, a type at most 255, a key at
//     most 1024 (it is indexed); an inbox consumer 1 to 255 and a message id
//     1 to 1024; a relay name at most 255. Key, type, consumer and message
//     id are also CHECK constraints in the schema.
//   - Those, and header names (not empty) and values, must be UTF-8 without
//     a NUL byte. Invalid UTF-8 is refused, never replaced with U+FFFD. The
//     payload is bytes and may hold anything.
//   - Times (a message's NotBefore, DeleteDelivered's time, Expire's now
//     less the dedup window) must lie within Postgres's range, 4714 BC to
//     294276 AD.
//
// A refused message fails Enqueue with an [*InvalidMessageError]
// ([ErrInvalidMessage]) that names the message, the field and the limit; a
// refused inbox key fails with [ErrInvalidInboxKey]; a nil transaction,
// pool, publisher or handler, or a bad RelayConfig, with
// [ErrInvalidArgument]; an Enqueue on a closed Outbox with [ErrClosed].
//
// A publisher's error cannot be refused, so the relay stores what it can:
// each NUL byte and invalid byte of its text becomes U+FFFD, and text past
// 16 KiB is cut, as every keel package stores error text. The failed attempt is
// always recorded and counts towards MaxAttempts.
//
// # Observing
//
// Relays log through log/slog and report to RelayConfig.Hook, a
// keeltype.Hook: each message's publishing and how it ended (delivered,
// failed, released at a stop), the age of the oldest undelivered message and
// outages; Config.Hook sees each Enqueue. The trace context the hook gives
// an Enqueue (Operation.Carrier) is stored as headers of each message — a
// header the message sets already is kept — so it reaches the Publisher
// and the broker, and the relay hands a message's headers back to the hook
// when it publishes it. keel.outbox and keel.inbox explain themselves in
// psql (\d+ keel.outbox).
package outbox
