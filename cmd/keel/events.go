package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/db"
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

// tailOpts are the flags of keel events tail.
type tailOpts struct {
	category string
	from     int64
	limit    int
	follow   bool
}

func eventsTail(fs *flag.FlagSet) action {
	var o tailOpts
	fs.StringVar(&o.category, "category", "", "only events of this `category`'s streams (default: every category)")
	fs.Int64Var(&o.from, "from", -1, "start after this feed `position` (default: the last --limit positions)")
	fs.IntVar(&o.limit, "limit", 20, "show the newest `n` positions first")
	fs.BoolVar(&o.follow, "follow", false, "keep printing new events until interrupted (default: off)")
	return func(c *cli, ctx context.Context, _ []string) error {
		if o.limit < 1 {
			return usageError{"--limit must be at least 1"}
		}
		return c.withStore(ctx, func(pool *pgxpool.Pool, s *events.Store) error { return c.tail(ctx, pool, s, o) })
	}
}

func (c *cli) tail(ctx context.Context, pool *pgxpool.Pool, s *events.Store, o tailOpts) error {
	after := o.from
	if after < 0 {
		head, err := s.HeadPosition(ctx, pool)
		if err != nil {
			return err
		}
		after = max(head-int64(o.limit), 0)
	}
	for header := true; ; header = false {
		evs, err := tailOnce(ctx, pool, s, o.category, after)
		if ctx.Err() != nil {
			return nil // interrupted: a normal end for a follower
		}
		if err != nil {
			return err
		}
		if err := c.printEvents(evs, header); err != nil {
			return err
		}
		if len(evs) > 0 {
			after = evs[len(evs)-1].Position
			continue
		}
		if !o.follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(tailPoll):
		}
	}
}

// tailOnce stamps committed events, so the tail works without a running
// sequencer, and reads what follows after.
func tailOnce(ctx context.Context, pool *pgxpool.Pool, s *events.Store, category string, after int64) ([]events.RecordedEvent, error) {
	if err := s.Sequence(ctx); err != nil {
		return nil, err
	}
	opts := &events.FeedOpts{After: after, Limit: 500}
	if category != "" {
		return s.ReadCategory(ctx, pool, category, opts)
	}
	return s.ReadAll(ctx, pool, opts)
}

// printEvents writes a table row per event, after the header when header
// is set (the first batch of a tail, even an empty one), or one JSON object
// per line with --json, so a follower's output can be piped.
func (c *cli) printEvents(evs []events.RecordedEvent, header bool) error {
	if c.jsonOut {
		for _, e := range evs {
			b, err := json.Marshal(eventView{e.Position, e.StreamID, e.Version, e.Type, e.RecordedAt, e.Data})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.out, string(b))
		}
		return nil
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(w, "POSITION\tRECORDED\tSTREAM@VERSION\tTYPE\tDATA")
	}
	for _, e := range evs {
		fmt.Fprintf(w, "%d\t%s\t%s@%d\t%s\t%s\n", e.Position, e.RecordedAt.UTC().Format(time.RFC3339Nano), e.StreamID, e.Version, e.Type, e.Data)
	}
	return w.Flush()
}

// subscriptions is keel subscriptions list or resume: each lists the
// subscriptions, after resuming one.
func subscriptions(verb string) action {
	return func(c *cli, ctx context.Context, args []string) error {
		return c.withStore(ctx, func(pool *pgxpool.Pool, s *events.Store) error {
			if verb == "resume" {
				if err := s.SubscriptionResume(ctx, args[0]); err != nil {
					return err
				}
			}
			return c.listSubscriptions(ctx, db.New(pool))
		})
	}
}

func subscriptionsReset(fs *flag.FlagSet) action {
	position := fs.Int64("position", 0, "the new checkpoint, a feed `position`: 0 handles every event again")
	return func(c *cli, ctx context.Context, args []string) error {
		if *position < 0 {
			return usageError{fmt.Sprintf("--position %d is negative", *position)}
		}
		return c.withStore(ctx, func(pool *pgxpool.Pool, s *events.Store) error {
			if err := s.SubscriptionReset(ctx, args[0], *position); err != nil {
				return err
			}
			return c.listSubscriptions(ctx, db.New(pool))
		})
	}
}

// listSubscriptions prints what keel stats prints of each subscription, from
// the same view, so the two agree on how far behind each is: for a
// subscription to one category, the events of that category past its
// checkpoint.
func (c *cli) listSubscriptions(ctx context.Context, q *db.Queries) error {
	subs, err := readSubscriptions(ctx, q)
	if err != nil {
		return err
	}
	return c.emit(subs, []string{"NAME", "CATEGORY", "STATUS", "POSITION", "BEHIND", "LAG", "OWNER", "LAST ERROR"}, func(row func(...string)) {
		for _, s := range subs {
			row(s.Name, s.Category, s.Status, strconv.FormatInt(s.Position, 10), strconv.FormatInt(s.Behind, 10), age(s.LagS), s.Owner, s.LastError)
		}
	})
}
