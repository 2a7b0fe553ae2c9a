package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// withDB connects, runs fn, and disconnects.
func (c *cli) withDB(ctx context.Context, fn func(pool *pgxpool.Pool) error) error {
	pool, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(pool)
}

// emit prints v as JSON with --json, and otherwise as a table with the
// given header, whose rows the table function writes.
func (c *cli) emit(v any, header []string, table func(row func(...string))) error {
	if c.jsonOut {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	table(func(cells ...string) {
		for i, cell := range cells {
			cells[i] = strings.ReplaceAll(firstLine(cell), "\t", " ")
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	})
	return w.Flush()
}

// ago says how long ago t was, to the second.
func ago(t time.Time) string {
	return time.Since(t).Round(time.Second).String() + " ago"
}
