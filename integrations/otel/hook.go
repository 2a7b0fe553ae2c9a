package keelotel

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/keeltype"
)

// ScopeName is the instrumentation scope of the hook's tracer and meter.
const ScopeName = "github.com/keelpg/keel/integrations/otel"

// Config configures a Hook. The zero value uses OpenTelemetry's global
// providers and W3C Trace Context.
type Config struct {
	// TracerProvider makes the hook's tracer. Default: otel's global
	// (otel.GetTracerProvider), read when NewHook is called.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the hook's meter. Default: otel's global
	// (otel.GetMeterProvider), read when NewHook is called.
	MeterProvider metric.MeterProvider
	// Propagator writes trace context into the rows keel stores and reads
	// it back. Every process of a service must use the same one. Default:
	// propagation.TraceContext{} (the "traceparent" and "tracestate"
	// entries of W3C Trace Context); add propagation.Baggage{} in a
	// composite to carry baggage too.
	Propagator propagation.TextMapPropagator
}

// Hook is a keeltype.Hook that traces keel's operations and records its
// metrics through OpenTelemetry. It is safe for concurrent use; make one
// per process and give it to keel.Config.Hook (or each component's Hook).
type Hook struct {
	tracer     trace.Tracer
	meter      metric.Meter
	propagator propagation.TextMapPropagator
	m          *instruments
}

var _ keeltype.Hook = (*Hook)(nil)

// NewHook returns a Hook on cfg's providers. It fails when the meter
// refuses one of the hook's instruments.
func NewHook(cfg Config) (*Hook, error) {
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.TraceContext{}
	}
	meter := cfg.MeterProvider.Meter(ScopeName)
	m, err := newInstruments(meter)
	if err != nil {
		return nil, fmt.Errorf("keelotel: %w", err)
	}
	return &Hook{tracer: cfg.TracerProvider.Tracer(ScopeName), meter: meter, propagator: cfg.Propagator, m: m}, nil
}

// Start implements keeltype.Hook: it starts the operation's span, puts the
// span's context in a write's Carrier, and returns the end that records the
// span's status and the operation's metrics.
func (h *Hook) Start(ctx context.Context, op keeltype.Operation) (context.Context, func(keeltype.Outcome)) {
	d := describe(op.Kind)
	opts := []trace.SpanStartOption{trace.WithSpanKind(d.spanKind), trace.WithAttributes(spanAttributes(d, op)...)}
	parent := ctx
	if d.reads && len(op.Carrier) > 0 {
		remote := h.propagator.Extract(ctx, propagation.MapCarrier(op.Carrier))
		if rsc := trace.SpanContextFromContext(remote); rsc.IsValid() && rsc.IsRemote() {
			parent = remote
			if local := trace.SpanContextFromContext(ctx); local.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: local}))
			}
		}
	}
	name := string(op.Kind)
	if d.nameInSpan && op.Name != "" {
		name += " " + op.Name
	}
	ctx, span := h.tracer.Start(parent, name, opts...)
	if d.writes && op.Carrier != nil {
		h.propagator.Inject(ctx, propagation.MapCarrier(op.Carrier))
	}
	start := time.Now()
	return ctx, func(o keeltype.Outcome) {
		end := time.Now()
		if o.State != "" {
			span.SetAttributes(attrState.String(o.State))
		}
		if o.Err != nil {
			span.RecordError(o.Err)
			span.SetStatus(codes.Error, o.Err.Error())
		}
		span.End(trace.WithTimestamp(end))
		h.m.record(ctx, op, o, start, end)
	}
}

// Measure implements keeltype.Hook: it records the measurement's metrics.
func (h *Hook) Measure(ctx context.Context, m keeltype.Measurement) {
	h.m.measure(ctx, m)
}

// The attributes of spans and metrics.
const (
	attrOperation    = attribute.Key("keel.operation")
	attrState        = attribute.Key("keel.state")
	attrOutcome      = attribute.Key("keel.outcome")
	attrAttempt      = attribute.Key("keel.attempt")
	attrCount        = attribute.Key("keel.count")
	attrJobKind      = attribute.Key("keel.job.kind")
	attrJobQueue     = attribute.Key("keel.job.queue")
	attrJobID        = attribute.Key("keel.job.id")
	attrTopic        = attribute.Key("keel.outbox.topic")
	attrMessageID    = attribute.Key("keel.outbox.message_id")
	attrStream       = attribute.Key("keel.events.stream")
	attrCategory     = attribute.Key("keel.events.category")
	attrSubscription = attribute.Key("keel.events.subscription")
	attrEventID      = attribute.Key("keel.events.event_id")
	attrWorkflow     = attribute.Key("keel.saga.workflow")
	attrStep         = attribute.Key("keel.saga.step")
	attrRunID        = attribute.Key("keel.saga.run_id")
	attrComponent    = attribute.Key("keel.component")
)

// kind is how the hook treats one OperationKind.
type kind struct {
	spanKind trace.SpanKind
	// nameKey and idKey are the attributes of Operation.Name and ID.
	nameKey, idKey attribute.Key
	// nameInSpan puts Name in the span's name: it is low-cardinality (a
	// job kind, a topic, a subscription, a workflow, a step), not a
	// stream id.
	nameInSpan bool
	// writes: the operation stores Carrier; reads: it hands back a stored
	// one.
	writes, reads bool
}

func describe(k keeltype.OperationKind) kind {
	switch k {
	case keeltype.OpJobInsert:
		return kind{spanKind: trace.SpanKindProducer, nameKey: attrJobKind, nameInSpan: true, writes: true}
	case keeltype.OpJobRun:
		return kind{spanKind: trace.SpanKindConsumer, nameKey: attrJobKind, idKey: attrJobID, nameInSpan: true, reads: true}
	case keeltype.OpOutboxEnqueue:
		return kind{spanKind: trace.SpanKindProducer, nameKey: attrTopic, nameInSpan: true, writes: true}
	case keeltype.OpOutboxPublish:
		return kind{spanKind: trace.SpanKindConsumer, nameKey: attrTopic, idKey: attrMessageID, nameInSpan: true, reads: true}
	case keeltype.OpEventsAppend:
		return kind{spanKind: trace.SpanKindProducer, nameKey: attrStream, writes: true}
	case keeltype.OpEventsHandle:
		return kind{spanKind: trace.SpanKindConsumer, nameKey: attrSubscription, idKey: attrEventID, nameInSpan: true, reads: true}
	case keeltype.OpSagaStart:
		return kind{spanKind: trace.SpanKindProducer, nameKey: attrWorkflow, idKey: attrRunID, nameInSpan: true, writes: true}
	case keeltype.OpSagaRun:
		return kind{spanKind: trace.SpanKindInternal, nameKey: attrWorkflow, idKey: attrRunID, nameInSpan: true}
	case keeltype.OpSagaStep:
		return kind{spanKind: trace.SpanKindInternal, nameKey: attrStep, idKey: attrRunID, nameInSpan: true}
	}
	return kind{spanKind: trace.SpanKindInternal, nameKey: "keel.name", idKey: "keel.id"}
}

// spanAttributes are everything the operation says, ids included.
func spanAttributes(d kind, op keeltype.Operation) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs, attrOperation.String(string(op.Kind)))
	if op.Name != "" {
		attrs = append(attrs, d.nameKey.String(op.Name))
	}
	if op.Kind == keeltype.OpEventsAppend {
		attrs = append(attrs, attrCategory.String(events.Category(op.Name)))
	}
	if op.ID != "" && d.idKey != "" {
		attrs = append(attrs, d.idKey.String(op.ID))
	}
	if op.Queue != "" {
		attrs = append(attrs, attrJobQueue.String(op.Queue))
	}
	if op.Attempt > 0 {
		attrs = append(attrs, attrAttempt.Int(op.Attempt))
	}
	if op.Count > 0 {
		attrs = append(attrs, attrCount.Int(op.Count))
	}
	return attrs
}

// outcome is the keel.outcome of o: "ok" or "error".
func outcome(o keeltype.Outcome) attribute.KeyValue {
	if o.Err != nil {
		return attrOutcome.String("error")
	}
	return attrOutcome.String("ok")
}
