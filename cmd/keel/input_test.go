package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

// keelRows counts the rows of every table a command could write to.
func keelRows(t *testing.T, pool *pgxpool.Pool) map[string]int64 {
	t.Helper()
	counts := map[string]int64{}
	for _, table := range []string{"jobs", "job_queues", "outbox", "saga_runs", "saga_signals", "saga_steps", "subscriptions", "events", "streams"} {
		var n int64
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM keel."+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[table] = n
	}
	return counts
}

// Every bad argument gets one line on stderr saying what is wrong (and, as
// the command line is at fault, a second naming the help to read) and an
// exit code saying whose mistake it was, and nothing is written.
func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	e := approvalEngine(t, url)
	pool := testdb.Open(t, url)
	if _, err := e.StartRun(ctx, pool, "approval", "order", &saga.StartOpts{RunID: "order-1"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, pool, "order-1", saga.StatusWaiting)
	env := map[string]string{"DATABASE_URL": url}
	long := strings.Repeat("n", 300)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"job id not a number", []string{"jobs", "retry", "abc"}, exitUsage, `"abc" is not a job id`},
		{"job id zero", []string{"jobs", "cancel", "0"}, exitUsage, "is not a job id"},
		{"job id overflows", []string{"jobs", "show", "99999999999999999999"}, exitUsage, "is not a job id"},
		{"job that does not exist", []string{"jobs", "retry", "4242"}, exitError, "4242"},
		{"job state unknown", []string{"jobs", "list", "--state", "lost"}, exitUsage, "lost"},
		{"job list limit", []string{"jobs", "list", "--limit", "0"}, exitUsage, "--limit"},
		{"queue name not UTF-8", []string{"queues", "pause", "q\xff"}, exitUsage, "not valid UTF-8"},
		{"queue name too long", []string{"queues", "pause", long}, exitUsage, "128"},
		{"outbox id not a uuid", []string{"outbox", "requeue", "42"}, exitUsage, "42"},
		{"outbox message that does not exist", []string{"outbox", "requeue", "0190a7c4-0000-7000-8000-000000000000"}, exitError, "no such message"},
		{"outbox state unknown", []string{"outbox", "list", "--state", "lost"}, exitUsage, "lost"},
		{"signal value not JSON", []string{"sagas", "signal", "order-1", "decision", "--value", "{nope"}, exitUsage, "not valid JSON"},
		{"signal value with \\u0000", []string{"sagas", "signal", "order-1", "decision", "--value", `"a\u0000"`}, exitUsage, `\u0000`},
		{"signal value number out of range", []string{"sagas", "signal", "order-1", "decision", "--value", "1e200000"}, exitUsage, "numeric"},
		{"signal name not UTF-8", []string{"sagas", "signal", "order-1", "dec\xffision"}, exitUsage, "not valid UTF-8"},
		{"signal name too long", []string{"sagas", "signal", "order-1", long}, exitUsage, "255"},
		{"signal key too long", []string{"sagas", "signal", "order-1", "decision", "--value", "true", "--key", strings.Repeat("k", 2000)}, exitUsage, "1024"},
		{"signal to a run that does not exist", []string{"sagas", "signal", "nobody", "decision", "--value", "true"}, exitError, "nobody"},
		{"run id not UTF-8", []string{"sagas", "show", "order\xff"}, exitUsage, "not valid UTF-8"},
		{"subscription position negative", []string{"subscriptions", "reset", "s", "--position", "-5"}, exitUsage, "negative"},
		{"subscription that does not exist", []string{"subscriptions", "resume", "nobody"}, exitError, "nobody"},
		{"category not UTF-8", []string{"events", "tail", "--category", "c\xff"}, exitUsage, "not valid UTF-8"},
		{"flag without its value", []string{"jobs", "list", "--limit"}, exitUsage, "keel: jobs list: flag --limit needs a value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := keelRows(t, pool)
			code, out, errOut := keel(t, env, tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("exit %d, stderr %.300q; want %d and %q", code, errOut, tc.wantCode, tc.wantErr)
			}
			if code == exitUsage {
				checkUsageError(t, errOut)
			} else if lines := strings.Count(strings.TrimSuffix(errOut, "\n"), "\n") + 1; lines != 1 {
				t.Errorf("%d lines on stderr, want 1:\n%s", lines, errOut)
			}
			if out != "" {
				t.Errorf("wrote to stdout on failure: %q", out)
			}
			after := keelRows(t, pool)
			for table, n := range before {
				if after[table] != n {
					t.Errorf("keel.%s went from %d to %d rows", table, n, after[table])
				}
			}
		})
	}
}
