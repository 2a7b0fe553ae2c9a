package bench

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/bench/internal/scratch"
)

// freshDB creates an empty database on DATABASE_URL's server, applies keel's
// migrations when keel is true, and drops the database when b ends.
func freshDB(b *testing.B, keel bool, maxConns int32) *pgxpool.Pool {
	b.Helper()
	ctx := context.Background()
	d, err := scratch.New(ctx, os.Getenv("DATABASE_URL"), maxConns, keel)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Drop(ctx) })
	return d.Pool
}
