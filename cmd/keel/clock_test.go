package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
)

// aheadClock returns a connection string for the database at dbURL whose
// clock runs an hour ahead of the machine's, as a database server's clock
// may: on its connections, now() and clock_timestamp() are functions of a
// schema put before pg_catalog on the search path. Column defaults stay on
// the real clock (they name pg_catalog's functions), so in such a database
// a row stamped by a default looks an hour old.
func aheadClock(t *testing.T, dbURL string) string {
	t.Helper()
	pool := testdb.Open(t, dbURL)
	if _, err := pool.Exec(context.Background(), `
		CREATE SCHEMA ahead;
		CREATE FUNCTION ahead.now() RETURNS timestamptz LANGUAGE sql STABLE
			AS $$ SELECT pg_catalog.now() + interval '1 hour' $$;
		CREATE FUNCTION ahead.clock_timestamp() RETURNS timestamptz LANGUAGE sql VOLATILE
			AS $$ SELECT pg_catalog.clock_timestamp() + interval '1 hour' $$;`); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "ahead,pg_catalog,public")
	u.RawQuery = q.Encode()
	return u.String()
}

// showRun is keel --json sagas show.
func showRun(t *testing.T, env map[string]string, id string) runView {
	t.Helper()
	code, out, errOut := keel(t, env, "--json", "sagas", "show", id)
	var v runView
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil {
		t.Fatalf("sagas show %s: exit %d, %v, %s\n%s", id, code, err, errOut, out)
	}
	return v
}

// A run's times all come from the database's clock, whatever the clock of
// the process that ran it says, so no step seems to end before it began;
// and a step that waits (a signal wait, a timer) has no finish time until
// it ends.
func TestSagaTimesAreTheDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := aheadClock(t, testdb.NewURL(t))
	pool := testdb.Open(t, dbURL)
	reg := saga.NewRegistry()
	saga.Register(reg, "ship", 1, func(ctx saga.Context, order string) (string, error) {
		if _, err := saga.Step(ctx, "pack", func(context.Context) (string, error) { return "packed " + order, nil }, nil); err != nil {
			return "", err
		}
		if _, err := saga.AwaitSignal[bool](ctx, "paid", 0); err != nil {
			return "", err
		}
		saga.Sleep(ctx, time.Hour)
		return "shipped", nil
	})
	e, err := saga.NewEngine(pool, reg, saga.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	if _, err := e.StartRun(ctx, pool, "ship", "o-1", &saga.StartOpts{RunID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, pool, "o-1", saga.StatusWaiting)
	env := map[string]string{"DATABASE_URL": dbURL}

	v := showRun(t, env, "o-1")
	if len(v.Steps) != 2 || v.Steps[1].Name != "paid" || v.Steps[1].Status != "waiting" || v.Steps[1].FinishedAt != nil || v.Steps[1].Took != "" {
		t.Fatalf("a signal wait that goes on shows as finished: %+v", v.Steps)
	}
	if code, _, errOut := keel(t, env, "sagas", "signal", "o-1", "paid", "--value", "true"); code != exitOK {
		t.Fatalf("sagas signal: %s", errOut)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if r, err := e.Get(ctx, pool, "o-1"); err == nil && r.WaitReason == "timer" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run did not reach its sleep")
		}
	}
	v = showRun(t, env, "o-1")
	if len(v.Steps) != 3 || v.Steps[1].Status != "completed" || v.Steps[1].FinishedAt == nil ||
		v.Steps[2].Kind != "sleep" || v.Steps[2].Status != "waiting" || v.Steps[2].FinishedAt != nil {
		t.Fatalf("after the signal, want the wait completed and the sleep waiting: %+v", v.Steps)
	}

	var dbNow time.Time
	if err := pool.QueryRow(ctx, "SELECT now()").Scan(&dbNow); err != nil {
		t.Fatal(err)
	}
	within := func(what string, at time.Time) {
		if at.Before(dbNow.Add(-time.Minute)) || at.After(dbNow) {
			t.Errorf("%s %s is not from the database's clock (now %s)", what, at, dbNow)
		}
	}
	if v.StartedAt == nil {
		t.Fatal("the run has no start time")
	}
	within("the run's start", *v.StartedAt)
	for _, s := range v.Steps {
		within(s.Name+" started", s.StartedAt)
		if s.FinishedAt != nil {
			within(s.Name+" finished", *s.FinishedAt)
			if s.FinishedAt.Before(s.StartedAt) || strings.HasPrefix(s.Took, "-") {
				t.Errorf("step %s finished before it started: %+v", s.Name, s)
			}
		}
	}
}

// Ages ("3s ago") are measured against the database's clock, not the
// machine's: in a database whose clock is an hour ahead, a job inserted
// just now (its created_at stamped by the column's default, on the real
// clock) is an hour old.
func TestAgesAreMeasuredOnTheDatabasesClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.NewURL(t)
	pool := testdb.Open(t, dbURL)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jc.Insert(ctx, pool, mailArgs{To: "a@example.com"}, nil); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := keel(t, map[string]string{"DATABASE_URL": aheadClock(t, dbURL)}, "jobs", "list")
	if code != exitOK || !strings.Contains(out, " 1h0m0s ago") {
		t.Errorf("jobs list in a database an hour ahead: exit %d, %s\n%s", code, errOut, out)
	}
}
