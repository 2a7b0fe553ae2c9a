package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

// seedEvents appends, through the event store's API, events whose feed
// positions are:
//
//	1, 2  order-1 v1, v2     6      gone-1 v1 (tombstoned)   12…71  bulk-1 v1…v60 (one append)
//	3     order-2 v1         7…10   trunc-1 v1…v4 (v1, v2 truncated)
//	4     user-7 v1          11     odd/path-1 v1
//	5     order-1 v3
//
// so 68 of the 71 events are visible.
func seedEvents(t *testing.T, pool *pgxpool.Pool) *events.Store {
	t.Helper()
	ctx := context.Background()
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	add := func(stream string, n int, typ string) {
		t.Helper()
		evs := make([]events.EventData, n)
		for i := range evs {
			evs[i] = events.EventData{Type: typ, Data: json.RawMessage(fmt.Sprintf(`{"stream":%q,"i":%d,"note":"<i>x</i>"}`, stream, i)),
				Metadata: json.RawMessage(`{"user":"ops"}`), CorrelationID: "corr-1"}
		}
		if _, err := store.Append(ctx, pool, stream, events.Any, evs...); err != nil {
			t.Fatal(err)
		}
	}
	add("order-1", 2, "OrderPlaced")
	add("order-2", 1, "OrderPlaced")
	add("user-7", 1, "UserJoined")
	add("order-1", 1, "OrderShipped")
	add("gone-1", 1, "Gone")
	add("trunc-1", 4, "Counted")
	add("odd/path-1", 1, "Odd")
	add("bulk-1", 60, "Bulk")
	if err := store.Tombstone(ctx, pool, "gone-1", events.Any); err != nil {
		t.Fatal(err)
	}
	if err := store.TruncateBefore(ctx, pool, "trunc-1", 3); err != nil {
		t.Fatal(err)
	}
	if err := store.Sequence(ctx); err != nil {
		t.Fatal(err)
	}
	return store
}

func positions(evs []FeedEvent) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Position
	}
	return out
}

func TestEventFeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := seedEvents(t, pool)
	b := open(t, pool, Config{})

	var v EventsPage
	if status := b.json("/events", &v); status != http.StatusOK {
		t.Fatalf("GET /api/events: %d", status)
	}
	if v.Head != 71 || len(v.Events) != eventsPageSize || v.Events[0].Position != 71 || v.Events[49].Position != 22 || v.Older != 22 {
		t.Fatalf("first page: head %d, positions %v, older %d; want 71 down to 22", v.Head, positions(v.Events), v.Older)
	}
	if e := v.Events[0]; e.StreamID != "bulk-1" || e.Version != 60 || e.Type != "Bulk" || e.RecordedAt.IsZero() {
		t.Fatalf("newest event %+v", e)
	}
	if len(v.Streams) != 1 || v.Streams[0] != "bulk-1" {
		t.Fatalf("streams of the first page %v, want bulk-1", v.Streams)
	}
	var older EventsPage
	b.json("/events?before=22", &older)
	want := "[21 20 19 18 17 16 15 14 13 12 11 10 9 5 4 3 2 1]" // 6 (deleted stream), 7 and 8 (truncated) left out
	if got := fmt.Sprint(positions(older.Events)); got != want || older.Older != 0 {
		t.Fatalf("second page %s, older %d; want %s and no older page", got, older.Older, want)
	}
	if got := strings.Join(older.Streams, " "); got != "bulk-1 odd/path-1 trunc-1 order-1 user-7 order-2" {
		t.Fatalf("streams of the second page: %s", got)
	}
	// A page that starts inside an append (bulk-1's 60 events are one).
	var mid EventsPage
	b.json("/events?before=30", &mid)
	if len(mid.Events) != 26 || mid.Events[0].Position != 29 || mid.Events[0].Version != 18 {
		t.Fatalf("page before 30: %v", positions(mid.Events))
	}

	var cat EventsPage
	b.json("/events?category=order", &cat)
	if got := fmt.Sprint(positions(cat.Events)); got != "[5 3 2 1]" || cat.Category != "order" || strings.Join(cat.Streams, " ") != "order-1 order-2" {
		t.Fatalf("category order: %s, streams %v", got, cat.Streams)
	}
	b.json("/events?category=order&before=3", &cat)
	if got := fmt.Sprint(positions(cat.Events)); got != "[2 1]" {
		t.Fatalf("category order before 3: %s", got)
	}
	b.json("/events?category=nothing", &cat)
	if len(cat.Events) != 0 || cat.Head != 71 {
		t.Fatalf("a category with no stream: %+v", cat)
	}

	html := b.page("/events")
	for _, want := range []string{`data-position="71"`, `href="/events/streams/bulk-1"`, `action="/events/streams"`, `name="category"`} {
		if !strings.Contains(html, want) {
			t.Errorf("events page lacks %q", want)
		}
	}
	if html := b.page("/events?before=22"); !strings.Contains(html, `href="/events/streams/odd%2Fpath-1"`) {
		t.Error("events page does not escape a stream id's '/' in its link")
	}

	for _, path := range []string{"/events?category=order-1", "/events?category=%ff", "/events?before=0", "/events?before=-3", "/events?before=x"} {
		if status := b.json(path, nil); status != http.StatusBadRequest {
			t.Errorf("GET /api%s: %d, want 400", path, status)
		}
	}

	// An append the sequencer has not reached is counted, not listed.
	if _, err := store.Append(ctx, pool, "late-1", events.Any, events.EventData{Type: "Late", Data: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	b.json("/events", &v)
	if v.Unsequenced != 1 || v.Head != 71 || v.Events[0].Position != 71 {
		t.Fatalf("with an append waiting: unsequenced %d, head %d, newest %d", v.Unsequenced, v.Head, v.Events[0].Position)
	}
	if !strings.Contains(b.page("/events"), "appends waiting for a position") {
		t.Error("events page does not say that appends wait for a position")
	}
}

func TestEventStream(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	seedEvents(t, pool)
	b := open(t, pool, Config{})

	var v StreamPage
	if status := b.json("/events/streams/order-1", &v); status != http.StatusOK {
		t.Fatalf("GET stream: %d", status)
	}
	if v.Stream.ID != "order-1" || v.Stream.Version != 3 || v.Stream.Category != "order" || v.Stream.Deleted || len(v.Events) != 3 || v.Older != 0 {
		t.Fatalf("stream order-1: %+v", v)
	}
	e := v.Events[0]
	var data, meta map[string]any
	if err := json.Unmarshal(e.Data, &data); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(e.Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	if e.Version != 3 || e.Position != 5 || e.Type != "OrderShipped" || e.CorrelationID != "corr-1" || meta["user"] != "ops" ||
		data["stream"] != "order-1" || data["note"] != "<i>x</i>" {
		t.Fatalf("newest event of order-1: %+v (data %s, metadata %s)", e, e.Data, e.Metadata)
	}
	var byQuery StreamPage
	if status := b.json("/events/streams?id=order-1", &byQuery); status != http.StatusOK || len(byQuery.Events) != 3 {
		t.Fatalf("GET stream by query: %d, %d events", status, len(byQuery.Events))
	}
	html := b.page("/events/streams/order-1")
	for _, want := range []string{"OrderShipped", "&lt;i&gt;x&lt;/i&gt;", "position 5", `href="/events?category=order"`, "metadata"} {
		if !strings.Contains(html, want) {
			t.Errorf("stream page lacks %q", want)
		}
	}

	var odd StreamPage
	if status := b.json("/events/streams/odd%2Fpath-1", &odd); status != http.StatusOK || odd.Stream.ID != "odd/path-1" || len(odd.Events) != 1 {
		t.Fatalf("stream with a '/': %d %+v", status, odd)
	}

	var bulk, rest StreamPage
	b.json("/events/streams/bulk-1", &bulk)
	if len(bulk.Events) != eventsPageSize || bulk.Events[0].Version != 60 || bulk.Events[0].Position != 71 || bulk.Older != 11 {
		t.Fatalf("bulk-1 first page: %d events from version %d, older %d", len(bulk.Events), bulk.Events[0].Version, bulk.Older)
	}
	b.json("/events/streams/bulk-1?before=11", &rest)
	if len(rest.Events) != 10 || rest.Events[0].Version != 10 || rest.Events[9].Version != 1 || rest.Events[9].Position != 12 || rest.Older != 0 {
		t.Fatalf("bulk-1 second page: %+v", rest.Events)
	}
	if !strings.Contains(b.page("/events/streams/bulk-1"), `href="/events/streams/bulk-1?before=11"`) {
		t.Error("stream page lacks its older link")
	}

	var gone StreamPage
	if status := b.json("/events/streams/gone-1", &gone); status != http.StatusOK || !gone.Stream.Deleted || gone.Stream.DeletedAt == nil || len(gone.Events) != 0 {
		t.Fatalf("tombstoned stream: %d %+v", status, gone)
	}
	if !strings.Contains(b.page("/events/streams/gone-1"), "no read returns them") {
		t.Error("a tombstoned stream's page does not say so")
	}
	var trunc StreamPage
	b.json("/events/streams/trunc-1", &trunc)
	if trunc.Stream.TruncatedBefore != 3 || len(trunc.Events) != 2 || trunc.Events[1].Version != 3 {
		t.Fatalf("truncated stream: %+v", trunc)
	}

	for path, want := range map[string]int{
		"/events/streams/order-404":                          http.StatusNotFound,
		"/events/streams":                                    http.StatusBadRequest,
		"/events/streams/order-1?before=x":                   http.StatusBadRequest,
		"/events/streams/" + strings.Repeat("s", 1025):       http.StatusBadRequest,
		"/events/streams?id=" + url.QueryEscape("bad\xffid"): http.StatusBadRequest,
	} {
		if status := b.json(path, nil); status != want {
			t.Errorf("GET /api%s: %d, want %d", path, status, want)
		}
		if status, _, _ := b.do(http.MethodGet, path, nil, nil); status != want {
			t.Errorf("GET %s: %d, want %d", path, status, want)
		}
	}
}

// parkSubscription runs a subscription to category order whose handler
// always fails, until it parks, and stops it.
func parkSubscription(t *testing.T, store *events.Store, name string) {
	t.Helper()
	ctx := context.Background()
	sub, err := store.NewSubscription(events.SubscriptionConfig{
		Name: name, Category: "order", MaxAttempts: 1, PollInterval: 20 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error {
			return errors.New("projection table missing\n\tat projector.go:12")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := store.SubscriptionGet(ctx, name)
		if err == nil && info.Parked {
			break
		}
		if err != nil && !errors.Is(err, events.ErrSubscriptionNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription %s did not park", name)
		}
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// catchUp runs a subscription to the whole feed whose handler never fails
// until it has handled every event, and stops it.
func catchUp(t *testing.T, store *events.Store, name string, head int64) {
	t.Helper()
	ctx := context.Background()
	sub, err := store.NewSubscription(events.SubscriptionConfig{
		Name: name, PollInterval: 20 * time.Millisecond,
		Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if info, err := store.SubscriptionGet(ctx, name); err == nil && info.Position == head {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription %s did not catch up", name)
		}
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := seedEvents(t, pool)
	parkSubscription(t, store, "projector")
	catchUp(t, store, "audit", 71)
	b := open(t, pool, Config{})

	var v Subscriptions
	if status := b.json("/events/subscriptions", &v); status != http.StatusOK {
		t.Fatalf("GET subscriptions: %d", status)
	}
	if len(v.Subscriptions) != 2 {
		t.Fatalf("subscriptions %+v, want projector and audit", v.Subscriptions)
	}
	p, a := v.Subscriptions[0], v.Subscriptions[1]
	if p.Name != "projector" || p.Status != "parked" || p.Category != "order" || p.Position != 0 || p.Behind != 4 || p.LagSeconds <= 0 ||
		p.FailedPosition != 1 || p.Attempts != 1 || p.LastError != "projection table missing\n\tat projector.go:12" {
		t.Fatalf("parked subscription first: %+v", p)
	}
	if a.Name != "audit" || a.Status != "active" || a.Category != "" || a.Position != 71 || a.Behind != 0 || a.LastError != "" {
		t.Fatalf("caught-up subscription: %+v", a)
	}
	html := b.page("/events/subscriptions")
	for _, want := range []string{`data-subscription="projector"`, "<details>", "at projector.go:12", "at position 1: projection table missing",
		`action="/events/subscriptions/projector/resume"`, `action="/events/subscriptions/audit/reset"`, `name="position"`} {
		if !strings.Contains(html, want) {
			t.Errorf("subscriptions page lacks %q", want)
		}
	}
	if strings.Contains(html, `action="/events/subscriptions/audit/resume"`) {
		t.Error("an active subscription is offered a resume")
	}

	status, hdr, body := b.submit("/events/subscriptions/projector/resume", nil)
	if status != http.StatusSeeOther || hdr.Get("Location") != "/events/subscriptions" {
		t.Fatalf("resume: %d to %q; %s", status, hdr.Get("Location"), body)
	}
	if info, err := store.SubscriptionGet(ctx, "projector"); err != nil || info.Parked || info.LastError != "" {
		t.Fatalf("after resume: %+v, %v", info, err)
	}

	var res SubscriptionAction
	if status := b.call("/events/subscriptions/audit/reset", url.Values{"position": {"3"}}, &res); status != http.StatusOK || *res.Position != 3 {
		t.Fatalf("API reset to 3: %d %+v", status, res)
	}
	if info, _ := store.SubscriptionGet(ctx, "audit"); info.Position != 3 {
		t.Fatalf("audit at %d after a reset to 3", info.Position)
	}
	if status, _, body := b.submit("/events/subscriptions/audit/reset", nil); status != http.StatusSeeOther {
		t.Fatalf("reset with the default position: %d %s", status, body)
	}
	if info, _ := store.SubscriptionGet(ctx, "audit"); info.Position != 0 {
		t.Fatalf("audit at %d after a reset with the default position, want 0", info.Position)
	}
	b.json("/events/subscriptions", &v)
	if v.Subscriptions[0].Name != "audit" || v.Subscriptions[0].Behind != 71 {
		t.Fatalf("after the reset: %+v", v.Subscriptions)
	}

	for _, tc := range []struct {
		path string
		form url.Values
		want int
	}{
		{"/events/subscriptions/audit/reset", url.Values{"position": {"-1"}}, http.StatusBadRequest},
		{"/events/subscriptions/audit/reset", url.Values{"position": {"two"}}, http.StatusBadRequest},
		{"/events/subscriptions/nobody/reset", nil, http.StatusNotFound},
		{"/events/subscriptions/nobody/resume", nil, http.StatusNotFound},
		{"/events/subscriptions/" + strings.Repeat("n", 256) + "/resume", nil, http.StatusBadRequest},
	} {
		if status := b.call(tc.path, tc.form, nil); status != tc.want {
			t.Errorf("POST /api%s %v: %d, want %d", tc.path, tc.form, status, tc.want)
		}
		if status, _, _ := b.submit(tc.path, tc.form); status != tc.want {
			t.Errorf("POST %s %v: %d, want %d", tc.path, tc.form, status, tc.want)
		}
	}
	if info, _ := store.SubscriptionGet(ctx, "audit"); info.Position != 0 {
		t.Fatalf("a refused reset moved audit to %d", info.Position)
	}
}

// TestSubscriptionActionsAreGuarded: a reset asks first, and a read-only
// console resets and resumes nothing and shows no form that posts.
func TestSubscriptionActionsAreGuarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	store := seedEvents(t, pool)
	parkSubscription(t, store, "projector")

	b := open(t, pool, Config{})
	status, _, body := b.do(http.MethodPost, "/events/subscriptions/projector/reset",
		strings.NewReader(url.Values{"csrf": {b.csrf()}, "position": {"4"}}.Encode()), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if status != http.StatusOK || !strings.Contains(body, `name="confirm" value="yes"`) || !strings.Contains(body, `name="position" value="4"`) {
		t.Fatalf("unconfirmed reset: %d, want the page that asks; %s", status, body)
	}

	ro := open(t, pool, Config{ReadOnly: true})
	for _, path := range []string{"/events/subscriptions/projector/reset", "/events/subscriptions/projector/resume"} {
		if status, _, _ := ro.submit(path, url.Values{"position": {"4"}}); status != http.StatusForbidden {
			t.Errorf("read-only POST %s: %d, want 403", path, status)
		}
		if status := ro.call(path, url.Values{"position": {"4"}}, nil); status != http.StatusForbidden {
			t.Errorf("read-only POST /api%s: %d, want 403", path, status)
		}
	}
	for _, path := range []string{"/events", "/events/subscriptions", "/events/streams/order-1"} {
		if strings.Contains(ro.page(path), `method="post"`) {
			t.Errorf("read-only page %s shows a form that posts", path)
		}
	}
	if info, err := store.SubscriptionGet(ctx, "projector"); err != nil || !info.Parked || info.Position != 0 {
		t.Fatalf("a refused or unconfirmed action changed the subscription: %+v, %v", info, err)
	}
}
