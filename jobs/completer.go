package jobs

import (
	"context"
	"time"

	"github.com/keelpg/keel/db"
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

func (k *completer) add(c completion) { k.in <- c }

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

// write completes one batch, retrying a few times; jobs whose completion is
// lost stay running and are rescued and run again (at least once).
func (k *completer) write(ids []int64, attempts []int32) {
	backoff := 50 * time.Millisecond
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		_, err := db.New(k.c.pool).CompleteJobs(ctx, db.CompleteJobsParams{
			Now: ts(k.c.now()), Ids: ids, Attempts: attempts,
		})
		cancel()
		if err == nil {
			k.r.kick()
			return
		}
		if try == 5 {
			k.c.cfg.Logger.Error("keel jobs: completing jobs failed; they will be rescued and run again", "jobs", len(ids), "error", err)
			return
		}
		k.c.cfg.Logger.Warn("keel jobs: completing jobs failed; retrying", "jobs", len(ids), "error", err)
		time.Sleep(backoff)
		backoff *= 2
	}
}
