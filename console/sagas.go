package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/saga"
)

// Limits of the sagas pages: runs in a page of the list, and the children
// and pending signals a run's page lists.
const (
	sagaPageSize    = 50
	sagaChildrenMax = 200
	sagaSignalsMax  = 100
)

// SagaRuns is what the sagas page shows: a page of runs, newest first.
type SagaRuns struct {
	// Status and Workflow filter the runs; empty, they do not.
	Status   string `json:"status,omitempty"`
	Workflow string `json:"workflow,omitempty"`
	// Before is the cursor the page starts after (empty: the newest run);
	// Older is the next page's, empty on the last page.
	Before string       `json:"before,omitempty"`
	Older  string       `json:"older,omitempty"`
	Runs   []SagaRunRow `json:"runs"`
	// Statuses are the tabs: every run status.
	Statuses []string `json:"-"`
}

// SagaRunRow is one run in the list.
type SagaRunRow struct {
	ID              string     `json:"id"`
	Workflow        string     `json:"workflow"`
	Version         int        `json:"version"`
	Status          string     `json:"status"`
	ParentID        string     `json:"parent_id,omitempty"`
	WaitReason      string     `json:"wait_reason,omitempty"`
	WakeAt          *time.Time `json:"wake_at,omitempty"`
	CancelRequested bool       `json:"cancel_requested"`
	ErrorKind       string     `json:"error_kind,omitempty"`
	Error           string     `json:"error,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
}

// SagaRun is what a run's page shows: the run, its timeline of steps, its
// children and the signals sent to it that no wait has taken yet.
type SagaRun struct {
	ID       string `json:"id"`
	Workflow string `json:"workflow"`
	Version  int    `json:"version"`
	Status   string `json:"status"`
	// Final is true once the run succeeded, failed or was cancelled.
	Final      bool            `json:"final"`
	Queue      string          `json:"queue"`
	Input      json.RawMessage `json:"input"`
	Output     json.RawMessage `json:"output,omitempty"`
	ErrorKind  string          `json:"error_kind,omitempty"`
	Error      string          `json:"error,omitempty"`
	LastError  string          `json:"last_error,omitempty"`
	ParentID   string          `json:"parent_id,omitempty"`
	ForkedFrom string          `json:"forked_from,omitempty"`
	// ForkedAtSeq is the position the fork went on from.
	ForkedAtSeq int `json:"forked_at_seq,omitempty"`
	// Resumes counts the executions that took the run.
	Resumes    int        `json:"resumes"`
	WaitReason string     `json:"wait_reason,omitempty"`
	WakeAt     *time.Time `json:"wake_at,omitempty"`
	// AwaitedSignal is the signal a waiting run waits for, if any.
	AwaitedSignal   string     `json:"awaited_signal,omitempty"`
	CancelRequested bool       `json:"cancel_requested"`
	Deadline        *time.Time `json:"deadline,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	UpdatedAt       time.Time  `json:"updated_at"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	// Steps is the history in the order it happened: the steps by
	// position, then the compensations in the order they ran.
	Steps    []SagaStep  `json:"steps"`
	Children []SagaChild `json:"children"`
	// MoreChildren is true when the run has more children than are listed.
	MoreChildren bool         `json:"more_children,omitempty"`
	Signals      []SagaSignal `json:"pending_signals"`
	// MoreSignals is true when more signals wait than are listed.
	MoreSignals bool `json:"more_signals,omitempty"`
}

// SagaStep is one recorded step of a run.
type SagaStep struct {
	Seq  int    `json:"seq"`
	Name string `json:"name"`
	// Kind is as stored: step, tx, sleep, signal, child, await, value or
	// compensation; Label says it for a person ("tx step", "timer" …).
	Kind       string          `json:"kind"`
	Label      string          `json:"label"`
	Status     string          `json:"status"`
	Attempts   int             `json:"attempts"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Seconds    float64         `json:"seconds,omitempty"` // how long it took, once finished
	Output     json.RawMessage `json:"output,omitempty"`
	Error      string          `json:"error,omitempty"`
	// Undoes is, for a compensation, the position of the step it undoes.
	Undoes int `json:"undoes,omitempty"`
	// ChildID and ChildStatus are, for a child start, the child run.
	ChildID     string `json:"child_id,omitempty"`
	ChildStatus string `json:"child_status,omitempty"`
	// Waits and Until are, for a step that waits, what it waits for
	// ("timer", "signal approve", "next attempt") and until when.
	Waits string     `json:"waits,omitempty"`
	Until *time.Time `json:"until,omitempty"`
}

// SagaChild is a run another started as its child.
type SagaChild struct {
	ID       string `json:"id"`
	Workflow string `json:"workflow"`
	Version  int    `json:"version"`
	Status   string `json:"status"`
	// ParentSeq is the position of the start in the parent's history.
	ParentSeq  int        `json:"parent_seq"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// SagaSignal is a signal sent to a run that no wait has consumed yet.
type SagaSignal struct {
	ID             int64           `json:"id"`
	Name           string          `json:"name"`
	Value          json.RawMessage `json:"value"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	SentAt         time.Time       `json:"sent_at"`
}

// SagaAction is what an action on a run answers.
type SagaAction struct {
	RunID  string `json:"run_id"`
	Action string `json:"action"` // signal, cancel, resume or fork
	Signal string `json:"signal,omitempty"`
	// ForkID is the run a fork started.
	ForkID string `json:"fork_id,omitempty"`
}

func (h *Handler) sagaRoutes(mux *http.ServeMux) {
	h.page(mux, "/sagas", "sagas", h.sagaList)
	mux.HandleFunc("GET /sagas/{$}", h.sagaFind)
	h.page(mux, "/sagas/{id}", "saga", h.sagaShow)
	h.action(mux, "/sagas/{id}/signal", nil, h.sagaSignal)
	h.action(mux, "/sagas/{id}/cancel", confirm("Cancel this run? It stops, undoes its completed steps and ends cancelled; so do its unfinished children."), h.sagaCancel)
	h.action(mux, "/sagas/{id}/resume", nil, h.sagaResume)
	h.action(mux, "/sagas/{id}/fork", nil, h.sagaFork)
}

// sagaPath is the path of a run's page.
func sagaPath(id string) string { return "/sagas/" + url.PathEscape(id) }

// sagaFind is the search box: it goes to the page of the run whose id it
// was given. A run id is never empty, so /sagas/ is no run's page.
func (h *Handler) sagaFind(w http.ResponseWriter, r *http.Request) {
	next := "/sagas"
	if id := strings.TrimSpace(r.URL.Query().Get("id")); id != "" {
		next = sagaPath(id)
	}
	http.Redirect(w, r, h.cfg.Prefix+next, http.StatusSeeOther)
}

// sagaStatuses are the statuses of a run, in keel.saga_run_status's order.
func sagaStatuses() []string {
	all := db.AllKeelSagaRunStatusValues()
	out := make([]string, len(all))
	for i, s := range all {
		out[i] = string(s)
	}
	return out
}

// sagaCursor is the keyset cursor of a run in the list: its creation time
// in microseconds since the epoch (Postgres's precision), a colon, its id.
func sagaCursor(created time.Time, id string) string {
	return strconv.FormatInt(created.UnixMicro(), 10) + ":" + id
}

// sagaParseCursor reads a cursor; an empty one is before every run.
func sagaParseCursor(s string) (pgtype.Timestamptz, string, error) {
	if s == "" {
		return pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}, "", nil
	}
	micros, id, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(micros, 10, 64)
	at := time.UnixMicro(n)
	if !ok || err != nil || at.Year() < 1 || at.Year() > 9999 {
		return pgtype.Timestamptz{}, "", errorf(http.StatusBadRequest, "before %q is not a cursor of this list (microseconds:run id)", s)
	}
	if err := validate.Text("before", id, validate.MaxRunID); err != nil {
		return pgtype.Timestamptz{}, "", errorf(http.StatusBadRequest, "%v", err)
	}
	return pgtype.Timestamptz{Time: at, Valid: true}, id, nil
}

func (h *Handler) sagaList(r *http.Request) (any, error) {
	q := r.URL.Query()
	v := SagaRuns{Status: q.Get("status"), Workflow: q.Get("workflow"), Before: q.Get("before"), Statuses: sagaStatuses()}
	var status *db.KeelSagaRunStatus
	if v.Status != "" {
		s := db.KeelSagaRunStatus(v.Status)
		if !s.Valid() {
			return nil, errorf(http.StatusBadRequest, "status %q is not one of %s", v.Status, strings.Join(v.Statuses, ", "))
		}
		status = &s
	}
	if err := validate.Text("workflow", v.Workflow, validate.MaxName); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	beforeAt, beforeID, err := sagaParseCursor(v.Before)
	if err != nil {
		return nil, err
	}
	var rows []db.ConsoleSagaRunsRow
	if v.Workflow == "" {
		rows, err = h.q.ConsoleSagaRuns(r.Context(), db.ConsoleSagaRunsParams{
			BeforeAt: beforeAt, BeforeID: beforeID, Max: sagaPageSize + 1, Status: status,
		})
	} else {
		var wrows []db.ConsoleSagaWorkflowRunsRow
		wrows, err = h.q.ConsoleSagaWorkflowRuns(r.Context(), db.ConsoleSagaWorkflowRunsParams{
			Workflow: v.Workflow, BeforeAt: beforeAt, BeforeID: beforeID, Max: sagaPageSize + 1, Status: status,
		})
		for _, w := range wrows {
			rows = append(rows, db.ConsoleSagaRunsRow(w))
		}
	}
	if err != nil {
		return nil, err
	}
	if len(rows) > sagaPageSize {
		rows = rows[:sagaPageSize]
		last := rows[len(rows)-1]
		v.Older = sagaCursor(last.CreatedAt.Time, last.ID)
	}
	v.Runs = make([]SagaRunRow, len(rows))
	for i, row := range rows {
		v.Runs[i] = SagaRunRow{
			ID: row.ID, Workflow: row.Workflow, Version: int(row.Version), Status: string(row.Status),
			ParentID: deref(row.ParentID), WaitReason: deref(row.WaitReason), WakeAt: timePtr(row.WakeAt),
			CancelRequested: row.CancelRequested, ErrorKind: row.ErrorKind, Error: row.ErrorMessage,
			LastError: deref(row.LastError), CreatedAt: row.CreatedAt.Time, UpdatedAt: row.UpdatedAt.Time,
			FinishedAt: timePtr(row.FinishedAt),
		}
	}
	return v, nil
}

func (h *Handler) sagaShow(r *http.Request) (any, error) {
	ctx := r.Context()
	id := r.PathValue("id")
	run, err := h.saga.Get(ctx, h.pool, id)
	if err != nil {
		return nil, err
	}
	v := SagaRun{
		ID: run.ID, Workflow: run.Workflow, Version: run.Version, Status: string(run.Status), Final: run.Status.Final(),
		Queue: run.Queue, Input: run.Input, Output: run.Output, LastError: run.LastError, ParentID: run.ParentID,
		ForkedFrom: run.ForkedFrom, ForkedAtSeq: run.ForkedAtSeq, Resumes: run.Resumes, WaitReason: run.WaitReason,
		WakeAt: optTime(run.WakeAt), CancelRequested: run.CancelRequested, Deadline: optTime(run.Deadline),
		CreatedAt: run.CreatedAt, StartedAt: optTime(run.StartedAt), UpdatedAt: run.UpdatedAt, FinishedAt: optTime(run.FinishedAt),
	}
	if run.Error != nil {
		v.ErrorKind, v.Error = string(run.Error.Kind), run.Error.Message
	}
	if name, ok := strings.CutPrefix(run.WaitReason, "signal "); ok && run.Status == saga.StatusWaiting {
		v.AwaitedSignal = name
	}
	children, err := h.q.ConsoleSagaChildren(ctx, db.ConsoleSagaChildrenParams{ParentID: &run.ID, Max: sagaChildrenMax + 1})
	if err != nil {
		return nil, err
	}
	if len(children) > sagaChildrenMax {
		children, v.MoreChildren = children[:sagaChildrenMax], true
	}
	v.Children = make([]SagaChild, len(children))
	childStatus := make(map[string]string, len(children))
	for i, c := range children {
		v.Children[i] = SagaChild{ID: c.ID, Workflow: c.Workflow, Version: int(c.Version), Status: string(c.Status),
			CreatedAt: c.CreatedAt.Time, FinishedAt: timePtr(c.FinishedAt)}
		if c.ParentSeq != nil {
			v.Children[i].ParentSeq = int(*c.ParentSeq)
		}
		childStatus[c.ID] = string(c.Status)
	}
	steps, err := h.saga.Steps(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	// Steps come by position: the compensations (negative) first, in the
	// order they ran, then the steps. The timeline puts the steps first.
	v.Steps = make([]SagaStep, 0, len(steps))
	firstStep := len(steps)
	for i, s := range steps {
		if s.Seq > 0 {
			firstStep = i
			break
		}
	}
	for _, s := range slices.Concat(steps[firstStep:], steps[:firstStep]) {
		step := sagaStepView(s)
		step.ChildStatus = childStatus[step.ChildID]
		v.Steps = append(v.Steps, step)
	}
	signals, err := h.q.ConsoleSagaPendingSignals(ctx, db.ConsoleSagaPendingSignalsParams{RunID: run.ID, Max: sagaSignalsMax + 1})
	if err != nil {
		return nil, err
	}
	if len(signals) > sagaSignalsMax {
		signals, v.MoreSignals = signals[:sagaSignalsMax], true
	}
	v.Signals = make([]SagaSignal, len(signals))
	for i, s := range signals {
		v.Signals[i] = SagaSignal{ID: s.ID, Name: s.Name, Value: s.Value, IdempotencyKey: deref(s.IdempotencyKey), SentAt: s.SentAt.Time}
	}
	return v, nil
}

// sagaStepLabels say each kind of step for a person.
var sagaStepLabels = map[string]string{
	"step":         "step",
	"tx":           "tx step",
	"sleep":        "timer",
	"signal":       "signal wait",
	"child":        "child start",
	"await":        "child result",
	"value":        "published value",
	"compensation": "compensation",
}

// sagaStepView makes a recorded step readable: what a compensation undoes,
// the child a child start started, and what a waiting step waits for,
// which its output records (a timer's wake time, a signal wait's deadline,
// a parked retry's next attempt).
func sagaStepView(s saga.StepInfo) SagaStep {
	step := SagaStep{
		Seq: s.Seq, Name: s.Name, Kind: s.Kind, Label: sagaStepLabels[s.Kind], Status: s.Status, Attempts: s.Attempts,
		StartedAt: s.StartedAt, FinishedAt: optTime(s.FinishedAt), Output: s.Output, Error: s.Error,
	}
	if step.Label == "" {
		step.Label = s.Kind
	}
	if step.FinishedAt != nil {
		step.Seconds = s.FinishedAt.Sub(s.StartedAt).Seconds()
	}
	switch {
	case s.Kind == "compensation":
		step.Undoes = -s.Seq
	case s.Kind == "child" && s.Status == "completed":
		_ = json.Unmarshal(s.Output, &step.ChildID)
	}
	if s.Status != "waiting" {
		return step
	}
	var wait struct {
		Deadline time.Time `json:"deadline"`
		RetryAt  time.Time `json:"retry_at"`
	}
	var at time.Time
	switch s.Kind {
	case "sleep":
		step.Waits = "timer"
		_ = json.Unmarshal(s.Output, &at)
	case "signal":
		step.Waits = "signal " + s.Name
		_ = json.Unmarshal(s.Output, &wait)
		at = wait.Deadline
	default:
		step.Waits = "next attempt"
		_ = json.Unmarshal(s.Output, &wait)
		at = wait.RetryAt
	}
	step.Until = optTime(at)
	return step
}

func (h *Handler) sagaSignal(r *http.Request) (any, string, error) {
	id := r.PathValue("id")
	name := r.PostForm.Get("name")
	if name == "" {
		return nil, "", errorf(http.StatusBadRequest, "a signal needs a name")
	}
	value := r.PostForm.Get("value")
	if strings.TrimSpace(value) == "" {
		value = "null"
	}
	if err := validate.JSON("value", []byte(value)); err != nil {
		return nil, "", errorf(http.StatusBadRequest, "the signal's %v", err)
	}
	opts := &saga.SignalOpts{IdempotencyKey: r.PostForm.Get("key")}
	if err := h.saga.Signal(r.Context(), h.pool, id, name, json.RawMessage(value), opts); err != nil {
		return nil, "", err
	}
	return SagaAction{RunID: id, Action: "signal", Signal: name}, sagaPath(id), nil
}

func (h *Handler) sagaCancel(r *http.Request) (any, string, error) {
	id := r.PathValue("id")
	if err := h.saga.Cancel(r.Context(), h.pool, id); err != nil {
		return nil, "", err
	}
	return SagaAction{RunID: id, Action: "cancel"}, sagaPath(id), nil
}

func (h *Handler) sagaResume(r *http.Request) (any, string, error) {
	id := r.PathValue("id")
	if err := h.saga.Resume(r.Context(), h.pool, id); err != nil {
		return nil, "", err
	}
	return SagaAction{RunID: id, Action: "resume"}, sagaPath(id), nil
}

func (h *Handler) sagaFork(r *http.Request) (any, string, error) {
	id := r.PathValue("id")
	from, err := strconv.Atoi(r.PostForm.Get("from"))
	if err != nil || from < 1 {
		return nil, "", errorf(http.StatusBadRequest, "from %q is not a step position (1 or more)", r.PostForm.Get("from"))
	}
	fork, err := h.saga.Fork(r.Context(), h.pool, id, from, nil)
	if err != nil {
		return nil, "", err
	}
	return SagaAction{RunID: id, Action: "fork", ForkID: fork.ID}, sagaPath(fork.ID), nil
}
