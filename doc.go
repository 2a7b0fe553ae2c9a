// Package keel makes PostgreSQL the one durable backbone of a service: a
// transactional outbox and inbox, durable jobs, durable workflows (sagas) and
// an event store, all in one database and all writable in the caller's own
// transaction.
//
// This root package holds only what every feature shares: [DBTX], the
// transaction contract, and [Listener], the one LISTEN connection a process's
// components can share. Every keel operation that writes takes a DBTX, and it
// never begins, commits or rolls back a transaction it was given. Pass a
// pgx.Tx and the write commits or rolls back with the rest of your work:
//
//	tx, err := pool.Begin(ctx)
//	// insert your own rows, enqueue an outbox message, insert a job,
//	// append an event, start a saga — all with tx
//	err = tx.Commit(ctx)
//
// The features live in their own packages: outbox, jobs, saga and events.
// The schema they share is applied by package migrations (or the keel CLI,
// or the plain goose CLI) into the Postgres schema "keel".
package keel
