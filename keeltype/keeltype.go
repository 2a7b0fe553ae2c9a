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
//
// # Trace context through the database
//
// A job, an outbox message or an event is written by one process and acted
// on by another, perhaps much later. So that one trace runs from the
// request that wrote it to the worker, relay or subscription that acts on
// it, keel stores trace context with the row, through [Operation].Carrier,
// and imports no tracing library to do it:
//
//   - a write's Hook.Start fills Carrier: a tracer injects the context of
//     the span it started ("traceparent" and "tracestate" with W3C Trace
//     Context);
//   - keel stores the entries with each row the write makes — a job's
//     metadata and an event's metadata hold them as a JSON object under
//     [CarrierKey], an outbox message holds them as headers, so its
//     Publisher sends them on to the broker as well. InsertMany,
//     InsertWorkflow, an Enqueue of several messages and an Append of
//     several events store the one Carrier in every row;
//   - the work on a stored item (OpJobRun, OpOutboxPublish, OpEventsHandle)
//     hands the stored entries to Hook.Start in Carrier — for a message,
//     all its headers — and a tracer extracts its remote parent from them.
//
// A job's entries stay with it through its retries, and a saga run's
// executions are jobs, each inserted in the context that caused it (the
// Signal, the execution that parked it). A StartRun is a write of its own
// (OpSagaStart), whose entries its run's first job stores — also when
// StartRuns made at once on the engine's pool are inserted together — so
// a run joins the trace of its start.
//
// The caller's data wins and bad entries never cost a write: metadata that
// holds CarrierKey already, or a header a message sets already, is stored as
// the caller gave it; an entry keel cannot store — a name empty or over
// [MaxCarrierName] bytes, a value over [MaxCarrierValue] bytes, either with
// a NUL byte or invalid UTF-8, an entry past the first [MaxCarrierEntries]
// in name order — is dropped, and the write goes on without it.
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
