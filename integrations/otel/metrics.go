package keelotel

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/keeltype"
)

// instruments are the hook's metrics; doc.go lists them.
type instruments struct {
	jobsInserted     metric.Int64Counter
	jobAttempts      metric.Int64Counter
	jobDuration      metric.Float64Histogram
	jobQueueLatency  metric.Float64Histogram
	jobsClaimed      metric.Int64Counter
	outboxEnqueued   metric.Int64Counter
	outboxPublished  metric.Int64Counter
	publishDuration  metric.Float64Histogram
	publishLatency   metric.Float64Histogram
	outboxLag        metric.Float64Gauge
	eventsAppended   metric.Int64Counter
	eventsHandled    metric.Int64Counter
	handleDuration   metric.Float64Histogram
	subscriptionLag  metric.Int64Gauge
	subscriptionAge  metric.Float64Gauge
	sagaExecutions   metric.Int64Counter
	executionSeconds metric.Float64Histogram
	stepDuration     metric.Float64Histogram
	outages          metric.Int64Counter
	outagesActive    metric.Int64UpDownCounter
	outageDuration   metric.Float64Histogram
}

func newInstruments(m metric.Meter) (*instruments, error) {
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	// Bounds in seconds, from a millisecond handler to a five-minute
	// queue wait.
	buckets := metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
	seconds := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), buckets)
		errs = append(errs, err)
		return h
	}
	gauge := func(name, desc string) metric.Float64Gauge {
		g, err := m.Float64Gauge(name, metric.WithUnit("s"), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	in := &instruments{
		jobsInserted:     counter("keel.jobs.inserted", "{job}", "Jobs inserted."),
		jobAttempts:      counter("keel.jobs.attempts", "{attempt}", "Job attempts ended, by the state each left its job in."),
		jobDuration:      seconds("keel.jobs.duration", "How long a job's handler ran, per attempt."),
		jobQueueLatency:  seconds("keel.jobs.queue_latency", "From when a job was due to run until an attempt began."),
		jobsClaimed:      counter("keel.jobs.claimed", "{job}", "Jobs claimed by workers."),
		outboxEnqueued:   counter("keel.outbox.enqueued", "{message}", "Outbox messages enqueued."),
		outboxPublished:  counter("keel.outbox.published", "{message}", "Outbox publish attempts, by outcome (delivered, failed, released)."),
		publishDuration:  seconds("keel.outbox.publish.duration", "How long a publish attempt took, the Publisher's call included."),
		publishLatency:   seconds("keel.outbox.publish.latency", "From a message's enqueue until it was delivered."),
		outboxLag:        gauge("keel.outbox.lag", "Age of the oldest undelivered outbox message."),
		eventsAppended:   counter("keel.events.appended", "{event}", "Events appended."),
		eventsHandled:    counter("keel.events.handled", "{event}", "Events handled by subscriptions, by outcome."),
		handleDuration:   seconds("keel.events.handle.duration", "How long a subscription's handler took for one event."),
		sagaExecutions:   counter("keel.saga.executions", "{execution}", "Executions of saga runs, by the run's state after each."),
		executionSeconds: seconds("keel.saga.execution.duration", "How long an execution of a saga run took."),
		stepDuration:     seconds("keel.saga.step.duration", "How long a saga step took, all its attempts."),
		outages:          counter("keel.outages", "{outage}", "Database outages a component saw begin."),
		outageDuration:   seconds("keel.outage.duration", "How long a component's database outage lasted."),
		subscriptionAge:  gauge("keel.events.subscription.age", "Time since the newest event a subscription handled was recorded."),
	}
	var err error
	in.subscriptionLag, err = m.Int64Gauge("keel.events.subscription.lag", metric.WithUnit("{event}"),
		metric.WithDescription("Feed positions a subscription is behind the head."))
	errs = append(errs, err)
	in.outagesActive, err = m.Int64UpDownCounter("keel.outages.active", metric.WithUnit("{outage}"),
		metric.WithDescription("Database outages going on now, by component."))
	errs = append(errs, err)
	return in, errors.Join(errs...)
}

// record records an operation's metrics as it ends.
func (in *instruments) record(ctx context.Context, op keeltype.Operation, o keeltype.Outcome, start, end time.Time) {
	took := end.Sub(start).Seconds()
	ok := o.Err == nil
	switch op.Kind {
	case keeltype.OpJobInsert:
		if ok {
			in.jobsInserted.Add(ctx, int64(op.Count), metric.WithAttributeSet(jobAttrs(op)))
		}
	case keeltype.OpJobRun:
		kindQueue := jobAttrs(op)
		withState := metric.WithAttributes(append(kindQueue.ToSlice(), attrState.String(o.State))...)
		in.jobAttempts.Add(ctx, 1, withState)
		in.jobDuration.Record(ctx, took, withState)
		if !op.Scheduled.IsZero() {
			in.jobQueueLatency.Record(ctx, max(start.Sub(op.Scheduled).Seconds(), 0), metric.WithAttributeSet(kindQueue))
		}
	case keeltype.OpOutboxEnqueue:
		if ok {
			in.outboxEnqueued.Add(ctx, int64(op.Count))
		}
	case keeltype.OpOutboxPublish:
		topic := attrTopic.String(op.Name)
		withState := metric.WithAttributes(topic, attrState.String(o.State))
		in.outboxPublished.Add(ctx, 1, withState)
		in.publishDuration.Record(ctx, took, withState)
		if ok && !op.Scheduled.IsZero() {
			in.publishLatency.Record(ctx, max(end.Sub(op.Scheduled).Seconds(), 0), metric.WithAttributes(topic))
		}
	case keeltype.OpEventsAppend:
		if ok {
			in.eventsAppended.Add(ctx, int64(op.Count), metric.WithAttributes(attrCategory.String(events.Category(op.Name))))
		}
	case keeltype.OpEventsHandle:
		attrs := metric.WithAttributes(attrSubscription.String(op.Name), outcome(o))
		in.eventsHandled.Add(ctx, 1, attrs)
		in.handleDuration.Record(ctx, took, attrs)
	case keeltype.OpSagaRun:
		kv := []attribute.KeyValue{attrWorkflow.String(op.Name), outcome(o)}
		if o.State != "" { // empty when the execution stopped
			kv = append(kv, attrState.String(o.State))
		}
		attrs := metric.WithAttributes(kv...)
		in.sagaExecutions.Add(ctx, 1, attrs)
		in.executionSeconds.Record(ctx, took, attrs)
	case keeltype.OpSagaStep:
		in.stepDuration.Record(ctx, took, metric.WithAttributes(attrStep.String(op.Name), outcome(o)))
	}
}

// jobAttrs are a job operation's kind and queue, where it has them.
func jobAttrs(op keeltype.Operation) attribute.Set {
	attrs := make([]attribute.KeyValue, 0, 2)
	if op.Name != "" {
		attrs = append(attrs, attrJobKind.String(op.Name))
	}
	if op.Queue != "" {
		attrs = append(attrs, attrJobQueue.String(op.Queue))
	}
	return attribute.NewSet(attrs...)
}

// measure records a measurement.
func (in *instruments) measure(ctx context.Context, m keeltype.Measurement) {
	switch m.Kind {
	case keeltype.MeasureJobsClaimed:
		in.jobsClaimed.Add(ctx, m.Value, metric.WithAttributes(attrJobQueue.String(m.Name)))
	case keeltype.MeasureOutboxLag:
		in.outboxLag.Record(ctx, m.Age.Seconds())
	case keeltype.MeasureSubscriptionLag:
		sub := metric.WithAttributes(attrSubscription.String(m.Name))
		in.subscriptionLag.Record(ctx, m.Value, sub)
		in.subscriptionAge.Record(ctx, m.Age.Seconds(), sub)
	case keeltype.MeasureOutage:
		if m.Outage == nil {
			return
		}
		component := metric.WithAttributes(attrComponent.String(m.Outage.Component))
		if !m.Outage.Over {
			in.outages.Add(ctx, 1, component)
			in.outagesActive.Add(ctx, 1, component)
			return
		}
		in.outagesActive.Add(ctx, -1, component)
		in.outageDuration.Record(ctx, m.Outage.Duration.Seconds(), component)
	}
}
