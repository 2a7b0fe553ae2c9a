package keel_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/migrations"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// runtimeRole creates a login role with only the grants GrantStatements
// gives, on a fresh migrated database, and returns a pool that connects as
// it. The role is dropped when the test ends.
func runtimeRole(t *testing.T) (owner, app *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	ownerURL := testdb.NewURL(t)
	owner = testdb.Open(t, ownerURL)
	var b [4]byte
	_, _ = rand.Read(b[:])
	role, password := "keel_app_"+hex.EncodeToString(b[:]), hex.EncodeToString(b[:])
	if _, err := owner.Exec(ctx, "CREATE ROLE "+role+" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '"+password+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = owner.Exec(ctx, "DROP OWNED BY "+role)
		_, _ = owner.Exec(ctx, "DROP ROLE "+role)
	})
	if err := pgx.BeginFunc(ctx, owner, func(tx pgx.Tx) error { return migrations.Grant(ctx, tx, role) }); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, password)
	app = testdb.Open(t, u.String())
	return owner, app
}

type privArgs struct{}

func (privArgs) Kind() string { return "priv" }

// Every feature works for a role that has only keel's runtime grants, and
// that role cannot change keel's schema.
func TestRuntimeRoleLeastPrivilege(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, app := runtimeRole(t)

	denied := []string{
		"CREATE TABLE keel.intruder (id int)",
		"DROP TABLE keel.jobs",
		"ALTER TABLE keel.outbox ADD COLUMN x int",
		"TRUNCATE keel.events",
	}
	for _, stmt := range denied {
		_, err := app.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%q as the runtime role: %v, want permission denied", stmt, err)
		}
	}

	t.Run("outbox", func(t *testing.T) {
		box, err := outbox.New(app, outbox.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer box.Close()
		if err := pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
			_, err := box.Enqueue(ctx, tx, outbox.Message{Topic: "t", Key: "k", Payload: []byte("x")})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		published := 0
		relay, err := outbox.NewRelay(app, outbox.PublisherFunc(func(context.Context, outbox.Delivery) error { published++; return nil }), outbox.RelayConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := relay.RunOnce(ctx); err != nil || published != 1 {
			t.Fatalf("relay: %v, published %d", err, published)
		}
		if _, err := outbox.DeleteDelivered(ctx, app, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		inbox, err := outbox.NewInbox(app, outbox.InboxConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inbox.Process(ctx, "c", "m", func(context.Context, pgx.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("jobs", func(t *testing.T) {
		done := make(chan int64, 1)
		w := jobs.NewWorkers()
		jobs.AddWorker(w, func(_ context.Context, j *jobs.Job[privArgs]) error { done <- j.ID; return nil }, nil)
		c, err := jobs.NewClient(app, jobs.Config{Workers: w, FetchPollInterval: 20 * time.Millisecond, MaintenanceInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Stop(ctx) }()
		row, err := c.Insert(ctx, app, privArgs{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-done:
			if id != row.ID {
				t.Fatalf("ran job %d, inserted %d", id, row.ID)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the job did not run under the runtime role")
		}
		if err := c.QueuePause(ctx, "other"); err != nil {
			t.Fatal(err)
		}
		later, err := c.Insert(ctx, app, privArgs{}, &jobs.InsertOpts{Delay: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.JobCancel(ctx, later.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("saga", func(t *testing.T) {
		reg := saga.NewRegistry()
		saga.Register(reg, "priv", 1, func(ctx saga.Context, in string) (string, error) {
			out, err := saga.Step(ctx, "echo", func(context.Context) (string, error) { return in, nil }, nil)
			if err != nil {
				return "", err
			}
			if _, err := saga.AwaitSignal[bool](ctx, "go", time.Hour); err != nil {
				return "", err
			}
			return out, nil
		})
		e, err := saga.NewEngine(app, reg, saga.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.Stop(ctx) }()
		if _, err := e.StartRun(ctx, app, "priv", "hi", &saga.StartOpts{RunID: "priv-1"}); err != nil {
			t.Fatal(err)
		}
		if err := e.Signal(ctx, app, "priv-1", "go", true, nil); err != nil {
			t.Fatal(err)
		}
		awaitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		run, err := e.Await(awaitCtx, "priv-1")
		if err != nil {
			t.Fatal(err)
		}
		if out, err := saga.Result[string](run); err != nil || out != "hi" {
			t.Fatalf("workflow under the runtime role: %q %v", out, err)
		}
	})

	t.Run("events", func(t *testing.T) {
		store, err := events.NewStore(app, events.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		e, _ := events.NewEvent("Happened", map[string]int{"n": 1})
		if _, err := store.Append(ctx, app, "thing-1", events.NoStream, e); err != nil {
			t.Fatal(err)
		}
		if err := store.Sequence(ctx); err != nil {
			t.Fatal(err)
		}
		if err := store.SaveSnapshot(ctx, app, "thing-1", 1, map[string]int{"n": 1}); err != nil {
			t.Fatal(err)
		}
		handled := make(chan struct{}, 1)
		sub, err := store.NewSubscription(events.SubscriptionConfig{Name: "view", PollInterval: 20 * time.Millisecond,
			Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { handled <- struct{}{}; return nil }})
		if err != nil {
			t.Fatal(err)
		}
		subCtx, stop := context.WithCancel(ctx)
		defer stop()
		go func() { _ = sub.Run(subCtx) }()
		select {
		case <-handled:
		case <-time.After(30 * time.Second):
			t.Fatal("the subscription did not run under the runtime role")
		}
		stop()
		if err := store.SubscriptionReset(ctx, "view", 0); err != nil {
			t.Fatal(err)
		}
	})
}

func TestGrantStatements(t *testing.T) {
	t.Parallel()
	stmts, err := migrations.GrantStatements(`app"; DROP TABLE x; --`)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if !strings.Contains(s, `"app""; DROP TABLE x; --"`) {
			t.Errorf("role not quoted as an identifier: %s", s)
		}
	}
	if _, err := migrations.GrantStatements(""); err == nil {
		t.Error("an empty role was accepted")
	}
}

// Once the owner partitioned keel.jobs and keel.outbox, the runtime role
// runs their retention — creating partitions ahead, dropping expired ones —
// through the two functions it was granted, and can neither convert a
// table nor drop a partition itself.
func TestRuntimeRolePartitioned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner, app := runtimeRole(t)
	for _, table := range []migrations.PartitionTable{migrations.PartitionJobs, migrations.PartitionOutbox} {
		if err := migrations.Partition(ctx, owner, table, migrations.PartitionConfig{Rows: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := jobs.NewClient(app, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	params := make([]jobs.InsertManyParams, 2500)
	for i := range params {
		params[i] = jobs.InsertManyParams{Args: privArgs{}}
	}
	if _, err := c.InsertMany(ctx, app, params); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Insert(ctx, app, privArgs{}, &jobs.InsertOpts{UniqueKey: "k", Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	var created, dropped int
	if err := app.QueryRow(ctx, "SELECT keel.partition_extend('jobs')").Scan(&created); err != nil || created == 0 {
		t.Fatalf("partition_extend as the runtime role: created %d, %v", created, err)
	}
	if err := app.QueryRow(ctx, "SELECT keel.partition_drop_expired('outbox', ARRAY[now()])").Scan(&dropped); err != nil {
		t.Fatalf("partition_drop_expired as the runtime role: %v", err)
	}
	for _, stmt := range []string{
		"SELECT keel.partition_prepare('jobs', 1000)",
		"SELECT keel.partition_convert('outbox')",
		"DROP TABLE keel.jobs_history",
	} {
		_, err := app.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%q as the runtime role: %v, want permission denied", stmt, err)
		}
	}
}

// The runtime role can run the start-up migration call when nothing is
// pending, and read the version and status, without owning anything.
func TestRuntimeRoleMigrationsUpToDate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, app := runtimeRole(t)
	m, err := migrations.New(app, migrations.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Close() }()
	res, err := m.Up(ctx)
	if err != nil || len(res) != 0 {
		t.Fatalf("Up as the runtime role with nothing pending: %d applied, %v", len(res), err)
	}
	current, latest, err := m.Version(ctx)
	if err != nil || current != latest {
		t.Fatalf("Version as the runtime role: %d of %d, %v", current, latest, err)
	}
	sts, err := m.Status(ctx)
	if err != nil || len(sts) == 0 {
		t.Fatalf("Status as the runtime role: %d migrations, %v", len(sts), err)
	}
}
