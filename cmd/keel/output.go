package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
)

// withDB connects, reads the database's clock, runs fn, and disconnects.
func (c *cli) withDB(ctx context.Context, fn func(pool *pgxpool.Pool) error) error {
	pool, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	now, err := db.New(pool).DatabaseNow(ctx)
	if err != nil {
		return fmt.Errorf("reading the database's clock: %w", err)
	}
	c.now = now.Time
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

// ago says how long before the database's clock read now t was, to the
// second: t is on that clock, and the machine the CLI runs on may be off.
func (c *cli) ago(t time.Time) string {
	return c.now.Sub(t).Round(time.Second).String() + " ago"
}
