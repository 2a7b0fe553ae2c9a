package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
)

// SubscriptionInfo is the state of a subscription, as its row holds it.
type SubscriptionInfo struct {
	Name     string
	Category string // empty for the whole feed
	// Position is the checkpoint: the feed position of the last event
	// handled.
	Position int64
	// Parked reports a subscription that stopped after MaxAttempts failures
	// on the event at FailedPosition; LastError says why.
	Parked         bool
	Attempts       int
	LastError      string
	FailedPosition int64
	RetryAt        time.Time
	// Owner is the consumer holding the lease until LeaseUntil.
	Owner      string
	LeaseUntil time.Time
}

// SubscriptionGet returns a subscription's state; ErrSubscriptionNotFound
// when no subscription of that name has run.
func (s *Store) SubscriptionGet(ctx context.Context, name string) (SubscriptionInfo, error) {
	if err := checkSubscriptionName(name); err != nil {
		return SubscriptionInfo{}, err
	}
	r, err := db.New(s.pool).GetSubscription(ctx, name)
	if errors.Is(err, pgx.ErrNoRows) {
		return SubscriptionInfo{}, fmt.Errorf("%w: %q", ErrSubscriptionNotFound, name)
	}
	if err != nil {
		return SubscriptionInfo{}, fmt.Errorf("keel events: subscription %q: %w", name, err)
	}
	return subscriptionInfo(r), nil
}

// Subscriptions returns the state of every subscription, parked ones first.
func (s *Store) SubscriptionList(ctx context.Context) ([]SubscriptionInfo, error) {
	rows, err := db.New(s.pool).ListSubscriptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("keel events: listing subscriptions: %w", err)
	}
	out := make([]SubscriptionInfo, len(rows))
	for i, r := range rows {
		out[i] = subscriptionInfo(r)
	}
	return out, nil
}

func subscriptionInfo(r db.KeelSubscription) SubscriptionInfo {
	info := SubscriptionInfo{
		Name: r.Name, Position: r.Position, Parked: r.Status == "parked", Attempts: int(r.Attempts),
		RetryAt: r.RetryAt.Time, LeaseUntil: r.LeaseUntil.Time,
		Category: deref(r.Category), LastError: deref(r.LastError), Owner: deref(r.Owner),
	}
	if r.FailedPosition != nil {
		info.FailedPosition = *r.FailedPosition
	}
	return info
}

// SubscriptionResume un-parks a subscription: its consumer retries the event
// it failed on, with a fresh count of attempts.
func (s *Store) SubscriptionResume(ctx context.Context, name string) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := checkSubscriptionName(name); err != nil {
		return err
	}
	_, err := db.New(s.pool).ResumeSubscription(ctx, name)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %q", ErrSubscriptionNotFound, name)
	}
	if err != nil {
		return fmt.Errorf("keel events: resuming subscription %q: %w", name, err)
	}
	s.cfg.Logger.InfoContext(ctx, "keel events: subscription resumed", "subscription", name)
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// SubscriptionReset moves a subscription's checkpoint to position — 0 to
// handle every event again, say after a projection's tables were emptied —
// and clears a parked state. A consumer running a batch finishes it first;
// its next batch starts after the new position.
func (s *Store) SubscriptionReset(ctx context.Context, name string, position int64) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := checkSubscriptionName(name); err != nil {
		return err
	}
	if position < 0 {
		return invalid("subscription position must not be negative")
	}
	_, err := db.New(s.pool).ResetSubscription(ctx, db.ResetSubscriptionParams{Name: name, Position: position})
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %q", ErrSubscriptionNotFound, name)
	}
	if err != nil {
		return fmt.Errorf("keel events: resetting subscription %q: %w", name, err)
	}
	s.cfg.Logger.InfoContext(ctx, "keel events: subscription reset", "subscription", name, "position", position)
	return nil
}
