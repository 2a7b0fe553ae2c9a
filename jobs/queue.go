package jobs

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/internal/outage"
	"github.com/keelpg/keel/keeltype"
)

// maxClaim caps one claim statement, so a queue with many free workers
// still claims in statements of a bounded size.
const maxClaim = 1000

// claimTimeout bounds one claim statement.
const claimTimeout = 30 * time.Second

// queue is one queue's fetcher: it claims jobs when workers are free and
// there may be work, and starts a goroutine per claimed job.
type queue struct {
	c          *Client
	r          *run
	name       string
	maxWorkers int
	active     atomic.Int64
	wake       chan struct{} // a notification: there may be work
	freed      chan struct{} // a handler finished: a worker is free

	// claimMu guards claiming, the workers a claim in flight holds (see
	// fetch), and claims, the count of claims ended; claimDone is signalled
	// as each claim ends.
	claimMu   sync.Mutex
	claimDone *sync.Cond
	claiming  int
	claims    int64
}

func newQueue(c *Client, r *run, name string, maxWorkers int) *queue {
	q := &queue{
		c: c, r: r, name: name, maxWorkers: maxWorkers,
		wake: make(chan struct{}, 1), freed: make(chan struct{}, 1),
	}
	q.claimDone = sync.NewCond(&q.claimMu)
	return q
}

func (q *queue) wakeUp() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) loop(ctx context.Context) {
	poll := time.NewTicker(q.c.cfg.FetchPollInterval)
	defer poll.Stop()
	more := true // look once at start
	var lastFetch time.Time
	var backoff outage.Backoff
	var rechecks notify.Rechecks
	var recheck <-chan time.Time // fires when a look after a wake-up is due
	for {
		if free := q.maxWorkers - int(q.active.Load()); more && free > 0 {
			// Half the workers free is batch enough to claim at once; fewer
			// wait out the cooldown, so jobs that finish one by one are not
			// claimed one by one.
			if wait := q.c.cfg.FetchCooldown - time.Since(lastFetch); wait > 0 && free < (q.maxWorkers+1)/2 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			free = q.maxWorkers - int(q.active.Load())
			want := min(free, maxClaim)
			lastFetch = time.Now()
			got, err := q.fetch(ctx, want)
			if err == nil {
				q.c.outage.Succeeded()
				backoff.Reset()
				recheck = nil
				if got > 0 {
					rechecks.Found()
				} else if d := rechecks.Wait(q.c.cfg.FetchPollInterval); d < q.c.cfg.FetchPollInterval {
					recheck = time.After(d)
				}
				more = got == want
				continue
			}
			if ctx.Err() != nil {
				return
			}
			if !q.c.outage.Failed(err) {
				q.c.cfg.Logger.WarnContext(ctx, "keel jobs: claim failed", "queue", q.name, "error", err)
			}
			if backoff.Wait(ctx) != nil {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
			rechecks.Woken()
			more = true
		case <-q.freed:
		case <-recheck:
			more = true
		case <-poll.C:
			more = true
		}
	}
}

// fetch claims up to n jobs and starts them; it returns how many it claimed.
// The workers are counted busy for the claim while it is in flight, so a
// ReserveWorkers meanwhile cannot take them too.
func (q *queue) fetch(ctx context.Context, n int) (int, error) {
	q.claimMu.Lock()
	n = q.reserve(n)
	q.claiming = n
	q.claimMu.Unlock()
	if n == 0 {
		return 0, nil
	}
	defer func() {
		q.claimMu.Lock()
		q.claiming = 0
		q.claims++
		q.claimDone.Broadcast()
		q.claimMu.Unlock()
	}()
	owner := q.c.id
	// A claim cut off half-way by Stop could commit with nobody to run what
	// it claimed; it finishes on its own, with a bound.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	rows, err := db.New(q.c.pool).ClaimJobs(ctx, db.ClaimJobsParams{
		Now: ts(q.c.now()), Owner: &owner, Queue: q.name, Max: int32(n),
	})
	q.active.Add(-int64(n - len(rows)))
	if err != nil {
		return 0, err
	}
	if len(rows) > 0 {
		q.c.cfg.Hook.Measure(ctx, keeltype.Measurement{Kind: keeltype.MeasureJobsClaimed, Name: q.name, Value: int64(len(rows))})
	}
	for i := range rows {
		q.r.handlers.Add(1)
		go q.work(&rows[i])
	}
	return len(rows), nil
}
