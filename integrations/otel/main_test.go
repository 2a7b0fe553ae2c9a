package keelotel_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	keelotel "github.com/keelpg/keel/integrations/otel"
	"github.com/keelpg/keel/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// process is what one process of a service has: its tracer provider, the
// spans it ended, its meter's reader and the hook on both.
type process struct {
	tp     *sdktrace.TracerProvider
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	hook   *keelotel.Hook
}

func newProcess(t *testing.T) *process {
	t.Helper()
	p := &process{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	p.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(p.reader))
	t.Cleanup(func() {
		_ = p.tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	hook, err := keelotel.NewHook(keelotel.Config{TracerProvider: p.tp, MeterProvider: mp, Propagator: propagation.TraceContext{}})
	if err != nil {
		t.Fatal(err)
	}
	p.hook = hook
	return p
}

// request starts the span of a request the test makes.
func (p *process) request(ctx context.Context) (context.Context, trace.Span) {
	return p.tp.Tracer("test").Start(ctx, "request")
}

// span returns the ended span called name, failing the test unless there
// is exactly one.
func (p *process) span(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range p.spans.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans called %q ended, want 1 (of %s)", len(found), name, names(p.spans.Ended()))
	}
	return found[0]
}

// ended counts the ended spans called name.
func (p *process) ended(name string) int {
	n := 0
	for _, s := range p.spans.Ended() {
		if s.Name() == name {
			n++
		}
	}
	return n
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name()
	}
	return out
}

// childOf fails the test unless child's parent is parent, in the same
// trace; remote says whether the parent must be another process's.
func childOf(t *testing.T, child, parent sdktrace.ReadOnlySpan, remote bool) {
	t.Helper()
	pc, cc := parent.SpanContext(), child.Parent()
	if cc.TraceID() != pc.TraceID() || cc.SpanID() != pc.SpanID() || child.SpanContext().TraceID() != pc.TraceID() {
		t.Errorf("span %q has parent %s/%s, want %q (%s/%s)", child.Name(), cc.TraceID(), cc.SpanID(), parent.Name(), pc.TraceID(), pc.SpanID())
	}
	if cc.IsRemote() != remote {
		t.Errorf("span %q: parent remote = %v, want %v", child.Name(), cc.IsRemote(), remote)
	}
}

// attr returns a span's attribute as a string; "" when it has none.
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// waitFor polls cond until it holds or a minute passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// collect reads the process's metrics.
func (p *process) collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := p.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}
