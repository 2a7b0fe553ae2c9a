package jobs

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/keeltype"
)

// completedTx marks a running attempt that its handler completed through a
// transaction of its own (JobCompleteTx): once the handler returns nil, the
// client writes no completion for it.
type completedTx struct{ done atomic.Bool }

// JobCompleteTx completes running jobs through tx — typically the
// transaction in which their handlers write their effects — so a job's
// completion commits together with its handler's writes, or neither does.
// Many jobs are completed by one statement.
//
// A job completes only while the attempt it carries is running; one that is
// not (rescued and running elsewhere, or final) is left as it is, and the
// call returns an error wrapping ErrJobNotRunning once the others are
// completed — tx stays usable. A nil tx or job fails with ErrInvalidOptions
// before anything is sent.
//
// When the handler of a job completed this way returns nil, the client
// writes no completion of its own. Should tx not commit, the handler must
// return an error; if it returns nil instead, the job is rescued once its
// heartbeat times out and runs again.
func JobCompleteTx[T JobArgs](ctx context.Context, tx keeltype.DBTX, jobs ...*Job[T]) error {
	if err := checkDBTX(tx); err != nil {
		return err
	}
	p := db.CompleteJobsParams{Ids: make([]int64, len(jobs)), Attempts: make([]int32, len(jobs))}
	for i, j := range jobs {
		if j == nil || j.JobRow == nil {
			return fmt.Errorf("%w: nil job", ErrInvalidOptions)
		}
		p.Ids[i], p.Attempts[i] = j.ID, int32(j.Attempt)
	}
	if len(jobs) == 0 {
		return nil
	}
	done, err := db.New(tx).CompleteJobs(ctx, p)
	if err != nil {
		return fmt.Errorf("keel jobs: completing %d job(s): %w", len(jobs), err)
	}
	completed := make(map[int64]bool, len(done))
	for _, id := range done {
		completed[id] = true
	}
	var missed []int64
	for _, j := range jobs {
		if !completed[j.ID] {
			missed = append(missed, j.ID)
			continue
		}
		if j.completed != nil {
			j.completed.done.Store(true)
		}
	}
	if len(missed) > 0 {
		return fmt.Errorf("%w: jobs %v", ErrJobNotRunning, missed)
	}
	return nil
}
