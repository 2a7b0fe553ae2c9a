package saga

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// maxGroup caps the requests one group statement carries.
const maxGroup = 1000

// groupTimeout bounds one group's write; it runs on no caller's context, as
// it writes for all of them.
const groupTimeout = 30 * time.Second

// group writes the requests of concurrent executions together: group
// commit. The first request to arrive while no write is in flight writes at
// once, alone; requests that arrive during a write queue up and go together
// in the next write, which the first of them leads. So an idle engine adds
// no wait to a request, and a busy one writes many runs' checkpoints with
// one statement, one commit and one WAL flush — yet each caller returns only
// once its own request is durable (or has failed). No goroutine runs it:
// the callers take turns.
type group[T, R any] struct {
	// write writes a batch and sets each call's res and err.
	write func(ctx context.Context, batch []*call[T, R])

	mu    sync.Mutex
	busy  bool
	queue []*call[T, R]
}

// call is one request in a group and, once written, its result.
type call[T, R any] struct {
	req T
	res R
	err error
	// wake receives when the call was written (written is then true) or
	// when it is to lead the next write.
	wake    chan struct{}
	written bool
}

// do queues req, waits for the write that carries it and returns its
// result. ctx scopes no write (see groupTimeout); only its values are used.
func (g *group[T, R]) do(ctx context.Context, req T) (R, error) {
	c := &call[T, R]{req: req, wake: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.busy {
		g.mu.Unlock()
		<-c.wake
		if c.written {
			return c.res, c.err
		}
		g.mu.Lock() // c leads the next write
	}
	g.busy = true
	n := min(len(g.queue), maxGroup)
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()

	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
	g.write(wctx, batch)
	cancel()

	g.mu.Lock()
	if len(g.queue) > 0 {
		g.queue[0].wake <- struct{}{} // the next write's leader
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	for _, b := range batch {
		if b != c {
			b.written = true
			b.wake <- struct{}{}
		}
	}
	return c.res, c.err
}

// alone writes each call of batch by itself: after a batch failed for
// something in it (a value the database refused), so only the call that
// causes it fails.
func alone[T, R any](ctx context.Context, batch []*call[T, R], write func(ctx context.Context, batch []*call[T, R])) {
	for _, c := range batch {
		write(ctx, []*call[T, R]{c})
	}
}

// blamesBatch reports whether err is the database refusing something in a
// batch — which one call of it may cause — rather than the connection, the
// server or the transaction failing, which would fail every call alone too.
func blamesBatch(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || len(pg.Code) < 2 {
		return false
	}
	switch pg.Code[:2] {
	case "08", "40", "53", "57", "58", "XX":
		return false
	}
	return true
}
