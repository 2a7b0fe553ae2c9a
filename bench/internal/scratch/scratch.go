// Package scratch creates the throwaway databases the benchmarks and the
// soak run in: each on DATABASE_URL's server, named keel_bench_<random>,
// with keel's migrations applied when asked, and dropped when done.
package scratch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

// CREATE and DROP DATABASE take identifiers, which no query parameter can
// stand for.
const (
	createDatabase = "CREATE DATABASE %s"
	dropDatabase   = "DROP DATABASE IF EXISTS %s WITH (FORCE)"
)

// DB is a scratch database and a pool on it.
type DB struct {
	Pool  *pgxpool.Pool
	Name  string
	admin *pgx.Conn
}

// New creates an empty database on the server base names, opens a pool of
// maxConns connections on it, and applies keel's migrations when keel is
// true. Drop removes it again.
func New(ctx context.Context, base string, maxConns int32, keel bool) (*DB, error) {
	if base == "" {
		return nil, errors.New("set DATABASE_URL to a PostgreSQL server whose role may create databases")
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, err
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	d := &DB{Name: "keel_bench_" + hex.EncodeToString(rnd[:]), admin: admin}
	if _, err := admin.Exec(ctx, fmt.Sprintf(createDatabase, pgx.Identifier{d.Name}.Sanitize())); err != nil {
		_ = admin.Close(ctx)
		return nil, err
	}
	if err := d.open(ctx, base, maxConns, keel); err != nil {
		d.Drop(ctx)
		return nil, err
	}
	return d, nil
}

func (d *DB) open(ctx context.Context, base string, maxConns int32, keel bool) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	u.Path = "/" + d.Name
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return err
	}
	cfg.MaxConns = maxConns
	if d.Pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return err
	}
	if !keel {
		return nil
	}
	m, err := migrations.New(d.Pool, migrations.Config{})
	if err != nil {
		return err
	}
	defer m.Close()
	_, err = m.Up(ctx)
	return err
}

// Drop closes the pool and drops the database, whoever is still connected.
func (d *DB) Drop(ctx context.Context) {
	if d.Pool != nil {
		d.Pool.Close()
	}
	_, _ = d.admin.Exec(ctx, fmt.Sprintf(dropDatabase, pgx.Identifier{d.Name}.Sanitize()))
	_ = d.admin.Close(ctx)
}
