package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/jobs"
)

// The bounds of what the jobs pages read.
const (
	// jobPageSize is how many jobs a list page shows.
	jobPageSize = 50
	// jobScanWindow is how many jobs a page of every job, or of jobs in a
	// final state, reads at most through its index to match the filters
	// that no index serves (kind, queue, args, keel's own jobs). A final
	// state's walk reads it in steps of jobScanStep, and may end a few
	// jobs over it to finish a group of equal finalized_at.
	jobScanWindow = 10_000
	// jobScanStep is how many jobs of a final state one step of the walk
	// along jobs_finalized_idx reads: a LIMIT small enough that a planner
	// reads the index in its order whatever its statistics say, rather
	// than sort the whole state.
	jobScanStep = jobPageSize + 1
	// workflowSpan is how far, in ids either side of a job, its workflow's
	// jobs are looked for: InsertWorkflow reserves a workflow's ids in one
	// statement, so they lie together unless concurrent inserts took ids
	// in between.
	workflowSpan = 1000
	// workflowMaxJobs is the most jobs a workflow's graph shows.
	workflowMaxJobs = 500
	// jobMaxDependencies is the most dependencies a job's page lists.
	jobMaxDependencies = 100
	// internalKindPrefix starts the kind of every job keel inserts for
	// itself, such as keel.saga.run: lists leave them out unless asked,
	// as keel jobs list does.
	internalKindPrefix = "keel."
	// unboundedAttempts is the most attempts jobs accepts; keel's own jobs
	// ask for it to mean "retry for ever".
	unboundedAttempts = 1 << 20
)

func (h *Handler) jobRoutes(mux *http.ServeMux) {
	h.page(mux, "/jobs", "jobs", h.jobList)
	mux.HandleFunc("GET /jobs/find", h.jobFind)
	h.page(mux, "/jobs/{id}", "job", h.jobDetail)
	h.action(mux, "/jobs/{id}/retry", nil, h.jobRetry)
	h.action(mux, "/jobs/{id}/cancel", confirm("Cancel this job? A queued job is cancelled at once; a running one is asked to stop."), h.jobCancel)
	h.action(mux, "/jobs/{id}/delete", confirm("Delete this job? Its row is gone for good."), h.jobDelete)
}

// JobFilter is what a jobs list shows: every filter is optional.
type JobFilter struct {
	Queue string `json:"queue,omitempty"`
	State string `json:"state,omitempty"`
	Kind  string `json:"kind,omitempty"`
	// Args is a JSON object: jobs whose args contain it (jsonb @>).
	Args string `json:"args,omitempty"`
	// All also lists keel's own jobs (kinds starting with "keel."); a
	// Kind of keel's own lists them anyway.
	All bool `json:"all,omitempty"`
	// Before is the cursor of a list in id order: only jobs older than job
	// Before. A list of a final state is in the order jobs became final,
	// and its cursor is BeforeAt (RFC 3339): only jobs finalized before
	// then; there, Before stands for the time job Before was finalized.
	Before   int64  `json:"before,omitempty"`
	BeforeAt string `json:"before_at,omitempty"`
}

// Query is the filter as the query string of a link to the jobs page.
func (f JobFilter) Query() template.URL {
	v := url.Values{}
	for k, s := range map[string]string{"queue": f.Queue, "state": f.State, "kind": f.Kind, "args": f.Args, "before_at": f.BeforeAt} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if f.All {
		v.Set("all", "1")
	}
	if f.Before > 0 {
		v.Set("before", strconv.FormatInt(f.Before, 10))
	}
	if len(v) == 0 {
		return ""
	}
	return template.URL("?" + v.Encode())
}

// WithAll is the filter that also lists keel's own jobs, from the newest.
func (f JobFilter) WithAll() JobFilter {
	f.All, f.Before, f.BeforeAt = true, 0, ""
	return f
}

// hideInternal reports whether the list leaves out keel's own jobs.
func (f JobFilter) hideInternal() bool {
	return !f.All && !strings.HasPrefix(f.Kind, internalKindPrefix)
}

// JobList is what the jobs page shows: one page of jobs, newest first.
type JobList struct {
	Filter JobFilter    `json:"filter"`
	Jobs   []JobSummary `json:"jobs"`
	// Older is the filter of the next page, of older jobs; nil on the last.
	Older *JobFilter `json:"older,omitempty"`
	// Window, when not 0, is how many jobs the page reads at most to match
	// queue, kind and args, which no index serves.
	Window int `json:"window,omitempty"`
	// Searched, when not 0, is how many jobs the page read before its
	// window ended with the page not full: Older goes on below them.
	Searched int `json:"searched,omitempty"`
	// HidesInternal is true when keel's own jobs are left out.
	HidesInternal bool `json:"hides_internal"`
	// FinalOrder is true when the page is in the order jobs became final.
	FinalOrder bool     `json:"final_order"`
	States     []string `json:"-"`
}

// JobSummary is one job in a list.
type JobSummary struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	Queue       string     `json:"queue"`
	State       string     `json:"state"`
	Priority    int        `json:"priority"`
	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"max_attempts"`
	Progress    int        `json:"progress"`
	CreatedAt   time.Time  `json:"created_at"`
	RunAt       time.Time  `json:"run_at"`
	FinalizedAt *time.Time `json:"finalized_at,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	Workflow    string     `json:"workflow,omitempty"`
	Task        string     `json:"task,omitempty"`
}

// AttemptLimit is the job's most attempts for a person: "-" for keel's own
// jobs, which retry for ever.
func (j JobSummary) AttemptLimit() string {
	if j.MaxAttempts >= unboundedAttempts {
		return "-"
	}
	return strconv.Itoa(j.MaxAttempts)
}

func jobStates() []string {
	states := make([]string, 0, len(db.AllKeelJobStateValues()))
	for _, s := range db.AllKeelJobStateValues() {
		states = append(states, string(s))
	}
	return states
}

// parseJobFilter reads and checks a list's query string.
func parseJobFilter(q url.Values) (JobFilter, error) {
	f := JobFilter{
		Queue: strings.TrimSpace(q.Get("queue")), State: q.Get("state"), Kind: strings.TrimSpace(q.Get("kind")),
		Args: strings.TrimSpace(q.Get("args")), BeforeAt: q.Get("before_at"),
	}
	if f.State != "" && !db.KeelJobState(f.State).Valid() {
		return f, errorf(http.StatusBadRequest, "unknown state %q; one of %s", f.State, strings.Join(jobStates(), ", "))
	}
	if err := validate.Text("queue", f.Queue, validate.MaxQueue); err != nil {
		return f, errorf(http.StatusBadRequest, "%v", err)
	}
	if err := validate.Text("kind", f.Kind, validate.MaxName); err != nil {
		return f, errorf(http.StatusBadRequest, "%v", err)
	}
	if f.Args != "" {
		if err := validate.JSON("args", []byte(f.Args)); err != nil {
			return f, errorf(http.StatusBadRequest, "%v", err)
		}
		if !strings.HasPrefix(f.Args, "{") {
			return f, errorf(http.StatusBadRequest, `args: give a JSON object, such as {"to": "a@example.com"}`)
		}
	}
	if s := q.Get("all"); s != "" {
		all, err := strconv.ParseBool(s)
		if err != nil {
			return f, errorf(http.StatusBadRequest, "all: %q is not 1 or 0", s)
		}
		f.All = all
	}
	if s := q.Get("before"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id < 1 {
			return f, errorf(http.StatusBadRequest, "before: %q is not a job id", s)
		}
		f.Before = id
	}
	if !finalState(f.State) {
		f.BeforeAt = "" // only a final state's order needs it
	}
	if f.BeforeAt != "" {
		if _, err := time.Parse(time.RFC3339Nano, f.BeforeAt); err != nil {
			return f, errorf(http.StatusBadRequest, "before_at: %q is not an RFC 3339 time", f.BeforeAt)
		}
	}
	return f, nil
}

func finalState(s string) bool {
	return jobs.JobState(s).Final()
}

func (h *Handler) jobList(r *http.Request) (any, error) {
	f, err := parseJobFilter(r.URL.Query())
	if err != nil {
		return nil, err
	}
	v := JobList{Filter: f, Jobs: []JobSummary{}, HidesInternal: f.hideInternal(), FinalOrder: finalState(f.State), States: jobStates()}
	if (f.State == "" || v.FinalOrder) && f.unindexed() {
		v.Window = jobScanWindow
	}
	var ids []int64
	if v.FinalOrder {
		ids, err = h.finalJobIDs(r, &v)
	} else {
		ids, err = h.jobIDs(r, &v)
	}
	if err != nil {
		return nil, err
	}
	if v.Jobs, err = h.jobSummaries(r, ids); err != nil {
		return nil, err
	}
	return v, nil
}

// unindexed reports whether the filter matches a column no index serves.
func (f JobFilter) unindexed() bool {
	return f.Queue != "" || f.Kind != "" || f.Args != ""
}

// jobFilterParams are the filters the list queries share.
func jobFilterParams(f JobFilter) (queue, kind *string, args json.RawMessage) {
	if f.Queue != "" {
		queue = &f.Queue
	}
	if f.Kind != "" {
		kind = &f.Kind
	}
	if f.Args != "" {
		args = json.RawMessage(f.Args)
	}
	return queue, kind, args
}

// jobIDs reads the ids of a page in id order: jobs of any state through
// the primary key (at most jobScanWindow of them), jobs in flight through
// their state's partial index.
func (h *Handler) jobIDs(r *http.Request, v *JobList) ([]int64, error) {
	ctx := r.Context()
	f := v.Filter
	before := f.Before
	if before == 0 {
		before = math.MaxInt64
	}
	queue, kind, args := jobFilterParams(f)
	hide, rows := f.hideInternal(), int32(jobPageSize+1)
	var ids []int64
	var err error
	switch jobs.JobState(f.State) {
	case "":
		ids, err = h.q.ConsoleJobsNewest(ctx, db.ConsoleJobsNewestParams{Before: before, Scan: jobScanWindow,
			Queue: queue, Kind: kind, HideInternal: hide, Args: args, MaxRows: rows})
	case jobs.StatePending:
		ids, err = h.q.ConsoleJobsPending(ctx, db.ConsoleJobsPendingParams{Before: before,
			Queue: queue, Kind: kind, HideInternal: hide, Args: args, MaxRows: rows})
	case jobs.StateAvailable:
		ids, err = h.q.ConsoleJobsAvailable(ctx, db.ConsoleJobsAvailableParams{Before: before,
			Queue: queue, Kind: kind, HideInternal: hide, Args: args, MaxRows: rows})
	case jobs.StateScheduled, jobs.StateRetryable:
		ids, err = h.q.ConsoleJobsDue(ctx, db.ConsoleJobsDueParams{State: db.KeelJobState(f.State), Before: before,
			Queue: queue, Kind: kind, HideInternal: hide, Args: args, MaxRows: rows})
	case jobs.StateRunning:
		ids, err = h.q.ConsoleJobsRunning(ctx, db.ConsoleJobsRunningParams{Before: before,
			Queue: queue, Kind: kind, HideInternal: hide, Args: args, MaxRows: rows})
	}
	if err != nil {
		return nil, err
	}
	if len(ids) > jobPageSize {
		ids = ids[:jobPageSize]
		older := f
		older.Before = ids[len(ids)-1]
		v.Older = &older
		return ids, nil
	}
	if f.State == "" {
		w, err := h.q.ConsoleJobsNewestWindow(ctx, db.ConsoleJobsNewestWindowParams{Before: before, Scan: jobScanWindow})
		if err != nil {
			return nil, err
		}
		if w.Scanned == jobScanWindow {
			v.Searched = int(w.Scanned)
			older := f
			older.Before = w.LastID
			v.Older = &older
		}
	}
	return ids, nil
}

// finalJobIDs reads the ids of a page of jobs in a final state, the most
// recently finalized first, walking jobs_finalized_idx backwards for at
// most jobScanWindow jobs. Its cursor is a finalized_at: a page ends
// between two groups of equal finalized_at, never inside one.
func (h *Handler) finalJobIDs(r *http.Request, v *JobList) ([]int64, error) {
	ctx := r.Context()
	f := v.Filter
	beforeAt := pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	switch {
	case f.BeforeAt != "":
		at, _ := time.Parse(time.RFC3339Nano, f.BeforeAt) // checked by parseJobFilter
		beforeAt = pgtype.Timestamptz{Time: at, Valid: true}
	case f.Before > 0:
		cursor, err := h.jobs.JobGet(ctx, f.Before)
		if err != nil && !errors.Is(err, jobs.ErrNotFound) {
			return nil, err
		}
		if cursor == nil || string(cursor.State) != f.State {
			return nil, errorf(http.StatusBadRequest, "before: job %d is not %s", f.Before, f.State)
		}
		beforeAt = pgtype.Timestamptz{Time: cursor.FinalizedAt, Valid: true}
	}
	queue, kind, args := jobFilterParams(f)
	steps, err := h.q.ConsoleJobsFinal(ctx, db.ConsoleJobsFinalParams{BeforeAt: beforeAt, State: db.KeelJobState(f.State),
		Queue: queue, Kind: kind, HideInternal: f.hideInternal(), Args: args,
		Step: jobScanStep, MaxRows: jobPageSize, MaxSteps: jobScanWindow / jobScanStep})
	if err != nil {
		return nil, err
	}
	var ids []int64
	var ats []time.Time
	scanned := 0
	for _, step := range steps {
		ids = append(ids, step.Ids...)
		for _, at := range step.FinalizedAt {
			ats = append(ats, at.Time)
		}
		scanned += int(step.Scanned)
	}
	older := f
	older.Before = 0
	if len(ids) > jobPageSize {
		// Cut before the group the page's last place falls in, unless the
		// page holds that group alone: then it shows the group whole.
		cut := jobPageSize
		for cut > 0 && ats[cut].Equal(ats[cut-1]) {
			cut--
		}
		if cut == 0 {
			for cut < len(ats) && ats[cut].Equal(ats[0]) {
				cut++
			}
		}
		older.BeforeAt = ats[cut-1].UTC().Format(time.RFC3339Nano)
		v.Older = &older
		return ids[:cut], nil
	}
	if len(steps) == jobScanWindow/jobScanStep {
		v.Searched = scanned
		older.BeforeAt = steps[len(steps)-1].LastAt.Time.UTC().Format(time.RFC3339Nano)
		v.Older = &older
	}
	return ids, nil
}

// jobSummaries reads the jobs with these ids, in their order.
func (h *Handler) jobSummaries(r *http.Request, ids []int64) ([]JobSummary, error) {
	if len(ids) == 0 {
		return []JobSummary{}, nil
	}
	rows, err := h.q.ConsoleJobsByIDs(r.Context(), ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[int64]JobSummary, len(rows))
	for _, row := range rows {
		byID[row.ID] = JobSummary{
			ID: row.ID, Kind: row.Kind, Queue: row.Queue, State: string(row.State), Priority: int(row.Priority),
			Attempt: int(row.Attempt), MaxAttempts: int(row.MaxAttempts), Progress: int(row.Progress),
			CreatedAt: row.CreatedAt.Time, RunAt: row.RunAt.Time, FinalizedAt: timePtr(row.FinalizedAt),
			LastError: row.LastError, Workflow: deref(row.Workflow), Task: deref(row.Task),
		}
	}
	out := make([]JobSummary, 0, len(ids))
	for _, id := range ids {
		if j, ok := byID[id]; ok { // a job deleted since its id was read is left out
			out = append(out, j)
		}
	}
	return out, nil
}

// jobFind is the search box: a job id opens the job; a JSON object lists
// the jobs whose args contain it.
func (h *Handler) jobFind(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	switch {
	case q == "":
		http.Redirect(w, r, h.cfg.Prefix+"/jobs", http.StatusSeeOther)
	case strings.HasPrefix(q, "{"):
		http.Redirect(w, r, h.cfg.Prefix+"/jobs"+string(JobFilter{Args: q}.Query()), http.StatusSeeOther)
	default:
		id, err := strconv.ParseInt(strings.TrimPrefix(q, "#"), 10, 64)
		if err != nil || id < 1 {
			h.fail(w, r, false, errorf(http.StatusBadRequest, "%q is neither a job id nor a JSON object to find in jobs' args", q))
			return
		}
		http.Redirect(w, r, h.cfg.Prefix+"/jobs/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
	}
}

// JobDetail is what a job's page shows: every field of its row.
type JobDetail struct {
	JobSummary
	Args              json.RawMessage     `json:"args"`
	Metadata          json.RawMessage     `json:"metadata"`
	Tags              []string            `json:"tags"`
	Errors            []jobs.AttemptError `json:"errors"`
	Output            json.RawMessage     `json:"output,omitempty"`
	TimeoutMS         int64               `json:"timeout_ms"`
	AttemptedAt       *time.Time          `json:"attempted_at,omitempty"`
	HeartbeatAt       *time.Time          `json:"heartbeat_at,omitempty"`
	Owner             string              `json:"owner,omitempty"`
	CancelRequestedAt *time.Time          `json:"cancel_requested_at,omitempty"`
	UniqueKey         string              `json:"unique_key,omitempty"`
	DependsOn         []int64             `json:"depends_on"`
	RunWhen           string              `json:"run_when"`
	// Dependencies are the jobs of DependsOn (the first
	// jobMaxDependencies), as they are now.
	Dependencies []JobSummary `json:"dependencies,omitempty"`
	// Graph is the workflow's dependency graph, for a job of a workflow.
	Graph *WorkflowGraph `json:"workflow_graph,omitempty"`
}

// Internal reports whether keel inserted the job for itself.
func (j JobDetail) Internal() bool { return strings.HasPrefix(j.Kind, internalKindPrefix) }

// jobID reads the job id of a request's path.
func jobID(r *http.Request) (int64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, errorf(http.StatusBadRequest, "%q is not a job id", s)
	}
	return id, nil
}

func (h *Handler) jobDetail(r *http.Request) (any, error) {
	ctx := r.Context()
	id, err := jobID(r)
	if err != nil {
		return nil, err
	}
	job, err := h.jobs.JobGet(ctx, id)
	if err != nil {
		return nil, err
	}
	rt, err := h.q.ConsoleJobRuntime(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("job %d: %w", id, err)
	}
	v := JobDetail{
		JobSummary: JobSummary{
			ID: job.ID, Kind: job.Kind, Queue: job.Queue, State: string(job.State), Priority: job.Priority,
			Attempt: job.Attempt, MaxAttempts: job.MaxAttempts, Progress: job.Progress, CreatedAt: job.CreatedAt,
			RunAt: job.RunAt, FinalizedAt: optTime(job.FinalizedAt), Workflow: job.Workflow, Task: job.Task,
		},
		Args: job.EncodedArgs, Metadata: job.Metadata, Tags: job.Tags, Errors: job.Errors, Output: job.Output,
		TimeoutMS: job.Timeout.Milliseconds(), AttemptedAt: optTime(job.AttemptedAt), HeartbeatAt: timePtr(rt.HeartbeatAt),
		Owner: deref(rt.Owner), CancelRequestedAt: timePtr(rt.CancelRequestedAt), UniqueKey: job.UniqueKey,
		DependsOn: job.DependsOn, RunWhen: string(job.RunWhen),
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	if v.Errors == nil {
		v.Errors = []jobs.AttemptError{}
	}
	if v.DependsOn == nil {
		v.DependsOn = []int64{}
	}
	if n := len(job.Errors); n > 0 {
		v.LastError = job.Errors[n-1].Error
	}
	if len(job.DependsOn) > 0 {
		if v.Dependencies, err = h.jobSummaries(r, job.DependsOn[:min(len(job.DependsOn), jobMaxDependencies)]); err != nil {
			return nil, err
		}
	}
	if job.Workflow != "" {
		if v.Graph, err = h.workflowGraph(r, job); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// optTime is a time the public API leaves zero for none, for JSON and the
// templates.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// WorkflowGraph is the dependency graph of the workflow a job belongs to:
// the jobs of its insert that are connected to the job, and the jobs
// outside the workflow that they depend on.
type WorkflowGraph struct {
	Name  string         `json:"name"`
	Nodes []WorkflowNode `json:"nodes"`
	Edges []WorkflowEdge `json:"edges"`
	// Low and High bound the ids searched for the workflow's jobs.
	Low  int64 `json:"low"`
	High int64 `json:"high"`
	// Cut is true when the workflow may have more jobs than the graph
	// shows: more than the graph's limit, or some outside the ids searched.
	Cut   bool `json:"cut"`
	Limit int  `json:"limit"`
	// SVG draws the graph, layered left to right by depth.
	SVG template.HTML `json:"-"`
}

// WorkflowNode is one job of a workflow's graph.
type WorkflowNode struct {
	ID    int64  `json:"id"`
	Task  string `json:"task,omitempty"`
	Kind  string `json:"kind"`
	State string `json:"state"`
	// Depth is the length of the longest chain of dependencies before it.
	Depth int `json:"depth"`
	// External marks a dependency from outside the workflow.
	External bool `json:"external,omitempty"`
	// Current marks the job whose page shows the graph.
	Current bool `json:"current,omitempty"`
}

// WorkflowEdge says that job To depends on job From.
type WorkflowEdge struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// workflowNode is a node while the graph is built.
type workflowNode struct {
	WorkflowNode
	dependsOn []int64
}

// workflowGraph reads the workflow job belongs to and draws it. A
// workflow's jobs share its name and their insert's created_at, and their
// ids lie together: they are read among the ids workflowSpan either side
// of job, and those connected to it by dependencies make the graph.
func (h *Handler) workflowGraph(r *http.Request, job *jobs.JobRow) (*WorkflowGraph, error) {
	ctx := r.Context()
	g := &WorkflowGraph{Name: job.Workflow, Low: max(job.ID-workflowSpan, 1), High: job.ID + min(workflowSpan, math.MaxInt64-job.ID), Limit: workflowMaxJobs}
	rows, err := h.q.ConsoleWorkflowJobs(ctx, db.ConsoleWorkflowJobsParams{Low: g.Low, High: g.High, Workflow: job.Workflow,
		CreatedAt: pgtype.Timestamptz{Time: job.CreatedAt, Valid: true}, ID: job.ID, MaxRows: workflowMaxJobs + 1})
	if err != nil {
		return nil, err
	}
	if len(rows) > workflowMaxJobs {
		g.Cut, rows = true, rows[:workflowMaxJobs]
	}
	read := make(map[int64]*workflowNode, len(rows))
	for _, row := range rows {
		read[row.ID] = &workflowNode{WorkflowNode{ID: row.ID, Task: deref(row.Task), Kind: row.Kind, State: string(row.State)}, row.DependsOn}
	}
	// The jobs connected to job, whichever way the dependencies point.
	links := map[int64][]int64{}
	for _, n := range read {
		for _, d := range n.dependsOn {
			if _, ok := read[d]; ok {
				links[n.ID] = append(links[n.ID], d)
				links[d] = append(links[d], n.ID)
			}
		}
	}
	nodes := map[int64]*workflowNode{}
	for queue := []int64{job.ID}; len(queue) > 0; queue = queue[1:] {
		id := queue[0]
		if _, seen := nodes[id]; seen {
			continue
		}
		if n, ok := read[id]; ok {
			nodes[id] = n
			queue = append(queue, links[id]...)
		}
	}
	current, ok := nodes[job.ID]
	if !ok {
		return nil, nil // deleted since it was read
	}
	current.Current = true
	// Dependencies read neither in the span nor as part of the workflow.
	var outside []int64
	for _, n := range nodes {
		for _, d := range n.dependsOn {
			if _, ok := nodes[d]; ok || slices.Contains(outside, d) {
				continue
			}
			if len(nodes)+len(outside) >= workflowMaxJobs {
				g.Cut = true
				continue
			}
			outside = append(outside, d)
		}
	}
	if len(outside) > 0 {
		slices.Sort(outside)
		deps, err := h.q.ConsoleJobsByIDs(ctx, outside)
		if err != nil {
			return nil, err
		}
		for _, d := range deps {
			member := deref(d.Workflow) == job.Workflow && d.CreatedAt.Time.Equal(job.CreatedAt)
			g.Cut = g.Cut || member
			nodes[d.ID] = &workflowNode{WorkflowNode: WorkflowNode{ID: d.ID, Task: deref(d.Task), Kind: d.Kind, State: string(d.State), External: !member}}
		}
	}
	layoutDepths(nodes)
	for _, id := range slices.Sorted(maps.Keys(nodes)) {
		n := nodes[id]
		g.Nodes = append(g.Nodes, n.WorkflowNode)
		for _, d := range n.dependsOn {
			if _, ok := nodes[d]; ok {
				g.Edges = append(g.Edges, WorkflowEdge{From: d, To: id})
			}
		}
	}
	g.SVG = drawWorkflow(h.cfg.Prefix, g)
	return g, nil
}

// layoutDepths sets each node's depth: 0 for a node with no dependency in
// the graph, else one more than its deepest dependency's.
func layoutDepths(nodes map[int64]*workflowNode) {
	done := map[int64]bool{}
	var depth func(n *workflowNode, path int) int
	depth = func(n *workflowNode, path int) int {
		// depends_on forms no cycle (a job depends on jobs that exist, or
		// on tasks of an acyclic workflow); path > len(nodes) keeps a row
		// edited by hand from looping.
		if done[n.ID] || path > len(nodes) {
			return n.Depth
		}
		for _, d := range n.dependsOn {
			if dep, ok := nodes[d]; ok {
				n.Depth = max(n.Depth, depth(dep, path+1)+1)
			}
		}
		done[n.ID] = true
		return n.Depth
	}
	for _, n := range nodes {
		depth(n, 0)
	}
}

// The geometry of a drawn workflow, in SVG user units.
const (
	svgNodeW  = 172
	svgNodeH  = 44
	svgGapX   = 56
	svgGapY   = 14
	svgPad    = 12
	svgMaxTxt = 24 // runes of a node's name
)

// stateColors are the fill and stroke of a node in each state, those of
// the style sheet's .state-<name>.
var stateColors = map[string][2]string{
	"completed": {"#d9f2e3", "#1e7b45"},
	"running":   {"#dde9fb", "#1f5fbf"},
	"available": {"#dde9fb", "#1f5fbf"},
	"pending":   {"#dde9fb", "#1f5fbf"},
	"retryable": {"#fdf0d9", "#a65f00"},
	"scheduled": {"#fdf0d9", "#a65f00"},
	"discarded": {"#fbe0de", "#b3261e"},
	"cancelled": {"#fbe0de", "#b3261e"},
}

// drawWorkflow draws g as an inline SVG: a column per depth, left to
// right, each node a box linked to its job's page, each dependency a curve
// from the dependency to its dependent. Every text is escaped; the rest
// are numbers and constants.
func drawWorkflow(prefix string, g *WorkflowGraph) template.HTML {
	layers := map[int][]WorkflowNode{}
	depths, tallest := 0, 0
	for _, n := range g.Nodes { // in id order
		layers[n.Depth] = append(layers[n.Depth], n)
		depths = max(depths, n.Depth+1)
		tallest = max(tallest, len(layers[n.Depth]))
	}
	width := 2*svgPad + depths*svgNodeW + (depths-1)*svgGapX
	height := 2*svgPad + tallest*svgNodeH + (tallest-1)*svgGapY
	type point struct{ x, y int }
	at := map[int64]point{}
	for d, layer := range layers {
		top := svgPad + (tallest-len(layer))*(svgNodeH+svgGapY)/2
		for i, n := range layer {
			at[n.ID] = point{svgPad + d*(svgNodeW+svgGapX), top + i*(svgNodeH+svgGapY)}
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		width, height, width, height, html.EscapeString("Dependency graph of workflow "+g.Name))
	b.WriteString(`<defs><marker id="wf-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="#8a96a3"/></marker></defs>`)
	for _, e := range g.Edges {
		from, to := at[e.From], at[e.To]
		x1, y1 := from.x+svgNodeW, from.y+svgNodeH/2
		x2, y2 := to.x, to.y+svgNodeH/2
		mid := (x1 + x2) / 2
		fmt.Fprintf(&b, `<path d="M%d %dC%d %d %d %d %d %d" fill="none" stroke="#8a96a3" stroke-width="1.5" marker-end="url(#wf-arrow)" data-from="%d" data-to="%d"/>`,
			x1, y1, mid, y1, mid, y2, x2, y2, e.From, e.To)
	}
	for _, n := range g.Nodes {
		p := at[n.ID]
		colors, ok := stateColors[n.State]
		if !ok {
			colors = [2]string{"#e8ecf0", "#5c6670"}
		}
		stroke, strokeWidth, dash := colors[1], "1.5", ""
		if n.Current {
			stroke, strokeWidth = "#1d232a", "3"
		}
		if n.External {
			dash = ` stroke-dasharray="5 3"`
		}
		name := n.Task
		if name == "" {
			name = n.Kind
		}
		title := name + " (" + n.Kind + "), job " + strconv.FormatInt(n.ID, 10) + ", " + n.State
		if n.External {
			title += ", outside the workflow"
		}
		fmt.Fprintf(&b, `<a href="%s/jobs/%d" data-job="%d"><title>%s</title>`, html.EscapeString(prefix), n.ID, n.ID, html.EscapeString(title))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="5" fill="%s" stroke="%s" stroke-width="%s"%s/>`,
			p.x, p.y, svgNodeW, svgNodeH, colors[0], stroke, strokeWidth, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" font-weight="600" fill="#1d232a">%s</text>`, p.x+8, p.y+18, html.EscapeString(clip(name, svgMaxTxt)))
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="%s">#%d · %s</text></a>`, p.x+8, p.y+35, colors[1], n.ID, html.EscapeString(n.State))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// clip shortens s to at most n runes, marking the cut with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// JobAction is what an action on a job answers: the job's state after it,
// or, when it was deleted, the state it was deleted in.
type JobAction struct {
	ID              int64  `json:"id"`
	State           string `json:"state"`
	CancelRequested bool   `json:"cancel_requested,omitempty"`
	Deleted         bool   `json:"deleted,omitempty"`
}

func (h *Handler) jobRetry(r *http.Request) (any, string, error) {
	id, err := jobID(r)
	if err != nil {
		return nil, "", err
	}
	job, err := h.jobs.JobRetry(r.Context(), id)
	if err != nil {
		return nil, "", err
	}
	return JobAction{ID: id, State: string(job.State)}, "/jobs/" + strconv.FormatInt(id, 10), nil
}

func (h *Handler) jobCancel(r *http.Request) (any, string, error) {
	id, err := jobID(r)
	if err != nil {
		return nil, "", err
	}
	job, err := h.jobs.JobCancel(r.Context(), id)
	if err != nil {
		return nil, "", err
	}
	return JobAction{ID: id, State: string(job.State), CancelRequested: job.CancelRequested}, "/jobs/" + strconv.FormatInt(id, 10), nil
}

func (h *Handler) jobDelete(r *http.Request) (any, string, error) {
	id, err := jobID(r)
	if err != nil {
		return nil, "", err
	}
	job, err := h.jobs.JobDelete(r.Context(), id)
	if err != nil {
		return nil, "", err
	}
	return JobAction{ID: id, State: string(job.State), Deleted: true}, "/jobs", nil
}
