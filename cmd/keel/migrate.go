package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/keelpg/keel/migrations"
)

// withMigrator connects and hands fn a migrator over the database.
func (c *cli) withMigrator(ctx context.Context, fn func(m *migrations.Migrator) error) error {
	pool, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrations.New(pool, migrations.Config{})
	if err != nil {
		return err
	}
	defer m.Close()
	return fn(m)
}

func migrateUp(fs *flag.FlagSet) action {
	to := fs.Int64("to", -1, "apply the migrations up to this `version` only (default: all of them)")
	return func(c *cli, ctx context.Context, _ []string) error {
		if *to < -1 || *to == 0 {
			return usageError{"--to must be a migration version"}
		}
		return c.withMigrator(ctx, func(m *migrations.Migrator) error {
			var res []migrations.Result
			var err error
			if *to > 0 {
				res, err = m.UpTo(ctx, *to)
			} else {
				res, err = m.Up(ctx)
			}
			if perr := c.printResults(res); err == nil {
				err = perr
			}
			if err == nil && len(res) == 0 {
				fmt.Fprintln(c.out, "keel schema is up to date")
			}
			return err
		})
	}
}

func migrateDown(fs *flag.FlagSet) action {
	to := fs.Int64("to", -1, "roll back every migration above this `version`, 0 for all (default: the last one only)")
	return func(c *cli, ctx context.Context, _ []string) error {
		if *to < -1 {
			return usageError{"--to must be a migration version, or 0"}
		}
		return c.withMigrator(ctx, func(m *migrations.Migrator) error {
			if *to >= 0 {
				res, err := m.DownTo(ctx, *to)
				if perr := c.printResults(res); err == nil {
					err = perr
				}
				return err
			}
			res, err := m.Down(ctx)
			if err != nil {
				return err
			}
			return c.printResults([]migrations.Result{res})
		})
	}
}

// printResults shows what a migrate up or down applied, as a table.
func (c *cli) printResults(res []migrations.Result) error {
	if len(res) == 0 {
		return nil
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DIRECTION\tMIGRATION\tTOOK")
	for _, r := range res {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.Direction, r.Name, r.Duration.Round(time.Millisecond))
	}
	return w.Flush()
}

func (c *cli) migrateStatus(ctx context.Context, _ []string) error {
	return c.withMigrator(ctx, func(m *migrations.Migrator) error {
		sts, err := m.Status(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VERSION\tMIGRATION\tAPPLIED AT")
		for _, s := range sts {
			at := "pending"
			if s.Applied {
				at = s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\n", s.Version, s.Name, at)
		}
		return w.Flush()
	})
}

func migrateSQL(fs *flag.FlagSet) action {
	dir := fs.String("goose", "", "write the migrations as goose files into this `dir` instead of printing their SQL (default: print the SQL)")
	return func(c *cli, _ context.Context, _ []string) error {
		if *dir == "" {
			return migrations.WriteSQL(c.out)
		}
		return c.writeGooseFiles(*dir)
	}
}

// writeGooseFiles copies keel's migration files, which are goose files
// already, into dir for an application's own goose to apply. A file of the
// same name that is there already must be keel's: one that differs (the
// application's own migration of that version, or an edited copy) is never
// overwritten, and then nothing is written.
func (c *cli) writeGooseFiles(dir string) error {
	fsys := migrations.FS()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return fmt.Errorf("reading keel's migrations: %w", err)
	}
	var missing []string
	for _, name := range names {
		path := filepath.Join(dir, name)
		same, err := sameFile(fsys, name, path)
		if err != nil {
			return err
		}
		if !same {
			missing = append(missing, name)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range missing {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("reading keel's migration %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "wrote %s\n", filepath.Join(dir, name))
	}
	fmt.Fprintf(c.out, "%d keel migrations in %s (%d written); apply them with:\n  goose -dir %s -table %s postgres \"$DATABASE_URL\" up\n",
		len(names), dir, len(missing), dir, migrations.VersionTable)
	return nil
}

// sameFile reports whether path holds keel's migration name already: false
// when there is no such file, an error when a file there differs.
func sameFile(fsys fs.FS, name, path string) (bool, error) {
	have, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	want, err := fs.ReadFile(fsys, name)
	if err != nil {
		return false, fmt.Errorf("reading keel's migration %s: %w", name, err)
	}
	if !bytes.Equal(have, want) {
		return false, fmt.Errorf("%s differs from keel's migration of that name; not overwritten, nothing written", path)
	}
	return true, nil
}
