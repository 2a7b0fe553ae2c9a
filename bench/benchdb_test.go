package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

// Benchmarks create their databases with these: CREATE and DROP DATABASE
// take identifiers, which no query parameter can stand for.
const (
	createDatabase = "CREATE DATABASE %s"
	dropDatabase   = "DROP DATABASE IF EXISTS %s WITH (FORCE)"
)

// freshDB creates an empty database on DATABASE_URL's server, applies keel's
// migrations when keel is true, and drops the database when b ends.
func freshDB(b *testing.B, keel bool, maxConns int32) *pgxpool.Pool {
	b.Helper()
	ctx := context.Background()
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		b.Fatal("set DATABASE_URL to a PostgreSQL server whose role may create databases")
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "keel_bench_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, fmt.Sprintf(createDatabase, pgx.Identifier{name}.Sanitize())); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = admin.Exec(ctx, fmt.Sprintf(dropDatabase, pgx.Identifier{name}.Sanitize()))
		_ = admin.Close(ctx)
	})
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if keel {
		m, err := migrations.New(pool, migrations.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		if _, err := m.Up(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return pool
}
