package jobs

import (
	"context"
	"sync"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/keeltype"
)

// maxClaimWaits bounds the claims of a queue's fetcher a ReserveWorkers
// waits for.
const maxClaimWaits = 3

// ReserveWorkers is for the engines keel builds on a client (saga's): it
// takes up to n of queueName's free workers on this client for jobs the caller
// is about to insert already claimed — state running, attempt 1, owner
// ID(), attempted and heartbeat now — so that what the insert creates runs
// here at once, with no notification and no claim. Workers held by a claim
// of the queue's fetcher in flight are waited for. It returns how many
// workers it took (none when the client is not started or is stopping, or
// does not work queueName) and run, which must be called once, after the
// insert: it runs the claimed rows it is given (at most reserved) on the
// reserved workers and frees the rest. Until then, Stop waits for them.
// The queue's fetcher counts reserved workers as busy.
func (c *Client) ReserveWorkers(queueName string, n int) (reserved int, run func(ctx context.Context, claimed []db.KeelJob)) {
	c.mu.Lock()
	r := c.run
	var q *queue
	if r != nil {
		q = r.queues[queueName]
	}
	if q != nil {
		reserved = q.reserve(n)
		r.handlers.Add(reserved)
	}
	c.mu.Unlock()
	// The workers a claim held and did not fill are free again once it
	// ends; a fetcher that looks again at once (a recheck) is waited for
	// too, up to maxClaimWaits claims.
	for waits := 0; q != nil && reserved < n && waits < maxClaimWaits && q.awaitClaim(); waits++ {
		c.mu.Lock()
		if c.run == r {
			more := q.reserve(n - reserved)
			r.handlers.Add(more)
			reserved += more
		}
		c.mu.Unlock()
	}
	var once sync.Once
	return reserved, func(ctx context.Context, claimed []db.KeelJob) {
		once.Do(func() {
			if len(claimed) > reserved {
				panic("keel jobs: more claimed jobs than reserved workers")
			}
			if len(claimed) > 0 {
				c.cfg.Hook.Measure(ctx, keeltype.Measurement{Kind: keeltype.MeasureJobsClaimed, Name: queueName, Value: int64(len(claimed))})
			}
			for i := range claimed {
				go q.work(&claimed[i])
			}
			for range reserved - len(claimed) {
				q.release()
			}
		})
	}
}

// awaitClaim waits for the end of the claim in flight, if any, and reports
// whether there was one: the workers it held are counted busy until it
// ends, and are mostly freed then (a claim of a queue whose jobs are
// written claimed finds little).
func (q *queue) awaitClaim() bool {
	q.claimMu.Lock()
	defer q.claimMu.Unlock()
	if q.claiming == 0 {
		return false
	}
	for ended := q.claims; q.claims == ended; {
		q.claimDone.Wait()
	}
	return true
}

// reserve counts up to n more workers busy, as many as are free, and
// returns how many.
func (q *queue) reserve(n int) int {
	for {
		active := q.active.Load()
		take := min(int64(n), int64(q.maxWorkers)-active)
		if take <= 0 {
			return 0
		}
		if q.active.CompareAndSwap(active, active+take) {
			return int(take)
		}
	}
}

// work runs a claimed job on a worker already counted busy (by fetch or
// reserve), then frees it.
func (q *queue) work(row *db.KeelJob) {
	defer q.release()
	q.c.execute(q.r, row)
}

// release frees a worker counted busy and tells the fetcher.
func (q *queue) release() {
	q.active.Add(-1)
	q.r.handlers.Done()
	select {
	case q.freed <- struct{}{}:
	default:
	}
}
