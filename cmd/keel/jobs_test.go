package main

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
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
		{[]string{"jobs", "drop", "1"}, exitUsage, `keel: jobs: unknown subcommand "drop"`},
		{[]string{"queues", "pause"}, exitUsage, "keel: queues pause: needs a queue name"},
	}
	for _, tc := range failures {
		code, _, errOut := keel(t, env, tc.args...)
		if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("keel %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.wantCode, tc.wantErr)
		}
	}
}

// keel's own jobs (a saga run's keel.saga.run) are left out of jobs list
// unless --all or --kind asks for them, and their attempts show no limit.
func TestJobsListLeavesOutKeelsJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := testdb.Open(t, url)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	mail, err := jc.Insert(ctx, pool, mailArgs{To: "a@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := saga.NewRegistry()
	saga.Register(reg, "noop", 1, func(saga.Context, int) (int, error) { return 0, nil })
	e, err := saga.NewEngine(pool, reg, saga.Config{}) // not started: its run's job stays available
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.StartRun(ctx, pool, "noop", 1, nil); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": url}
	list := func(args ...string) []jobView {
		t.Helper()
		code, out, errOut := keel(t, env, append([]string{"--json", "jobs", "list"}, args...)...)
		var views []jobView
		if err := json.Unmarshal([]byte(out), &views); code != exitOK || err != nil {
			t.Fatalf("jobs list %v: exit %d, %v, %s", args, code, err, errOut)
		}
		return views
	}
	if views := list(); len(views) != 1 || views[0].ID != mail.ID {
		t.Errorf("jobs list shows keel's own jobs: %+v", views)
	}
	all := list("--all")
	if len(all) != 2 || all[0].Kind != "keel.saga.run" || all[1].ID != mail.ID {
		t.Fatalf("jobs list --all: %+v", all)
	}
	if byKind := list("--kind", "keel.saga.run"); len(byKind) != 1 || byKind[0].ID != all[0].ID {
		t.Errorf("jobs list --kind keel.saga.run: %+v", byKind)
	}

	code, out, _ := keel(t, env, "jobs", "list", "--all")
	if code != exitOK || strings.Contains(out, "1048576") || !strings.Contains(flatten(out), "available saga keel.saga.run 0/- ") ||
		!strings.Contains(flatten(out), "available default mail 0/25 ") {
		t.Errorf("jobs list --all: exit %d\n%s", code, out)
	}
	code, out, _ = keel(t, env, "jobs", "show", strconv.FormatInt(all[0].ID, 10))
	if code != exitOK || strings.Contains(out, "1048576") || !strings.Contains(flatten(out), "attempt 0 (no limit)") {
		t.Errorf("jobs show of keel's own job: exit %d\n%s", code, out)
	}
}

// keel jobs delete prints the job as it was and removes it; a job another
// job waits on is refused.
func TestJobsDeleteCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := testdb.Open(t, url)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := jc.Insert(ctx, pool, mailArgs{To: "a@example.com"}, &jobs.InsertOpts{Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	second, err := jc.Insert(ctx, pool, mailArgs{To: "b@example.com"}, &jobs.InsertOpts{DependsOn: []int64{first.ID}})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DATABASE_URL": url}
	id1, id2 := strconv.FormatInt(first.ID, 10), strconv.FormatInt(second.ID, 10)

	code, _, errOut := keel(t, env, "jobs", "delete", id1)
	if code != exitError || !strings.Contains(errOut, "pending jobs depend on the job") {
		t.Fatalf("jobs delete of a job another waits on: exit %d, %s", code, errOut)
	}
	code, out, errOut := keel(t, env, "--json", "jobs", "delete", id2)
	var v jobView
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || v.ID != second.ID || v.State != "pending" {
		t.Fatalf("jobs delete %s: exit %d, %v, %+v, %s", id2, code, err, v, errOut)
	}
	code, out, _ = keel(t, env, "jobs", "delete", id1)
	if code != exitOK || !strings.Contains(out, "scheduled") {
		t.Fatalf("jobs delete %s: exit %d\n%s", id1, code, out)
	}
	for _, job := range []*jobs.JobRow{first, second} {
		if _, err := jc.JobGet(ctx, job.ID); !errors.Is(err, jobs.ErrNotFound) {
			t.Errorf("job %d after jobs delete: %v", job.ID, err)
		}
	}
	for _, tc := range []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"jobs", "delete", id1}, exitError, "keel jobs: no such job: " + id1},
		{[]string{"jobs", "delete", "x"}, exitUsage, `"x" is not a job id`},
	} {
		if code, _, errOut := keel(t, env, tc.args...); code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("keel %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.wantCode, tc.wantErr)
		}
	}
}
