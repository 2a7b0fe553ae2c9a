package outbox_test

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/google/uuid"

	"github.com/keelpg/keel/internal/hooktest"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// The trace context a hook gives an Enqueue is stored in the headers of
// each of its messages, beside the caller's headers and never over them;
// entries Postgres cannot hold are dropped without failing the Enqueue; the
// Publisher receives the stored headers and the hook hears of them again
// when each message is published.
func TestCarrierTravelsInHeaders(t *testing.T) {
	t.Parallel()
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	pool := testdb.New(t)
	hook := &hooktest.Recorder{Inject: map[string]string{"traceparent": tp, "tracestate": "k=v", "bad": "\xff"}}
	o, err := outbox.New(pool, outbox.Config{Hook: hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	plain := outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte{}}
	withHeaders := outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte{}, Headers: map[string]string{"x": "y"}}
	own := outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte{}, Headers: map[string]string{"traceparent": "mine"}}
	enqueue(t, pool, o, plain, withHeaders, own)
	if len(withHeaders.Headers) != 1 || len(own.Headers) != 1 {
		t.Fatalf("the caller's headers changed: %v, %v", withHeaders.Headers, own.Headers)
	}
	want := map[uuid.UUID]map[string]string{
		plain.ID:       {"traceparent": tp, "tracestate": "k=v"},
		withHeaders.ID: {"traceparent": tp, "tracestate": "k=v", "x": "y"},
		own.ID:         {"traceparent": "mine", "tracestate": "k=v"},
	}
	for id, h := range want {
		var stored map[string]string
		if err := json.Unmarshal(state(t, pool, id).Headers, &stored); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(stored, h) {
			t.Errorf("message %s stores headers %v, want %v", id, stored, h)
		}
	}

	rec := &recorder{}
	drain(t, newRelay(t, pool, rec, outbox.RelayConfig{Hook: hook}), nil)
	published := rec.published()
	if len(published) != 3 {
		t.Fatalf("%d published, want 3", len(published))
	}
	for _, d := range published {
		if !maps.Equal(d.Headers, want[d.ID]) {
			t.Errorf("the publisher got headers %v for %s, want %v", d.Headers, d.ID, want[d.ID])
		}
	}
	for _, op := range hook.Started(keeltype.OpOutboxPublish) {
		if !maps.Equal(op.Carrier, want[uuid.MustParse(op.ID)]) || op.Scheduled.IsZero() {
			t.Errorf("publish of %s: carrier %v, scheduled %v", op.ID, op.Carrier, op.Scheduled)
		}
	}
}
