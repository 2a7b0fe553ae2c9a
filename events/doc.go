// Package events is keel's event store: append-only streams with optimistic
// concurrency, a gap-free global feed, durable catch-up subscriptions,
// inline projections, snapshots and aggregates — in the application's own
// PostgreSQL database, written in the application's own transaction.
//
// # Streams and versions
//
// A stream is a sequence of events named by a stream id such as
// "order-123". Its events are numbered from 1 with no holes; a stream's
// version is the number of its newest event (0 when it has none). The part of
// the id before the first '-' is its category ("order"), which ReadCategory
// and category subscriptions follow.
//
// [Store.Append] writes events in the caller's pgx.Tx (any [keeltype.DBTX])
// when the stream's version matches what the caller expects:
//
//	Any            whatever the version; creates the stream if needed
//	NoStream       only a stream with no events (same as Exactly(0))
//	StreamExists   only a stream that has events
//	Exactly(n)     only a stream at version n
//
// On a mismatch Append writes nothing and returns a *[VersionConflictError]
// with the stream, the expectation and the actual version; errors.Is(err,
// ErrVersionConflict) holds. Each append is one statement that locks the
// stream's row in keel.streams, so appends to one stream queue up and the
// unique (stream_id, version) key is only a backstop.
//
// Every event has an id: a UUIDv7 unless the caller sets one. Appending
// events whose ids are already stored, in the same stream in the same order,
// is a no-op reporting Duplicate, so a retried request is safe (as in
// EventStoreDB). Data is any JSON value, metadata a JSON object, and the
// causation and correlation ids have columns of their own. Bad input (an
// empty stream id, an unset or negative expected version, data that is not
// JSON, anything beyond the Limits below) is refused with an error matching
// [ErrInvalidArgument] before anything is sent.
//
// # The global feed and the sequencer
//
// Every event also gets a position in the global feed, and here keel parts
// with the bigserial that Marten and Message DB hand out at insert time:
// transactions commit in another order than they insert, so a reader that
// remembers "the last position I saw" skips an event whose transaction
// commits late. keel's writers insert events with no position and queue one
// small row per append. A sequencer — one short statement run under an
// advisory lock by whichever process gets it — moves the committed appends
// in the queue into the feed, in append order, each taking the next
// positions (the current maximum plus a running count). Appends of open
// transactions are invisible to it and get positions on a later pass. So
// positions are dense, follow the order in which events became visible, keep
// each stream's version order, and a long-running transaction delays only
// its own events, never anyone else's. Each event is written once: the feed
// holds one narrow row per append, not a copy of the event.
//
// [Store.ReadAll] and [Store.ReadCategory] return events that have positions
// only. Subscriptions run the sequencer themselves before each read; other
// readers call [Store.Sequence] first or keep [Store.Start] running in
// some process. Sequence waits for a pass another process is running, so
// once it returns every event committed before the call has its position.
// Positions start at 1.
//
// # Reading
//
// [Store.ReadStream] reads a stream forward from a version or backward from
// the end, with a limit, up to a version or up to a point in time (events
// recorded at or before it). recorded_at is the clock time of the insert,
// so within a stream it grows with the version.
//
// # Subscriptions
//
// A [Subscription] is named, durable and catches up: it handles the feed (or
// one category) from its checkpoint in keel.subscriptions. Each batch runs in
// one transaction that locks the subscription's row, calls the [Handler] for
// every event with that transaction and advances the checkpoint in it, so a
// projection the handler writes through the transaction is updated exactly
// once. Any number of processes may run the same subscription: one holds its
// lease and handles events, the others wait and take over when it stops (at
// once) or dies (when its lease runs out). Appends wake subscriptions through
// LISTEN/NOTIFY, debounced per process; subscriptions poll as well, so a
// lost notification only costs latency.
//
// A handler error or panic rolls the batch back. The subscription retries
// with exponential backoff and jitter, going event by event up to the one
// that failed, and after MaxAttempts failures it parks: the row shows
// status 'parked', the error and the failing position (select * from
// keel.subscriptions). [Store.SubscriptionGet] returns one subscription's
// state, [Store.SubscriptionList] lists them all, parked first, and
// [Store.SubscriptionResume] starts a parked one again. An event is never
// skipped.
//
// # Inline projections, snapshots and aggregates
//
// [Config.InlineProjections] run inside every Append, in the appending
// transaction, for read models that must never lag.
//
// [Store.SaveSnapshot] keeps a stream's folded state at a version.
// [Aggregate] ties it together: Load reads the latest snapshot and the events
// after it, LoadAt reconstructs the state at a version or a point in time,
// and Execute loads, asks a decide function for new events, appends them
// expecting the loaded version and snapshots every SnapshotEvery versions.
//
// # Stream lifecycle
//
// [Store.Tombstone] soft-deletes a stream: its rows stay, reads of it
// return ErrStreamDeleted, appends are refused, and category reads, the feed
// and subscriptions that have not reached its events leave them out.
// [Store.TruncateBefore] hides a stream's events below a version from every
// read (typically once a snapshot covers them); versions go on.
//
// # Limits
//
// Every call checks what it is given before its first statement, reads
// included. What Postgres would refuse — and abort the caller's transaction
// for — is refused with an error matching [ErrInvalidArgument] whose message
// names the field and the limit; nothing is sent and the transaction stays
// usable. Lengths are in bytes:
//
//   - stream id: 1 to 1,024; event type: 1 to 255; causation and
//     correlation ids: at most 1,024; subscription name: 1 to 255; category
//     (of ReadCategory and SubscriptionConfig): 1 to 1,024, without '-'
//     (which ends a category, so no stream would match). These keep index
//     entries under Postgres's btree limit; the schema has the same lengths
//     as CHECK constraints.
//   - Those, and a subscription's ConsumerID, must be UTF-8 without NUL
//     bytes. Invalid UTF-8 is refused, never stored as U+FFFD.
//   - Data and metadata must be JSON that jsonb stores as it is: UTF-8, no
//     \u0000 escape or lone surrogate escape (\ud800), numbers within
//     numeric's range (131,072 digits before the point, 16,383 after), at
//     most 1,000 levels deep and 32 MiB. Metadata is an object.
//   - A snapshot's state and NewEvent's value are encoded with those rules;
//     a Go string that is not UTF-8 or holds NUL is refused where
//     encoding/json would write U+FFFD.
//   - A read's UntilTime outside the years 1 to 9999 reads as if it were
//     that bound: nothing is recorded outside them.
//
// A nil DBTX, store, pool, Handler or decide function is ErrInvalidArgument,
// never a panic, and every write through a closed Store returns [ErrClosed]
// before it sends anything. The events an Aggregate's decide function
// returns are checked like any Append's.
//
// At run time a subscription stores its handler's error in last_error.
// Error text is never refused: NUL bytes and invalid UTF-8 in it become
// U+FFFD and it is cut to 16 KiB, so every failure is recorded, counts
// towards MaxAttempts and parks the subscription in the end. A handler that
// returns nil but leaves its transaction failed counts as failing.
//
// # Observability
//
// The store logs through [Config.Logger] (log/slog) and reports to
// Config.Hook, a keeltype.Hook: each append (a conflict is its error), each
// event a subscription handles (the handler runs with the hook's context)
// and subscription lag (events behind the feed's head, age of the newest
// handled event). The trace context the hook gives an append
// (Operation.Carrier) is stored in each event's metadata under
// keeltype.CarrierKey and handed back to the hook when a subscription
// handles the event. Subscriptions and the sequencer retry through a database
// outage with a capped exponential backoff (a batch cut off by it rolls back
// whole and is handled again), log one line when they lose the database and
// one when they have it back, and report both to the hook.
//
// # Tables
//
// keel.streams (one row per stream: version, truncation, tombstone),
// keel.events (the events, written once), keel.unsequenced (appends waiting
// for positions), keel.feed (the global feed, one row per append),
// keel.snapshots and keel.subscriptions; the view keel.event_feed lists
// every event with its position. Every table and column has a
// comment: \d+ keel.events in psql explains itself.
package events
