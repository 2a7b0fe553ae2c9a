package keelotel_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
)

// The environment of the worker process: the database it works, and the
// file it writes its spans to.
const (
	workerURLEnv   = "KEELOTEL_WORKER_URL"
	workerSpansEnv = "KEELOTEL_WORKER_SPANS"
)

// exportedSpan is a span as the worker process writes it for the test.
type exportedSpan struct {
	Name         string `json:"name"`
	TraceID      string `json:"trace_id"`
	SpanID       string `json:"span_id"`
	ParentID     string `json:"parent_id"`
	RemoteParent bool   `json:"remote_parent"`
}

// TestWorkerProcess is not a test: TestTraceCrossesProcesses runs the test
// binary again with this as its only test, as the process that runs the
// job. It writes the spans it ended, one JSON object a line.
func TestWorkerProcess(t *testing.T) {
	url := os.Getenv(workerURLEnv)
	if url == "" {
		t.Skip("runs only as TestTraceCrossesProcesses's subprocess")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := newProcess(t)
	pool := testdb.OpenSized(t, url, 4)
	ran := make(chan struct{}, 1)
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, _ *jobs.Job[emailArgs]) error {
		_, span := p.tp.Tracer("test").Start(ctx, "handler")
		span.End()
		ran <- struct{}{}
		return nil
	}, nil)
	c, err := jobs.NewClient(pool, jobs.Config{Workers: workers, Hook: p.hook, FetchPollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-ctx.Done():
		t.Fatal("the job never ran")
	}
	// Stop waits for the attempt, so its span has ended once it returns.
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(os.Getenv(workerSpansEnv))
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(f)
	for _, s := range p.spans.Ended() {
		if err := enc.Encode(exportedSpan{
			Name: s.Name(), TraceID: s.SpanContext().TraceID().String(), SpanID: s.SpanContext().SpanID().String(),
			ParentID: s.Parent().SpanID().String(), RemoteParent: s.Parent().IsRemote(),
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A job inserted in a request's span in this process runs in another
// process, a real one, whose spans join the request's trace: the run's
// parent is the insert, known to the worker only through the job's row.
func TestTraceCrossesProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := testdb.OpenSized(t, url, 4)
	a := newProcess(t)
	inserter, err := jobs.NewClient(pool, jobs.Config{Hook: a.hook})
	if err != nil {
		t.Fatal(err)
	}
	rctx, request := a.request(ctx)
	inTx(t, rctx, pool, func(tx pgx.Tx) error {
		_, err := inserter.Insert(rctx, tx, emailArgs{To: "b@example.com"}, nil)
		return err
	})
	request.End()

	out := filepath.Join(t.TempDir(), "spans.jsonl")
	worker := exec.Command(os.Args[0], "-test.run=^TestWorkerProcess$", "-test.count=1")
	worker.Env = append(os.Environ(), workerURLEnv+"="+url, workerSpansEnv+"="+out)
	worker.Stdout, worker.Stderr = os.Stderr, os.Stderr
	if err := worker.Run(); err != nil {
		t.Fatalf("worker process: %v", err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spans := map[string]exportedSpan{}
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		var s exportedSpan
		if err := json.Unmarshal(lines.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		spans[s.Name] = s
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	insert := a.span(t, "jobs.insert email").SpanContext()
	run, handler := spans["jobs.run email"], spans["handler"]
	if run.TraceID != insert.TraceID().String() || run.ParentID != insert.SpanID().String() || !run.RemoteParent {
		t.Errorf("the worker's run span %+v; want trace %s, remote parent %s", run, insert.TraceID(), insert.SpanID())
	}
	if handler.TraceID != run.TraceID || handler.ParentID != run.SpanID || handler.RemoteParent {
		t.Errorf("the worker's handler span %+v; want a child of %s", handler, run.SpanID)
	}
	if len(spans) != 2 {
		t.Errorf("the worker ended spans %v, want the run's and the handler's", spans)
	}
}
