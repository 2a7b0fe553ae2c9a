package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/saga"
)

// sagaWorld is a database with an engine that executes runs of these
// workflows, as a service's would, beside the console's own:
//
//   - approval: step reserve, then a wait for the signal approve, then step
//     ship, returning "shipped: " and the signal's value;
//   - charge: step hold, which a compensation undoes, then step charge,
//     which fails (one attempt) while broken is set;
//   - family: starts an approval run as its child, then waits for the
//     signal never.
type sagaWorld struct {
	pool   *pgxpool.Pool
	engine *saga.Engine
	broken atomic.Bool
}

func newSagaWorld(t *testing.T) *sagaWorld {
	t.Helper()
	w := &sagaWorld{pool: testdb.New(t)}
	w.broken.Store(true)
	reg := saga.NewRegistry()
	saga.Register(reg, "approval", 1, func(ctx saga.Context, order string) (string, error) {
		if _, err := saga.Step(ctx, "reserve", func(context.Context) (string, error) { return "reserved " + order, nil }, nil); err != nil {
			return "", err
		}
		ok, err := saga.AwaitSignal[string](ctx, "approve", 0)
		if err != nil {
			return "", err
		}
		return saga.Step(ctx, "ship", func(context.Context) (string, error) { return "shipped: " + ok, nil }, nil)
	})
	saga.Register(reg, "charge", 1, func(ctx saga.Context, amount int) (int, error) {
		_, err := saga.StepWithCompensation(ctx, "hold", func(context.Context) (int, error) { return amount, nil },
			func(context.Context, int) error { return nil }, nil)
		if err != nil {
			return 0, err
		}
		return saga.Step(ctx, "charge", func(context.Context) (int, error) {
			if w.broken.Load() {
				return 0, errors.New("card declined\nby the test")
			}
			return amount, nil
		}, &saga.StepOpts{MaxAttempts: 1})
	})
	saga.Register(reg, "family", 1, func(ctx saga.Context, _ int) (int, error) {
		saga.StartChild[string](ctx, "approval", "kid", nil)
		_, err := saga.AwaitSignal[int](ctx, "never", 0)
		return 0, err
	})
	var err error
	w.engine, err = saga.NewEngine(w.pool, reg, saga.Config{
		MaxConcurrentRuns: 4,
		AwaitPollInterval: 50 * time.Millisecond,
		Jobs:              jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.engine.Stop(ctx); err != nil {
			t.Errorf("stopping the engine: %v", err)
		}
	})
	return w
}

func (w *sagaWorld) start(t *testing.T, workflow string, input any, id string) string {
	t.Helper()
	run, err := w.engine.StartRun(context.Background(), w.pool, workflow, input, &saga.StartOpts{RunID: id})
	if err != nil {
		t.Fatal(err)
	}
	return run.ID
}

// await waits for the run to end.
func (w *sagaWorld) await(t *testing.T, id string) *saga.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := w.engine.Await(ctx, id)
	if err != nil {
		t.Fatalf("await %s: %v", id, err)
	}
	return run
}

// waitStatus waits until the run has status.
func (w *sagaWorld) waitStatus(t *testing.T, id string, status saga.Status) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		run, err := w.engine.Get(context.Background(), w.pool, id)
		if err != nil {
			t.Fatal(err)
		}
		if run.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s, want %s", id, run.Status, status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// idle starts n runs of workflow idle on a queue no engine works, so they
// stay pending, through an engine that executes nothing.
func (w *sagaWorld) idle(t *testing.T, n int) []string {
	t.Helper()
	reg := saga.NewRegistry()
	saga.Register(reg, "idle", 1, func(saga.Context, int) (int, error) { return 0, nil })
	e, err := saga.NewEngine(w.pool, reg, saga.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		run, err := e.StartRun(context.Background(), w.pool, "idle", i, &saga.StartOpts{RunID: fmt.Sprintf("idle-%02d", i), Queue: "nobody"})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = run.ID
	}
	return ids
}

// listAll follows a list's older links from path and returns every run.
func listAll(t *testing.T, b *browser, path string) []SagaRunRow {
	t.Helper()
	var all []SagaRunRow
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	next := path
	for pages := 0; ; pages++ {
		var v SagaRuns
		if status := b.json(next, &v); status != http.StatusOK {
			t.Fatalf("GET /api%s: %d", next, status)
		}
		if len(v.Runs) > sagaPageSize {
			t.Fatalf("a page of %d runs, more than %d", len(v.Runs), sagaPageSize)
		}
		all = append(all, v.Runs...)
		if v.Older == "" {
			return all
		}
		if len(v.Runs) != sagaPageSize {
			t.Fatalf("a page of %d runs has an older link", len(v.Runs))
		}
		next = path + sep + "before=" + url.QueryEscape(v.Older)
	}
}

func TestSagaList(t *testing.T) {
	t.Parallel()
	w := newSagaWorld(t)
	idle := w.idle(t, 55)
	waiting := w.start(t, "approval", "o-1", "approval-1")
	failed := w.start(t, "charge", 5, "charge-1")
	w.waitStatus(t, waiting, saga.StatusWaiting)
	w.await(t, failed)
	b := open(t, w.pool, Config{})

	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"pending", "/sagas?status=pending", idle},
		{"idle workflow", "/sagas?workflow=idle", idle},
		{"pending idle", "/sagas?workflow=idle&status=pending", idle},
		{"waiting", "/sagas?status=waiting", []string{waiting}},
		{"failed", "/sagas?status=failed", []string{failed}},
		{"failed charge", "/sagas?status=failed&workflow=charge", []string{failed}},
		{"succeeded charge", "/sagas?status=succeeded&workflow=charge", nil},
		{"every run", "/sagas", append([]string{waiting, failed}, idle...)},
	} {
		runs := listAll(t, b, tc.path)
		got := map[string]bool{}
		for i, r := range runs {
			if got[r.ID] {
				t.Errorf("%s: run %s listed twice", tc.name, r.ID)
			}
			got[r.ID] = true
			if i > 0 && r.CreatedAt.After(runs[i-1].CreatedAt) {
				t.Errorf("%s: run %s is newer than the one before it", tc.name, r.ID)
			}
		}
		if len(runs) != len(tc.want) {
			t.Errorf("%s: %d runs, want %d", tc.name, len(runs), len(tc.want))
		}
		for _, id := range tc.want {
			if !got[id] {
				t.Errorf("%s: run %s not listed", tc.name, id)
			}
		}
	}

	var page SagaRuns
	b.json("/sagas?status=failed", &page)
	if r := page.Runs[0]; r.ErrorKind != "workflow" || !strings.Contains(r.Error, "card declined") || r.FinishedAt == nil {
		t.Fatalf("failed run %+v, want its error and finish time", r)
	}
	b.json("/sagas?status=waiting", &page)
	if r := page.Runs[0]; r.WaitReason != "signal approve" || r.Workflow != "approval" || r.Version != 1 {
		t.Fatalf("waiting run %+v, want it waiting for signal approve", r)
	}

	html := b.page("/sagas?status=failed")
	for _, want := range []string{`data-run="charge-1"`, `href="/sagas/charge-1"`, "card declined", `class="state state-failed"`, `aria-current="page">failed<`} {
		if !strings.Contains(html, want) {
			t.Errorf("failed runs page lacks %q", want)
		}
	}
	if strings.Contains(html, "by the test") {
		t.Error("the list shows more than an error's first line")
	}
	html = b.page("/sagas?status=pending")
	if !strings.Contains(html, `rel="next"`) || strings.Count(html, "data-run=") != sagaPageSize {
		t.Errorf("the first page of pending runs shows %d runs and no older link", strings.Count(html, "data-run="))
	}
	html = b.page("/sagas?status=waiting")
	if !strings.Contains(html, "signal approve") {
		t.Error("the waiting runs page does not say what the run waits for")
	}

	for _, path := range []string{"/sagas?status=bogus", "/sagas?before=nope", "/sagas?before=12:a%00b", "/sagas?before=-9223372036854775807:x", "/sagas?workflow=a%00b"} {
		if status := b.json(path, nil); status != http.StatusBadRequest {
			t.Errorf("GET /api%s: %d, want 400", path, status)
		}
	}
}

func TestSagaRunPage(t *testing.T) {
	t.Parallel()
	w := newSagaWorld(t)
	waiting := w.start(t, "approval", "o-7", "approval-7")
	parent := w.start(t, "family", 1, "family-1")
	child := parent + "/1"
	w.waitStatus(t, waiting, saga.StatusWaiting)
	w.waitStatus(t, parent, saga.StatusWaiting)
	w.waitStatus(t, child, saga.StatusWaiting)
	if err := w.engine.Signal(context.Background(), w.pool, parent, "later", 42, nil); err != nil {
		t.Fatal(err)
	}
	b := open(t, w.pool, Config{})

	var run SagaRun
	if status := b.json("/sagas/"+waiting, &run); status != http.StatusOK {
		t.Fatalf("GET /api/sagas/%s: %d", waiting, status)
	}
	if run.Status != "waiting" || run.Final || run.AwaitedSignal != "approve" || string(run.Input) != `"o-7"` || len(run.Steps) != 2 {
		t.Fatalf("run %+v, want waiting for approve after one step", run)
	}
	if s := run.Steps[0]; s.Seq != 1 || s.Name != "reserve" || s.Kind != "step" || s.Status != "completed" || s.FinishedAt == nil || string(s.Output) != `"reserved o-7"` {
		t.Fatalf("step 1 %+v, want reserve completed", s)
	}
	if s := run.Steps[1]; s.Seq != 2 || s.Kind != "signal" || s.Label != "signal wait" || s.Status != "waiting" || s.Waits != "signal approve" || s.FinishedAt != nil {
		t.Fatalf("step 2 %+v, want a waiting signal wait", s)
	}
	html := b.page("/sagas/" + waiting)
	for _, want := range []string{`<ol class="timeline">`, `class="state-waiting"`, "signal wait", "waiting: signal approve",
		"reserved o-7", `name="name" value="approve"`, `action="/sagas/approval-7/signal"`, `action="/sagas/approval-7/cancel"`,
		`data-confirm="Cancel run approval-7?`, `<option value="1">`} {
		if !strings.Contains(html, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	if strings.Contains(html, `action="/sagas/approval-7/resume"`) {
		t.Error("a waiting run's page offers resume")
	}

	if status := b.json("/sagas/"+parent, &run); status != http.StatusOK {
		t.Fatalf("GET /api/sagas/%s: %d", parent, status)
	}
	if len(run.Children) != 1 || run.Children[0].ID != child || run.Children[0].ParentSeq != 1 || run.Children[0].Status != "waiting" {
		t.Fatalf("children %+v, want %s started at step 1", run.Children, child)
	}
	if s := run.Steps[0]; s.Kind != "child" || s.ChildID != child || s.ChildStatus != "waiting" {
		t.Fatalf("step 1 %+v, want the start of child %s", s, child)
	}
	if len(run.Signals) != 1 || run.Signals[0].Name != "later" || string(run.Signals[0].Value) != "42" {
		t.Fatalf("pending signals %+v, want later = 42", run.Signals)
	}
	html = b.page("/sagas/" + parent)
	childLink := `href="/sagas/family-1%2F1"`
	for _, want := range []string{childLink, `data-child="family-1/1"`, `data-signal="later"`, "child start"} {
		if !strings.Contains(html, want) {
			t.Errorf("parent's page lacks %q", want)
		}
	}
	html = b.page("/sagas/family-1%2F1")
	if !strings.Contains(html, `href="/sagas/family-1">family-1</a>`) {
		t.Error("the child's page does not link its parent")
	}

	for _, path := range []string{"/sagas/nope", "/api/sagas/nope"} {
		if status, _, _ := b.do(http.MethodGet, path, nil, nil); status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, status)
		}
	}
	status, header, _ := b.do(http.MethodGet, "/sagas/?id=+family-1%2F1+", nil, nil)
	if status != http.StatusSeeOther || header.Get("Location") != "/sagas/family-1%2F1" {
		t.Fatalf("search: %d to %q, want 303 to the run", status, header.Get("Location"))
	}
}

func TestSagaActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newSagaWorld(t)
	b := open(t, w.pool, Config{})
	post := func(path string, form url.Values) (int, string) {
		t.Helper()
		status, header, body := b.submit(path, form)
		if status == http.StatusSeeOther {
			return status, header.Get("Location")
		}
		return status, body
	}

	t.Run("signal", func(t *testing.T) {
		t.Parallel()
		id := w.start(t, "approval", "o-1", "signal-me")
		w.waitStatus(t, id, saga.StatusWaiting)
		for _, tc := range []struct {
			name  string
			form  url.Values
			want  int
			error string
		}{
			{"no name", url.Values{"value": {`"x"`}}, http.StatusBadRequest, "needs a name"},
			{"bad JSON", url.Values{"name": {"approve"}, "value": {"{nope"}}, http.StatusBadRequest, "not valid JSON"},
		} {
			if status, body := post("/sagas/signal-me/signal", tc.form); status != tc.want || !strings.Contains(body, tc.error) {
				t.Errorf("%s: %d %s, want %d with %q", tc.name, status, body, tc.want, tc.error)
			}
		}
		if status, next := post("/sagas/signal-me/signal", url.Values{"name": {"approve"}, "value": {`"yes"`}}); status != http.StatusSeeOther || next != "/sagas/signal-me" {
			t.Fatalf("signal: %d to %s", status, next)
		}
		got, err := saga.Result[string](w.await(t, id))
		if err != nil || got != "shipped: yes" {
			t.Fatalf("signalled run's result %q, %v", got, err)
		}
		if status := b.call("/sagas/signal-me/signal", url.Values{"name": {"approve"}}, nil); status != http.StatusConflict {
			t.Fatalf("signal to a finished run: %d, want 409", status)
		}
		if status := b.call("/sagas/nope/signal", url.Values{"name": {"approve"}}, nil); status != http.StatusNotFound {
			t.Fatalf("signal to no run: %d, want 404", status)
		}
	})

	t.Run("signal null through the API", func(t *testing.T) {
		t.Parallel()
		id := w.start(t, "approval", "o-2", "signal-null")
		var res SagaAction
		if status := b.call("/sagas/signal-null/signal", url.Values{"name": {"later"}}, &res); status != http.StatusOK || res.Signal != "later" || res.RunID != id {
			t.Fatalf("signal: %d %+v", status, res)
		}
		var run SagaRun
		b.json("/sagas/signal-null", &run)
		if len(run.Signals) != 1 || run.Signals[0].Name != "later" || string(run.Signals[0].Value) != "null" {
			t.Fatalf("pending signals %+v, want later = null", run.Signals)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		id := w.start(t, "approval", "o-3", "cancel-me")
		w.waitStatus(t, id, saga.StatusWaiting)
		form := url.Values{"csrf": {b.csrf()}}
		status, _, body := b.do(http.MethodPost, "/sagas/cancel-me/cancel", strings.NewReader(form.Encode()),
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
		if status != http.StatusOK || !strings.Contains(body, `name="confirm" value="yes"`) {
			t.Fatalf("unconfirmed cancel: %d, want the page that asks", status)
		}
		if run, _ := w.engine.Get(ctx, w.pool, id); run.CancelRequested {
			t.Fatal("an unconfirmed cancel requested the cancel")
		}
		if status, next := post("/sagas/cancel-me/cancel", nil); status != http.StatusSeeOther || next != "/sagas/cancel-me" {
			t.Fatalf("cancel: %d %s", status, next)
		}
		if run := w.await(t, id); run.Status != saga.StatusCancelled || !errors.Is(run.Err(), saga.ErrCancelled) {
			t.Fatalf("cancelled run %s, %v", run.Status, run.Err())
		}
		if status, _ := post("/sagas/cancel-me/cancel", nil); status != http.StatusConflict {
			t.Fatalf("cancel of a cancelled run: %d, want 409", status)
		}
		html := b.page("/sagas/cancel-me")
		if strings.Contains(html, `action="/sagas/cancel-me/cancel"`) || strings.Contains(html, `action="/sagas/cancel-me/signal"`) ||
			!strings.Contains(html, `action="/sagas/cancel-me/resume"`) {
			t.Error("a cancelled run's page offers cancel or signal, or not resume")
		}
	})

	t.Run("resume and fork", func(t *testing.T) {
		// The charge workflow fails until broken is cleared: this subtest
		// alone runs it.
		id := w.start(t, "charge", 7, "charge-7")
		if run := w.await(t, id); run.Status != saga.StatusFailed {
			t.Fatalf("charge run %s, want failed", run.Status)
		}
		var run SagaRun
		b.json("/sagas/charge-7", &run)
		if run.ErrorKind != "workflow" || len(run.Steps) != 3 {
			t.Fatalf("failed run %+v, want its two steps and a compensation", run)
		}
		if s := run.Steps[1]; s.Seq != 2 || s.Status != "failed" || !strings.Contains(s.Error, "card declined") {
			t.Fatalf("step 2 %+v, want charge failed", s)
		}
		if s := run.Steps[2]; s.Seq != -1 || s.Kind != "compensation" || s.Name != "hold" || s.Undoes != 1 || s.Status != "completed" {
			t.Fatalf("last entry %+v, want the compensation of step 1 after the steps", s)
		}
		html := b.page("/sagas/charge-7")
		for _, want := range []string{`action="/sagas/charge-7/resume"`, `action="/sagas/charge-7/fork"`, `<option value="2">`,
			`class="state-completed saga-compensation" id="step--1"`, `undoes <a href="#step-1">`} {
			if !strings.Contains(html, want) {
				t.Errorf("failed run's page lacks %q", want)
			}
		}
		if strings.Contains(html, `<option value="-1">`) {
			t.Error("the fork form offers a compensation's position")
		}
		w.broken.Store(false)
		if status, next := post("/sagas/charge-7/resume", nil); status != http.StatusSeeOther || next != "/sagas/charge-7" {
			t.Fatalf("resume: %d %s", status, next)
		}
		if got, err := saga.Result[int](w.await(t, id)); err != nil || got != 7 {
			t.Fatalf("resumed run's result %d, %v", got, err)
		}
		if status, _ := post("/sagas/charge-7/resume", nil); status != http.StatusConflict {
			t.Fatalf("resume of a succeeded run: %d, want 409", status)
		}

		var res SagaAction
		if status := b.call("/sagas/charge-7/fork", url.Values{"from": {"1"}}, &res); status != http.StatusOK || res.ForkID == "" {
			t.Fatalf("fork: %d %+v", status, res)
		}
		fork := w.await(t, res.ForkID)
		if got, err := saga.Result[int](fork); err != nil || got != 7 || fork.ForkedFrom != id || fork.ForkedAtSeq != 1 {
			t.Fatalf("fork %+v: %d, %v", fork, got, err)
		}
		status, next := post("/sagas/charge-7/fork", url.Values{"from": {"3"}})
		if status != http.StatusSeeOther || !strings.HasPrefix(next, "/sagas/") || next == "/sagas/charge-7" {
			t.Fatalf("fork form: %d to %s, want the new run's page", status, next)
		}
		forked, err := w.engine.Get(ctx, w.pool, strings.TrimPrefix(next, "/sagas/"))
		if err != nil || forked.ForkedFrom != id || forked.ForkedAtSeq != 3 {
			t.Fatalf("forked run %+v, %v", forked, err)
		}
		for _, from := range []string{"", "0", "x"} {
			if status := b.call("/sagas/charge-7/fork", url.Values{"from": {from}}, nil); status != http.StatusBadRequest {
				t.Errorf("fork from %q: %d, want 400", from, status)
			}
		}
		if status := b.call("/sagas/nope/fork", url.Values{"from": {"1"}}, nil); status != http.StatusNotFound {
			t.Errorf("fork of no run: %d, want 404", status)
		}
	})
}

func TestSagaReadOnly(t *testing.T) {
	t.Parallel()
	w := newSagaWorld(t)
	id := w.start(t, "approval", "o-1", "read-only")
	w.waitStatus(t, id, saga.StatusWaiting)
	b := open(t, w.pool, Config{ReadOnly: true})
	for _, action := range []string{"signal", "cancel", "resume", "fork"} {
		form := url.Values{"name": {"approve"}, "from": {"1"}}
		if status, _, _ := b.submit("/sagas/read-only/"+action, form); status != http.StatusForbidden {
			t.Errorf("read-only %s: %d, want 403", action, status)
		}
		if status := b.call("/sagas/read-only/"+action, form, nil); status != http.StatusForbidden {
			t.Errorf("read-only API %s: %d, want 403", action, status)
		}
	}
	for _, path := range []string{"/sagas", "/sagas/read-only"} {
		if html := b.page(path); strings.Contains(html, `method="post"`) {
			t.Errorf("read-only page %s shows an action", path)
		}
	}
	run, err := w.engine.Get(context.Background(), w.pool, id)
	if err != nil || run.Status != saga.StatusWaiting || run.CancelRequested {
		t.Fatalf("run %+v, %v after refused actions, want it waiting as it was", run, err)
	}
	var v SagaRun
	b.json("/sagas/read-only", &v)
	if len(v.Signals) != 0 {
		t.Fatalf("a read-only console sent a signal: %+v", v.Signals)
	}
}
