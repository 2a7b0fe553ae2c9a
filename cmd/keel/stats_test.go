package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
)

// seedStats leaves known contents: in queue mail one available job, one
// stuck running job and one discarded job; a paused empty queue reports;
// the outbox of seedOutbox; and a subscription two events behind.
func seedStats(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool := testdb.Open(t, url)
	seedOutbox(t, url)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range 3 {
		row, err := jc.Insert(ctx, pool, mailArgs{To: string(rune('a' + i))}, &jobs.InsertOpts{Queue: "mail"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, row.ID)
	}
	if err := jc.QueuePause(ctx, "reports"); err != nil {
		t.Fatal(err)
	}
	// A worker that died two minutes into its job, and a job that failed for
	// good: states only a crash or many attempts produce, set directly.
	if _, err := pool.Exec(ctx, `UPDATE keel.jobs SET state = 'running', attempt = 1, owner = 'gone-1', attempted_at = now() - interval '3 minutes', heartbeat_at = now() - interval '2 minutes' WHERE id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE keel.jobs SET state = 'discarded', attempt = 25, finalized_at = now(), errors = '[{"attempt": 25, "error": "smtp refused"}]' WHERE id = $1`, ids[2]); err != nil {
		t.Fatal(err)
	}
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	appendEvents(t, store, pool, "order-1", "OrderPlaced", "OrderPaid", "OrderShipped")
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err := store.NewSubscription(events.SubscriptionConfig{Name: "orders-view", Category: "order", PollInterval: 10 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	subCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = sub.Run(subCtx); close(done) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if info, err := store.SubscriptionGet(ctx, "orders-view"); err == nil && info.Position == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subscription did not catch up")
		}
	}
	stop()
	<-done
	if err := store.SubscriptionReset(ctx, "orders-view", 1); err != nil {
		t.Fatal(err)
	}
	return pool
}

func TestStats(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	seedStats(t, url)
	env := map[string]string{"DATABASE_URL": url}

	code, out, errOut := keel(t, env, "--json", "stats")
	var v statsView
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil {
		t.Fatalf("stats --json: exit %d, %v, %s\n%s", code, err, errOut, out)
	}
	if len(v.Queues) != 2 || v.Queues[0].Queue != "mail" || v.Queues[1].Queue != "reports" || !v.Queues[1].Paused {
		t.Fatalf("queues: %+v", v.Queues)
	}
	if m := v.Queues[0]; m.Available != 1 || m.Running != 1 || m.Discarded != 1 || m.OldestAvailableS <= 0 {
		t.Errorf("mail queue: %+v", m)
	}
	if len(v.StuckJobs) != 1 || v.StuckJobs[0].Owner != "gone-1" || v.StuckJobs[0].SilentS < 110 || v.DeadJobs != 1 {
		t.Errorf("stuck %+v, dead %d", v.StuckJobs, v.DeadJobs)
	}
	if o := v.Outbox; o.Pending != 1 || o.Dead != 1 || o.Delivered != 1 || o.OldestPendingS <= 0 {
		t.Errorf("outbox: %+v", o)
	}
	if len(v.Subscriptions) != 1 || v.Subscriptions[0].Behind != 2 || v.Subscriptions[0].LagS <= 0 || v.Subscriptions[0].Status != "active" {
		t.Errorf("subscriptions: %+v", v.Subscriptions)
	}

	code, out, _ = keel(t, env, "stats")
	flat := flatten(out)
	for _, want := range []string{
		`QUEUE PENDING SCHEDULED AVAILABLE RUNNING RETRYABLE COMPLETED CANCELLED DISCARDED OLDEST AVAILABLE STATE mail 0 0 1 1 0 0 0 1 `,
		`reports 0 0 0 0 0 0 0 0 - paused`,
		`dead jobs \(discarded\): 1; stuck jobs`,
		`STUCK JOBS ID KIND QUEUE OWNER SILENT FOR \d+ mail mail gone-1 2m`,
		`OUTBOX PENDING OLDEST PENDING DEAD DELIVERED \(KEPT\) 1 \S+ 1 1 `,
		`SUBSCRIPTIONS NAME CATEGORY STATUS POSITION BEHIND LAG LAST ERROR orders-view order active 1 2`,
	} {
		if code != exitOK || !regexp.MustCompile(want).MatchString(flat) {
			t.Errorf("stats lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	if code, _, errOut := keel(t, map[string]string{"DATABASE_URL": "postgres://keel@127.0.0.1:1/keel"}, "stats"); code != exitError || !strings.Contains(errOut, "cannot connect") {
		t.Errorf("stats on an unreachable database: exit %d, %q", code, errOut)
	}
}

// Each view answers with the columns its comment documents.
func TestViews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := seedStats(t, url)
	tests := []struct {
		view    string
		columns string
		rows    int
	}{
		{"queue_stats", "queue pending scheduled available running retryable completed cancelled discarded oldest_available_age paused", 2},
		{"stuck_jobs", "id kind queue attempt owner attempted_at heartbeat_at silent_for", 1},
		{"dead_jobs", "id kind queue attempt max_attempts finalized_at last_error", 1},
		{"outbox_stats", "pending dead delivered oldest_pending_age", 1},
		{"outbox_dead_letters", "id topic key type attempts created_at last_error", 1},
		{"subscription_lag", "name category status position behind lag owner last_error", 1},
		{"saga_stats", "workflow pending running waiting compensating succeeded failed cancelled blocked", 0},
		{"failed_sagas", "id workflow version status error finished_at", 0},
	}
	for _, tc := range tests {
		rows, err := pool.Query(ctx, "SELECT * FROM keel."+tc.view)
		if err != nil {
			t.Fatalf("%s: %v", tc.view, err)
		}
		var cols []string
		for _, f := range rows.FieldDescriptions() {
			cols = append(cols, f.Name)
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if got := strings.Join(cols, " "); got != tc.columns || n != tc.rows {
			t.Errorf("keel.%s: columns %q and %d rows; want %q and %d", tc.view, got, n, tc.columns, tc.rows)
		}
		var comment string
		if err := pool.QueryRow(ctx, "SELECT COALESCE(obj_description(('keel.' || $1)::regclass, 'pg_class'), '')", tc.view).Scan(&comment); err != nil || comment == "" {
			t.Errorf("keel.%s has no comment (%v)", tc.view, err)
		}
	}
}
