package console

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
)

// eventsPageSize is how many events one page of the feed or of a stream
// shows.
const eventsPageSize = 50

func (h *Handler) eventRoutes(mux *http.ServeMux) {
	h.page(mux, "/events", "events", h.eventFeed)
	h.page(mux, "/events/streams", "stream", h.stream)
	h.page(mux, "/events/streams/{id...}", "stream", h.stream)
	h.page(mux, "/events/subscriptions", "subscriptions", h.subscriptionList)
	h.action(mux, "/events/subscriptions/{name}/reset", confirm("Reset this subscription? Its handler runs again for every event after the new position."), h.subscriptionReset)
	h.action(mux, "/events/subscriptions/{name}/resume", nil, h.subscriptionResume)
}

// EventsPage is what the events page shows: the newest events of the
// global feed or of one category, newest first, and the streams they
// belong to.
type EventsPage struct {
	// Category is the filter; empty for the whole feed.
	Category string `json:"category,omitempty"`
	// Head is the feed's newest position.
	Head int64 `json:"head"`
	// Unsequenced counts appends waiting for the sequencer to give their
	// events positions; they are not in the feed yet. A number that keeps
	// growing means no process runs the sequencer (an events.Store Started,
	// or a subscription).
	Unsequenced int64       `json:"unsequenced"`
	Events      []FeedEvent `json:"events"`
	// Older is the `before` of the next page (a position); 0 on the last
	// page.
	Older int64 `json:"older,omitempty"`
	// Streams are the streams of the events shown, the one with the newest
	// event first: keel.streams has no index that orders streams by time.
	Streams []string `json:"streams"`
}

// FeedEvent is an event of the feed, without its data.
type FeedEvent struct {
	Position   int64     `json:"position"`
	StreamID   string    `json:"stream_id"`
	Version    int64     `json:"version"`
	Type       string    `json:"type"`
	RecordedAt time.Time `json:"recorded_at"`
}

func (h *Handler) eventFeed(r *http.Request) (any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	v := EventsPage{Category: q.Get("category"), Events: []FeedEvent{}, Streams: []string{}}
	if v.Category != "" {
		if err := checkCategory(v.Category); err != nil {
			return nil, err
		}
	}
	before, err := beforeParam(q)
	if err != nil {
		return nil, err
	}
	if v.Head, err = h.events.HeadPosition(ctx, h.pool); err != nil {
		return nil, err
	}
	if v.Unsequenced, err = h.q.ConsoleUnsequenced(ctx); err != nil {
		return nil, err
	}
	last := min(before-1, v.Head) // the feed query adds to it: keep it small
	if last < 1 {
		return v, nil
	}
	limit := int64(eventsPageSize + 1)
	if v.Category == "" {
		rows, err := h.q.ConsoleFeed(ctx, db.ConsoleFeedParams{Last: last, MaxCount: limit})
		if err != nil {
			return nil, err
		}
		for _, e := range rows {
			v.Events = append(v.Events, FeedEvent{e.Position, e.StreamID, e.Version, e.Type, e.RecordedAt.Time})
		}
	} else {
		rows, err := h.q.ConsoleCategoryFeed(ctx, db.ConsoleCategoryFeedParams{Category: v.Category, Last: last, MaxCount: limit})
		if err != nil {
			return nil, err
		}
		for _, e := range rows {
			v.Events = append(v.Events, FeedEvent{e.Position, e.StreamID, e.Version, e.Type, e.RecordedAt.Time})
		}
	}
	if len(v.Events) > eventsPageSize {
		v.Events = v.Events[:eventsPageSize]
		v.Older = v.Events[eventsPageSize-1].Position
	}
	seen := map[string]bool{}
	for _, e := range v.Events {
		if !seen[e.StreamID] {
			seen[e.StreamID] = true
			v.Streams = append(v.Streams, e.StreamID)
		}
	}
	return v, nil
}

// checkCategory refuses a category no stream can have, or that Postgres
// could not compare: what events.ReadCategory refuses.
func checkCategory(category string) error {
	if err := validate.Name("category", category, validate.MaxKey); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	if strings.Contains(category, "-") {
		return errorf(http.StatusBadRequest, "category %q has a '-', which ends a category: the category of order-12 is order", category)
	}
	return nil
}

// StreamPage is what a stream's page shows: its state and a page of its
// events, newest first.
type StreamPage struct {
	Stream StreamState   `json:"stream"`
	Events []StreamEvent `json:"events"`
	// Older is the `before` of the next page (a version); 0 on the last
	// page.
	Older int64 `json:"older,omitempty"`
}

// StreamState is a stream's row in keel.streams.
type StreamState struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
	// TruncatedBefore hides the events below this version from every read;
	// 0 hides none.
	TruncatedBefore int64 `json:"truncated_before,omitempty"`
	// Deleted is a tombstoned stream: its events are kept but no read
	// returns them.
	Deleted   bool       `json:"deleted"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	Category  string     `json:"category"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// StreamEvent is one event of a stream, with its data and metadata.
// Position is 0 until the sequencer has given it one.
type StreamEvent struct {
	Version       int64           `json:"version"`
	Position      int64           `json:"position,omitempty"`
	ID            uuid.UUID       `json:"id"`
	Type          string          `json:"type"`
	Data          json.RawMessage `json:"data"`
	Metadata      json.RawMessage `json:"metadata"`
	CausationID   string          `json:"causation_id,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	RecordedAt    time.Time       `json:"recorded_at"`
}

// stream serves /events/streams/{id} and the "go to stream" box's
// /events/streams?id=, which takes any stream id, one with a '/' included.
func (h *Handler) stream(r *http.Request) (any, error) {
	ctx := r.Context()
	id := r.PathValue("id")
	if id == "" {
		id = r.URL.Query().Get("id")
	}
	if id == "" {
		return nil, errorf(http.StatusBadRequest, "no stream id")
	}
	before, err := beforeParam(r.URL.Query())
	if err != nil {
		return nil, err
	}
	info, err := h.events.Stream(ctx, h.pool, id)
	if err != nil {
		return nil, err
	}
	v := StreamPage{Events: []StreamEvent{}, Stream: StreamState{
		ID: info.StreamID, Version: info.Version, TruncatedBefore: info.TruncatedBefore, Deleted: info.Deleted,
		Category: events.Category(info.StreamID), CreatedAt: info.CreatedAt, UpdatedAt: info.UpdatedAt,
	}}
	if info.Deleted {
		v.Stream.DeletedAt = &info.DeletedAt
		return v, nil
	}
	from := min(before-1, info.Version)
	if from < max(info.TruncatedBefore, 1) {
		return v, nil
	}
	evs, err := h.events.ReadStream(ctx, h.pool, id, &events.ReadOpts{Backward: true, From: from, Limit: eventsPageSize + 1})
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		v.Events = append(v.Events, StreamEvent{e.Version, e.Position, e.ID, e.Type, e.Data, e.Metadata, e.CausationID, e.CorrelationID, e.RecordedAt})
	}
	if len(v.Events) > eventsPageSize {
		v.Events = v.Events[:eventsPageSize]
		v.Older = v.Events[eventsPageSize-1].Version
	}
	return v, nil
}

// Subscriptions is what the subscriptions page shows.
type Subscriptions struct {
	Subscriptions []SubscriptionState `json:"subscriptions"`
}

// SubscriptionState is one subscription's row in keel.subscriptions, with
// how many events it has yet to handle (Behind) and how long the oldest of
// them has waited (LagSeconds), as keel.subscription_lag counts them.
type SubscriptionState struct {
	Name string `json:"name"`
	// Category is empty for a subscription to the whole feed.
	Category string `json:"category,omitempty"`
	// Status is active or parked: a parked subscription failed MaxAttempts
	// times on the event at FailedPosition and waits for a person.
	Status         string     `json:"status"`
	Position       int64      `json:"position"`
	Behind         int64      `json:"behind"`
	LagSeconds     float64    `json:"lag_seconds"`
	Attempts       int32      `json:"attempts"`
	LastError      string     `json:"last_error,omitempty"`
	FailedPosition int64      `json:"failed_position,omitempty"`
	RetryAt        *time.Time `json:"retry_at,omitempty"`
	Owner          string     `json:"owner,omitempty"`
	LeaseUntil     *time.Time `json:"lease_until,omitempty"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// SubscriptionAction is what resetting or resuming a subscription answers:
// its status after the action and, after a reset, its new checkpoint.
type SubscriptionAction struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	Position *int64 `json:"position,omitempty"`
}

func (h *Handler) subscriptionList(r *http.Request) (any, error) {
	rows, err := h.q.ConsoleSubscriptions(r.Context())
	if err != nil {
		return nil, err
	}
	return Subscriptions{Subscriptions: subscriptionStates(rows)}, nil
}

// subscriptionStates are the rows of ConsoleSubscriptions as the pages show
// them.
func subscriptionStates(rows []db.ConsoleSubscriptionsRow) []SubscriptionState {
	out := make([]SubscriptionState, len(rows))
	for i, s := range rows {
		out[i] = SubscriptionState{
			Name: s.Name, Category: deref(s.Category), Status: s.Status, Position: s.Position, Behind: s.Behind,
			LagSeconds: seconds(s.Lag), Attempts: s.Attempts, LastError: deref(s.LastError), RetryAt: timePtr(s.RetryAt),
			Owner: deref(s.Owner), LeaseUntil: timePtr(s.LeaseUntil), UpdatedAt: s.UpdatedAt.Time,
		}
		if s.FailedPosition != nil {
			out[i].FailedPosition = *s.FailedPosition
		}
	}
	return out
}

func subscriptionName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if name == "" {
		return "", errorf(http.StatusBadRequest, "no subscription name")
	}
	return name, nil
}

func (h *Handler) subscriptionReset(r *http.Request) (any, string, error) {
	name, err := subscriptionName(r)
	if err != nil {
		return nil, "", err
	}
	position := int64(0)
	if s := strings.TrimSpace(r.PostForm.Get("position")); s != "" {
		if position, err = strconv.ParseInt(s, 10, 64); err != nil || position < 0 {
			return nil, "", errorf(http.StatusBadRequest, "position %q: it must be a feed position, a whole number of at least 0", s)
		}
	}
	if err := h.events.SubscriptionReset(r.Context(), name, position); err != nil {
		return nil, "", err
	}
	return SubscriptionAction{Name: name, Status: "active", Position: &position}, "/events/subscriptions", nil
}

func (h *Handler) subscriptionResume(r *http.Request) (any, string, error) {
	name, err := subscriptionName(r)
	if err != nil {
		return nil, "", err
	}
	if err := h.events.SubscriptionResume(r.Context(), name); err != nil {
		return nil, "", err
	}
	return SubscriptionAction{Name: name, Status: "active"}, "/events/subscriptions", nil
}
