package events_test

import (
	"context"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/hooktest"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
)

// The trace context a hook gives an Append is stored in the metadata of
// each of its events, beside the writer's metadata (a writer's own
// keel_trace is kept), entries Postgres cannot hold are dropped without
// failing the append, and a subscription hands each event's stored carrier
// back to the hook, in another store as another process would.
func TestCarrierTravelsInEventMetadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	pool := testdb.New(t)
	writes := &hooktest.Recorder{Inject: map[string]string{"traceparent": tp, "": "dropped"}}
	writer := newStore(t, pool, events.Config{Hook: writes})
	plain := ev("E", 1)
	withMeta := ev("E", 2)
	withMeta.Metadata = json.RawMessage(`{"user": "u1"}`)
	own := ev("E", 3)
	own.Metadata = json.RawMessage(`{"keel_trace": {"traceparent": "mine"}}`)
	res := appendTx(ctx, t, writer, pool, "order-1", events.Any, plain, withMeta, own)
	stored := map[string]string{"traceparent": tp}
	want := []map[string]string{stored, stored, {"traceparent": "mine"}}

	read, err := writer.ReadStream(ctx, pool, "order-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	type metadata struct {
		User    string            `json:"user"`
		Carrier map[string]string `json:"keel_trace"`
	}
	for i, e := range read {
		// What the store holds, and what Append said it wrote.
		for _, raw := range []json.RawMessage{e.Metadata, res.Events[i].Metadata} {
			var meta metadata
			if err := json.Unmarshal(raw, &meta); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(meta.Carrier, want[i]) || (i == 1) != (meta.User == "u1") {
				t.Errorf("event %d has metadata %s", i, raw)
			}
		}
	}

	handles := &hooktest.Recorder{}
	reader := newStore(t, pool, events.Config{Hook: handles})
	runSub(t, reader, events.SubscriptionConfig{Name: "traced", PollInterval: 20 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { return nil }})
	eventually(t, 30*time.Second, "the events handled", func() (bool, error) { return len(handles.Ended(keeltype.OpEventsHandle)) == 3, nil })
	ops := handles.Started(keeltype.OpEventsHandle)
	for i, op := range ops {
		if op.ID != res.Events[i].ID.String() || !maps.Equal(op.Carrier, want[i]) || op.Scheduled.IsZero() {
			t.Errorf("handle %d: id %s, carrier %v, scheduled %v", i, op.ID, op.Carrier, op.Scheduled)
		}
	}
}
