package migrations_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/migrations"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func newMigrator(t *testing.T, pool *pgxpool.Pool) *migrations.Migrator {
	t.Helper()
	m, err := migrations.New(pool, migrations.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// migrationFiles counts keel's migrations and returns the newest version.
func migrationFiles(t *testing.T) (count int, newest int64) {
	t.Helper()
	names, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range names {
		if v, _, ok := strings.Cut(e.Name(), "_"); ok && strings.HasSuffix(e.Name(), ".sql") {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			count, newest = count+1, max(newest, n)
		}
	}
	return count, newest
}

func latest(t *testing.T) int64 {
	_, v := migrationFiles(t)
	return v
}

func count(t *testing.T) int {
	n, _ := migrationFiles(t)
	return n
}

func schemaExists(t *testing.T, pool *pgxpool.Pool) bool {
	t.Helper()
	ok, err := db.New(pool).SchemaExists(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// Up, down to zero and up again on an empty database; the application's own
// goose_db_version table is left exactly as it was.
func TestUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Open(t, testdb.NewEmptyURL(t))

	// The application's own goose migrations, already applied.
	if _, err := pool.Exec(ctx, `CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp DEFAULT now());
		INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (20240101, true)`); err != nil {
		t.Fatal(err)
	}
	appRows := func() string {
		var s string
		if err := pool.QueryRow(ctx, `SELECT string_agg(version_id::text || ':' || is_applied::text, ',' ORDER BY id) FROM goose_db_version`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := appRows()

	m := newMigrator(t, pool)
	want := latest(t)
	for round := 1; round <= 2; round++ {
		res, err := m.Up(ctx)
		if err != nil {
			t.Fatalf("round %d up: %v", round, err)
		}
		if len(res) != count(t) {
			t.Fatalf("round %d: applied %d migrations, want %d", round, len(res), count(t))
		}
		cur, last, err := m.Version(ctx)
		if err != nil || cur != want || last != want {
			t.Fatalf("round %d: version %d/%d (%v), want %d/%d", round, cur, last, err, want, want)
		}
		if !schemaExists(t, pool) {
			t.Fatalf("round %d: no keel schema after up", round)
		}
		down, err := m.DownTo(ctx, 0)
		if err != nil {
			t.Fatalf("round %d down: %v", round, err)
		}
		if len(down) != count(t) {
			t.Fatalf("round %d: rolled back %d migrations, want %d", round, len(down), count(t))
		}
		if schemaExists(t, pool) {
			t.Fatalf("round %d: keel schema still there after rolling everything back", round)
		}
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if after := appRows(); after != before {
		t.Errorf("application's goose_db_version changed: %q, was %q", after, before)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Open(t, testdb.NewEmptyURL(t))
	m := newMigrator(t, pool)

	sts, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != count(t) {
		t.Fatalf("status lists %d migrations, want %d", len(sts), count(t))
	}
	for _, s := range sts {
		if s.Applied || !s.AppliedAt.IsZero() {
			t.Errorf("%s reported applied on an empty database", s.Name)
		}
	}
	if _, err := m.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	sts, err = m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !sts[0].Applied || sts[0].AppliedAt.IsZero() || sts[0].Name != "00001_keel_schema.sql" {
		t.Errorf("first migration after UpTo(1): %+v", sts[0])
	}
	for _, s := range sts[1:] {
		if s.Applied {
			t.Errorf("%s applied by UpTo(1)", s.Name)
		}
	}
}

func TestBadVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Open(t, testdb.NewEmptyURL(t))
	m := newMigrator(t, pool)
	tests := []struct {
		name string
		run  func() error
	}{
		{"down with nothing applied", func() error { _, err := m.Down(ctx); return err }},
		{"up to an unknown version", func() error { _, err := m.UpTo(ctx, 99999); return err }},
		{"down to an unknown version", func() error { _, err := m.DownTo(ctx, 99999); return err }},
	}
	for _, tc := range tests {
		if err := tc.run(); !errors.Is(err, migrations.ErrNoMigration) {
			t.Errorf("%s: got %v, want ErrNoMigration", tc.name, err)
		}
	}
	if schemaExists(t, pool) {
		t.Error("a rejected call changed the database")
	}
}

// Applying with goose's own entry points and the README's table name — what
// the goose CLI does — leaves a database keel's Migrator sees as up to date.
func TestGooseCLICompatible(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Open(t, testdb.NewEmptyURL(t))
	sqlDB := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { _ = sqlDB.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, os.DirFS("."), goose.WithTableName("public.keel_db_version"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	cur, last, err := newMigrator(t, pool).Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur != last || cur != latest(t) {
		t.Errorf("after goose up, keel sees version %d of %d", cur, last)
	}
}

// Two processes starting at once apply each migration exactly once.
func TestConcurrentUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewEmptyURL(t)
	errs := make(chan error, 4)
	applied := make(chan int, 4)
	for range 4 {
		go func() {
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer pool.Close()
			m, err := migrations.New(pool, migrations.Config{})
			if err != nil {
				errs <- err
				return
			}
			defer m.Close()
			res, err := m.Up(ctx)
			applied <- len(res)
			errs <- err
		}()
	}
	total := 0
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(applied)
	for n := range applied {
		total += n
	}
	if total != count(t) {
		t.Errorf("4 concurrent Up calls applied %d migrations in all, want %d", total, count(t))
	}
}

func TestWriteSQL(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := migrations.WriteSQL(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "+goose") {
		t.Error("output still holds goose annotations")
	}
	if strings.Contains(out, "DROP SCHEMA keel") {
		t.Error("output holds a down migration")
	}
	if !strings.Contains(out, "-- keel migration 00001_keel_schema.sql\nCREATE SCHEMA IF NOT EXISTS keel;") {
		t.Errorf("output lacks the first migration:\n%s", out)
	}
	// The printed SQL must apply cleanly to an empty database.
	pool := testdb.Open(t, testdb.NewEmptyURL(t))
	if _, err := pool.Exec(context.Background(), out); err != nil {
		t.Fatalf("printed SQL does not apply: %v", err)
	}
	if !schemaExists(t, pool) {
		t.Error("printed SQL did not create the keel schema")
	}
	// keel grant works on a schema applied this way, without keel's
	// version table.
	ctx := context.Background()
	var role string
	if err := pool.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return migrations.Grant(ctx, tx, role) }); err != nil {
		t.Errorf("grant on a schema without keel's version table: %v", err)
	}
}
