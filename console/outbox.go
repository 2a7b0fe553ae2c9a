package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/outbox"
)

// outboxPageSize is how many messages one page of the outbox list shows.
const outboxPageSize = 50

func (h *Handler) outboxRoutes(mux *http.ServeMux) {
	h.page(mux, "/outbox", "outbox", h.outboxList)
	h.page(mux, "/outbox/{id}", "message", h.outboxMessage)
	h.action(mux, "/outbox/{id}/requeue", nil, h.outboxRequeue)
	h.action(mux, "/outbox/requeue", confirm("Requeue every dead letter of this topic? They are published again, with fresh attempts."), h.outboxRequeueDead)
}

// OutboxPage is what the outbox page shows: the backlog and dead letters of
// each topic, and one page of the messages in one state, newest first.
type OutboxPage struct {
	Topics []OutboxTopic `json:"topics"`
	// State and Topic are the list's filters: State is dead (the default),
	// pending or delivered; Topic is empty for every topic.
	State    string          `json:"state"`
	Topic    string          `json:"topic,omitempty"`
	Messages []OutboxMessage `json:"messages"`
	// Older is the `before` of the next page (a seq); 0 on the last page.
	Older int64 `json:"older,omitempty"`
}

// OutboxTopic is one topic with messages waiting or dead.
type OutboxTopic struct {
	Topic         string     `json:"topic"`
	Pending       int64      `json:"pending"`
	OldestPending *time.Time `json:"oldest_pending,omitempty"`
	Dead          int64      `json:"dead"`
}

// OutboxMessage is a message in the outbox list; LastError is the first line
// of its last attempt's error.
type OutboxMessage struct {
	Seq         int64      `json:"seq"`
	ID          uuid.UUID  `json:"id"`
	Topic       string     `json:"topic"`
	Key         string     `json:"key,omitempty"`
	Type        string     `json:"type,omitempty"`
	State       string     `json:"state"`
	Attempts    int32      `json:"attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	AvailableAt time.Time  `json:"available_at"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	LockedBy    string     `json:"locked_by,omitempty"`
	LockedUntil *time.Time `json:"locked_until,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
}

// OutboxMessageDetail is one message with everything keel.outbox holds of
// it; LastError is the whole error of its last attempt. Payload is its body
// for a person: indented when it is JSON, as it is when it is other UTF-8
// text, base64 when it is not text; PayloadEncoding says which ("json",
// "text" or "base64").
type OutboxMessageDetail struct {
	OutboxMessage
	Headers         map[string]string `json:"headers"`
	Payload         string            `json:"payload"`
	PayloadEncoding string            `json:"payload_encoding"`
	PayloadBytes    int               `json:"payload_bytes"`
	Errors          []OutboxAttempt   `json:"errors"`
}

// OutboxAttempt is one failed attempt to publish a message.
type OutboxAttempt struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

// OutboxRequeued is what a requeue answers: the message requeued, or the
// topic whose dead letters were (empty: every topic), and how many.
type OutboxRequeued struct {
	ID       *uuid.UUID `json:"id,omitempty"`
	Topic    string     `json:"topic,omitempty"`
	Requeued int        `json:"requeued"`
}

func (h *Handler) outboxList(r *http.Request) (any, error) {
	q := r.URL.Query()
	v := OutboxPage{State: q.Get("state"), Topic: q.Get("topic"), Messages: []OutboxMessage{}}
	if v.State == "" {
		v.State = string(db.KeelOutboxStateDead)
	}
	if !db.KeelOutboxState(v.State).Valid() {
		return nil, errorf(http.StatusBadRequest, "state %q: it must be dead, pending or delivered", v.State)
	}
	var topic *string
	if v.Topic != "" {
		if err := validate.Name("topic", v.Topic, validate.MaxName); err != nil {
			return nil, errorf(http.StatusBadRequest, "%v", err)
		}
		topic = &v.Topic
	}
	before, err := beforeParam(q)
	if err != nil {
		return nil, err
	}
	if v.Topics, err = h.outboxTopics(r); err != nil {
		return nil, err
	}
	rows, err := h.outboxMessages(r, db.KeelOutboxState(v.State), topic, before)
	if err != nil {
		return nil, err
	}
	for _, row := range rows {
		v.Messages = append(v.Messages, outboxMessage(row))
	}
	if len(v.Messages) > outboxPageSize {
		v.Messages = v.Messages[:outboxPageSize]
		v.Older = v.Messages[outboxPageSize-1].Seq
	}
	return v, nil
}

// outboxTopics reads the backlog and the dead letters of each topic, in
// topic order.
func (h *Handler) outboxTopics(r *http.Request) ([]OutboxTopic, error) {
	rows, err := h.q.ConsoleOutboxTopics(r.Context())
	if err != nil {
		return nil, err
	}
	byTopic := map[string]*OutboxTopic{}
	for _, row := range rows {
		t, ok := byTopic[row.Topic]
		if !ok {
			t = &OutboxTopic{Topic: row.Topic}
			byTopic[row.Topic] = t
		}
		switch row.State {
		case db.KeelOutboxStatePending:
			t.Pending, t.OldestPending = row.Messages, timePtr(row.Oldest)
		case db.KeelOutboxStateDead:
			t.Dead = row.Messages
		}
	}
	out := make([]OutboxTopic, 0, len(byTopic))
	for _, t := range byTopic {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}

// outboxMessages reads one page of the messages in state, and one more to
// tell whether an older page follows. Each state has its own query, so that
// each reads through its own partial index.
func (h *Handler) outboxMessages(r *http.Request, state db.KeelOutboxState, topic *string, before int64) ([]db.ConsoleOutboxDeadRow, error) {
	ctx := r.Context()
	limit := int32(outboxPageSize + 1)
	switch state {
	case db.KeelOutboxStatePending:
		rows, err := h.q.ConsoleOutboxPending(ctx, db.ConsoleOutboxPendingParams{Before: before, Topic: topic, MaxRows: limit})
		out := make([]db.ConsoleOutboxDeadRow, len(rows))
		for i, row := range rows {
			out[i] = db.ConsoleOutboxDeadRow(row)
		}
		return out, err
	case db.KeelOutboxStateDelivered:
		at := pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
		if before != math.MaxInt64 {
			var err error
			if at, err = h.q.ConsoleOutboxDeliveredAt(ctx, before); errors.Is(err, pgx.ErrNoRows) {
				return nil, nil // delivered before retention deleted it, as every message delivered before it
			} else if err != nil {
				return nil, err
			}
		}
		rows, err := h.q.ConsoleOutboxDelivered(ctx, db.ConsoleOutboxDeliveredParams{BeforeAt: at, Before: before, Topic: topic, MaxRows: limit})
		out := make([]db.ConsoleOutboxDeadRow, len(rows))
		for i, row := range rows {
			out[i] = db.ConsoleOutboxDeadRow(row)
		}
		return out, err
	}
	return h.q.ConsoleOutboxDead(ctx, db.ConsoleOutboxDeadParams{Before: before, Topic: topic, MaxRows: limit})
}

func outboxMessage(r db.ConsoleOutboxDeadRow) OutboxMessage {
	return OutboxMessage{
		Seq: r.Seq, ID: r.ID, Topic: r.Topic, Key: deref(r.Key), Type: r.Type, State: string(r.State), Attempts: r.Attempts,
		CreatedAt: r.CreatedAt.Time, AvailableAt: r.AvailableAt.Time, DeliveredAt: timePtr(r.DeliveredAt),
		LockedBy: deref(r.LockedBy), LockedUntil: timePtr(r.LockedUntil), LastError: r.LastError,
	}
}

// beforeParam reads a list's keyset cursor, `before` (a seq, a feed
// position or a stream version): a whole number of at least 1, or
// math.MaxInt64 when it is absent.
func beforeParam(q url.Values) (int64, error) {
	s := q.Get("before")
	if s == "" {
		return math.MaxInt64, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, errorf(http.StatusBadRequest, "before %q: it must be a whole number of at least 1", s)
	}
	return n, nil
}

func outboxID(r *http.Request) (uuid.UUID, error) {
	s := r.PathValue("id")
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, errorf(http.StatusBadRequest, "%q is not a message id (a UUID)", s)
	}
	return id, nil
}

func (h *Handler) outboxMessage(r *http.Request) (any, error) {
	id, err := outboxID(r)
	if err != nil {
		return nil, err
	}
	row, err := h.q.OutboxGet(r.Context(), id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errorf(http.StatusNotFound, "no outbox message %s", id)
	}
	if err != nil {
		return nil, err
	}
	v := OutboxMessageDetail{
		OutboxMessage: OutboxMessage{
			Seq: row.Seq, ID: row.ID, Topic: row.Topic, Key: deref(row.Key), Type: row.Type, State: string(row.State),
			Attempts: row.Attempts, CreatedAt: row.CreatedAt.Time, AvailableAt: row.AvailableAt.Time,
			DeliveredAt: timePtr(row.DeliveredAt), LockedBy: deref(row.LockedBy), LockedUntil: timePtr(row.LockedUntil),
			LastError: deref(row.LastError),
		},
		Headers:      map[string]string{},
		PayloadBytes: len(row.Payload),
		Errors:       []OutboxAttempt{},
	}
	v.Payload, v.PayloadEncoding = payloadText(row.Payload)
	if err := json.Unmarshal(row.Headers, &v.Headers); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(row.Errors, &v.Errors); err != nil {
		return nil, err
	}
	return v, nil
}

// payloadText shows a message's body to a person: JSON indented, other
// UTF-8 text as it is, anything else in base64.
func payloadText(b []byte) (text, encoding string) {
	if !utf8.Valid(b) {
		return base64.StdEncoding.EncodeToString(b), "base64"
	}
	var buf bytes.Buffer
	if json.Valid(b) && json.Indent(&buf, b, "", "  ") == nil {
		return buf.String(), "json"
	}
	return string(b), "text"
}

func (h *Handler) outboxRequeue(r *http.Request) (any, string, error) {
	id, err := outboxID(r)
	if err != nil {
		return nil, "", err
	}
	if err := outbox.Requeue(r.Context(), h.pool, id); err != nil {
		return nil, "", err
	}
	return OutboxRequeued{ID: &id, Requeued: 1}, "/outbox/" + id.String(), nil
}

func (h *Handler) outboxRequeueDead(r *http.Request) (any, string, error) {
	topic := r.PostForm.Get("topic")
	if err := validate.Text("topic", topic, validate.MaxName); err != nil {
		return nil, "", errorf(http.StatusBadRequest, "%v", err)
	}
	n, err := outbox.RequeueDead(r.Context(), h.pool, topic)
	if err != nil {
		return nil, "", err
	}
	return OutboxRequeued{Topic: topic, Requeued: n}, "/outbox" + string(query("state", "pending", "topic", topic)), nil
}
