// Command migrate applies keel's schema to the database DATABASE_URL names,
// the way a service does at start-up, and prints what it applied.
//
//	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres go run ./examples/migrate
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return errors.New("set DATABASE_URL to a PostgreSQL connection string")
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()

	m, err := migrations.New(pool, migrations.Config{Logger: slog.Default()})
	if err != nil {
		return err
	}
	defer m.Close()
	applied, err := m.Up(ctx)
	if err != nil {
		return err
	}
	current, _, err := m.Version(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("applied %d migrations; keel schema at version %d\n", len(applied), current)
	return nil
}
