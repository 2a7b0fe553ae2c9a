package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

// approval waits for a decision; its reserve step is undone on cancel.
func approvalEngine(t *testing.T, url string) *saga.Engine {
	t.Helper()
	pool := testdb.Open(t, url)
	reg := saga.NewRegistry()
	saga.Register(reg, "approval", 1, func(ctx saga.Context, order string) (string, error) {
		if _, err := saga.StepWithCompensation(ctx, "reserve",
			func(context.Context) (string, error) { return "reserved " + order, nil },
			func(context.Context, string) error { return nil }, nil); err != nil {
			return "", err
		}
		ok, err := saga.AwaitSignal[bool](ctx, "decision", time.Hour)
		if err != nil {
			return "", err
		}
		if !ok {
			return "rejected", nil
		}
		return "approved", nil
	})
	e, err := saga.NewEngine(pool, reg, saga.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop(context.Background()) })
	return e
}

func waitStatus(t *testing.T, e *saga.Engine, pool *pgxpool.Pool, id string, want saga.Status) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r, err := e.Get(context.Background(), pool, id)
		if err == nil && r.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not reach %s: %+v %v", id, want, r, err)
		}
	}
}

func TestSagasCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	e := approvalEngine(t, url)
	pool := testdb.Open(t, url)
	for _, id := range []string{"order-1", "order-2"} {
		if _, err := e.StartRun(ctx, pool, "approval", id, &saga.StartOpts{RunID: id}); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, e, pool, id, saga.StatusWaiting)
	}
	env := map[string]string{"DATABASE_URL": url}

	code, out, errOut := keel(t, env, "sagas", "list")
	flat := strings.Join(strings.Fields(out), " ")
	if code != exitOK || !strings.Contains(flat, "order-2 approval v1 waiting") || !strings.Contains(flat, "order-1 approval v1 waiting") {
		t.Fatalf("sagas list: exit %d %s\n%s", code, errOut, out)
	}
	code, out, _ = keel(t, env, "sagas", "show", "order-1")
	flat = strings.Join(strings.Fields(out), " ")
	if code != exitOK || !strings.Contains(flat, "run order-1: approval v1, waiting") || !strings.Contains(flat, "1 reserve step completed 1") {
		t.Errorf("sagas show: exit %d\n%s", code, out)
	}

	if code, _, errOut := keel(t, env, "sagas", "signal", "order-1", "decision", "--value", "true", "--key", "k1"); code != exitOK {
		t.Fatalf("sagas signal: %s", errOut)
	}
	done, err := e.Await(ctx, "order-1")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := saga.Result[string](done); err != nil || out != "approved" {
		t.Errorf("signalled run: %q %v", out, err)
	}

	code, out, _ = keel(t, env, "--json", "sagas", "cancel", "order-2")
	var v runView
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || v.ID != "order-2" {
		t.Fatalf("sagas cancel: exit %d %v\n%s", code, err, out)
	}
	waitStatus(t, e, pool, "order-2", saga.StatusCancelled)
	code, out, _ = keel(t, env, "--json", "sagas", "show", "order-2")
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || v.Status != "cancelled" {
		t.Fatalf("show after cancel: exit %d %v\n%s", code, err, out)
	}
	compensated := false
	for _, s := range v.Steps {
		if s.Kind == "compensation" && s.Status == "completed" {
			compensated = true
		}
	}
	if !compensated {
		t.Errorf("cancelled run shows no completed compensation: %+v", v.Steps)
	}

	code, out, _ = keel(t, env, "--json", "stats")
	var st statsView
	if err := json.Unmarshal([]byte(out), &st); code != exitOK || err != nil || len(st.Sagas) != 1 || st.Sagas[0].Succeeded != 1 || st.Sagas[0].Cancelled != 1 {
		t.Errorf("stats sagas: exit %d %v %+v", code, err, st.Sagas)
	}

	failures := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"sagas", "show", "nobody"}, exitError, "nobody"},
		{[]string{"sagas", "signal", "order-1", "decision"}, exitError, "finished"},
		{[]string{"sagas", "signal", "order-1", "decision", "--value", "{nope"}, exitUsage, "is not valid JSON"},
		{[]string{"sagas", "signal", "order-1"}, exitUsage, "needs a run id and a signal name"},
		{[]string{"sagas", "cancel", "order-1"}, exitError, "finished"},
		{[]string{"sagas", "list", "--status", "lost"}, exitUsage, "lost"},
	}
	for _, tc := range failures {
		code, _, errOut := keel(t, env, tc.args...)
		if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
			t.Errorf("keel %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.wantCode, tc.wantErr)
		}
	}
}
