package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
)

func (c *cli) schema(ctx context.Context, _ []string) error {
	return c.withDB(ctx, func(pool *pgxpool.Pool) error {
		q := db.New(pool)
		ok, err := q.SchemaExists(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("no keel schema in this database: run keel migrate up")
		}
		rels, err := q.ListRelations(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tKIND\tCOMMENT")
		for _, r := range rels {
			fmt.Fprintf(w, "keel.%s\t%s\t%s\n", r.Name, r.Kind, firstLine(r.Comment))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "%d tables and views in schema keel\n", len(rels))
		return nil
	})
}

func (c *cli) version(context.Context, []string) error {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	fmt.Fprintf(c.out, "keel %s %s\n", v, runtime.Version())
	return nil
}
