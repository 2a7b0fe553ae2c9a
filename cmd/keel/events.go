package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
)

// eventView is how the CLI shows a recorded event.
type eventView struct {
	Position   int64           `json:"position"`
	StreamID   string          `json:"stream_id"`
	Version    int64           `json:"version"`
	Type       string          `json:"type"`
	RecordedAt time.Time       `json:"recorded_at"`
	Data       json.RawMessage `json:"data"`
}

// withStore connects and hands fn an event store.
func (c *cli) withStore(ctx context.Context, fn func(pool *pgxpool.Pool, s *events.Store) error) error {
	return c.withDB(ctx, func(pool *pgxpool.Pool) error {
		s, err := events.NewStore(pool, events.Config{})
		if err != nil {
			return err
		}
		defer s.Close()
		return fn(pool, s)
	})
}

// tailPoll is how often `keel events tail --follow` looks for new events.
const tailPoll = 250 * time.Millisecond

func (c *cli) events(ctx context.Context, args []string) error {
	var category *string
	var from *int64
	var limit *int
	var follow *bool
	if _, _, err := c.subcommand("events", args, []verb{{"tail", nil}}, func(fs *flag.FlagSet) {
		category = fs.String("category", "", "only events of this category's streams")
		from = fs.Int64("from", -1, "start after this feed position (default: the last --limit positions)")
		limit = fs.Int("limit", 20, "how many of the newest positions to show first")
		follow = fs.Bool("follow", false, "keep printing new events until interrupted")
	}); err != nil {
		return err
	}
	if *limit < 1 {
		return usageError{"events tail: --limit must be at least 1"}
	}
	return c.withStore(ctx, func(pool *pgxpool.Pool, s *events.Store) error {
		after := *from
		if after < 0 {
			head, err := s.HeadPosition(ctx, pool)
			if err != nil {
				return err
			}
			after = max(head-int64(*limit), 0)
		}
		for {
			evs, err := tailOnce(ctx, pool, s, *category, after)
			if ctx.Err() != nil {
				return nil // interrupted: a normal end for a follower
			}
			if err != nil {
				return err
			}
			if err := c.printEvents(evs); err != nil {
				return err
			}
			if len(evs) > 0 {
				after = evs[len(evs)-1].Position
				continue
			}
			if !*follow {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(tailPoll):
			}
		}
	})
}

// tailOnce stamps committed events, so the tail works without a running
// sequencer, and reads what follows after.
func tailOnce(ctx context.Context, pool *pgxpool.Pool, s *events.Store, category string, after int64) ([]events.RecordedEvent, error) {
	if err := s.Sequence(ctx); err != nil {
		return nil, err
	}
	opts := events.FeedOptions{After: after, Limit: 500}
	if category != "" {
		return s.ReadCategory(ctx, pool, category, opts)
	}
	return s.ReadAll(ctx, pool, opts)
}

// printEvents writes one line per event, or one JSON object per line with
// --json, so a follower's output can be piped.
func (c *cli) printEvents(evs []events.RecordedEvent) error {
	for _, e := range evs {
		v := eventView{e.Position, e.StreamID, e.Version, e.Type, e.RecordedAt, e.Data}
		if c.jsonOut {
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, string(b))
			continue
		}
		fmt.Fprintf(c.out, "%d  %s  %s@%d  %s  %s\n", v.Position, v.RecordedAt.UTC().Format(time.RFC3339Nano), v.StreamID, v.Version, v.Type, v.Data)
	}
	return nil
}

func (c *cli) subscriptions(ctx context.Context, args []string) error {
	var position *int64
	name := []string{"subscription name"}
	sub, fs, err := c.subcommand("subscriptions", args, []verb{{"list", nil}, {"reset", name}, {"resume", name}}, func(fs *flag.FlagSet) {
		position = fs.Int64("position", 0, "with reset: the new checkpoint (0 handles every event again)")
	})
	if err != nil {
		return err
	}
	if *position < 0 {
		return usageError{fmt.Sprintf("subscriptions %s: --position %d is negative", sub, *position)}
	}
	return c.withStore(ctx, func(pool *pgxpool.Pool, s *events.Store) error {
		switch sub {
		case "reset":
			if err := s.ResetSubscription(ctx, fs.Arg(0), *position); err != nil {
				return err
			}
		case "resume":
			if err := s.ResumeSubscription(ctx, fs.Arg(0)); err != nil {
				return err
			}
		}
		head, err := s.HeadPosition(ctx, pool)
		if err != nil {
			return err
		}
		subs, err := s.Subscriptions(ctx)
		if err != nil {
			return err
		}
		type subView struct {
			Name      string `json:"name"`
			Category  string `json:"category,omitempty"`
			Position  int64  `json:"position"`
			Behind    int64  `json:"behind"`
			Status    string `json:"status"`
			Owner     string `json:"owner,omitempty"`
			LastError string `json:"last_error,omitempty"`
		}
		views := make([]subView, len(subs))
		for i, si := range subs {
			status := "active"
			if si.Parked {
				status = "parked"
			}
			views[i] = subView{si.Name, si.Category, si.Position, max(head-si.Position, 0), status, si.Owner, si.LastError}
		}
		return c.emit(views, []string{"NAME", "CATEGORY", "POSITION", "BEHIND", "STATUS", "OWNER", "LAST ERROR"}, func(row func(...string)) {
			for _, v := range views {
				row(v.Name, v.Category, strconv.FormatInt(v.Position, 10), strconv.FormatInt(v.Behind, 10), v.Status, v.Owner, v.LastError)
			}
		})
	})
}
