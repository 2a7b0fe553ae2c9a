package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

// partitionFlags is the setup of keel partition jobs or outbox.
func partitionFlags(table migrations.PartitionTable) func(fs *flag.FlagSet) action {
	return func(fs *flag.FlagSet) action {
		rows := fs.Int64("rows", migrations.DefaultPartitionRows, "each partition covers `n` keys (ids), at least 1000")
		return func(c *cli, ctx context.Context, _ []string) error {
			if *rows < 1000 {
				return usageError{"--rows must be at least 1000"}
			}
			return c.withDB(ctx, func(pool *pgxpool.Pool) error {
				if err := migrations.Partition(ctx, pool, table, migrations.PartitionConfig{Rows: *rows}); err != nil {
					return err
				}
				return c.listPartitions(ctx, pool)
			})
		}
	}
}

func (c *cli) partitionList(ctx context.Context, _ []string) error {
	return c.withDB(ctx, func(pool *pgxpool.Pool) error { return c.listPartitions(ctx, pool) })
}

func (c *cli) listPartitions(ctx context.Context, pool *pgxpool.Pool) error {
	parts, err := migrations.Partitions(ctx, pool)
	if err != nil {
		return err
	}
	return c.emit(parts, []string{"TABLE", "PARTITION", "KEYS", "ROWS (EST.)", "SIZE"}, func(row func(...string)) {
		for _, p := range parts {
			est := "-"
			if p.EstimatedRows >= 0 {
				est = strconv.FormatInt(p.EstimatedRows, 10)
			}
			row(string(p.Table), p.Name, p.Bound, est, bytesString(p.TotalBytes))
		}
	})
}

// bytesString prints a size in the largest binary unit that keeps it at
// least 1.
func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
