package keelotel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

type emailArgs struct {
	To string `json:"to"`
}

func (emailArgs) Kind() string { return "email" }

// twoPools opens two pools on one fresh database: two processes' worth.
func twoPools(t *testing.T) (*pgxpool.Pool, *pgxpool.Pool) {
	t.Helper()
	url := testdb.NewURL(t)
	return testdb.OpenSized(t, url, 8), testdb.OpenSized(t, url, 8)
}

// inTx runs fn in a transaction of pool that commits.
func inTx(t *testing.T, ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) {
	t.Helper()
	if err := pgx.BeginFunc(ctx, pool, fn); err != nil {
		t.Fatal(err)
	}
}

// A job inserted in a request's span runs, in another client on another
// pool, in a span whose parent is the insert's, read from the job's row:
// one trace from the request to the handler's own spans.
func TestJobTraceContinuesInAnotherClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	poolA, poolB := twoPools(t)
	a, b := newProcess(t), newProcess(t)

	inserter, err := jobs.NewClient(poolA, jobs.Config{Hook: a.hook})
	if err != nil {
		t.Fatal(err)
	}
	rctx, request := a.request(ctx)
	var job *jobs.JobRow
	inTx(t, rctx, poolA, func(tx pgx.Tx) error {
		job, err = inserter.Insert(rctx, tx, emailArgs{To: "a@example.com"}, nil)
		return err
	})
	request.End()

	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, j *jobs.Job[emailArgs]) error {
		_, span := b.tp.Tracer("test").Start(ctx, "handler")
		span.End()
		return nil
	}, nil)
	runner, err := jobs.NewClient(poolB, jobs.Config{Workers: workers, Hook: b.hook, FetchPollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = runner.StopAndCancel(context.Background()) })
	waitFor(t, "the job's run span", func() bool { return b.ended("jobs.run email") == 1 })

	req, insert := a.span(t, "request"), a.span(t, "jobs.insert email")
	run, handler := b.span(t, "jobs.run email"), b.span(t, "handler")
	childOf(t, insert, req, false)
	childOf(t, run, insert, true)
	childOf(t, handler, run, false)
	if insert.SpanKind() != trace.SpanKindProducer || run.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("span kinds: insert %s, run %s", insert.SpanKind(), run.SpanKind())
	}
	if attr(run, "keel.job.id") != strconv.FormatInt(job.ID, 10) || attr(run, "keel.state") != "completed" ||
		attr(run, "keel.job.queue") != jobs.DefaultQueue || attr(run, "keel.attempt") != "1" {
		t.Errorf("run span attributes: %v", run.Attributes())
	}
	row, err := runner.JobGet(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Carrier map[string]string `json:"keel_trace"`
	}
	if err := json.Unmarshal(row.Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	sc := insert.SpanContext()
	if want := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID()); meta.Carrier["traceparent"] != want {
		t.Errorf("the row stores %s, want traceparent %s", row.Metadata, want)
	}
}

// A failed attempt's span has an error status; its retry is another child
// of the same insert.
func TestJobRetriesShareTheInsertParent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := twoPools(t)
	p := newProcess(t)
	var once sync.Once
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(context.Context, *jobs.Job[emailArgs]) error {
		var err error
		once.Do(func() { err = errors.New("first attempt fails") })
		return err
	}, &jobs.WorkerOpts{RetryPolicy: keeltype.ExponentialBackoff{Initial: time.Millisecond}})
	c, err := jobs.NewClient(pool, jobs.Config{
		Workers: workers, Hook: p.hook, FetchPollInterval: 20 * time.Millisecond, MaintenanceInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.StopAndCancel(context.Background()) })
	if _, err := c.Insert(ctx, pool, emailArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two attempts", func() bool { return p.ended("jobs.run email") == 2 })
	insert := p.span(t, "jobs.insert email")
	var states []string
	for _, s := range p.spans.Ended() {
		if s.Name() != "jobs.run email" {
			continue
		}
		childOf(t, s, insert, true)
		states = append(states, fmt.Sprintf("%s %s %s", attr(s, "keel.attempt"), attr(s, "keel.state"), s.Status().Code))
	}
	if want := fmt.Sprint([]string{"1 retryable " + codes.Error.String(), "2 completed " + codes.Unset.String()}); fmt.Sprint(states) != want {
		t.Errorf("attempts %v, want %v", states, want)
	}
}

// A message enqueued in a request's span is published by a relay on
// another pool in a span whose parent is the enqueue's, and the Publisher
// receives the trace context as a header, for the broker.
func TestOutboxTraceContinuesInTheRelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	poolA, poolB := twoPools(t)
	a, b := newProcess(t), newProcess(t)
	box, err := outbox.New(poolA, outbox.Config{Hook: a.hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(box.Close)
	rctx, request := a.request(ctx)
	inTx(t, rctx, poolA, func(tx pgx.Tx) error {
		_, err := box.Enqueue(rctx, tx, outbox.Message{Topic: "orders", Payload: []byte("{}")}, outbox.Message{Topic: "orders", Payload: []byte("{}")})
		return err
	})
	request.End()

	var mu sync.Mutex
	var headers []map[string]string
	relay, err := outbox.NewRelay(poolB, outbox.PublisherFunc(func(_ context.Context, d outbox.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		headers = append(headers, d.Headers)
		return nil
	}), outbox.RelayConfig{Hook: b.hook})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := relay.RunOnce(ctx); err != nil || n != 2 {
		t.Fatalf("relay claimed %d: %v", n, err)
	}
	enqueue := a.span(t, "outbox.enqueue orders")
	childOf(t, enqueue, a.span(t, "request"), false)
	if attr(enqueue, "keel.count") != "2" || enqueue.SpanKind() != trace.SpanKindProducer {
		t.Errorf("enqueue span: %v %v", enqueue.SpanKind(), enqueue.Attributes())
	}
	publishes := b.spans.Ended()
	if len(publishes) != 2 {
		t.Fatalf("relay spans %v, want two publishes", names(publishes))
	}
	for _, s := range publishes {
		childOf(t, s, enqueue, true)
		if s.Name() != "outbox.publish orders" || attr(s, "keel.state") != "delivered" || s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("publish span %q: %v", s.Name(), s.Attributes())
		}
	}
	sc := enqueue.SpanContext()
	want := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())
	for _, h := range headers {
		if h["traceparent"] != want {
			t.Errorf("the publisher got headers %v, want traceparent %s", h, want)
		}
	}
}

// Events appended in a request's span are handled by a subscription of
// another store on another pool in spans whose parent is the append's.
func TestEventTraceContinuesInTheSubscription(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	poolA, poolB := twoPools(t)
	a, b := newProcess(t), newProcess(t)
	writer, err := events.NewStore(poolA, events.Config{Hook: a.hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(writer.Close)
	rctx, request := a.request(ctx)
	placed, err := events.NewEvent("OrderPlaced", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	paid, err := events.NewEvent("OrderPaid", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	inTx(t, rctx, poolA, func(tx pgx.Tx) error {
		_, err := writer.Append(rctx, tx, "order-1", events.NoStream, placed, paid)
		return err
	})
	request.End()

	reader, err := events.NewStore(poolB, events.Config{Hook: b.hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	sub, err := reader.NewSubscription(events.SubscriptionConfig{Name: "projector", PollInterval: 20 * time.Millisecond,
		Handler: func(ctx context.Context, _ pgx.Tx, ev events.RecordedEvent) error {
			_, span := b.tp.Tracer("test").Start(ctx, "project "+ev.Type)
			span.End()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
	waitFor(t, "both events handled", func() bool { return b.ended("events.handle projector") == 2 })

	appendSpan := a.span(t, "events.append")
	childOf(t, appendSpan, a.span(t, "request"), false)
	if attr(appendSpan, "keel.events.stream") != "order-1" || attr(appendSpan, "keel.events.category") != "order" {
		t.Errorf("append span attributes %v", appendSpan.Attributes())
	}
	handles := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range b.spans.Ended() {
		if s.Name() == "events.handle projector" {
			childOf(t, s, appendSpan, true)
			handles[s.SpanContext().SpanID().String()] = s
		}
	}
	for _, name := range []string{"project OrderPlaced", "project OrderPaid"} {
		s := b.span(t, name)
		if _, ok := handles[s.Parent().SpanID().String()]; !ok {
			t.Errorf("span %q is not a child of a handle span", name)
		}
	}
}

// A saga run started in a request's span executes, in an engine on another
// pool, under its start's span, and its steps under the execution's: one
// trace from the request to the steps' own spans.
func TestSagaTraceContinuesInTheEngine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	poolA, poolB := twoPools(t)
	a, b := newProcess(t), newProcess(t)
	reg := saga.NewRegistry()
	saga.Register(reg, "checkout", 1, func(wc saga.Context, order string) (string, error) {
		charged, err := saga.Step(wc, "charge", func(ctx context.Context) (string, error) {
			_, span := b.tp.Tracer("test").Start(ctx, "payment provider")
			span.End()
			return "charged " + order, nil
		}, nil)
		if err != nil {
			return "", err
		}
		return saga.Step(wc, "ship", func(context.Context) (string, error) { return charged + ", shipped", nil }, nil)
	})
	starter, err := saga.NewEngine(poolA, reg, saga.Config{Jobs: jobs.Config{Hook: a.hook}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, request := a.request(ctx)
	var run *saga.Run
	inTx(t, rctx, poolA, func(tx pgx.Tx) error {
		run, err = starter.StartRun(rctx, tx, "checkout", "o-1", nil)
		return err
	})
	request.End()

	engine, err := saga.NewEngine(poolB, reg, saga.Config{Jobs: jobs.Config{Hook: b.hook, FetchPollInterval: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.StopAndCancel(context.Background()) })
	done, err := engine.Await(ctx, run.ID)
	if err != nil || done.Status != saga.StatusSucceeded {
		t.Fatalf("run: %+v, %v", done, err)
	}
	waitFor(t, "the execution's job span", func() bool { return b.ended("jobs.run keel.saga.run") == 1 })

	start := a.span(t, "saga.start checkout")
	childOf(t, start, a.span(t, "request"), false)
	childOf(t, a.span(t, "jobs.insert keel.saga.run"), start, false)
	job := b.span(t, "jobs.run keel.saga.run")
	execution := b.span(t, "saga.run checkout")
	childOf(t, job, start, true)
	childOf(t, execution, job, false)
	childOf(t, b.span(t, "saga.step charge"), execution, false)
	childOf(t, b.span(t, "saga.step ship"), execution, false)
	childOf(t, b.span(t, "payment provider"), b.span(t, "saga.step charge"), false)
	if attr(execution, "keel.saga.run_id") != run.ID || attr(execution, "keel.state") != string(saga.StatusSucceeded) {
		t.Errorf("execution span attributes %v", execution.Attributes())
	}
}
