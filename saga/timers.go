package saga

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/keelpg/keel/jobs"
)

// timerHorizon is how far ahead a process keeps an in-process timer for a
// wake-up job it scheduled. Further wake-ups rely on jobs' promotion alone.
const timerHorizon = 10 * time.Minute

// timers makes the wake-up jobs of runs parked by this process available at
// their time, instead of at the next promotion pass of jobs (every
// Jobs.MaintenanceInterval). They are a shortcut only: the scheduled job is
// the durable timer, so a process that dies or stops loses nothing.
type timers struct {
	jobs   *jobs.Client
	logger *slog.Logger

	mu      sync.Mutex
	stopped bool
	pending map[int64]*time.Timer
}

func newTimers(c *jobs.Client, logger *slog.Logger) *timers {
	return &timers{jobs: c, logger: logger, pending: map[int64]*time.Timer{}}
}

// add arranges for the scheduled job id to become available in d. The
// caller measures d on the database's clock, on which the job is scheduled.
func (t *timers) add(id int64, d time.Duration) {
	if d > timerHorizon {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.pending[id] = time.AfterFunc(d, func() { t.fire(id) })
}

// fire makes the job available (jobs' Retry also notifies its queue) when
// it is still scheduled; a job that promotion already ran is left alone.
func (t *timers) fire(id int64) {
	t.mu.Lock()
	delete(t.pending, id)
	stopped := t.stopped
	t.mu.Unlock()
	if stopped {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	job, err := t.jobs.JobGet(ctx, id)
	if err != nil || job.State != jobs.StateScheduled {
		return
	}
	if _, err := t.jobs.JobRetry(ctx, id); err != nil {
		t.logger.Debug("keel saga: waking a timer early failed; promotion wakes it", "job", id, "error", err)
	}
}

func (t *timers) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	for id, timer := range t.pending {
		timer.Stop()
		delete(t.pending, id)
	}
}
