package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/outbox"
)

// seedOutbox leaves one delivered, one pending and one dead message.
func seedOutbox(t *testing.T, url string) (delivered, pending, dead uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	pool := testdb.Open(t, url)
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	delivered, dead = uuid.New(), uuid.New()
	if _, err := box.Enqueue(ctx, pool,
		outbox.Message{ID: delivered, Topic: "orders", Key: "o-1", Payload: []byte("ok")},
		outbox.Message{ID: dead, Topic: "billing", Payload: []byte("poison"), Headers: map[string]string{"trace": "t-9"}},
	); err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(pool, outbox.PublisherFunc(func(_ context.Context, d outbox.Delivery) error {
		if d.ID == dead {
			return errors.New("billing is down")
		}
		return nil
	}), outbox.RelayConfig{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relay.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	pending = uuid.New()
	if _, err := box.Enqueue(ctx, pool, outbox.Message{ID: pending, Topic: "orders", Payload: []byte("later")}); err != nil {
		t.Fatal(err)
	}
	return delivered, pending, dead
}

func TestOutboxCommands(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	delivered, pending, dead := seedOutbox(t, url)
	env := map[string]string{"DATABASE_URL": url}

	code, out, errOut := keel(t, env, "outbox", "list")
	if code != exitOK {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.HasPrefix(lines[1], dead.String()) || !strings.Contains(lines[1], "billing is down") ||
		!strings.HasPrefix(lines[2], pending.String()) || !strings.HasPrefix(lines[3], delivered.String()) {
		t.Errorf("list is not header, dead, pending, delivered:\n%s", out)
	}

	code, out, _ = keel(t, env, "--json", "outbox", "list", "--state", "dead")
	var msgs []outboxMessage
	if err := json.Unmarshal([]byte(out), &msgs); code != exitOK || err != nil {
		t.Fatalf("list --json: exit %d, %v:\n%s", code, err, out)
	}
	if len(msgs) != 1 || msgs[0].ID != dead || msgs[0].State != "dead" || msgs[0].Attempts != 1 {
		t.Errorf("dead letters: %+v", msgs)
	}

	code, out, _ = keel(t, env, "outbox", "show", dead.String())
	for _, want := range []string{"state       dead", "header trace  t-9", "payload     poison", "attempt 1", "billing is down"} {
		if code != exitOK || !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("show lacks %q (exit %d):\n%s", want, code, out)
		}
	}

	code, out, errOut = keel(t, env, "--json", "outbox", "requeue", dead.String())
	var m outboxMessage
	if err := json.Unmarshal([]byte(out), &m); code != exitOK || err != nil || m.State != "pending" || m.Attempts != 0 {
		t.Errorf("requeue: exit %d, %v, %+v, %s", code, err, m, errOut)
	}
	row, err := db.New(testdb.Open(t, url)).OutboxGet(context.Background(), dead)
	if err != nil || row.State != db.KeelOutboxStatePending {
		t.Errorf("row after requeue: %s, %v", row.State, err)
	}
}

func TestOutboxCommandsFailCleanly(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	delivered, _, _ := seedOutbox(t, url)
	env := map[string]string{"DATABASE_URL": url}
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"outbox", "show", "not-a-uuid"}, exitUsage, `"not-a-uuid" is not a message id`},
		{[]string{"outbox", "show"}, exitUsage, "keel: outbox show: needs a message id"},
		{[]string{"outbox", "show", uuid.Nil.String()}, exitError, "no such message"},
		{[]string{"outbox", "requeue", uuid.Nil.String()}, exitError, "no such message"},
		{[]string{"outbox", "requeue", delivered.String()}, exitError, "message is not dead"},
		{[]string{"outbox", "list", "--state", "lost"}, exitUsage, "--state must be dead, pending or delivered"},
		{[]string{"outbox", "list", "--limit", "0"}, exitUsage, "--limit must be at least 1"},
		{[]string{"outbox", "purge"}, exitUsage, `keel: outbox: unknown subcommand "purge"`},
		{[]string{"--database-url", "postgres://keel@127.0.0.1:1/keel", "outbox", "list"}, exitError, "cannot connect"},
	}
	for _, tc := range tests {
		code, _, errOut := keel(t, env, tc.args...)
		if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("keel %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.wantCode, tc.wantErr)
		}
	}
}
