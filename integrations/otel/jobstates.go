package keelotel

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"

	"github.com/keelpg/keel/jobs"
)

// JobCounter counts the jobs in a state: a *jobs.Client does.
type JobCounter interface {
	JobCount(ctx context.Context, state jobs.JobState) (int64, error)
}

// ObserveJobs adds the gauge keel.jobs: how many jobs are in each of
// states (attribute keel.state), read from the database whenever the
// meter's readers collect. Each collection runs one count query per state
// through counter, so keep states few; the default, no states, means the
// states of jobs still to run or running (pending, scheduled, available,
// running, retryable) — final states grow without bound until retention
// deletes them. Call it in one process of a service: the counts are the
// database's, the same from every process. Unregister the returned
// Registration to stop it.
func (h *Hook) ObserveJobs(counter JobCounter, states ...jobs.JobState) (metric.Registration, error) {
	if counter == nil {
		return nil, errors.New("keelotel: ObserveJobs needs a JobCounter")
	}
	if len(states) == 0 {
		states = []jobs.JobState{jobs.StatePending, jobs.StateScheduled, jobs.StateAvailable, jobs.StateRunning, jobs.StateRetryable}
	}
	gauge, err := h.meter.Int64ObservableGauge("keel.jobs", metric.WithUnit("{job}"),
		metric.WithDescription("Jobs in the database, by state."))
	if err != nil {
		return nil, fmt.Errorf("keelotel: %w", err)
	}
	reg, err := h.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		var errs []error
		for _, s := range states {
			n, err := counter.JobCount(ctx, s)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			o.ObserveInt64(gauge, n, metric.WithAttributes(attrState.String(string(s))))
		}
		return errors.Join(errs...)
	}, gauge)
	if err != nil {
		return nil, fmt.Errorf("keelotel: %w", err)
	}
	return reg, nil
}
