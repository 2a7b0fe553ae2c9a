package jobs

import (
	"context"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/outage"
)

// maxCompleteBatch caps one completion statement.
const maxCompleteBatch = 5000

type completion struct {
	id      int64
	attempt int32
}

// completer writes completions in batches: it takes whatever has queued up
// while the previous statement ran and writes it with one statement. Under
// load batches grow by themselves; when idle a completion is written at once.
type completer struct {
	c    *Client
	r    *run
	in   chan completion
	done chan struct{}
}

func newCompleter(c *Client, r *run) *completer {
	return &completer{c: c, r: r, in: make(chan completion, maxCompleteBatch), done: make(chan struct{})}
}

// add queues a completion; the job is heartbeated until it is written.
func (k *completer) add(c completion) {
	k.r.mu.Lock()
	k.r.completing[c.id] = struct{}{}
	k.r.mu.Unlock()
	k.in <- c
}

// close writes what is queued and stops; call it once no handler runs.
func (k *completer) close() {
	close(k.in)
	<-k.done
}

func (k *completer) loop() {
	defer close(k.done)
	ids := make([]int64, 0, maxCompleteBatch)
	attempts := make([]int32, 0, maxCompleteBatch)
	for first := range k.in {
		ids, attempts = append(ids[:0], first.id), append(attempts[:0], first.attempt)
	drain:
		for len(ids) < maxCompleteBatch {
			select {
			case c, ok := <-k.in:
				if !ok {
					break drain
				}
				ids, attempts = append(ids, c.id), append(attempts, c.attempt)
			default:
				break drain
			}
		}
		k.write(ids, attempts)
	}
}

// write completes one batch. It retries through an outage, however long,
// until the batch is written or Stop abandons it; an abandoned job stays
// running, stops being heartbeated and is rescued and run again.
func (k *completer) write(ids []int64, attempts []int32) {
	defer func() {
		k.r.mu.Lock()
		for _, id := range ids {
			delete(k.r.completing, id)
		}
		k.r.mu.Unlock()
	}()
	err := k.c.writeOutcome(k.r, func(ctx context.Context) error {
		_, err := db.New(k.c.pool).CompleteJobs(ctx, db.CompleteJobsParams{
			Now: ts(k.c.now()), Ids: ids, Attempts: attempts,
		})
		return err
	})
	if err != nil {
		k.c.cfg.Logger.Error("keel jobs: completions abandoned at stop; the jobs will be rescued and run again", "jobs", len(ids), "error", err)
		return
	}
	k.r.kick()
}

// writeOutcome runs write until it succeeds, with a capped exponential
// backoff between tries, and returns the last error only when Stop abandoned
// the run's writes. Each try, the first one after Stop abandoned them too,
// runs to its end or writeTimeout.
func (c *Client) writeOutcome(r *run, write func(ctx context.Context) error) error {
	var backoff outage.Backoff
	for {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.writesCtx), writeTimeout)
		err := write(ctx)
		cancel()
		if err == nil {
			c.outage.Succeeded()
			return nil
		}
		if !c.outage.Failed(err) && r.writesCtx.Err() == nil {
			c.cfg.Logger.Warn("keel jobs: writing an attempt's outcome failed; retrying", "error", err)
		}
		if werr := backoff.Wait(r.writesCtx); werr != nil {
			return err
		}
	}
}
