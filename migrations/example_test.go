package migrations_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

// Apply keel's schema at start-up. Safe when several processes start at once.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	m, err := migrations.New(pool, migrations.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		fmt.Println(err)
		return
	}
	current, latest, err := m.Version(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("up to date:", current == latest)
	// Output: up to date: true
}
