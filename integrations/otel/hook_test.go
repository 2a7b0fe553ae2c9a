package keelotel_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/keelpg/keel/keeltype"
)

// A write's span is injected into its Carrier; work on the stored item is
// the write's child, linked to the span its own context holds; a carrier
// with no valid trace context leaves the work under its own context.
func TestStartCarrier(t *testing.T) {
	t.Parallel()
	p := newProcess(t)
	ctx, request := p.request(context.Background())
	carrier := map[string]string{}
	_, endInsert := p.hook.Start(ctx, keeltype.Operation{Kind: keeltype.OpJobInsert, Name: "email", Carrier: carrier})
	endInsert(keeltype.Outcome{})
	request.End()
	insert := p.span(t, "jobs.insert email")
	sc := insert.SpanContext()
	if want := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID()); carrier["traceparent"] != want || len(carrier) != 1 {
		t.Fatalf("carrier %v, want traceparent %s", carrier, want)
	}

	local, loop := p.tp.Tracer("test").Start(context.Background(), "worker loop")
	_, endRun := p.hook.Start(local, keeltype.Operation{Kind: keeltype.OpJobRun, Name: "email", ID: "1", Carrier: carrier})
	endRun(keeltype.Outcome{State: "completed"})
	_, endBad := p.hook.Start(local, keeltype.Operation{Kind: keeltype.OpOutboxPublish, Name: "t", Carrier: map[string]string{"traceparent": "garbage"}})
	endBad(keeltype.Outcome{State: "delivered"})
	loop.End()
	run := p.span(t, "jobs.run email")
	childOf(t, run, insert, true)
	if links := run.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != loop.SpanContext().SpanID() {
		t.Errorf("run links %v, want the worker loop's span", links)
	}
	childOf(t, p.span(t, "outbox.publish t"), p.span(t, "worker loop"), false)
}
