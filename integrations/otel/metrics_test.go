package keelotel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// metric returns the metric called name, or false.
func metric(rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// matches reports whether set holds every attribute of want.
func matches(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// intValue adds the points of the int64 sum or gauge name whose attributes
// hold want.
func intValue(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) int64 {
	m, _ := metric(rm, name)
	var points []metricdata.DataPoint[int64]
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	}
	var n int64
	for _, p := range points {
		if matches(p.Attributes, want) {
			n += p.Value
		}
	}
	return n
}

// floatGauge is the value of the float64 gauge name whose attributes hold
// want, and whether there is one.
func floatGauge(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) (float64, bool) {
	m, _ := metric(rm, name)
	g, _ := m.Data.(metricdata.Gauge[float64])
	for _, p := range g.DataPoints {
		if matches(p.Attributes, want) {
			return p.Value, true
		}
	}
	return 0, false
}

// histogram adds the counts and sums of the histogram name's points whose
// attributes hold want.
func histogram(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) (count uint64, sum float64) {
	m, _ := metric(rm, name)
	h, _ := m.Data.(metricdata.Histogram[float64])
	for _, p := range h.DataPoints {
		if matches(p.Attributes, want) {
			count += p.Count
			sum += p.Sum
		}
	}
	return count, sum
}

// After 5 jobs complete and 3 fail their only attempt, the counters say
// exactly that and every attempt is in the histograms.
func TestJobMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	p := newProcess(t)
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(_ context.Context, j *jobs.Job[emailArgs]) error {
		if j.Args.To == "bad" {
			return errors.New("mailbox full")
		}
		return nil
	}, nil)
	c, err := jobs.NewClient(pool, jobs.Config{Workers: workers, Hook: p.hook, FetchPollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var params []jobs.InsertManyParams
	for range 3 {
		params = append(params, jobs.InsertManyParams{Args: emailArgs{To: "bad"}, Opts: &jobs.InsertOpts{MaxAttempts: 1}})
	}
	if _, err := c.InsertMany(ctx, pool, params); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := c.Insert(ctx, pool, emailArgs{To: "good"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.StopAndCancel(context.Background()) })
	var rm metricdata.ResourceMetrics
	waitFor(t, "eight attempts recorded", func() bool {
		rm = p.collect(t)
		return intValue(rm, "keel.jobs.attempts") == 8
	})
	email := attribute.String("keel.job.kind", "email")
	queue := attribute.String("keel.job.queue", jobs.DefaultQueue)
	for _, tc := range []struct {
		state string
		want  int64
	}{{"completed", 5}, {"discarded", 3}} {
		state := attribute.String("keel.state", tc.state)
		if got := intValue(rm, "keel.jobs.attempts", email, queue, state); got != tc.want {
			t.Errorf("keel.jobs.attempts{%s} = %d, want %d", tc.state, got, tc.want)
		}
		if got, _ := histogram(rm, "keel.jobs.duration", email, state); got != uint64(tc.want) {
			t.Errorf("keel.jobs.duration{%s} counts %d, want %d", tc.state, got, tc.want)
		}
	}
	if got, _ := histogram(rm, "keel.jobs.queue_latency", email, queue); got != 8 {
		t.Errorf("keel.jobs.queue_latency counts %d, want 8", got)
	}
	if got := intValue(rm, "keel.jobs.inserted"); got != 8 {
		t.Errorf("keel.jobs.inserted = %d, want 8", got)
	}
	if got := intValue(rm, "keel.jobs.inserted", email, queue); got != 5 {
		t.Errorf("keel.jobs.inserted by Insert = %d, want 5", got)
	}
	if got := intValue(rm, "keel.jobs.claimed", queue); got != 8 {
		t.Errorf("keel.jobs.claimed = %d, want 8", got)
	}
}

// A relay that delivers three messages and fails one (its last attempt)
// counts each outcome, times every attempt and the latency of each
// delivery, and reports the outbox's lag, zero once nothing waits.
func TestOutboxMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	p := newProcess(t)
	box, err := outbox.New(pool, outbox.Config{Hook: p.hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(box.Close)
	msg := func(topic string) outbox.Message { return outbox.Message{Topic: topic, Payload: []byte{}} }
	if _, err := box.Enqueue(ctx, pool, msg("orders"), msg("orders"), msg("orders"), msg("audit")); err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(pool, outbox.PublisherFunc(func(_ context.Context, d outbox.Delivery) error {
		if d.Topic == "audit" {
			return errors.New("broker refused")
		}
		return nil
	}), outbox.RelayConfig{Hook: p.hook, MaxAttempts: 1, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop(context.Background()) })
	var rm metricdata.ResourceMetrics
	waitFor(t, "four publishes and a lag of zero", func() bool {
		rm = p.collect(t)
		lag, ok := floatGauge(rm, "keel.outbox.lag")
		return intValue(rm, "keel.outbox.published") == 4 && ok && lag == 0
	})
	orders, audit := attribute.String("keel.outbox.topic", "orders"), attribute.String("keel.outbox.topic", "audit")
	delivered, failed := attribute.String("keel.state", "delivered"), attribute.String("keel.state", "failed")
	if got := intValue(rm, "keel.outbox.published", orders, delivered); got != 3 {
		t.Errorf("orders delivered %d, want 3", got)
	}
	if got := intValue(rm, "keel.outbox.published", audit, failed); got != 1 {
		t.Errorf("audit failed %d, want 1", got)
	}
	if got := intValue(rm, "keel.outbox.enqueued"); got != 4 {
		t.Errorf("keel.outbox.enqueued = %d, want 4", got)
	}
	if got, _ := histogram(rm, "keel.outbox.publish.duration"); got != 4 {
		t.Errorf("keel.outbox.publish.duration counts %d, want 4", got)
	}
	if got, _ := histogram(rm, "keel.outbox.publish.latency", orders); got != 3 {
		t.Errorf("keel.outbox.publish.latency counts %d, want 3", got)
	}
	if got, _ := histogram(rm, "keel.outbox.publish.latency", audit); got != 0 {
		t.Errorf("keel.outbox.publish.latency counts %d failed deliveries", got)
	}
}

// Three appended events handled by a subscription, one of them failing
// once: the counts and the lag say so.
func TestEventMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	p := newProcess(t)
	store, err := events.NewStore(pool, events.Config{Hook: p.hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	e1, _ := events.NewEvent("A", 1)
	e2, _ := events.NewEvent("B", 2)
	e3, _ := events.NewEvent("C", 3)
	if _, err := store.Append(ctx, pool, "order-1", events.Any, e1, e2); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, pool, "invoice-1", events.Any, e3); err != nil {
		t.Fatal(err)
	}
	failedOnce := false
	sub, err := store.NewSubscription(events.SubscriptionConfig{
		Name: "projector", PollInterval: 20 * time.Millisecond, BatchSize: 1,
		RetryPolicy: keeltype.ExponentialBackoff{Initial: time.Millisecond},
		Handler: func(_ context.Context, _ pgx.Tx, ev events.RecordedEvent) error {
			if ev.Type == "B" && !failedOnce {
				failedOnce = true
				return errors.New("projection busy")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
	projector := attribute.String("keel.events.subscription", "projector")
	var rm metricdata.ResourceMetrics
	waitFor(t, "three events handled and no lag", func() bool {
		rm = p.collect(t)
		lag := intValue(rm, "keel.events.subscription.lag", projector)
		_, hasAge := floatGauge(rm, "keel.events.subscription.age", projector)
		return intValue(rm, "keel.events.handled", attribute.String("keel.outcome", "ok")) == 3 && lag == 0 && hasAge
	})
	if got := intValue(rm, "keel.events.handled", projector, attribute.String("keel.outcome", "error")); got != 1 {
		t.Errorf("failed handlings %d, want 1", got)
	}
	if got, _ := histogram(rm, "keel.events.handle.duration", projector); got != 4 {
		t.Errorf("keel.events.handle.duration counts %d, want 4", got)
	}
	if got := intValue(rm, "keel.events.appended", attribute.String("keel.events.category", "order")); got != 2 {
		t.Errorf("order events appended %d, want 2", got)
	}
	if got := intValue(rm, "keel.events.appended"); got != 3 {
		t.Errorf("events appended %d, want 3", got)
	}
}

// A run of two steps counts one succeeding execution and times each step.
func TestSagaMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	p := newProcess(t)
	reg := saga.NewRegistry()
	saga.Register(reg, "checkout", 1, func(wc saga.Context, order string) (string, error) {
		if _, err := saga.Step(wc, "charge", func(context.Context) (string, error) { return "ok", nil }, nil); err != nil {
			return "", err
		}
		return saga.Step(wc, "ship", func(context.Context) (string, error) { return "ok", nil }, nil)
	})
	engine, err := saga.NewEngine(pool, reg, saga.Config{Jobs: jobs.Config{Hook: p.hook, FetchPollInterval: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.StopAndCancel(context.Background()) })
	run, err := engine.StartRun(ctx, pool, "checkout", "o-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if done, err := engine.Await(ctx, run.ID); err != nil || done.Status != saga.StatusSucceeded {
		t.Fatalf("run: %+v, %v", done, err)
	}
	checkout := attribute.String("keel.saga.workflow", "checkout")
	var rm metricdata.ResourceMetrics
	waitFor(t, "the execution recorded", func() bool {
		rm = p.collect(t)
		return intValue(rm, "keel.saga.executions", checkout) == 1
	})
	if got := intValue(rm, "keel.saga.executions", checkout, attribute.String("keel.state", "succeeded")); got != 1 {
		t.Errorf("succeeded executions %d, want 1", got)
	}
	if got, _ := histogram(rm, "keel.saga.execution.duration", checkout); got != 1 {
		t.Errorf("keel.saga.execution.duration counts %d, want 1", got)
	}
	for _, step := range []string{"charge", "ship"} {
		if got, _ := histogram(rm, "keel.saga.step.duration", attribute.String("keel.saga.step", step), attribute.String("keel.outcome", "ok")); got != 1 {
			t.Errorf("keel.saga.step.duration{%s} counts %d, want 1", step, got)
		}
	}
}

// An outage's start counts it and makes it active; its end records how
// long it lasted.
func TestOutageMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProcess(t)
	relay := attribute.String("keel.component", "outbox relay")
	begin := keeltype.Outage{Component: "outbox relay", Start: time.Now(), Failures: 1, Err: errors.New("connection refused")}
	p.hook.Measure(ctx, keeltype.Measurement{Kind: keeltype.MeasureOutage, Name: begin.Component, Outage: &begin})
	rm := p.collect(t)
	if got, active := intValue(rm, "keel.outages", relay), intValue(rm, "keel.outages.active", relay); got != 1 || active != 1 {
		t.Errorf("during: %d outages, %d active; want 1 and 1", got, active)
	}
	over := begin
	over.Over, over.Duration, over.Failures = true, 3*time.Second, 4
	p.hook.Measure(ctx, keeltype.Measurement{Kind: keeltype.MeasureOutage, Name: over.Component, Outage: &over})
	rm = p.collect(t)
	if got, active := intValue(rm, "keel.outages", relay), intValue(rm, "keel.outages.active", relay); got != 1 || active != 0 {
		t.Errorf("after: %d outages, %d active; want 1 and 0", got, active)
	}
	if count, sum := histogram(rm, "keel.outage.duration", relay); count != 1 || sum != 3 {
		t.Errorf("keel.outage.duration: %d, sum %v; want 1 of 3s", count, sum)
	}
}

// ObserveJobs reports the jobs in each state as the database holds them,
// at every collection, until it is unregistered.
func TestObserveJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	p := newProcess(t)
	c, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := p.hook.ObserveJobs(c)
	if err != nil {
		t.Fatal(err)
	}
	state := func(s jobs.JobState) attribute.KeyValue { return attribute.String("keel.state", string(s)) }
	rm := p.collect(t)
	if got := intValue(rm, "keel.jobs", state(jobs.StateAvailable)); got != 0 {
		t.Errorf("available before any insert: %d", got)
	}
	for range 2 {
		if _, err := c.Insert(ctx, pool, emailArgs{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Insert(ctx, pool, emailArgs{}, &jobs.InsertOpts{Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	rm = p.collect(t)
	want := map[jobs.JobState]int64{jobs.StateAvailable: 2, jobs.StateScheduled: 1, jobs.StatePending: 0, jobs.StateRunning: 0, jobs.StateRetryable: 0}
	for s, n := range want {
		if got := intValue(rm, "keel.jobs", state(s)); got != n {
			t.Errorf("keel.jobs{%s} = %d, want %d", s, got, n)
		}
	}
	if m, _ := metric(rm, "keel.jobs"); len(m.Data.(metricdata.Gauge[int64]).DataPoints) != len(want) {
		t.Errorf("keel.jobs has %d points, want %d", len(m.Data.(metricdata.Gauge[int64]).DataPoints), len(want))
	}
	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	if _, ok := metric(p.collect(t), "keel.jobs"); ok {
		t.Error("keel.jobs still observed after Unregister")
	}
	if _, err := p.hook.ObserveJobs(nil); err == nil {
		t.Error("ObserveJobs(nil) did not fail")
	}
}
