package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func keel(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

// flatten turns a table into one line with single spaces, so a test reads
// its rows whatever the column widths.
func flatten(out string) string { return strings.Join(strings.Fields(out), " ") }

// checkUsageError checks the shape of every usage error: a line saying
// what is wrong, and a line naming the help to read.
func checkUsageError(t *testing.T, stderr string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "run 'keel ") || !strings.HasSuffix(lines[1], " --help' for usage") {
		t.Errorf("usage error is not a line and a hint to the help:\n%s", stderr)
	}
}

func TestMigrateLifecycle(t *testing.T) {
	t.Parallel()
	url := testdb.NewEmptyURL(t)
	env := map[string]string{"DATABASE_URL": url}

	steps := []struct {
		args      []string
		wantOut   []string
		notOut    []string
		applied   bool // keel schema exists afterwards
		checkDesc string
	}{
		{[]string{"migrate", "status"}, []string{"VERSION MIGRATION APPLIED AT", "00001_keel_schema.sql pending"}, nil, false, "status before up"},
		{[]string{"migrate", "up"}, []string{"DIRECTION MIGRATION TOOK", "up 00001_keel_schema.sql"}, nil, true, "up"},
		{[]string{"migrate", "up"}, []string{"keel schema is up to date"}, nil, true, "second up"},
		{[]string{"migrate", "status"}, []string{"00001_keel_schema.sql"}, []string{"pending"}, true, "status after up"},
		{[]string{"schema"}, []string{"tables and views in schema keel"}, nil, true, "schema"},
		{[]string{"migrate", "down", "--to", "0"}, []string{"down 00001_keel_schema.sql"}, nil, false, "down to 0"},
		{[]string{"--database-url", url, "migrate", "up", "--to", "1"}, []string{"up 00001_keel_schema.sql"}, nil, true, "up --to 1 with the flag"},
		{[]string{"migrate", "down", "--database-url", url}, []string{"down 00001_keel_schema.sql"}, nil, false, "down one step"},
	}
	pool := testdb.Open(t, url)
	for _, s := range steps {
		code, out, errOut := keel(t, env, s.args...)
		if code != exitOK {
			t.Fatalf("%s: exit %d, stderr %q", s.checkDesc, code, errOut)
		}
		for _, w := range s.wantOut {
			if !strings.Contains(flatten(out), w) {
				t.Errorf("%s: output lacks %q:\n%s", s.checkDesc, w, out)
			}
		}
		for _, w := range s.notOut {
			if strings.Contains(out, w) {
				t.Errorf("%s: output has %q:\n%s", s.checkDesc, w, out)
			}
		}
		ok, err := db.New(pool).SchemaExists(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok != s.applied {
			t.Errorf("%s: keel schema exists = %v, want %v", s.checkDesc, ok, s.applied)
		}
	}
}

func TestFailsCleanly(t *testing.T) {
	t.Parallel()
	url := testdb.NewEmptyURL(t)
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unreachable server", nil, []string{"--database-url", "postgres://keel@127.0.0.1:1/keel?connect_timeout=2", "migrate", "up"}, exitError, "keel: cannot connect to 127.0.0.1:1/keel"},
		{"unreachable from env", map[string]string{"DATABASE_URL": "postgres://keel@127.0.0.1:1/keel"}, []string{"migrate", "status"}, exitError, "keel: cannot connect to 127.0.0.1:1/keel"},
		{"bad URL", nil, []string{"--database-url", "postgres://x@:badport/db", "migrate", "up"}, exitError, "keel: invalid database URL"},
		{"no database", nil, []string{"migrate", "up"}, exitUsage, "keel: migrate up: no database: pass --database-url or set DATABASE_URL"},
		{"no command", nil, nil, exitUsage, "keel: no command given"},
		{"unknown command", nil, []string{"frobnicate"}, exitUsage, `keel: unknown command "frobnicate"`},
		{"unknown migrate subcommand", nil, []string{"migrate", "sideways"}, exitUsage, `keel: migrate: unknown subcommand "sideways"`},
		{"unknown flag", nil, []string{"migrate", "up", "--fast"}, exitUsage, "keel: migrate up: unknown flag --fast"},
		{"unknown version", map[string]string{"DATABASE_URL": url}, []string{"migrate", "up", "--to", "4242"}, exitError, "no such migration: version 4242"},
		{"down with nothing applied", map[string]string{"DATABASE_URL": url}, []string{"migrate", "down"}, exitError, "nothing is applied"},
		{"schema before migrate", map[string]string{"DATABASE_URL": url}, []string{"schema"}, exitError, "no keel schema in this database: run keel migrate up"},
	}
	for _, tc := range tests {
		code, out, errOut := keel(t, tc.env, tc.args...)
		if code != tc.wantCode {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tc.name, code, tc.wantCode, errOut)
		}
		if !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("%s: stderr %q lacks %q", tc.name, errOut, tc.wantErr)
		}
		if strings.Contains(errOut, "goroutine ") || strings.Contains(errOut, "panic") {
			t.Errorf("%s: stderr holds a stack trace: %s", tc.name, errOut)
		}
		if tc.wantCode == exitError && strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("%s: error is not one line: %q", tc.name, errOut)
		}
		if tc.wantCode == exitUsage {
			checkUsageError(t, errOut)
		}
		if out != "" {
			t.Errorf("%s: wrote to stdout on failure: %q", tc.name, out)
		}
	}
}

func TestNoDatabaseCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"version"}, "keel "},
		{[]string{"migrate", "sql"}, "CREATE SCHEMA IF NOT EXISTS keel;"},
		{[]string{"help"}, "Usage:"},
		{[]string{"--help"}, "Usage:"},
	}
	for _, tc := range tests {
		code, out, errOut := keel(t, nil, tc.args...)
		if code != exitOK || !strings.Contains(out, tc.want) {
			t.Errorf("keel %v: exit %d, stdout %q, stderr %q", tc.args, code, out, errOut)
		}
	}
}

func TestGrant(t *testing.T) {
	t.Parallel()
	code, out, _ := keel(t, nil, "grant", "--print", "app")
	if code != exitOK || !strings.Contains(out, `GRANT USAGE ON SCHEMA keel TO "app";`) || strings.Count(out, "\n") != 7 {
		t.Errorf("grant --print: exit %d\n%s", code, out)
	}
	url := testdb.NewURL(t)
	pool := testdb.Open(t, url)
	ctx := context.Background()
	role := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(t.Name(), "Test"), "/", "_")) + "_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := pool.Exec(ctx, "CREATE ROLE "+role+" NOLOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(ctx, "DROP OWNED BY "+role)
		_, _ = pool.Exec(ctx, "DROP ROLE "+role)
	})
	code, out, errOut := keel(t, map[string]string{"DATABASE_URL": url}, "grant", role)
	if code != exitOK || !strings.Contains(out, "granted") {
		t.Fatalf("grant: exit %d %s %s", code, out, errOut)
	}
	var ok bool
	if err := pool.QueryRow(ctx, "SELECT has_table_privilege($1, 'keel.jobs', 'INSERT') AND NOT has_schema_privilege($1, 'keel', 'CREATE')", role).Scan(&ok); err != nil || !ok {
		t.Errorf("after keel grant the role may not insert jobs, or may create in keel (%v)", err)
	}
	if code, _, errOut := keel(t, nil, "grant"); code != exitUsage || !strings.Contains(errOut, "keel: grant: needs a role name") {
		t.Errorf("grant without a role: exit %d %q", code, errOut)
	}
}
