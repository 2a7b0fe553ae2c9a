package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltest"
	"github.com/keelpg/keel/saga"
)

// consoleJobArgs is the kind of most jobs these tests seed; N tells them
// apart.
type consoleJobArgs struct {
	To string `json:"to,omitempty"`
	N  int    `json:"n"`
}

func (consoleJobArgs) Kind() string { return "console_job" }

// consoleReportArgs is a second kind, for the kind filter.
type consoleReportArgs struct {
	Name string `json:"name"`
}

func (consoleReportArgs) Kind() string { return "console_report" }

// jobIDsOf lists the ids of a page.
func jobIDsOf(l JobList) []int64 {
	ids := make([]int64, len(l.Jobs))
	for i, j := range l.Jobs {
		ids[i] = j.ID
	}
	return ids
}

// sameJSON reports whether raw is the JSON value want, however spaced.
func sameJSON(raw json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(raw, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && reflect.DeepEqual(a, b)
}

func sameIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// insertJob inserts a job or fails the test.
func insertJob(t *testing.T, jc *jobs.Client, pool *pgxpool.Pool, args jobs.JobArgs, opts *jobs.InsertOpts) *jobs.JobRow {
	t.Helper()
	row, err := jc.Insert(context.Background(), pool, args, opts)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func TestJobList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Oldest first: 60 bulk jobs, then the ones the filters pick out.
	var bulk []int64
	for i := range 60 {
		bulk = append(bulk, insertJob(t, jc, pool, consoleJobArgs{N: i}, &jobs.InsertOpts{Queue: "bulk"}).ID)
	}
	mailA := insertJob(t, jc, pool, consoleJobArgs{To: "a@example.com"}, &jobs.InsertOpts{Queue: "mail"})
	mailB := insertJob(t, jc, pool, consoleJobArgs{To: "b@example.com"}, &jobs.InsertOpts{Queue: "mail"})
	mailC := insertJob(t, jc, pool, consoleJobArgs{To: "c@example.com"}, &jobs.InsertOpts{Queue: "mail"})
	report := insertJob(t, jc, pool, consoleReportArgs{Name: "daily"}, nil)
	later := insertJob(t, jc, pool, consoleReportArgs{Name: "yearly"}, &jobs.InsertOpts{Delay: time.Hour})
	waiting := insertJob(t, jc, pool, consoleJobArgs{N: 100}, &jobs.InsertOpts{Queue: "deps", DependsOn: []int64{later.ID}})
	if _, err := jc.JobCancel(ctx, mailB.ID); err != nil {
		t.Fatal(err)
	}
	reg := saga.NewRegistry()
	saga.Register(reg, "console-noop", 1, func(saga.Context, int) (int, error) { return 0, nil })
	engine, err := saga.NewEngine(pool, reg, saga.Config{}) // not started: its run's job stays available
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.StartRun(ctx, pool, "console-noop", 1, nil); err != nil {
		t.Fatal(err)
	}
	internal, err := jc.JobList(ctx, &jobs.JobListParams{Kind: "keel.saga.run"})
	if err != nil || len(internal) != 1 {
		t.Fatalf("keel.saga.run jobs: %v, %v", internal, err)
	}
	saga := internal[0].ID
	b := open(t, pool, Config{})

	newestBulk := func(n int) []int64 {
		var out []int64
		for i := len(bulk) - 1; i >= 0 && len(out) < n; i-- {
			out = append(out, bulk[i])
		}
		return out
	}
	for _, tc := range []struct {
		name, query string
		want        []int64
		window      bool
	}{
		{"queue", "?queue=mail", []int64{mailC.ID, mailB.ID, mailA.ID}, true},
		{"state scheduled", "?state=scheduled", []int64{later.ID}, false},
		{"state cancelled", "?state=cancelled", []int64{mailB.ID}, false},
		{"state and queue", "?state=available&queue=mail", []int64{mailC.ID, mailA.ID}, false},
		{"kind", "?kind=console_report", []int64{later.ID, report.ID}, true},
		{"args", "?args=" + url.QueryEscape(`{"to": "b@example.com"}`), []int64{mailB.ID}, true},
		{"args and state", "?state=available&args=" + url.QueryEscape(`{"to": "c@example.com"}`), []int64{mailC.ID}, false},
		{"keel's own kind named", "?kind=keel.saga.run", []int64{saga}, true},
		{"all", "?all=1&state=available&queue=saga", []int64{saga}, false},
		{"keel's own hidden", "?state=available&queue=saga", nil, false},
		{"pending", "?state=pending", []int64{waiting.ID}, false},
		{"running", "?state=running", nil, false},
		{"cursor", "?queue=mail&before=" + strconv.FormatInt(mailB.ID, 10), []int64{mailA.ID}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l JobList
			if status := b.json("/jobs"+tc.query, &l); status != http.StatusOK {
				t.Fatalf("GET /api/jobs%s: %d", tc.query, status)
			}
			if got := jobIDsOf(l); !sameIDs(got, tc.want) {
				t.Fatalf("GET /api/jobs%s: jobs %v, want %v", tc.query, got, tc.want)
			}
			if l.Older != nil || l.Searched != 0 || (l.Window != 0) != tc.window {
				t.Fatalf("GET /api/jobs%s: older %+v, searched %d, window %d", tc.query, l.Older, l.Searched, l.Window)
			}
			html := b.page("/jobs" + tc.query)
			for _, id := range tc.want {
				if !strings.Contains(html, fmt.Sprintf(`<tr data-job="%d">`, id)) {
					t.Fatalf("page /jobs%s lacks job %d", tc.query, id)
				}
			}
			if strings.Count(html, "<tr data-job=") != len(tc.want) {
				t.Fatalf("page /jobs%s shows %d jobs, want %d", tc.query, strings.Count(html, "<tr data-job="), len(tc.want))
			}
			if tc.window != strings.Contains(html, "each page searches the newest 10000 jobs") {
				t.Fatalf("page /jobs%s: the note on the searched window is wrong", tc.query)
			}
		})
	}

	t.Run("pages", func(t *testing.T) {
		var first, second JobList
		b.json("/jobs", &first)
		wantFirst := append([]int64{waiting.ID, later.ID, report.ID, mailC.ID, mailB.ID, mailA.ID}, newestBulk(44)...)
		if got := jobIDsOf(first); !sameIDs(got, wantFirst) || first.Older == nil || first.Older.Before != bulk[16] {
			t.Fatalf("first page: %v, older %+v; want %v and a cursor at %d", got, first.Older, wantFirst, bulk[16])
		}
		if !first.HidesInternal {
			t.Fatal("the first page does not say it hides keel's own jobs")
		}
		html := b.page("/jobs")
		if !strings.Contains(html, `href="/jobs?before=`+strconv.FormatInt(bulk[16], 10)+`"`) || strings.Contains(html, `data-job="`+strconv.FormatInt(saga, 10)+`"`) {
			t.Fatal("the first page lacks the older link or shows keel's own job")
		}
		b.json("/jobs"+string(first.Older.Query()), &second)
		if got := jobIDsOf(second); !sameIDs(got, newestBulk(60)[44:]) || second.Older != nil {
			t.Fatalf("second page: %v, older %+v; want %v and no cursor", got, second.Older, newestBulk(60)[44:])
		}
	})

	t.Run("final state pages", func(t *testing.T) {
		for _, id := range bulk[:55] {
			if _, err := jc.JobCancel(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		// The most recently finalized first: the bulk jobs in the order
		// they were cancelled, newest cancel first, then mail B.
		var want []int64
		for i := 54; i >= 0; i-- {
			want = append(want, bulk[i])
		}
		want = append(want, mailB.ID)
		var first, second JobList
		b.json("/jobs?state=cancelled", &first)
		if got := jobIDsOf(first); !sameIDs(got, want[:50]) || first.Older == nil || first.Older.BeforeAt == "" || !first.FinalOrder {
			t.Fatalf("first page of cancelled jobs: %v, older %+v; want %v", got, first.Older, want[:50])
		}
		b.json("/jobs"+string(first.Older.Query()), &second)
		if got := jobIDsOf(second); !sameIDs(got, want[50:]) || second.Older != nil {
			t.Fatalf("second page of cancelled jobs: %v, older %+v; want %v", got, second.Older, want[50:])
		}
		// A job id stands for the time it was finalized.
		var again JobList
		b.json("/jobs?state=cancelled&before="+strconv.FormatInt(want[49], 10), &again)
		if !sameIDs(jobIDsOf(again), want[50:]) {
			t.Fatalf("cursor without before_at: %v, want %v", jobIDsOf(again), want[50:])
		}
		html := b.page("/jobs?state=cancelled")
		if !strings.Contains(html, `<span class="state state-cancelled">cancelled</span>`) || !strings.Contains(html, "the most recently finalized first") {
			t.Fatal("the page of cancelled jobs lacks their state or its order")
		}
	})

	t.Run("find by id", func(t *testing.T) {
		for q, want := range map[string]string{
			strconv.FormatInt(mailA.ID, 10):        "/jobs/" + strconv.FormatInt(mailA.ID, 10),
			" #" + strconv.FormatInt(mailA.ID, 10): "/jobs/" + strconv.FormatInt(mailA.ID, 10),
			`{"to": "a@example.com"}`:              "/jobs?args=" + url.QueryEscape(`{"to": "a@example.com"}`),
		} {
			status, hdr, _ := b.do(http.MethodGet, "/jobs/find?q="+url.QueryEscape(q), nil, nil)
			if status != http.StatusSeeOther || hdr.Get("Location") != want {
				t.Errorf("find %q: %d to %q, want 303 to %q", q, status, hdr.Get("Location"), want)
			}
		}
		if status, _, _ := b.do(http.MethodGet, "/jobs/find?q=mail", nil, nil); status != http.StatusBadRequest {
			t.Errorf("find of neither an id nor JSON: %d, want 400", status)
		}
		if !strings.Contains(b.page("/jobs"), `action="/jobs/find"`) {
			t.Error("the jobs page has no search box")
		}
	})

	t.Run("bad filters", func(t *testing.T) {
		for _, q := range []string{
			"?state=lost", "?before=abc", "?before=0", "?args=" + url.QueryEscape("[1]"), "?args=" + url.QueryEscape("{bad"),
			"?args=" + url.QueryEscape(`{"a": "\u0000"}`), "?all=maybe", "?queue=" + strings.Repeat("q", 129),
			"?state=cancelled&before_at=yesterday&before=1", "?state=cancelled&before=" + strconv.FormatInt(mailA.ID, 10),
		} {
			if status := b.json("/jobs"+q, nil); status != http.StatusBadRequest {
				t.Errorf("GET /api/jobs%s: %d, want 400", q, status)
			}
			if status, _, _ := b.do(http.MethodGet, "/jobs"+q, nil, nil); status != http.StatusBadRequest {
				t.Errorf("GET /jobs%s: %d, want 400", q, status)
			}
		}
	})
}

// TestJobListWindow covers the lists that read at most jobScanWindow jobs
// per page: a kind found only below the window is reached through the
// pages' cursor, and the page says how far it searched.
func TestJobListWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	old := insertJob(t, jc, pool, consoleReportArgs{Name: "old"}, nil)
	if _, err := jc.JobCancel(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	many := make([]jobs.InsertManyParams, jobScanWindow+10)
	for i := range many {
		many[i] = jobs.InsertManyParams{Args: consoleJobArgs{N: i}}
	}
	if _, err := jc.InsertMany(ctx, pool, many); err != nil {
		t.Fatal(err)
	}
	b := open(t, pool, Config{})

	var first, second JobList
	b.json("/jobs?kind=console_report", &first)
	if len(first.Jobs) != 0 || first.Searched != jobScanWindow || first.Older == nil {
		t.Fatalf("first window: %v, searched %d, older %+v; want nothing, %d searched and a cursor", jobIDsOf(first), first.Searched, first.Older, jobScanWindow)
	}
	html := b.page("/jobs?kind=console_report")
	if !strings.Contains(html, "Searched the newest 10000 jobs: 0 matched") || !strings.Contains(html, "search the next 10000") {
		t.Fatal("the page does not say how far it searched")
	}
	b.json("/jobs"+string(first.Older.Query()), &second)
	if !sameIDs(jobIDsOf(second), []int64{old.ID}) || second.Searched != 0 || second.Older != nil {
		t.Fatalf("second window: %v, searched %d, older %+v; want [%d]", jobIDsOf(second), second.Searched, second.Older, old.ID)
	}

	// Final jobs: the window runs along jobs_finalized_idx, and old was
	// finalized before every other job.
	rows, err := jc.JobList(ctx, &jobs.JobListParams{Kind: "console_job", Limit: len(many)})
	if err != nil || len(rows) != len(many) {
		t.Fatalf("listing the jobs to cancel: %d, %v", len(rows), err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(rows); i += 8 {
				if _, err := jc.JobCancel(ctx, rows[i].ID); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var finalFirst, finalSecond JobList
	b.json("/jobs?state=cancelled&kind=console_report", &finalFirst)
	if len(finalFirst.Jobs) != 0 || finalFirst.Searched < jobScanWindow-jobScanStep || finalFirst.Older == nil || finalFirst.Older.BeforeAt == "" {
		t.Fatalf("first window of cancelled jobs: %v, searched %d, older %+v", jobIDsOf(finalFirst), finalFirst.Searched, finalFirst.Older)
	}
	b.json("/jobs"+string(finalFirst.Older.Query()), &finalSecond)
	if !sameIDs(jobIDsOf(finalSecond), []int64{old.ID}) || finalSecond.Older != nil {
		t.Fatalf("second window of cancelled jobs: %v, older %+v; want [%d]", jobIDsOf(finalSecond), finalSecond.Older, old.ID)
	}
}

// TestJobListFinalTies covers jobs finalized by one statement, which share
// their finalized_at: a page of a final state never ends inside such a
// group, and shows a group larger than a page whole.
func TestJobListFinalTies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	root := insertJob(t, jc, pool, consoleJobArgs{N: 0}, &jobs.InsertOpts{Queue: "ties", Delay: time.Hour})
	group := map[int64]bool{}
	for i := range 60 {
		group[insertJob(t, jc, pool, consoleJobArgs{N: i + 1}, &jobs.InsertOpts{Queue: "ties", DependsOn: []int64{root.ID}}).ID] = true
	}
	if _, err := jc.JobCancel(ctx, root.ID); err != nil {
		t.Fatal(err)
	}
	// A started client resolves the dependencies: it cancels the 60 jobs
	// that needed root to complete, in one statement.
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(context.Context, *jobs.Job[consoleReportArgs]) error { return nil }, nil)
	resolver, err := jobs.NewClient(pool, jobs.Config{Workers: workers, Queues: map[string]jobs.QueueConfig{"ties-none": {}},
		MaintenanceInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := resolver.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := jc.JobCount(ctx, jobs.StateCancelled)
		if err != nil {
			t.Fatal(err)
		}
		if n == 61 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs cancelled, want 61", n)
		}
	}
	if err := resolver.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var singles []int64 // cancelled after the group, one by one: the newest
	for i := range 30 {
		job := insertJob(t, jc, pool, consoleReportArgs{Name: strconv.Itoa(i)}, &jobs.InsertOpts{Queue: "ties", Delay: time.Hour})
		if _, err := jc.JobCancel(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		singles = append([]int64{job.ID}, singles...)
	}
	b := open(t, pool, Config{})

	var first, second, third JobList
	b.json("/jobs?state=cancelled", &first)
	if !sameIDs(jobIDsOf(first), singles) || first.Older == nil {
		t.Fatalf("first page: %v, older %+v; want the 30 jobs cancelled one by one, and not the group after them", jobIDsOf(first), first.Older)
	}
	b.json("/jobs"+string(first.Older.Query()), &second)
	if len(second.Jobs) != 60 || second.Older == nil {
		t.Fatalf("second page: %d jobs, older %+v; want the group of 60 whole", len(second.Jobs), second.Older)
	}
	for i, j := range second.Jobs {
		if !group[j.ID] || (i > 0 && j.ID > second.Jobs[i-1].ID) {
			t.Fatalf("second page: %v; want the group, newest id first", jobIDsOf(second))
		}
	}
	b.json("/jobs"+string(second.Older.Query()), &third)
	if !sameIDs(jobIDsOf(third), []int64{root.ID}) || third.Older != nil {
		t.Fatalf("third page: %v, older %+v; want [%d]", jobIDsOf(third), third.Older, root.ID)
	}
}

func TestJobDetail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	failed, err := keeltest.RunJob(ctx, pool, func(ctx context.Context, j *jobs.Job[consoleJobArgs]) error {
		if err := jobs.RecordProgress(ctx, 40); err != nil {
			return err
		}
		if err := jobs.RecordOutput(ctx, map[string]int{"rows": 7}); err != nil {
			return err
		}
		return errors.New("smtp: 554 <rejected>\nsecond line")
	}, consoleJobArgs{To: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	panicked, err := keeltest.RunJob(ctx, pool, func(ctx context.Context, j *jobs.Job[consoleJobArgs]) error {
		panic("nil map")
	}, consoleJobArgs{N: 2})
	if err != nil {
		t.Fatal(err)
	}
	if failed.State != jobs.StateDiscarded || panicked.State != jobs.StateDiscarded {
		t.Fatalf("jobs ended %s and %s, want discarded", failed.State, panicked.State)
	}
	b := open(t, pool, Config{})
	id := strconv.FormatInt(failed.ID, 10)

	var v JobDetail
	if status := b.json("/jobs/"+id, &v); status != http.StatusOK {
		t.Fatalf("GET /api/jobs/%s: %d", id, status)
	}
	if v.ID != failed.ID || v.State != "discarded" || v.Attempt != 1 || v.MaxAttempts != 1 || v.Progress != 40 ||
		len(v.Errors) != 1 || v.Errors[0].Attempt != 1 || v.Errors[0].At.IsZero() || !strings.Contains(v.Errors[0].Error, "smtp: 554") ||
		!sameJSON(v.Output, `{"rows": 7}`) || !sameJSON(v.Args, `{"n": 0, "to": "a@example.com"}`) || v.FinalizedAt == nil ||
		v.AttemptedAt == nil || v.HeartbeatAt != nil || v.Owner != "" || v.CancelRequestedAt != nil || v.RunWhen != "success" ||
		v.LastError != v.Errors[0].Error || v.Graph != nil {
		t.Fatalf("GET /api/jobs/%s: %+v", id, v)
	}
	html := b.page("/jobs/" + id)
	for _, want := range []string{
		"<h1>Job " + id, `<span class="state state-discarded">discarded</span>`, "smtp: 554 &lt;rejected&gt;\nsecond line",
		`<progress max="100" value="40">`, "&#34;rows&#34;: 7", "&#34;to&#34;: &#34;a@example.com&#34;", "attempt 1",
		`action="/jobs/` + id + `/retry"`, `action="/jobs/` + id + `/delete"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("job page lacks %q", want)
		}
	}
	if strings.Contains(html, `action="/jobs/`+id+`/cancel"`) {
		t.Error("a discarded job's page offers to cancel it")
	}

	var p JobDetail
	b.json("/jobs/"+strconv.FormatInt(panicked.ID, 10), &p)
	if len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Error, "nil map") || !strings.Contains(p.Errors[0].Stack, "goroutine") {
		t.Fatalf("panicked job's errors: %+v", p.Errors)
	}
	if html := b.page("/jobs/" + strconv.FormatInt(panicked.ID, 10)); !strings.Contains(html, "stack (the handler panicked)") {
		t.Error("the panicked job's page lacks its stack")
	}

	var l JobList
	b.json("/jobs?state=discarded", &l)
	if len(l.Jobs) != 2 || l.Jobs[1].ID != failed.ID || l.Jobs[1].LastError != "smtp: 554 <rejected>\nsecond line" || l.Jobs[1].Progress != 40 {
		t.Fatalf("discarded jobs: %+v", l.Jobs)
	}
	if html := b.page("/jobs?state=discarded"); !strings.Contains(html, ">smtp: 554 &lt;rejected&gt;</td>") {
		t.Error("the list does not show the first line of the last error")
	}

	for path, want := range map[string]int{"/jobs/999999": http.StatusNotFound, "/jobs/abc": http.StatusBadRequest, "/jobs/0": http.StatusBadRequest} {
		if status := b.json(path, nil); status != want {
			t.Errorf("GET /api%s: %d, want %d", path, status, want)
		}
		if status, _, _ := b.do(http.MethodGet, path, nil, nil); status != want {
			t.Errorf("GET %s: %d, want %d", path, status, want)
		}
	}
}

func TestJobWorkflowGraph(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	outside := insertJob(t, jc, pool, consoleReportArgs{Name: "prices"}, &jobs.InsertOpts{Delay: time.Hour})
	diamond := func() *jobs.Workflow {
		return jobs.NewWorkflow("nightly").
			Add("fetch", consoleJobArgs{N: 1}, &jobs.TaskOpts{InsertOpts: jobs.InsertOpts{DependsOn: []int64{outside.ID}}}).
			Add("<left>", consoleJobArgs{N: 2}, &jobs.TaskOpts{After: []string{"fetch"}}).
			Add("right", consoleJobArgs{N: 3}, &jobs.TaskOpts{After: []string{"fetch"}}).
			Add("join", consoleJobArgs{N: 4}, &jobs.TaskOpts{After: []string{"<left>", "right"}})
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := jc.InsertWorkflow(ctx, tx, diamond())
	if err != nil {
		t.Fatal(err)
	}
	twin, err := jc.InsertWorkflow(ctx, tx, diamond()) // same name, same transaction
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	later, err := jc.InsertWorkflow(ctx, pool, diamond()) // same name, another transaction
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, pool, Config{})
	left := strconv.FormatInt(ids["<left>"], 10)

	var v JobDetail
	if status := b.json("/jobs/"+left, &v); status != http.StatusOK || v.Graph == nil {
		t.Fatalf("GET /api/jobs/%s: %d, graph %+v", left, status, v.Graph)
	}
	g := v.Graph
	depth := map[int64]int{outside.ID: 0, ids["fetch"]: 1, ids["<left>"]: 2, ids["right"]: 2, ids["join"]: 3}
	if g.Name != "nightly" || len(g.Nodes) != len(depth) || g.Cut {
		t.Fatalf("graph %+v; want the 4 tasks and the job they depend on", g)
	}
	for _, n := range g.Nodes {
		d, ok := depth[n.ID]
		if !ok || n.Depth != d || n.External != (n.ID == outside.ID) || n.Current != (n.ID == ids["<left>"]) {
			t.Errorf("node %+v; want depth %d of %v", n, d, depth)
		}
	}
	wantEdges := map[WorkflowEdge]bool{
		{outside.ID, ids["fetch"]}: true, {ids["fetch"], ids["<left>"]}: true, {ids["fetch"], ids["right"]}: true,
		{ids["<left>"], ids["join"]}: true, {ids["right"], ids["join"]}: true,
	}
	if len(g.Edges) != len(wantEdges) {
		t.Errorf("edges %+v, want %v", g.Edges, wantEdges)
	}
	for _, e := range g.Edges {
		if !wantEdges[e] {
			t.Errorf("unexpected edge %+v", e)
		}
	}

	html := b.page("/jobs/" + left)
	svgStart := strings.Index(html, "<svg")
	svgEnd := strings.Index(html, "</svg>")
	if svgStart < 0 || svgEnd < svgStart {
		t.Fatal("the job page draws no graph")
	}
	svg := html[svgStart:svgEnd]
	for id := range depth {
		if !strings.Contains(svg, fmt.Sprintf(`<a href="/jobs/%d" data-job="%d">`, id, id)) {
			t.Errorf("the graph lacks job %d", id)
		}
	}
	for _, other := range []map[string]int64{twin, later} {
		for _, id := range other {
			if strings.Contains(svg, fmt.Sprintf(`data-job="%d"`, id)) {
				t.Errorf("the graph shows job %d of another insert of the workflow", id)
			}
		}
	}
	if strings.Count(svg, "data-from=") != len(wantEdges) {
		t.Errorf("the graph draws %d edges, want %d", strings.Count(svg, "data-from="), len(wantEdges))
	}
	if !strings.Contains(svg, "&lt;left&gt;") || strings.Contains(svg, "<left>") {
		t.Error("the graph does not escape a task's name")
	}
	if !strings.Contains(svg, `stroke-width="3"`) || !strings.Contains(svg, `stroke-dasharray`) {
		t.Error("the graph marks neither the current job nor the outside dependency")
	}
	if !strings.Contains(html, "<h2>Dependencies</h2>") || !strings.Contains(html, fmt.Sprintf(`<tr data-job="%d">`, ids["fetch"])) {
		t.Error("the job page does not list its dependency")
	}

	// A job outside any workflow has no graph.
	var o JobDetail
	b.json("/jobs/"+strconv.FormatInt(outside.ID, 10), &o)
	if o.Graph != nil {
		t.Errorf("a job outside a workflow has a graph: %+v", o.Graph)
	}
}

func TestJobActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := keeltest.RunJob(ctx, pool, func(context.Context, *jobs.Job[consoleJobArgs]) error {
		return errors.New("boom")
	}, consoleJobArgs{N: 1})
	if err != nil || dead.State != jobs.StateDiscarded {
		t.Fatalf("seeding a discarded job: %v, %v", dead, err)
	}
	b := open(t, pool, Config{})
	path := func(id int64, action string) string { return "/jobs/" + strconv.FormatInt(id, 10) + "/" + action }
	state := func(id int64) jobs.JobState {
		t.Helper()
		row, err := jc.JobGet(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return row.State
	}

	t.Run("retry", func(t *testing.T) {
		status, hdr, body := b.submit(path(dead.ID, "retry"), nil)
		if status != http.StatusSeeOther || hdr.Get("Location") != "/jobs/"+strconv.FormatInt(dead.ID, 10) {
			t.Fatalf("retry: %d to %q %s", status, hdr.Get("Location"), body)
		}
		if s := state(dead.ID); s != jobs.StateAvailable {
			t.Fatalf("after retry the job is %s, want available", s)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		job := insertJob(t, jc, pool, consoleJobArgs{N: 2}, &jobs.InsertOpts{Delay: time.Hour})
		var res JobAction
		if status := b.call(path(job.ID, "cancel"), nil, &res); status != http.StatusOK || res.ID != job.ID || res.State != "cancelled" {
			t.Fatalf("cancel: %d %+v", status, res)
		}
		if s := state(job.ID); s != jobs.StateCancelled {
			t.Fatalf("after cancel the job is %s", s)
		}
		other := insertJob(t, jc, pool, consoleJobArgs{N: 3}, nil)
		status, _, body := b.do(http.MethodPost, path(other.ID, "cancel"), strings.NewReader(url.Values{"csrf": {b.csrf()}}.Encode()),
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
		if status != http.StatusOK || !strings.Contains(body, `name="confirm" value="yes"`) || state(other.ID) != jobs.StateAvailable {
			t.Fatalf("unconfirmed cancel: %d; want the page that asks and the job left alone", status)
		}
	})

	t.Run("delete", func(t *testing.T) {
		job := insertJob(t, jc, pool, consoleJobArgs{N: 4}, nil)
		status, hdr, body := b.submit(path(job.ID, "delete"), nil)
		if status != http.StatusSeeOther || hdr.Get("Location") != "/jobs" {
			t.Fatalf("delete: %d to %q %s", status, hdr.Get("Location"), body)
		}
		if _, err := jc.JobGet(ctx, job.ID); !errors.Is(err, jobs.ErrNotFound) {
			t.Fatalf("after delete: %v, want ErrNotFound", err)
		}
		second := insertJob(t, jc, pool, consoleJobArgs{N: 5}, nil)
		var res JobAction
		if status := b.call(path(second.ID, "delete"), nil, &res); status != http.StatusOK || !res.Deleted || res.State != "available" {
			t.Fatalf("API delete: %d %+v", status, res)
		}
	})

	t.Run("delete refused", func(t *testing.T) {
		first := insertJob(t, jc, pool, consoleJobArgs{N: 6}, &jobs.InsertOpts{Delay: time.Hour})
		insertJob(t, jc, pool, consoleJobArgs{N: 7}, &jobs.InsertOpts{DependsOn: []int64{first.ID}})
		if status := b.call(path(first.ID, "delete"), nil, nil); status != http.StatusConflict {
			t.Fatalf("delete of a job another waits on: %d, want 409", status)
		}
		status, _, body := b.submit(path(first.ID, "delete"), nil)
		if status != http.StatusConflict || !strings.Contains(body, "cancel it instead") {
			t.Fatalf("form delete of a job another waits on: %d %s", status, body)
		}

		started := make(chan int64, 1)
		release := make(chan struct{})
		defer close(release)
		workers := jobs.NewWorkers()
		jobs.AddWorker(workers, func(ctx context.Context, j *jobs.Job[consoleReportArgs]) error {
			started <- j.ID
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		}, nil)
		runner, err := jobs.NewClient(pool, jobs.Config{Workers: workers, Queues: map[string]jobs.QueueConfig{"console-running": {}},
			FetchPollInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := runner.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = runner.StopAndCancel(ctx) }()
		running := insertJob(t, jc, pool, consoleReportArgs{Name: "long"}, &jobs.InsertOpts{Queue: "console-running"})
		<-started
		if status := b.call(path(running.ID, "delete"), nil, nil); status != http.StatusConflict {
			t.Fatalf("delete of a running job: %d, want 409", status)
		}
		if s := state(running.ID); s != jobs.StateRunning {
			t.Fatalf("the running job is %s after a refused delete", s)
		}
		var l JobList
		if b.json("/jobs?state=running", &l); !sameIDs(jobIDsOf(l), []int64{running.ID}) {
			t.Fatalf("running jobs: %v, want [%d]", jobIDsOf(l), running.ID)
		}
	})

	t.Run("unknown and bad ids", func(t *testing.T) {
		for _, tc := range []struct {
			path string
			want int
		}{
			{"/jobs/999999/retry", http.StatusNotFound},
			{"/jobs/999999/cancel", http.StatusNotFound},
			{"/jobs/999999/delete", http.StatusNotFound},
			{"/jobs/abc/retry", http.StatusBadRequest},
			{"/jobs/-1/delete", http.StatusBadRequest},
		} {
			if status := b.call(tc.path, nil, nil); status != tc.want {
				t.Errorf("POST /api%s: %d, want %d", tc.path, status, tc.want)
			}
		}
	})

	t.Run("read-only", func(t *testing.T) {
		ro := open(t, pool, Config{ReadOnly: true})
		job := insertJob(t, jc, pool, consoleJobArgs{N: 8}, &jobs.InsertOpts{Delay: time.Hour})
		for _, action := range []string{"retry", "cancel", "delete"} {
			if status, _, _ := ro.submit(path(job.ID, action), nil); status != http.StatusForbidden {
				t.Errorf("read-only %s: %d, want 403", action, status)
			}
			if status := ro.call(path(job.ID, action), nil, nil); status != http.StatusForbidden {
				t.Errorf("read-only API %s: %d, want 403", action, status)
			}
		}
		if s := state(job.ID); s != jobs.StateScheduled {
			t.Fatalf("a read-only console changed the job: %s", s)
		}
		if html := ro.page("/jobs/" + strconv.FormatInt(job.ID, 10)); strings.Contains(html, `method="post"`) {
			t.Fatal("a read-only job page shows an action")
		}
	})
}
