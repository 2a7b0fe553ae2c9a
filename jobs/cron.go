package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/robfig/cron/v3"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
)

// PeriodicJob is a job inserted on a cron schedule. Every client that has it
// in Config.PeriodicJobs takes part, and each tick is inserted exactly once
// among them: the tick is recorded in keel.job_schedules in the same
// transaction as the job, and a tick already recorded is skipped.
type PeriodicJob struct {
	// Name identifies the schedule across processes; give every client the
	// same name for the same schedule. 1 to 255 bytes of UTF-8, no NUL.
	Name string
	// Schedule is a cron expression as robfig/cron/v3 parses it: five fields
	// (minute hour day-of-month month day-of-week), or six with seconds
	// first, or a descriptor such as "@hourly" or "@every 10m".
	Schedule string
	// Args returns the job to insert for a tick. The options' UniqueKey is
	// set to one per tick.
	Args func() (JobArgs, *InsertOpts)
	// RunOnStart: when a client starts and the most recent tick (looking
	// back up to 24 hours, or to the last recorded tick) was missed, insert
	// it at once.
	RunOnStart bool
}

// catchUpWindow is how far back RunOnStart looks for a missed tick.
const catchUpWindow = 24 * time.Hour

type schedule struct {
	job   PeriodicJob
	sched cron.Schedule
}

func newSchedule(pj PeriodicJob) (*schedule, error) {
	if err := validate.Name("periodic job name", pj.Name, validate.MaxName); err != nil {
		return nil, invalid(err)
	}
	if pj.Args == nil {
		return nil, fmt.Errorf("%w: periodic job %q: nil Args", ErrInvalidOptions, pj.Name)
	}
	parser := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	sched, err := parser.Parse(pj.Schedule)
	if err != nil {
		return nil, fmt.Errorf("%w: periodic job %q: schedule %q: %w", ErrInvalidOptions, pj.Name, pj.Schedule, err)
	}
	return &schedule{job: pj, sched: sched}, nil
}

// checkSchedules makes sure every periodic job's args can be inserted.
func (c *Client) checkSchedules() error {
	names := map[string]bool{}
	for _, s := range c.schedules {
		if names[s.job.Name] {
			return fmt.Errorf("%w: two periodic jobs named %q", ErrInvalidOptions, s.job.Name)
		}
		names[s.job.Name] = true
		args, opts := s.job.Args()
		if _, err := c.prepare(args, opts, c.now()); err != nil {
			return fmt.Errorf("periodic job %q: %w", s.job.Name, err)
		}
	}
	return nil
}

func (c *Client) scheduleLoop(ctx context.Context, s *schedule) {
	if s.job.RunOnStart {
		if err := c.catchUp(ctx, s); err != nil && ctx.Err() == nil {
			c.cfg.Logger.WarnContext(ctx, "keel jobs: periodic job catch-up failed", "name", s.job.Name, "error", err)
		}
	}
	next := s.sched.Next(c.now())
	for {
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		if _, err := c.enqueueTick(ctx, s, next); err != nil && ctx.Err() == nil {
			c.cfg.Logger.WarnContext(ctx, "keel jobs: inserting periodic job", "name", s.job.Name, "tick", next, "error", err)
		}
		next = s.sched.Next(next)
		if now := c.now(); next.Before(now) { // fell behind: skip to the next tick to come
			next = s.sched.Next(now)
		}
	}
}

// catchUp inserts the most recent tick if it was missed.
func (c *Client) catchUp(ctx context.Context, s *schedule) error {
	now := c.now()
	from := now.Add(-catchUpWindow)
	last, err := db.New(c.pool).ScheduleLastTick(ctx, s.job.Name)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return err
	case last.Time.After(from):
		from = last.Time
	}
	tick, ok := latestTick(s.sched, from, now)
	if !ok {
		return nil
	}
	_, err = c.enqueueTick(ctx, s, tick)
	return err
}

// latestTick is the last tick after from and not after now.
func latestTick(sched cron.Schedule, from, now time.Time) (time.Time, bool) {
	t := sched.Next(from)
	if t.IsZero() || t.After(now) {
		return time.Time{}, false
	}
	for {
		n := sched.Next(t)
		if n.IsZero() || n.After(now) {
			return t, true
		}
		t = n
	}
}

// enqueueTick inserts the schedule's job for tick unless some client already
// did; it reports whether this call inserted it.
func (c *Client) enqueueTick(ctx context.Context, s *schedule, tick time.Time) (bool, error) {
	args, opts := s.job.Args()
	var o InsertOpts
	if opts != nil {
		o = *opts
	}
	o.UniqueKey = fmt.Sprintf("periodic:%s:%s", s.job.Name, tick.UTC().Format(time.RFC3339Nano))
	inserted := false
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		_, err := db.New(tx).ClaimScheduleTick(ctx, db.ClaimScheduleTickParams{Name: s.job.Name, Tick: ts(tick)})
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // another client has this tick, or a later one
		}
		if err != nil {
			return err
		}
		if _, err := c.Insert(ctx, tx, args, &o); err != nil {
			return err
		}
		inserted = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("keel jobs: periodic job %q, tick %s: %w", s.job.Name, tick, err)
	}
	return inserted, nil
}
