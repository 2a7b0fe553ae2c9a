package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
)

// statsView is everything `keel stats` shows, read from keel's views.
type statsView struct {
	Queues        []queueStats        `json:"queues"`
	StuckJobs     []stuckJob          `json:"stuck_jobs"`
	DeadJobs      int64               `json:"dead_jobs"`
	Outbox        outboxStats         `json:"outbox"`
	Subscriptions []subscriptionStats `json:"subscriptions"`
	Sagas         []sagaStats         `json:"sagas"`
}

type sagaStats struct {
	Workflow     string `json:"workflow"`
	Pending      int64  `json:"pending"`
	Running      int64  `json:"running"`
	Waiting      int64  `json:"waiting"`
	Compensating int64  `json:"compensating"`
	Succeeded    int64  `json:"succeeded"`
	Failed       int64  `json:"failed"`
	Cancelled    int64  `json:"cancelled"`
	Blocked      int64  `json:"blocked"`
}

type queueStats struct {
	Queue            string  `json:"queue"`
	Paused           bool    `json:"paused"`
	Pending          int64   `json:"pending"`
	Scheduled        int64   `json:"scheduled"`
	Available        int64   `json:"available"`
	Running          int64   `json:"running"`
	Retryable        int64   `json:"retryable"`
	Completed        int64   `json:"completed"`
	Cancelled        int64   `json:"cancelled"`
	Discarded        int64   `json:"discarded"`
	OldestAvailableS float64 `json:"oldest_available_seconds"`
}

type stuckJob struct {
	ID      int64   `json:"id"`
	Kind    string  `json:"kind"`
	Queue   string  `json:"queue"`
	Owner   string  `json:"owner"`
	SilentS float64 `json:"silent_seconds"`
}

type outboxStats struct {
	Pending        int64   `json:"pending"`
	Dead           int64   `json:"dead"`
	Delivered      int64   `json:"delivered"`
	OldestPendingS float64 `json:"oldest_pending_seconds"`
}

type subscriptionStats struct {
	Name      string  `json:"name"`
	Category  string  `json:"category,omitempty"`
	Status    string  `json:"status"`
	Position  int64   `json:"position"`
	Behind    int64   `json:"behind"`
	LagS      float64 `json:"lag_seconds"`
	Owner     string  `json:"owner,omitempty"`
	LastError string  `json:"last_error,omitempty"`
}

// readSubscriptions reads keel.subscription_lag, which counts a
// subscription to one category behind by that category's events only.
func readSubscriptions(ctx context.Context, q *db.Queries) ([]subscriptionStats, error) {
	rows, err := q.SubscriptionLag(ctx)
	if err != nil {
		return nil, err
	}
	subs := make([]subscriptionStats, len(rows))
	for i, r := range rows {
		subs[i] = subscriptionStats{r.Name, deref(r.Category), r.Status, r.Position, r.Behind, seconds(r.Lag), deref(r.Owner), deref(r.LastError)}
	}
	return subs, nil
}

// seconds turns a Postgres interval into seconds (a month counts 30 days).
func seconds(iv pgtype.Interval) float64 {
	if !iv.Valid {
		return 0
	}
	d := time.Duration(iv.Microseconds)*time.Microsecond + time.Duration(iv.Days)*24*time.Hour + time.Duration(iv.Months)*30*24*time.Hour
	return d.Seconds()
}

func age(s float64) string {
	if s <= 0 {
		return "-"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}

func (c *cli) stats(ctx context.Context, _ []string) error {
	return c.withDB(ctx, func(pool *pgxpool.Pool) error {
		v, err := readStats(ctx, db.New(pool))
		if err != nil {
			return err
		}
		if c.jsonOut {
			return c.emit(v, nil, nil)
		}
		return c.printStats(v)
	})
}

func readStats(ctx context.Context, q *db.Queries) (statsView, error) {
	var v statsView
	qs, err := q.QueueStats(ctx)
	if err != nil {
		return v, err
	}
	for _, r := range qs {
		v.Queues = append(v.Queues, queueStats{r.Queue, r.Paused, r.Pending, r.Scheduled, r.Available, r.Running,
			r.Retryable, r.Completed, r.Cancelled, r.Discarded, seconds(r.OldestAvailableAge)})
	}
	stuck, err := q.StuckJobs(ctx)
	if err != nil {
		return v, err
	}
	for _, r := range stuck {
		v.StuckJobs = append(v.StuckJobs, stuckJob{r.ID, r.Kind, r.Queue, deref(r.Owner), seconds(r.SilentFor)})
	}
	if v.DeadJobs, err = q.DeadJobCount(ctx); err != nil {
		return v, err
	}
	ob, err := q.OutboxStats(ctx)
	if err != nil {
		return v, err
	}
	v.Outbox = outboxStats{ob.Pending, ob.Dead, ob.Delivered, seconds(ob.OldestPendingAge)}
	if v.Subscriptions, err = readSubscriptions(ctx, q); err != nil {
		return v, err
	}
	sagas, err := q.SagaStats(ctx)
	if err != nil {
		return v, err
	}
	for _, r := range sagas {
		v.Sagas = append(v.Sagas, sagaStats(r))
	}
	return v, nil
}

func (c *cli) printStats(v statsView) error {
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	i := strconv.FormatInt
	fmt.Fprintln(w, "JOBS\nQUEUE\tPENDING\tSCHEDULED\tAVAILABLE\tRUNNING\tRETRYABLE\tCOMPLETED\tCANCELLED\tDISCARDED\tOLDEST AVAILABLE\tSTATE")
	for _, q := range v.Queues {
		state := "running"
		if q.Paused {
			state = "paused"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", q.Queue, i(q.Pending, 10), i(q.Scheduled, 10), i(q.Available, 10),
			i(q.Running, 10), i(q.Retryable, 10), i(q.Completed, 10), i(q.Cancelled, 10), i(q.Discarded, 10), age(q.OldestAvailableS), state)
	}
	if len(v.Queues) == 0 {
		fmt.Fprintln(w, "(no jobs)")
	}
	fmt.Fprintf(w, "dead jobs (discarded): %d; stuck jobs (no heartbeat for over a minute): %d\n", v.DeadJobs, len(v.StuckJobs))
	if len(v.StuckJobs) > 0 {
		fmt.Fprintln(w, "\nSTUCK JOBS\nID\tKIND\tQUEUE\tOWNER\tSILENT FOR")
	}
	for _, s := range v.StuckJobs {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", s.ID, s.Kind, s.Queue, s.Owner, age(s.SilentS))
	}
	fmt.Fprintf(w, "\nOUTBOX\nPENDING\tOLDEST PENDING\tDEAD\tDELIVERED (KEPT)\n%d\t%s\t%d\t%d\n",
		v.Outbox.Pending, age(v.Outbox.OldestPendingS), v.Outbox.Dead, v.Outbox.Delivered)
	fmt.Fprintln(w, "\nSAGAS\nWORKFLOW\tPENDING\tRUNNING\tWAITING\tCOMPENSATING\tSUCCEEDED\tFAILED\tCANCELLED\tBLOCKED")
	for _, s := range v.Sagas {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Workflow, s.Pending, s.Running, s.Waiting, s.Compensating, s.Succeeded, s.Failed, s.Cancelled, s.Blocked)
	}
	if len(v.Sagas) == 0 {
		fmt.Fprintln(w, "(no workflow runs)")
	}
	fmt.Fprintln(w, "\nSUBSCRIPTIONS\nNAME\tCATEGORY\tSTATUS\tPOSITION\tBEHIND\tLAG\tLAST ERROR")
	for _, s := range v.Subscriptions {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", s.Name, s.Category, s.Status, s.Position, s.Behind, age(s.LagS), firstLine(s.LastError))
	}
	if len(v.Subscriptions) == 0 {
		fmt.Fprintln(w, "(no subscriptions)")
	}
	return w.Flush()
}
