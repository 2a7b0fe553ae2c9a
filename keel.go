package keel

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DBTX is what every keel write takes: a pgx.Tx, a *pgx.Conn or a
// *pgxpool.Pool all satisfy it. With a pgx.Tx the write joins the caller's
// transaction; keel never begins, commits or rolls back a DBTX it is given.
// With a *pgx.Conn or a *pgxpool.Pool each statement commits on its own.
//
// It has the shape of the DBTX interface that sqlc generates for pgx/v5, so a
// DBTX can be handed straight to keel's generated queries.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, tableName pgx.Identifier, columnNames []string, rowSrc pgx.CopyFromSource) (int64, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}
