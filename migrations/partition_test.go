package migrations_test

import (
	"context"
	"errors"
	"testing"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/migrations"
)

// A table keel does not partition, or a partition too small, is refused
// before anything is sent: nothing is prepared, nothing changes.
func TestPartitionRefusesBadInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	for _, tc := range []struct {
		name  string
		table migrations.PartitionTable
		rows  int64
	}{
		{"events", "events", 1000},
		{"empty table name", "", 1000},
		{"sql in the name", "jobs; DROP TABLE keel.jobs", 1000},
		{"too few rows", migrations.PartitionJobs, 999},
		{"negative rows", migrations.PartitionOutbox, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := migrations.Partition(ctx, pool, tc.table, migrations.PartitionConfig{Rows: tc.rows})
			if !errors.Is(err, migrations.ErrInvalidPartition) {
				t.Fatalf("Partition(%q, %d): %v, want ErrInvalidPartition", tc.table, tc.rows, err)
			}
		})
	}
	var prepared int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.partitioning").Scan(&prepared); err != nil || prepared != 0 {
		t.Fatalf("tables prepared after refused calls: %d, %v", prepared, err)
	}
	if parts, err := migrations.Partitions(ctx, pool); err != nil || len(parts) != 0 {
		t.Fatalf("partitions after refused calls: %v, %v", parts, err)
	}
}
