package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
)

type mailArgs struct {
	To string `json:"to"`
}

func (mailArgs) Kind() string { return "mail" }

func TestJobsAndQueuesCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := testdb.Open(t, url)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := jc.Insert(ctx, pool, mailArgs{To: "a@example.com"}, &jobs.InsertOpts{Queue: "mail"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := jc.Insert(ctx, pool, mailArgs{To: "b@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": url}
	id1, id2 := strconv.FormatInt(first.ID, 10), strconv.FormatInt(second.ID, 10)

	code, out, errOut := keel(t, env, "jobs", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 3 || !strings.HasPrefix(lines[1], id2+" ") || !strings.HasPrefix(lines[2], id1+" ") {
		t.Fatalf("jobs list: exit %d, %s\n%s", code, errOut, out)
	}

	code, out, _ = keel(t, env, "--json", "jobs", "cancel", id1)
	var v jobView
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || v.State != "cancelled" {
		t.Fatalf("jobs cancel: exit %d, %v, %+v", code, err, v)
	}
	if row, _ := jc.JobGet(ctx, first.ID); row.State != jobs.StateCancelled {
		t.Errorf("row after cancel: %s", row.State)
	}
	code, out, _ = keel(t, env, "jobs", "retry", id1)
	if code != exitOK || !strings.Contains(out, "available") {
		t.Errorf("jobs retry: exit %d\n%s", code, out)
	}
	if row, _ := jc.JobGet(ctx, first.ID); row.State != jobs.StateAvailable {
		t.Errorf("row after retry: %s", row.State)
	}
	code, out, _ = keel(t, env, "jobs", "show", id1)
	if code != exitOK || !strings.Contains(out, `{"to": "a@example.com"}`) && !strings.Contains(out, `{"to":"a@example.com"}`) {
		t.Errorf("jobs show lacks the args (exit %d):\n%s", code, out)
	}
	code, out, _ = keel(t, env, "--json", "jobs", "list", "--queue", "mail")
	var views []jobView
	if err := json.Unmarshal([]byte(out), &views); code != exitOK || err != nil || len(views) != 1 || views[0].ID != first.ID {
		t.Errorf("jobs list --queue mail: exit %d, %v, %+v", code, err, views)
	}

	if code, _, errOut := keel(t, env, "queues", "pause", "mail"); code != exitOK {
		t.Fatalf("queues pause: %s", errOut)
	}
	if paused, err := jc.QueuePaused(ctx, "mail"); err != nil || !paused {
		t.Errorf("mail not paused after the command: %v %v", paused, err)
	}
	code, out, _ = keel(t, env, "queues", "resume", "mail")
	if code != exitOK || !strings.Contains(out, "mail") || strings.Contains(out, "paused") {
		t.Errorf("queues resume: exit %d\n%s", code, out)
	}

	failures := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"jobs", "show", "abc"}, exitUsage, `"abc" is not a job id`},
		{[]string{"jobs", "show", "999999"}, exitError, "keel jobs: no such job: 999999"},
		{[]string{"jobs", "list", "--state", "lost"}, exitUsage, `unknown state "lost"`},
		{[]string{"jobs", "drop", "1"}, exitUsage, `unknown jobs subcommand "drop"`},
		{[]string{"queues", "pause"}, exitUsage, "queues pause needs one queue name"},
	}
	for _, tc := range failures {
		code, _, errOut := keel(t, env, tc.args...)
		if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("keel %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.wantCode, tc.wantErr)
		}
	}
}
