package console

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
)

// Overview is what the overview page shows: what `keel stats` prints, read
// so that its cost follows the work in flight rather than the history, and
// the last hour minute by minute.
type Overview struct {
	Jobs          JobTotals           `json:"jobs"`
	Queues        []Queue             `json:"queues"`
	StuckJobs     []StuckJob          `json:"stuck_jobs"`
	Outbox        OutboxTotals        `json:"outbox"`
	Sagas         []WorkflowRuns      `json:"sagas"`
	Subscriptions []SubscriptionState `json:"subscriptions"`
	JobsChart     Chart               `json:"jobs_chart"`
	BacklogChart  Chart               `json:"backlog_chart"`
	OutboxChart   Chart               `json:"outbox_chart"`
}

// JobTotals adds up the queues. Final states count the last hour only (as
// the jobs chart does); Dead counts every discarded job.
type JobTotals struct {
	Pending           int64 `json:"pending"`
	Scheduled         int64 `json:"scheduled"`
	Available         int64 `json:"available"`
	Running           int64 `json:"running"`
	Retryable         int64 `json:"retryable"`
	CompletedLastHour int64 `json:"completed_last_hour"`
	CancelledLastHour int64 `json:"cancelled_last_hour"`
	DiscardedLastHour int64 `json:"discarded_last_hour"`
	Dead              int64 `json:"dead"`
}

// Queue is one job queue: its jobs in each state that is not final, and
// since when its oldest available job could have run.
type Queue struct {
	Name            string     `json:"name"`
	Paused          bool       `json:"paused"`
	PausedAt        *time.Time `json:"paused_at,omitempty"`
	Pending         int64      `json:"pending"`
	Scheduled       int64      `json:"scheduled"`
	Available       int64      `json:"available"`
	Running         int64      `json:"running"`
	Retryable       int64      `json:"retryable"`
	OldestAvailable *time.Time `json:"oldest_available,omitempty"`
}

// StuckJob is a running job whose owner has sent no heartbeat for over a
// minute.
type StuckJob struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	Queue       string     `json:"queue"`
	Owner       string     `json:"owner"`
	HeartbeatAt *time.Time `json:"heartbeat_at"`
}

// OutboxTotals is the outbox now.
type OutboxTotals struct {
	Pending           int64      `json:"pending"`
	OldestPending     *time.Time `json:"oldest_pending,omitempty"`
	Dead              int64      `json:"dead"`
	DeliveredLastHour int64      `json:"delivered_last_hour"`
}

// WorkflowRuns counts one workflow's runs: every run not finished, and the
// runs started in the last hour that finished.
type WorkflowRuns struct {
	Workflow     string `json:"workflow"`
	Pending      int64  `json:"pending"`
	Running      int64  `json:"running"`
	Waiting      int64  `json:"waiting"`
	Compensating int64  `json:"compensating"`
	Succeeded    int64  `json:"succeeded_last_hour"`
	Failed       int64  `json:"failed_last_hour"`
	Cancelled    int64  `json:"cancelled_last_hour"`
}

func (h *Handler) overview(r *http.Request) (any, error) {
	ctx := r.Context()
	var v Overview
	err := h.serially(ctx, func(q *db.Queries) (err error) {
		v, err = readOverview(ctx, q)
		return err
	})
	if err != nil {
		return nil, err
	}
	c, err := h.charts.get(ctx, h.readCharts)
	if err != nil {
		return nil, err
	}
	v.JobsChart, v.BacklogChart, v.OutboxChart = c.jobs, c.backlog, c.outbox
	for _, s := range c.jobs.Series {
		total := sum(s.Values)
		switch s.Name {
		case "completed":
			v.Jobs.CompletedLastHour = total
		case "discarded":
			v.Jobs.DiscardedLastHour = total
		case "cancelled":
			v.Jobs.CancelledLastHour = total
		}
	}
	return v, nil
}

// readOverview reads what the overview shows but its charts.
func readOverview(ctx context.Context, q *db.Queries) (Overview, error) {
	v := Overview{StuckJobs: []StuckJob{}}
	var err error
	if v.Queues, err = readQueues(ctx, q); err != nil {
		return v, err
	}
	for _, qu := range v.Queues {
		v.Jobs.Pending += qu.Pending
		v.Jobs.Scheduled += qu.Scheduled
		v.Jobs.Available += qu.Available
		v.Jobs.Running += qu.Running
		v.Jobs.Retryable += qu.Retryable
	}
	if v.Jobs.Dead, err = q.ConsoleDeadJobs(ctx); err != nil {
		return v, err
	}
	stuck, err := q.StuckJobs(ctx)
	if err != nil {
		return v, err
	}
	for _, s := range stuck {
		v.StuckJobs = append(v.StuckJobs, StuckJob{s.ID, s.Kind, s.Queue, deref(s.Owner), timePtr(s.HeartbeatAt)})
	}
	ob, err := q.ConsoleOutboxCounts(ctx)
	if err != nil {
		return v, err
	}
	v.Outbox = OutboxTotals{ob.Pending, timePtr(ob.OldestPending), ob.Dead, ob.DeliveredLastHour}
	if v.Sagas, err = readWorkflowRuns(ctx, q); err != nil {
		return v, err
	}
	subs, err := q.ConsoleSubscriptions(ctx)
	if err != nil {
		return v, err
	}
	v.Subscriptions = subscriptionStates(subs)
	return v, nil
}

// readQueues reads every queue with jobs not yet final or a pause record.
func readQueues(ctx context.Context, q *db.Queries) ([]Queue, error) {
	counts, err := q.ConsoleJobCounts(ctx)
	if err != nil {
		return nil, err
	}
	pauses, err := q.ConsoleQueuePauses(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*Queue{}
	get := func(name string) *Queue {
		q, ok := byName[name]
		if !ok {
			q = &Queue{Name: name}
			byName[name] = q
		}
		return q
	}
	for _, p := range pauses {
		q := get(p.Name)
		q.PausedAt = timePtr(p.PausedAt)
		q.Paused = q.PausedAt != nil
	}
	for _, c := range counts {
		q := get(c.Queue)
		switch c.State {
		case db.KeelJobStatePending:
			q.Pending = c.Jobs
		case db.KeelJobStateScheduled:
			q.Scheduled = c.Jobs
		case db.KeelJobStateAvailable:
			q.Available = c.Jobs
			q.OldestAvailable = timePtr(c.OldestRunAt)
		case db.KeelJobStateRunning:
			q.Running = c.Jobs
		case db.KeelJobStateRetryable:
			q.Retryable = c.Jobs
		}
	}
	return byKey(byName), nil
}

func readWorkflowRuns(ctx context.Context, q *db.Queries) ([]WorkflowRuns, error) {
	rows, err := q.ConsoleSagaCounts(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*WorkflowRuns{}
	for _, c := range rows {
		w, ok := byName[c.Workflow]
		if !ok {
			w = &WorkflowRuns{Workflow: c.Workflow}
			byName[c.Workflow] = w
		}
		switch c.Status {
		case db.KeelSagaRunStatusPending:
			w.Pending = c.Runs
		case db.KeelSagaRunStatusRunning:
			w.Running = c.Runs
		case db.KeelSagaRunStatusWaiting:
			w.Waiting = c.Runs
		case db.KeelSagaRunStatusCompensating:
			w.Compensating = c.Runs
		case db.KeelSagaRunStatusSucceeded:
			w.Succeeded = c.Runs
		case db.KeelSagaRunStatusFailed:
			w.Failed = c.Runs
		case db.KeelSagaRunStatusCancelled:
			w.Cancelled = c.Runs
		}
	}
	return byKey(byName), nil
}

// byKey returns the values of m in the order of their keys.
func byKey[T any](m map[string]*T) []T {
	keys := slices.Sorted(maps.Keys(m))
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = *m[k]
	}
	return out
}

// timePtr is a timestamp the database may leave NULL, for JSON and the
// templates' ago and when.
func timePtr(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	tm := t.Time
	return &tm
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// seconds turns a Postgres interval into seconds (a month counts 30 days).
func seconds(iv pgtype.Interval) float64 {
	if !iv.Valid {
		return 0
	}
	d := time.Duration(iv.Microseconds)*time.Microsecond + time.Duration(iv.Days)*24*time.Hour + time.Duration(iv.Months)*30*24*time.Hour
	return d.Seconds()
}

// serially runs fn in a read-only transaction planned without parallel
// workers (ConsoleSerialPlans): the page's statements then also read one
// snapshot, so its numbers agree with each other.
func (h *Handler) serially(ctx context.Context, fn func(q *db.Queries) error) error {
	return pgx.BeginTxFunc(ctx, h.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		q := db.New(tx)
		if err := q.ConsoleSerialPlans(ctx); err != nil {
			return err
		}
		return fn(q)
	})
}
