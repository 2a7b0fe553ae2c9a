package bench

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/bench/internal/scratch"
)

// freshDB creates an empty database on DATABASE_URL's server, applies keel's
// migrations when keel is true, and drops the database when b ends. It then
// CHECKPOINTs, so no case pays for flushing what the cases before it
// wrote (a history case CHECKPOINTs again after loading its history).
func freshDB(b *testing.B, keel bool, maxConns int32) *pgxpool.Pool {
	b.Helper()
	ctx := context.Background()
	d, err := scratch.New(ctx, os.Getenv("DATABASE_URL"), maxConns, keel)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Drop(ctx) })
	if _, err := d.Pool.Exec(ctx, "CHECKPOINT"); err != nil {
		b.Fatal(err)
	}
	return d.Pool
}
