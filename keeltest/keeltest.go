// Package keeltest helps an application test its own use of keel, like
// River's rivertest: assert, inside the transaction under test, that a job
// was inserted, an outbox message enqueued or an event appended; and run one
// job handler or one workflow to its end against a test database.
//
// The assertions take a testing.TB and read through the DBTX they are
// given, so they see what the caller's uncommitted transaction wrote. Each
// reports a failure with Errorf (and returns nil), so a test can make
// several assertions before it stops. They return keel's public types:
// *jobs.JobRow, *outbox.Message, *events.RecordedEvent.
package keeltest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
)

// maxRows bounds the rows an assertion reads.
const maxRows = 10000

// sameJSON reports whether two JSON documents are equal as values (key
// order and spacing aside).
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// JobInserted asserts that tx holds a job of args' kind whose arguments
// equal args (as JSON), read through tx with client, and returns the newest
// such job; otherwise it reports which jobs of the kind there are and
// returns nil.
func JobInserted(ctx context.Context, tb testing.TB, client *jobs.Client, tx keeltype.DBTX, args jobs.JobArgs) *jobs.JobRow {
	tb.Helper()
	want, err := json.Marshal(args)
	if err != nil {
		tb.Errorf("keeltest: encoding %T: %v", args, err)
		return nil
	}
	kind := args.Kind()
	rows, err := client.JobListTx(ctx, tx, &jobs.JobListParams{Kind: kind, Limit: maxRows})
	if err != nil {
		tb.Errorf("keeltest: listing jobs of kind %q: %v", kind, err)
		return nil
	}
	var seen []string
	for _, row := range rows {
		if sameJSON(row.EncodedArgs, want) {
			return row
		}
		seen = append(seen, string(row.EncodedArgs))
	}
	tb.Errorf("keeltest: no job of kind %q with args %s; jobs of that kind: [%s]", kind, want, strings.Join(seen, ", "))
	return nil
}

// Message is what OutboxEnqueued looks for; empty Key and nil Payload match
// any.
type Message struct {
	Topic   string
	Key     string
	Type    string
	Payload []byte
}

func (m Message) matches(r db.KeelOutbox) bool {
	key := ""
	if r.Key != nil {
		key = *r.Key
	}
	return r.Topic == m.Topic &&
		(m.Key == "" || key == m.Key) &&
		(m.Type == "" || r.Type == m.Type) &&
		(m.Payload == nil || sameJSON(r.Payload, m.Payload))
}

// OutboxEnqueued asserts that tx holds an outbox message with want's topic
// and, when set, its key, type and payload (compared as JSON when both are
// JSON), and returns it.
func OutboxEnqueued(ctx context.Context, tb testing.TB, tx keeltype.DBTX, want Message) *outbox.Message {
	tb.Helper()
	rows, err := db.New(tx).OutboxList(ctx, db.OutboxListParams{MaxRows: maxRows})
	if err != nil {
		tb.Errorf("keeltest: listing outbox messages: %v", err)
		return nil
	}
	var seen []string
	for i := range rows {
		if want.matches(rows[i]) {
			return message(rows[i])
		}
		if rows[i].Topic == want.Topic {
			key := ""
			if rows[i].Key != nil {
				key = *rows[i].Key
			}
			seen = append(seen, fmt.Sprintf("{key %q type %q payload %s}", key, rows[i].Type, rows[i].Payload))
		}
	}
	tb.Errorf("keeltest: no outbox message on topic %q with key %q, type %q, payload %s; on that topic: [%s]",
		want.Topic, want.Key, want.Type, want.Payload, strings.Join(seen, ", "))
	return nil
}

// EventAppended asserts that stream holds an event of eventType, read
// through tx with store, and returns the latest such event.
func EventAppended(ctx context.Context, tb testing.TB, store *events.Store, tx keeltype.DBTX, stream, eventType string) *events.RecordedEvent {
	tb.Helper()
	evs, err := store.ReadStream(ctx, tx, stream, &events.ReadOpts{Backward: true})
	if err != nil {
		tb.Errorf("keeltest: reading stream %q: %v", stream, err)
		return nil
	}
	var seen []string
	for i := range evs {
		if evs[i].Type == eventType {
			return &evs[i]
		}
		seen = append(seen, evs[i].Type)
	}
	tb.Errorf("keeltest: no %s event in stream %q; it has [%s]", eventType, stream, strings.Join(seen, ", "))
	return nil
}

// message is an outbox row as the outbox package shows it, NotBefore left
// zero (the row keeps only when the message is next due). Headers that are
// not a JSON object of strings (only a hand-written row holds such) read as
// none.
func message(r db.KeelOutbox) *outbox.Message {
	m := &outbox.Message{ID: r.ID, Topic: r.Topic, Type: r.Type, Payload: r.Payload}
	if r.Key != nil {
		m.Key = *r.Key
	}
	_ = json.Unmarshal(r.Headers, &m.Headers)
	return m
}
