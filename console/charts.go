package console

import (
	"context"
	"sync"
	"time"

	"github.com/keelpg/keel/internal/db"
)

// chartTTL is how long the overview's charts are kept before they are read
// again. They count per minute over the last hour, and reading them costs
// as much as the last hour's finished jobs: once per chartTTL for every
// page open, not once per refresh of each.
const chartTTL = 15 * time.Second

// charts are the overview's three charts.
type charts struct {
	jobs, backlog, outbox Chart
}

// chartCache keeps the charts last read for chartTTL.
type chartCache struct {
	mu   sync.Mutex
	at   time.Time
	last charts
}

// get returns the charts, reading them with read when those it has are
// older than chartTTL. Requests that come while one reads wait for it.
func (c *chartCache) get(ctx context.Context, read func(context.Context) (charts, error)) (charts, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < chartTTL {
		return c.last, nil
	}
	v, err := read(ctx)
	if err != nil {
		return charts{}, err
	}
	c.last, c.at = v, time.Now()
	return v, nil
}

func (h *Handler) readCharts(ctx context.Context) (charts, error) {
	var c charts
	err := h.serially(ctx, func(q *db.Queries) (err error) {
		c, err = readCharts(ctx, q)
		return err
	})
	return c, err
}

func readCharts(ctx context.Context, q *db.Queries) (charts, error) {
	minutes, err := q.ConsoleJobMinutes(ctx)
	if err != nil {
		return charts{}, err
	}
	c := charts{
		jobs:    Chart{Title: "Jobs finished per minute"},
		backlog: Chart{Title: "Jobs not yet finished", Lines: true},
		outbox:  Chart{Title: "Outbox messages delivered per minute"},
	}
	done := Series{Name: "completed", Color: "#1e7b45"}
	dead := Series{Name: "discarded", Color: "#b3261e"}
	cancelled := Series{Name: "cancelled", Color: "#a65f00"}
	open := Series{Name: "not finished", Color: "#1f5fbf"}
	for _, m := range minutes {
		c.jobs.Minutes = append(c.jobs.Minutes, m.Minute.Time)
		done.Values = append(done.Values, m.Completed)
		dead.Values = append(dead.Values, m.Discarded)
		cancelled.Values = append(cancelled.Values, m.Cancelled)
		open.Values = append(open.Values, m.Unfinished)
	}
	c.jobs.Series = []Series{done, dead, cancelled}
	c.backlog.Minutes = c.jobs.Minutes
	c.backlog.Series = []Series{open}
	obm, err := q.ConsoleOutboxMinutes(ctx)
	if err != nil {
		return charts{}, err
	}
	delivered := Series{Name: "delivered", Color: "#1f5fbf"}
	for _, m := range obm {
		c.outbox.Minutes = append(c.outbox.Minutes, m.Minute.Time)
		delivered.Values = append(delivered.Values, m.Delivered)
	}
	c.outbox.Series = []Series{delivered}
	return c, nil
}

func sum(vs []int64) int64 {
	var n int64
	for _, v := range vs {
		n += v
	}
	return n
}
