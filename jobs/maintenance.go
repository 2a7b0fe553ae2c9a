package jobs

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/periodic"
	"github.com/keelpg/keel/internal/service"
)

// Advisory lock keys of the jobs duties ("keeljb" followed by a number).
const (
	promoteKey int64 = 0x6b65656c6a6201 + iota
	rescueKey
	resolveKey
	retentionKey
)

// maintenanceBatch caps the rows one pass of a duty moves; a full pass runs
// again at once.
const maintenanceBatch = 1000

// retentionInterval is how often final jobs past retention are deleted.
const retentionInterval = time.Minute

func (c *Client) startMaintenance(ctx context.Context, r *run) {
	for _, d := range []periodic.Duty{c.promoteDuty(), c.rescueDuty(), c.retentionDuty()} {
		c.goBackground(r, func(ctx context.Context) {
			if err := periodic.Run(ctx, c.pool, d, c.cfg.Logger, c.outage); err != nil {
				c.cfg.Logger.ErrorContext(ctx, "keel jobs: maintenance stopped", "error", err)
			}
		}, ctx)
	}
	c.goBackground(r, func(ctx context.Context) { c.resolveLoop(ctx, r) }, ctx)
}

// promoteDuty makes scheduled and retryable jobs whose time came available,
// and notifies their queues.
func (c *Client) promoteDuty() periodic.Duty {
	return periodic.Duty{
		Name: "jobs promote", Key: promoteKey, Interval: c.cfg.MaintenanceInterval,
		Pass: func(ctx context.Context, tx pgx.Tx) (bool, error) {
			queues, err := db.New(tx).PromoteDueJobs(ctx, db.PromoteDueJobsParams{Now: ts(c.now()), Max: maintenanceBatch})
			if err != nil {
				return false, err
			}
			return len(queues) == maintenanceBatch, c.notifyQueues(ctx, tx, queues)
		},
	}
}

// rescueDuty returns running jobs whose owner stopped heartbeating to
// retryable; the promote duty then makes them available. For RescueAfter
// after this client last failed to reach the database it rescues nothing:
// an outage leaves every heartbeat stale, and the owners that live must
// first have the time to heartbeat again.
func (c *Client) rescueDuty() periodic.Duty {
	return periodic.Duty{
		Name: "jobs rescue", Key: rescueKey, Interval: c.cfg.HeartbeatInterval,
		Pass: func(ctx context.Context, tx pgx.Tx) (bool, error) {
			if c.outage.FailedWithin(c.cfg.RescueAfter) {
				return false, nil
			}
			now := c.now()
			rows, err := db.New(tx).RescueJobs(ctx, db.RescueJobsParams{
				Now: ts(now), StaleBefore: ts(now.Add(-c.cfg.RescueAfter)), Max: maintenanceBatch,
			})
			if len(rows) > 0 {
				ids := make([]int64, len(rows))
				for i, row := range rows {
					ids[i] = row.ID
				}
				c.cfg.Logger.WarnContext(ctx, "keel jobs: rescued jobs whose owner stopped heartbeating", "jobs", len(rows), "ids", ids)
			}
			return len(rows) == maintenanceBatch, err
		},
	}
}

// retentionDuty deletes final jobs past their retention period. Once
// keel.jobs is partitioned it creates the partitions ahead and drops the
// partitions whose jobs all expired instead, and deletes no rows.
func (c *Client) retentionDuty() periodic.Duty {
	return periodic.Duty{
		Name: "jobs retention", Key: retentionKey, Interval: retentionInterval,
		Pass: func(ctx context.Context, tx pgx.Tx) (bool, error) {
			now := c.now()
			keeps := []struct {
				state db.KeelJobState
				keep  time.Duration
			}{
				{db.KeelJobStateCompleted, c.cfg.CompletedRetention},
				{db.KeelJobStateCancelled, c.cfg.CancelledRetention},
				{db.KeelJobStateDiscarded, c.cfg.DiscardedRetention},
			}
			partitioned, err := db.New(tx).TablePartitioned(ctx, "jobs")
			if err != nil {
				return false, err
			}
			if partitioned {
				before := make([]pgtype.Timestamptz, len(keeps))
				for i, k := range keeps {
					if k.keep >= 0 {
						before[i] = ts(now.Add(-k.keep))
					}
				}
				return false, dropExpiredPartitions(ctx, tx, before)
			}
			more := false
			for _, k := range keeps {
				if k.keep < 0 {
					continue
				}
				n, err := db.New(tx).DeleteFinalizedJobs(ctx, db.DeleteFinalizedJobsParams{
					State: k.state, Before: ts(now.Add(-k.keep)), Max: 10 * maintenanceBatch,
				})
				if err != nil {
					return false, err
				}
				more = more || n == 10*maintenanceBatch
			}
			return more, nil
		},
	}
}

// dropExpiredPartitions keeps two partitions of keel.jobs ahead of its
// sequence and drops those whose jobs are all final and older than before
// (one cutoff per final state; an invalid one keeps that state for ever).
func dropExpiredPartitions(ctx context.Context, tx pgx.Tx, before []pgtype.Timestamptz) error {
	q := db.New(tx)
	if _, err := q.PartitionExtend(ctx, "jobs"); err != nil {
		return err
	}
	_, err := q.PartitionDropExpired(ctx, db.PartitionDropExpiredParams{TableName: "jobs", Before: before})
	return err
}

// resolveDuty moves pending jobs whose dependencies settled on.
func (c *Client) resolveDuty() periodic.Duty {
	return periodic.Duty{
		Name: "jobs dependencies", Key: resolveKey, Interval: c.cfg.MaintenanceInterval,
		Pass: func(ctx context.Context, tx pgx.Tx) (bool, error) {
			rows, err := db.New(tx).ResolveDependencies(ctx, db.ResolveDependenciesParams{Now: ts(c.now()), Max: maintenanceBatch})
			if err != nil {
				return false, err
			}
			var queues []string
			for _, row := range rows {
				if row.State == db.KeelJobStateAvailable {
					queues = append(queues, row.Queue)
				}
			}
			// A cancelled dependent may have dependents of its own.
			return len(rows) > 0, c.notifyQueues(ctx, tx, queues)
		},
	}
}

// resolveLoop runs the dependency duty on its interval and whenever this
// client finished jobs (a kick), at most once per FetchCooldown for kicks.
func (c *Client) resolveLoop(ctx context.Context, r *run) {
	d := c.resolveDuty()
	tick := time.NewTicker(d.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-r.kickResolve:
		}
		for {
			passCtx, cancel := service.Statement(ctx)
			_, more, err := periodic.RunOnce(passCtx, c.pool, d)
			cancel()
			switch {
			case ctx.Err() != nil:
				return
			case err == nil:
				c.outage.Succeeded()
			case !c.outage.Failed(err):
				c.cfg.Logger.WarnContext(ctx, "keel jobs: resolving dependencies", "error", err)
			}
			if !more || err != nil {
				break
			}
		}
		wait := time.NewTimer(c.cfg.FetchCooldown)
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wait.C:
		}
	}
}

func (c *Client) notifyQueues(ctx context.Context, tx pgx.Tx, queues []string) error {
	seen := map[string]bool{}
	for _, q := range queues {
		if seen[q] {
			continue
		}
		seen[q] = true
		if err := c.notifyQueue(ctx, tx, q); err != nil {
			return err
		}
	}
	return nil
}

// heartbeatLoop refreshes the heartbeat of the jobs this client's handlers
// are running or whose outcome it still holds — only those, so a job whose
// claim or outcome was lost stops heartbeating and is rescued — and cancels
// those whose cancellation was requested (the path that works even when
// notifications do not arrive).
func (c *Client) heartbeatLoop(ctx context.Context, r *run) {
	tick := time.NewTicker(c.cfg.HeartbeatInterval)
	defer tick.Stop()
	owner := c.id
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ids := r.runningIDs()
		if len(ids) == 0 {
			continue
		}
		stmtCtx, cancel := service.Statement(ctx)
		rows, err := db.New(c.pool).Heartbeat(stmtCtx, db.HeartbeatParams{Now: ts(c.now()), Owner: &owner, Ids: ids})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !c.outage.Failed(err) {
				c.cfg.Logger.WarnContext(ctx, "keel jobs: heartbeat failed", "error", err)
			}
			continue
		}
		c.outage.Succeeded()
		for _, row := range rows {
			if row.CancelRequested {
				r.cancelRunning(row.ID)
			}
		}
	}
}

// Control notification payloads: "cancel:<job id>" and "resume:<queue>".
const (
	controlCancel = "cancel:"
	controlResume = "resume:"
)

func (c *Client) handleControl(r *run, payload string) {
	switch {
	case strings.HasPrefix(payload, controlCancel):
		if id, err := strconv.ParseInt(strings.TrimPrefix(payload, controlCancel), 10, 64); err == nil {
			r.cancelRunning(id)
		}
	case strings.HasPrefix(payload, controlResume):
		if q := r.queues[strings.TrimPrefix(payload, controlResume)]; q != nil {
			q.wakeUp()
		}
	}
}

// runningIDs lists the jobs whose handlers this client is running now or
// whose completion it has yet to write.
func (r *run) runningIDs() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]int64, 0, len(r.running)+len(r.completing))
	for id := range r.running {
		ids = append(ids, id)
	}
	for id := range r.completing {
		if r.running[id] == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

func (r *run) cancelRunning(id int64) {
	r.mu.Lock()
	rj := r.running[id]
	r.mu.Unlock()
	if rj != nil {
		rj.cancel(ErrCancelRequested)
	}
}
