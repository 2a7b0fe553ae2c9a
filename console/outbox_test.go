package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/outbox"
)

// outboxSeed is what seedOutbox leaves in a database.
type outboxSeed struct {
	orders  []outbox.Message // dead: a JSON payload with headers
	mail    []outbox.Message // dead: a text payload
	binary  outbox.Message   // dead: a payload that is not UTF-8
	bulk    []outbox.Message // dead, 55 of them: more than a page
	sent    []outbox.Message // delivered, 52 of them: more than a page
	waiting outbox.Message   // pending, not before an hour from now
}

// seedOutbox enqueues messages through the outbox's API, kills most with a
// relay whose publisher always fails and whose MaxAttempts is 1, and
// delivers others with a relay whose publisher never fails.
func seedOutbox(t *testing.T, pool *pgxpool.Pool) outboxSeed {
	t.Helper()
	ctx := context.Background()
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(box.Close)
	enqueue := func(msgs ...outbox.Message) []outbox.Message {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := box.Enqueue(ctx, tx, msgs...)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	relay := func(pub outbox.PublisherFunc) {
		t.Helper()
		r, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		for {
			n, err := r.RunOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
		}
	}
	var s outboxSeed
	for i := range 3 {
		s.orders = append(s.orders, outbox.Message{Topic: "orders", Key: fmt.Sprintf("order-%d", i), Type: "OrderPlaced",
			Payload: []byte(fmt.Sprintf(`{"order":%d,"note":"<b>bold</b>"}`, i)), Headers: map[string]string{"tenant": "acme"}})
	}
	s.orders = enqueue(s.orders...)
	s.mail = enqueue(outbox.Message{Topic: "mail", Type: "Welcome", Payload: []byte("hello <you>")},
		outbox.Message{Topic: "mail", Type: "Welcome", Payload: []byte("hello again")})
	s.binary = enqueue(outbox.Message{Topic: "binary", Payload: []byte{0xff, 0xfe, 0x00, 0x01}})[0]
	for i := range 55 {
		s.bulk = append(s.bulk, outbox.Message{Topic: "bulk", Payload: []byte(fmt.Sprint(i))})
	}
	s.bulk = enqueue(s.bulk...)
	relay(func(context.Context, outbox.Delivery) error {
		return errors.New("broker unreachable: dial tcp 10.0.0.7:9092\ngoroutine 7 [running]")
	})
	for i := range 52 {
		s.sent = append(s.sent, outbox.Message{Topic: "sent", Payload: []byte(fmt.Sprint(i))})
	}
	s.sent = enqueue(s.sent...)
	relay(func(context.Context, outbox.Delivery) error { return nil })
	s.waiting = enqueue(outbox.Message{Topic: "orders", Key: "order-9", Payload: []byte(`{}`), NotBefore: time.Now().Add(time.Hour)})[0]
	return s
}

func outboxState(t *testing.T, pool *pgxpool.Pool, id uuid.UUID) db.KeelOutboxState {
	t.Helper()
	row, err := db.New(pool).OutboxGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return row.State
}

func TestOutboxList(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	s := seedOutbox(t, pool)
	b := open(t, pool, Config{})

	var v OutboxPage
	if status := b.json("/outbox", &v); status != http.StatusOK {
		t.Fatalf("GET /api/outbox: %d", status)
	}
	topics := map[string]OutboxTopic{}
	for _, tp := range v.Topics {
		topics[tp.Topic] = tp
	}
	if len(topics) != 4 || topics["orders"].Dead != 3 || topics["orders"].Pending != 1 || topics["orders"].OldestPending == nil ||
		topics["mail"].Dead != 2 || topics["bulk"].Dead != 55 || topics["binary"].Dead != 1 {
		t.Fatalf("topics %+v; want orders (3 dead, 1 pending), mail (2), binary (1), bulk (55)", v.Topics)
	}
	if v.State != "dead" || len(v.Messages) != outboxPageSize || v.Older == 0 {
		t.Fatalf("the default list: state %q, %d messages, older %d; want a full page of dead letters", v.State, len(v.Messages), v.Older)
	}
	if m := v.Messages[0]; m.ID != s.bulk[54].ID || m.LastError != "broker unreachable: dial tcp 10.0.0.7:9092" || m.Attempts != 1 {
		t.Fatalf("newest dead letter %+v; want the last bulk message with the first line of its error", m)
	}

	t.Run("pages", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			state, topic string
			total        int
		}{
			{"dead", "", 61},
			{"dead", "bulk", 55},
			{"delivered", "", 52},
			{"pending", "", 1},
		} {
			seen := map[uuid.UUID]bool{}
			var last int64
			path := "/outbox" + string(query("state", tc.state, "topic", tc.topic))
			for pages := 0; path != ""; pages++ {
				var page OutboxPage
				if status := b.json(path, &page); status != http.StatusOK || pages > 3 {
					t.Fatalf("GET /api%s: %d after %d pages", path, status, pages)
				}
				for _, m := range page.Messages {
					if seen[m.ID] || m.State != tc.state || (tc.topic != "" && m.Topic != tc.topic) {
						t.Fatalf("%s: message %+v twice or out of the filter", path, m)
					}
					if tc.state != "delivered" && last != 0 && m.Seq >= last {
						t.Fatalf("%s: seq %d after %d: not newest first", path, m.Seq, last)
					}
					seen[m.ID], last = true, m.Seq
				}
				path = ""
				if page.Older != 0 {
					path = "/outbox" + string(query("state", tc.state, "topic", tc.topic, "before", page.Older))
				}
			}
			if len(seen) != tc.total {
				t.Errorf("state %s topic %q: %d messages over the pages, want %d", tc.state, tc.topic, len(seen), tc.total)
			}
		}
	})

	t.Run("html", func(t *testing.T) {
		t.Parallel()
		html := b.page("/outbox?topic=orders")
		for _, want := range []string{`data-topic="mail"`, `data-message="` + s.orders[0].ID.String() + `"`, "broker unreachable: dial tcp 10.0.0.7:9092",
			`action="/outbox/requeue"`, `action="/outbox/` + s.orders[0].ID.String() + `/requeue"`, `name="topic" value="orders"`} {
			if !strings.Contains(html, want) {
				t.Errorf("outbox page lacks %q", want)
			}
		}
		if strings.Contains(html, "goroutine 7") || strings.Contains(html, s.mail[0].ID.String()) {
			t.Error("the list shows more than the error's first line, or a message of another topic")
		}
		if html := b.page("/outbox?state=delivered"); !strings.Contains(html, s.sent[51].ID.String()) || !strings.Contains(html, "Older messages") {
			t.Error("the delivered list lacks the last message delivered or its older link")
		}
	})

	t.Run("bad filters", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/outbox?state=gone", "/outbox?before=0", "/outbox?before=x", "/outbox?topic=%ff", "/outbox?topic=" + strings.Repeat("t", 256)} {
			if status := b.json(path, nil); status != http.StatusBadRequest {
				t.Errorf("GET /api%s: %d, want 400", path, status)
			}
			if status, _, _ := b.do(http.MethodGet, path, nil, nil); status != http.StatusBadRequest {
				t.Errorf("GET %s: %d, want 400", path, status)
			}
		}
	})
}

func TestOutboxMessage(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	s := seedOutbox(t, pool)
	b := open(t, pool, Config{})

	var m OutboxMessageDetail
	if status := b.json("/outbox/"+s.orders[1].ID.String(), &m); status != http.StatusOK {
		t.Fatalf("GET message: %d", status)
	}
	wantPayload := "{\n  \"order\": 1,\n  \"note\": \"<b>bold</b>\"\n}"
	if m.ID != s.orders[1].ID || m.Topic != "orders" || m.Key != "order-1" || m.Type != "OrderPlaced" || m.State != "dead" ||
		m.PayloadEncoding != "json" || m.Payload != wantPayload || m.Headers["tenant"] != "acme" {
		t.Fatalf("message %+v", m)
	}
	if len(m.Errors) != 1 || m.Errors[0].Attempt != 1 || !strings.Contains(m.Errors[0].Error, "goroutine 7") ||
		!strings.Contains(m.LastError, "goroutine 7") {
		t.Fatalf("errors %+v, last error %q; want the whole error of the one attempt", m.Errors, m.LastError)
	}
	for _, tc := range []struct {
		msg      outbox.Message
		encoding string
		payload  string
	}{
		{s.mail[0], "text", "hello <you>"},
		{s.binary, "base64", "//4AAQ=="},
	} {
		var got OutboxMessageDetail
		b.json("/outbox/"+tc.msg.ID.String(), &got)
		if got.PayloadEncoding != tc.encoding || got.Payload != tc.payload || got.PayloadBytes != len(tc.msg.Payload) {
			t.Errorf("payload %q shown as %s %q (%d bytes), want %s %q", tc.msg.Payload, got.PayloadEncoding, got.Payload, got.PayloadBytes, tc.encoding, tc.payload)
		}
	}

	html := b.page("/outbox/" + s.orders[1].ID.String())
	for _, want := range []string{"&lt;b&gt;bold&lt;/b&gt;", "tenant", "acme", "goroutine 7", "OrderPlaced", `/requeue"`} {
		if !strings.Contains(html, want) {
			t.Errorf("message page lacks %q", want)
		}
	}
	if strings.Contains(html, "<b>bold</b>") {
		t.Error("the payload is not escaped")
	}
	if html := b.page("/outbox/" + s.sent[0].ID.String()); strings.Contains(html, `/requeue"`) {
		t.Error("a delivered message's page offers a requeue")
	}

	for path, want := range map[string]int{
		"/outbox/" + uuid.NewString(): http.StatusNotFound,
		"/outbox/not-a-uuid":          http.StatusBadRequest,
	} {
		if status := b.json(path, nil); status != want {
			t.Errorf("GET /api%s: %d, want %d", path, status, want)
		}
		if status, _, _ := b.do(http.MethodGet, path, nil, nil); status != want {
			t.Errorf("GET %s: %d, want %d", path, status, want)
		}
	}
}

func TestOutboxRequeue(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	s := seedOutbox(t, pool)
	b := open(t, pool, Config{})

	id := s.orders[0].ID.String()
	status, hdr, body := b.submit("/outbox/"+id+"/requeue", nil)
	if status != http.StatusSeeOther || hdr.Get("Location") != "/outbox/"+id {
		t.Fatalf("requeue: %d to %q; %s", status, hdr.Get("Location"), body)
	}
	if st := outboxState(t, pool, s.orders[0].ID); st != db.KeelOutboxStatePending {
		t.Fatalf("requeued message is %s, want pending", st)
	}
	var res OutboxRequeued
	if status := b.call("/outbox/"+s.orders[1].ID.String()+"/requeue", nil, &res); status != http.StatusOK || res.Requeued != 1 || *res.ID != s.orders[1].ID {
		t.Fatalf("API requeue: %d %+v", status, res)
	}
	for path, want := range map[string]int{
		"/outbox/" + id + "/requeue":               http.StatusConflict, // pending now: not dead
		"/outbox/" + uuid.NewString() + "/requeue": http.StatusNotFound,
		"/outbox/nope/requeue":                     http.StatusBadRequest,
	} {
		if status := b.call(path, nil, nil); status != want {
			t.Errorf("POST /api%s: %d, want %d", path, status, want)
		}
	}

	// Every dead letter of one topic, and of no other.
	status, hdr, body = b.submit("/outbox/requeue", url.Values{"topic": {"mail"}})
	if status != http.StatusSeeOther || hdr.Get("Location") != "/outbox?state=pending&topic=mail" {
		t.Fatalf("requeue mail: %d to %q; %s", status, hdr.Get("Location"), body)
	}
	for _, m := range s.mail {
		if st := outboxState(t, pool, m.ID); st != db.KeelOutboxStatePending {
			t.Errorf("mail message is %s after requeueing topic mail", st)
		}
	}
	for _, m := range append([]outbox.Message{s.orders[2], s.binary}, s.bulk...) {
		if st := outboxState(t, pool, m.ID); st != db.KeelOutboxStateDead {
			t.Fatalf("%s message is %s after requeueing topic mail", m.Topic, st)
		}
	}
	if status := b.call("/outbox/requeue", url.Values{"topic": {"bulk"}}, &res); status != http.StatusOK || res.Requeued != 55 || res.Topic != "bulk" {
		t.Fatalf("API requeue of topic bulk: %d %+v", status, res)
	}
	if status := b.call("/outbox/requeue", url.Values{"topic": {"a\x00b"}}, nil); status != http.StatusBadRequest {
		t.Errorf("requeue of a topic with a NUL byte: %d, want 400", status)
	}
	if status := b.call("/outbox/requeue", nil, &res); status != http.StatusOK || res.Requeued != 2 {
		t.Fatalf("API requeue of every topic: %d %+v; want the 2 dead letters left", status, res)
	}
	if st := outboxState(t, pool, s.binary.ID); st != db.KeelOutboxStatePending {
		t.Errorf("binary message is %s after requeueing every topic", st)
	}
}

// TestOutboxActionsAreGuarded: requeueing every dead letter asks first,
// and a read-only console requeues nothing and shows no form that posts.
func TestOutboxActionsAreGuarded(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	s := seedOutbox(t, pool)

	b := open(t, pool, Config{})
	status, _, body := b.do(http.MethodPost, "/outbox/requeue", strings.NewReader(url.Values{"csrf": {b.csrf()}, "topic": {"mail"}}.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if status != http.StatusOK || !strings.Contains(body, `name="confirm" value="yes"`) || !strings.Contains(body, `name="topic" value="mail"`) {
		t.Fatalf("unconfirmed requeue of every dead letter: %d, want the page that asks; %s", status, body)
	}

	ro := open(t, pool, Config{ReadOnly: true})
	for _, path := range []string{"/outbox/requeue", "/outbox/" + s.mail[0].ID.String() + "/requeue"} {
		if status, _, _ := ro.submit(path, url.Values{"topic": {"mail"}}); status != http.StatusForbidden {
			t.Errorf("read-only POST %s: %d, want 403", path, status)
		}
		if status := ro.call(path, nil, nil); status != http.StatusForbidden {
			t.Errorf("read-only POST /api%s: %d, want 403", path, status)
		}
	}
	for _, path := range []string{"/outbox", "/outbox/" + s.mail[0].ID.String()} {
		if strings.Contains(ro.page(path), `method="post"`) {
			t.Errorf("read-only page %s shows a form that posts", path)
		}
	}
	for _, m := range s.mail {
		if st := outboxState(t, pool, m.ID); st != db.KeelOutboxStateDead {
			t.Fatalf("a refused or unconfirmed requeue left a mail message %s", st)
		}
	}
}
