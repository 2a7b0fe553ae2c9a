package main

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for goose
	"github.com/pressly/goose/v3"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/migrations"
)

// keel migrate sql --goose writes keel's migrations as they are embedded,
// which a plain goose applies to an empty database; it never overwrites a
// file that differs.
func TestMigrateSQLGoose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "keel")
	code, out, errOut := keel(t, nil, "migrate", "sql", "--goose", dir)
	if code != exitOK || !strings.Contains(out, "goose -dir "+dir+" -table "+migrations.VersionTable+" postgres") {
		t.Fatalf("migrate sql --goose: exit %d, %s\n%s", code, errOut, out)
	}
	names, err := fs.Glob(migrations.FS(), "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("embedded migrations: %v %v", names, err)
	}
	written, err := os.ReadDir(dir)
	if err != nil || len(written) != len(names) {
		t.Fatalf("%d files written, want %d (%v)", len(written), len(names), err)
	}
	for _, name := range names {
		want, _ := fs.ReadFile(migrations.FS(), name)
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s differs from keel's embedded file (%v)", name, err)
		}
	}
	if code, out, _ := keel(t, nil, "migrate", "sql", "--goose", dir); code != exitOK || !strings.Contains(out, "(0 written)") {
		t.Errorf("second run: exit %d\n%s", code, out)
	}

	url := testdb.NewEmptyURL(t)
	sqlDB, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqlDB.Close() })
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, os.DirFS(dir), goose.WithTableName(migrations.VersionTable))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := provider.Up(ctx); err != nil || len(res) != len(names) {
		t.Fatalf("goose up: %d applied, %v", len(res), err)
	}
	q := db.New(testdb.Open(t, url))
	for _, table := range []string{"jobs", "outbox", "events", "subscriptions", "saga_runs", "saga_steps"} {
		if ok, err := q.TableExists(ctx, db.TableExistsParams{SchemaName: "keel", TableName: table}); err != nil || !ok {
			t.Errorf("keel.%s does not exist after goose up (%v)", table, err)
		}
	}
	code, out, _ = keel(t, map[string]string{"DATABASE_URL": url}, "migrate", "status")
	if code != exitOK || strings.Contains(out, "pending") {
		t.Errorf("keel migrate status after goose up: exit %d\n%s", code, out)
	}

	first, second := filepath.Join(dir, names[0]), filepath.Join(dir, names[1])
	if err := os.WriteFile(first, []byte("-- +goose Up\nSELECT 1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(second); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = keel(t, nil, "migrate", "sql", "--goose", dir)
	if code != exitError || out != "" || errOut != "keel: "+first+" differs from keel's migration of that name; not overwritten, nothing written\n" {
		t.Errorf("over a differing file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got, _ := os.ReadFile(first); string(got) != "-- +goose Up\nSELECT 1;\n" {
		t.Errorf("the differing file was overwritten")
	}
	if _, err := os.Stat(second); err == nil {
		t.Errorf("a file was written although the command failed")
	}
}
