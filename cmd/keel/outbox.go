package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/outbox"
)

// outboxMessage is how the CLI shows a message, in tables and JSON.
type outboxMessage struct {
	ID          uuid.UUID         `json:"id"`
	Topic       string            `json:"topic"`
	Key         string            `json:"key,omitempty"`
	Type        string            `json:"type,omitempty"`
	State       string            `json:"state"`
	Attempts    int32             `json:"attempts"`
	CreatedAt   time.Time         `json:"created_at"`
	AvailableAt time.Time         `json:"available_at"`
	DeliveredAt *time.Time        `json:"delivered_at,omitempty"`
	LockedBy    string            `json:"locked_by,omitempty"`
	LastError   string            `json:"last_error,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Payload     string            `json:"payload,omitempty"`
	Errors      json.RawMessage   `json:"errors,omitempty"`
}

func toOutboxMessage(r db.KeelOutbox, full bool) outboxMessage {
	m := outboxMessage{
		ID: r.ID, Topic: r.Topic, Type: r.Type, State: string(r.State), Attempts: r.Attempts,
		CreatedAt: r.CreatedAt.Time, AvailableAt: r.AvailableAt.Time,
	}
	if r.DeliveredAt.Valid {
		m.DeliveredAt = &r.DeliveredAt.Time
	}
	m.Key, m.LockedBy, m.LastError = deref(r.Key), deref(r.LockedBy), deref(r.LastError)
	if full {
		_ = json.Unmarshal(r.Headers, &m.Headers)
		m.Payload = string(r.Payload)
		m.Errors = r.Errors
	}
	return m
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func outboxList(fs *flag.FlagSet) action {
	state := fs.String("state", "", "only messages in this `state`: dead, pending or delivered (default: every state)")
	limit := fs.Int("limit", 50, "show at most `n` messages")
	return func(c *cli, ctx context.Context, _ []string) error {
		p := db.OutboxListParams{MaxRows: int32(min(*limit, math.MaxInt32))}
		if *state != "" {
			s := db.KeelOutboxState(*state)
			if !s.Valid() {
				return usageError{fmt.Sprintf("--state must be dead, pending or delivered, not %q", *state)}
			}
			p.State = &s
		}
		if *limit < 1 {
			return usageError{"--limit must be at least 1"}
		}
		return c.withDB(ctx, func(pool *pgxpool.Pool) error { return c.outboxList(ctx, db.New(pool), p) })
	}
}

// outboxShow is keel outbox show or requeue: each prints the message, after
// putting it back in line.
func outboxShow(requeue bool) action {
	return func(c *cli, ctx context.Context, args []string) error {
		id, err := uuid.Parse(args[0])
		if err != nil {
			return usageError{fmt.Sprintf("%q is not a message id (a UUID)", args[0])}
		}
		return c.withDB(ctx, func(pool *pgxpool.Pool) error {
			if requeue {
				if err := outbox.Requeue(ctx, pool, id); err != nil {
					return err
				}
			}
			return c.outboxShow(ctx, db.New(pool), id)
		})
	}
}

func (c *cli) outboxList(ctx context.Context, q *db.Queries, p db.OutboxListParams) error {
	rows, err := q.OutboxList(ctx, p)
	if err != nil {
		return err
	}
	msgs := make([]outboxMessage, len(rows))
	for i, r := range rows {
		msgs[i] = toOutboxMessage(r, false)
	}
	return c.emit(msgs, []string{"ID", "STATE", "TOPIC", "KEY", "TYPE", "ATTEMPTS", "ENQUEUED", "LAST ERROR"}, func(row func(...string)) {
		for _, m := range msgs {
			row(m.ID.String(), m.State, m.Topic, m.Key, m.Type, strconv.Itoa(int(m.Attempts)), c.ago(m.CreatedAt), m.LastError)
		}
	})
}

func (c *cli) outboxShow(ctx context.Context, q *db.Queries, id uuid.UUID) error {
	r, err := q.OutboxGet(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %s", outbox.ErrNotFound, id)
	}
	if err != nil {
		return err
	}
	m := toOutboxMessage(r, true)
	return c.emit(m, []string{"FIELD", "VALUE"}, func(row func(...string)) {
		row("id", m.ID.String())
		row("state", m.State)
		row("topic", m.Topic)
		row("key", m.Key)
		row("type", m.Type)
		row("attempts", strconv.Itoa(int(m.Attempts)))
		row("enqueued", m.CreatedAt.UTC().Format(time.RFC3339Nano))
		row("available", m.AvailableAt.UTC().Format(time.RFC3339Nano))
		if m.DeliveredAt != nil {
			row("delivered", m.DeliveredAt.UTC().Format(time.RFC3339Nano))
		}
		row("relay", m.LockedBy)
		row("last error", m.LastError)
		for k, v := range m.Headers {
			row("header "+k, v)
		}
		row("payload", m.Payload)
		var attempts []struct {
			Attempt int       `json:"attempt"`
			At      time.Time `json:"at"`
			Error   string    `json:"error"`
		}
		_ = json.Unmarshal(m.Errors, &attempts)
		for _, a := range attempts {
			row(fmt.Sprintf("attempt %d", a.Attempt), a.At.UTC().Format(time.RFC3339)+"  "+a.Error)
		}
	})
}
