package migrations_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

// Partition keel.jobs once it retains more than about 10^8 rows: retention
// then drops whole partitions instead of deleting rows. The jobs client
// keeps partitions ahead from its next retention pass on.
func ExamplePartition() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	if err := migrations.Partition(ctx, pool, migrations.PartitionJobs, migrations.PartitionConfig{Rows: 1_000_000}); err != nil {
		fmt.Println(err)
		return
	}
	parts, err := migrations.Partitions(ctx, pool)
	if err != nil {
		fmt.Println(err)
		return
	}
	ahead := 0
	for _, p := range parts {
		switch p.Name {
		case "jobs_history", "jobs_default":
			fmt.Println(p.Name, p.Bound)
		default:
			ahead++
		}
	}
	fmt.Println("partitions ahead:", ahead)
	// Output:
	// jobs_history FOR VALUES FROM (MINVALUE) TO ('4295000000')
	// jobs_default DEFAULT
	// partitions ahead: 3
}
