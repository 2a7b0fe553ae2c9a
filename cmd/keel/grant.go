package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

func grantFlags(fs *flag.FlagSet) action {
	printOnly := fs.Bool("print", false, "print the statements instead of running them; needs no database (default: off)")
	return func(c *cli, ctx context.Context, args []string) error {
		role := args[0]
		stmts, err := migrations.GrantStatements(role)
		if err != nil {
			return err
		}
		if *printOnly {
			fmt.Fprintln(c.out, strings.Join(stmts, "\n"))
			return nil
		}
		return c.withDB(ctx, func(pool *pgxpool.Pool) error {
			if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return migrations.Grant(ctx, tx, role) }); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "granted keel's runtime privileges to %s\n", role)
			return nil
		})
	}
}
