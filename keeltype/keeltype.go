// Package keeltype holds the types keel's packages share, so each idea has
// one shape everywhere:
//
//   - [DBTX], the transaction contract every write keeps;
//   - [RetryPolicy] (with [ExponentialBackoff] and [RetryPolicyFunc]), how
//     jobs, the outbox relay, event subscriptions and saga steps space their
//     attempts;
//   - [Hook], the one interface through which metrics and traces see every
//     package's work, with the [Operation]s and [Measurement]s it reports;
//   - [Outage], what every long-running component reports when it loses the
//     database and when it has it back.
//
// It imports nothing of keel, so any package may use it.
package keeltype

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DBTX is what every keel write takes: a pgx.Tx, a *pgx.Conn or a
// *pgxpool.Pool all satisfy it. With a pgx.Tx the write joins the caller's
// transaction; keel never begins, commits or rolls back a DBTX it is given.
// With a *pgx.Conn or a *pgxpool.Pool each statement commits on its own.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Outage describes one database outage as one of keel's long-running
// components saw it. Each component retries through an outage with a capped
// exponential backoff, logs one line when it loses the database and one when
// it has it back, and reports an Outage at both ends: once with Over false
// when the first attempt fails, once with Over true, the Duration and the
// count of failed attempts when one succeeds again.
type Outage struct {
	// Component names what lost the database: "jobs", "outbox relay", …
	Component string
	// Start is when the first attempt failed.
	Start time.Time
	// Over is false when the outage begins and true when it ends.
	Over bool
	// Duration is how long it lasted; 0 until it is over.
	Duration time.Duration
	// Failures counts the attempts that failed so far.
	Failures int
	// Err is the error of the first failed attempt.
	Err error
}
