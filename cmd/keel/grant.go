package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

func (c *cli) grant(ctx context.Context, args []string) error {
	fs := c.flags("grant")
	printOnly := fs.Bool("print", false, "print the statements instead of running them")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"grant needs one role name"}
	}
	role := fs.Arg(0)
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
