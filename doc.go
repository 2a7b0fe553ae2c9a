// Package keel makes PostgreSQL the one durable backbone of a service: a
// transactional outbox and inbox, durable jobs, durable workflows (sagas) and
// an event store, all in one database and all writable in the caller's own
// transaction.
//
// A service makes one [Client] over its pool with [New]. The Client owns the
// process's one LISTEN connection, builds the components its [Config] asks
// for — a jobs client that runs the application's workers and the saga
// engine's runs together, an outbox writer and its relay, an inbox, an event
// store and its subscriptions — checks that the pool can serve them, and
// starts and stops them in order:
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	k, err := keel.New(pool, keel.Config{Jobs: jobs.Config{Workers: workers}, Workflows: registry, Publisher: pub})
//	err = k.Start(ctx)
//	defer pool.Close()
//	defer k.Stop(context.WithoutCancel(ctx)) // before pool.Close
//
// Every keel operation that writes takes a [keeltype.DBTX] — a pgx.Tx, a
// *pgx.Conn or the pool — and never begins, commits or rolls back a
// transaction it was given. Pass a pgx.Tx and the write commits or rolls
// back with the rest of your work:
//
//	tx, err := pool.Begin(ctx)
//	// insert your own rows, enqueue an outbox message (k.Outbox()), insert a
//	// job (k.Jobs()), append an event (k.Events()), start a saga run
//	// (k.Saga()) — all with tx
//	err = tx.Commit(ctx)
//
// The features live in their own packages — outbox, jobs, saga and events —
// and each is usable alone. The schema they share is applied by package
// migrations (or the keel CLI, or the plain goose CLI) into the Postgres
// schema "keel".
package keel
