package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

func (c *cli) partition(ctx context.Context, args []string) error {
	var rows *int64
	sub, _, err := c.subcommand("partition", args, []verb{{"jobs", nil}, {"outbox", nil}, {"list", nil}}, func(fs *flag.FlagSet) {
		rows = fs.Int64("rows", migrations.DefaultPartitionRows, "keys each partition covers (jobs, outbox)")
	})
	if err != nil {
		return err
	}
	if sub != "list" && *rows < 1000 {
		return usageError{fmt.Sprintf("partition %s: --rows must be at least 1000", sub)}
	}
	return c.withDB(ctx, func(pool *pgxpool.Pool) error {
		if sub != "list" {
			if err := migrations.Partition(ctx, pool, migrations.PartitionTable(sub), migrations.PartitionConfig{Rows: *rows}); err != nil {
				return err
			}
		}
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
