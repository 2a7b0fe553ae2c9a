package keelotel_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/keelpg/keel"
	keelotel "github.com/keelpg/keel/integrations/otel"
	"github.com/keelpg/keel/jobs"
)

type reportArgs struct {
	Month string `json:"month"`
}

func (reportArgs) Kind() string { return "monthly_report" }

// One Hook on the keel.Client traces every component: a job inserted in a
// request's transaction runs in a span whose parent is the insert's, read
// back from the job's row, so the request, the insert and the run are one
// trace — the same when the worker is another process.
func ExampleNewHook() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	spans := tracetest.NewSpanRecorder() // in a service: an OTLP exporter
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(ctx) }()
	hook, err := keelotel.NewHook(keelotel.Config{TracerProvider: tp})
	if err != nil {
		fmt.Println(err)
		return
	}

	ran := make(chan struct{})
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(context.Context, *jobs.Job[reportArgs]) error { close(ran); return nil }, nil)
	k, err := keel.New(pool, keel.Config{
		Hook: hook,
		Jobs: jobs.Config{Workers: workers, Queues: map[string]jobs.QueueConfig{"otel-example-trace": {}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := k.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	reqCtx, request := tp.Tracer("app").Start(ctx, "POST /reports")
	err = pgx.BeginFunc(reqCtx, pool, func(tx pgx.Tx) error {
		_, err := k.Jobs().Insert(reqCtx, tx, reportArgs{Month: "2025-06"}, &jobs.InsertOpts{Queue: "otel-example-trace"})
		return err
	})
	request.End()
	if err != nil {
		fmt.Println(err)
		return
	}
	<-ran
	if err := k.Stop(ctx); err != nil {
		fmt.Println(err)
		return
	}
	ended := spans.Ended()
	slices.SortFunc(ended, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	for _, s := range ended {
		fmt.Printf("%s (%s) in the request's trace: %v\n", s.Name(), s.SpanKind(), s.SpanContext().TraceID() == request.SpanContext().TraceID())
	}
	// Output:
	// POST /reports (internal) in the request's trace: true
	// jobs.insert monthly_report (producer) in the request's trace: true
	// jobs.run monthly_report (consumer) in the request's trace: true
}

// The hook's metrics served to Prometheus at /metrics through
// OpenTelemetry's Prometheus exporter: the names a scrape finds after one
// job ran.
func Example_prometheus() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		fmt.Println(err)
		return
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer func() { _ = mp.Shutdown(ctx) }()
	hook, err := keelotel.NewHook(keelotel.Config{MeterProvider: mp})
	if err != nil {
		fmt.Println(err)
		return
	}

	ran := make(chan struct{})
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(context.Context, *jobs.Job[reportArgs]) error { close(ran); return nil }, nil)
	client, err := jobs.NewClient(pool, jobs.Config{
		Workers: workers, Hook: hook, FetchPollInterval: 50 * time.Millisecond,
		Queues: map[string]jobs.QueueConfig{"otel-example-metrics": {}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := client.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := client.Insert(ctx, pool, reportArgs{Month: "2025-07"}, &jobs.InsertOpts{Queue: "otel-example-metrics"}); err != nil {
		fmt.Println(err)
		return
	}
	<-ran
	if err := client.Stop(ctx); err != nil {
		fmt.Println(err)
		return
	}

	server := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	defer server.Close()
	resp, err := http.Get(server.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if name, ok := strings.CutPrefix(lines.Text(), "# TYPE keel_"); ok {
			fmt.Println("keel_" + name)
		}
	}
	// Output:
	// keel_jobs_attempts_total counter
	// keel_jobs_claimed_total counter
	// keel_jobs_duration_seconds histogram
	// keel_jobs_inserted_total counter
	// keel_jobs_queue_latency_seconds histogram
}
