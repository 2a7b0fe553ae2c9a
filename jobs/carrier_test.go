package jobs

import (
	"context"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/keelpg/keel/internal/hooktest"
	"github.com/keelpg/keel/keeltype"
)

const testTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// The trace context a hook gives an insert is stored in every job the
// insert writes — Insert, InsertMany and InsertWorkflow alike — beside the
// caller's metadata, entries Postgres cannot hold are dropped without
// failing the insert, a caller's own keel_trace is kept, and each attempt
// hands the stored carrier back to the hook.
func TestCarrierTravelsWithTheJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := newPool(t, 8)
	hook := &hooktest.Recorder{Inject: map[string]string{
		"traceparent": testTraceparent, "tracestate": "k=v",
		"bad\x00name": "dropped", "baggage": strings.Repeat("b", keeltype.MaxCarrierValue+1),
	}}
	stored := map[string]string{"traceparent": testTraceparent, "tracestate": "k=v"}
	cfg := fastConfig(NewWorkers())
	AddWorker(cfg.Workers, func(context.Context, *Job[testArgs]) error { return nil }, nil)
	cfg.Hook = hook
	inserter, err := NewClient(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	single, err := inserter.Insert(ctx, tx, testArgs{N: 1}, &InsertOpts{Metadata: map[string]any{"user": "u1"}})
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]any{keeltype.CarrierKey: map[string]string{"traceparent": "mine"}}
	if _, err := inserter.InsertMany(ctx, tx, []InsertManyParams{
		{Args: testArgs{N: 2}},
		{Args: testArgs{N: 3}, Opts: &InsertOpts{Metadata: own}},
	}); err != nil {
		t.Fatal(err)
	}
	wf, err := inserter.InsertWorkflow(ctx, tx, NewWorkflow("traced").Add("a", testArgs{N: 4}, nil).Add("b", testArgs{N: 5}, &TaskOpts{After: []string{"a"}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// Another client, as another process would, runs them.
	runner := startClient(t, pool, cfg)
	byN := map[int]map[string]string{1: stored, 2: stored, 3: {"traceparent": "mine"}, 4: stored, 5: stored}
	ids := map[int64]int{single.ID: 1, wf["a"]: 4, wf["b"]: 5}
	rows, err := runner.JobList(ctx, &JobListParams{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		var args testArgs
		if err := json.Unmarshal(row.EncodedArgs, &args); err != nil {
			t.Fatal(err)
		}
		ids[row.ID] = args.N
		var meta struct {
			User    string            `json:"user"`
			Carrier map[string]string `json:"keel_trace"`
		}
		if err := json.Unmarshal(row.Metadata, &meta); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(meta.Carrier, byN[args.N]) || (args.N == 1) != (meta.User == "u1") {
			t.Errorf("job %d stores metadata %s", args.N, row.Metadata)
		}
	}
	if len(ids) != 5 {
		t.Fatalf("%d jobs stored, want 5", len(ids))
	}
	for id := range ids {
		waitState(t, runner, id, StateCompleted)
	}
	runs := hook.Started(keeltype.OpJobRun)
	if len(runs) != 5 {
		t.Fatalf("%d runs started, want 5", len(runs))
	}
	for _, op := range runs {
		id, _ := strconv.ParseInt(op.ID, 10, 64)
		if n := ids[id]; !maps.Equal(op.Carrier, byN[n]) {
			t.Errorf("the run of job %d got carrier %v, want %v", n, op.Carrier, byN[n])
		}
	}
	for _, op := range hook.Started(keeltype.OpJobInsert) {
		if op.Carrier == nil {
			t.Errorf("insert of %d jobs had no carrier to fill", op.Count)
		}
	}
}

// A job inserted without trace context hands its run a nil carrier.
func TestCarrierAbsent(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	hook := &hooktest.Recorder{}
	cfg := fastConfig(NewWorkers())
	AddWorker(cfg.Workers, func(context.Context, *Job[testArgs]) error { return nil }, nil)
	cfg.Hook = hook
	c := startClient(t, pool, cfg)
	job := insert(t, c, testArgs{}, nil)
	row := waitState(t, c, job.ID, StateCompleted)
	if string(row.Metadata) != "{}" {
		t.Errorf("metadata %s, want {}", row.Metadata)
	}
	waitFor(t, "the run to end", func() bool { return len(hook.Ended(keeltype.OpJobRun)) == 1 })
	if c := hook.Started(keeltype.OpJobRun)[0].Carrier; c != nil {
		t.Errorf("carrier %v, want nil", c)
	}
}
