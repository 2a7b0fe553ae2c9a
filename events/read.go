package events

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/keeltype"
)

// endOfTime stands for "no time limit" in the read queries.
var endOfTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// untilTime is a read's time limit as the read queries take it: endOfTime
// for none, and a caller's time held between the zero time and endOfTime.
// Postgres refuses a timestamptz outside about 4713 BC to 294276 AD,
// failing the caller's transaction, and a time far enough out overflows
// the encoding into another, wrong, instant; nothing is recorded outside
// these bounds, so clamping changes no result.
func untilTime(t time.Time) time.Time {
	switch {
	case t.IsZero() || t.After(endOfTime):
		return endOfTime
	case t.Before(time.Time{}):
		return time.Time{}
	}
	return t
}

// ReadOpts selects part of a stream. nil, like the zero value, reads the
// whole stream forward.
type ReadOpts struct {
	// Backward reads from the newest event down. Default: forward.
	Backward bool
	// From is the first version read: the lowest when forward (default 1),
	// the highest when backward (default the stream's newest).
	From int64
	// Limit is the most events returned. Default: no limit.
	Limit int
	// UntilVersion leaves out events above this version, so a forward read
	// returns the stream as it was at that version. Default: none.
	UntilVersion int64
	// UntilTime leaves out events recorded after this instant: the stream
	// as it was then (point-in-time reconstruction). Default: none.
	UntilTime time.Time
}

// ReadStream returns events of one stream, in version order (or reverse when
// Backward), leaving out those hidden by TruncateBefore. It returns
// ErrStreamNotFound for a stream with no events and ErrStreamDeleted for a
// tombstoned one.
func (s *Store) ReadStream(ctx context.Context, q keeltype.DBTX, streamID string, opts *ReadOpts) ([]RecordedEvent, error) {
	if err := checkRead(q, streamID); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &ReadOpts{}
	}
	if opts.From < 0 || opts.Limit < 0 || opts.UntilVersion < 0 {
		return nil, invalid("read options of %q: From, Limit and UntilVersion must not be negative", streamID)
	}
	queries := db.New(q)
	st, err := liveStream(ctx, queries, streamID)
	if err != nil {
		return nil, err
	}
	limit := int64(math.MaxInt64)
	if opts.Limit > 0 {
		limit = int64(opts.Limit)
	}
	until := untilTime(opts.UntilTime)
	top := st.Version
	if opts.UntilVersion > 0 {
		top = min(top, opts.UntilVersion)
	}
	if opts.Backward {
		from := top
		if opts.From > 0 {
			from = min(from, opts.From)
		}
		rows, err := queries.ReadStreamBackward(ctx, db.ReadStreamBackwardParams{
			StreamID: streamID, FromVersion: from, TruncatedBefore: st.TruncatedBefore,
			UntilTime: timestamptz(until), MaxCount: limit,
		})
		if err != nil {
			return nil, fmt.Errorf("keel events: reading %q: %w", streamID, err)
		}
		return s.withPositions(ctx, queries, streamID, convert(rows, fromEvent))
	}
	rows, err := queries.ReadStreamForward(ctx, db.ReadStreamForwardParams{
		StreamID: streamID, FromVersion: max(opts.From, 1), TruncatedBefore: st.TruncatedBefore,
		UntilVersion: top, UntilTime: timestamptz(until), MaxCount: limit,
	})
	if err != nil {
		return nil, fmt.Errorf("keel events: reading %q: %w", streamID, err)
	}
	return s.withPositions(ctx, queries, streamID, convert(rows, fromEvent))
}

// withPositions fills in the feed positions of events read from a stream,
// looking up the feed rows of the appends that wrote them. Events the
// sequencer has not reached keep Position 0.
func (s *Store) withPositions(ctx context.Context, q *db.Queries, streamID string, evs []RecordedEvent) ([]RecordedEvent, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	lo, hi := evs[0].Version, evs[len(evs)-1].Version
	if lo > hi {
		lo, hi = hi, lo
	}
	appends, err := q.StreamFeed(ctx, db.StreamFeedParams{StreamID: streamID, MinVersion: lo, MaxVersion: hi})
	if err != nil {
		return nil, fmt.Errorf("keel events: positions of %q: %w", streamID, err)
	}
	for i := range evs {
		v := evs[i].Version
		// The last append that starts at or below v is the only one that
		// can hold it.
		j := sort.Search(len(appends), func(j int) bool { return appends[j].FirstVersion > v }) - 1
		if j < 0 {
			continue
		}
		a := appends[j]
		if offset := v - a.FirstVersion; offset < int64(a.EventCount) {
			evs[i].Position = a.LastPosition - int64(a.EventCount) + 1 + offset
		}
	}
	return evs, nil
}

// StreamInfo is the state of one stream.
type StreamInfo struct {
	StreamID string
	// Version is the version of the newest event.
	Version int64
	// TruncatedBefore hides the events below it from reads; 0 hides none.
	TruncatedBefore int64
	// Deleted reports a tombstoned stream; DeletedAt says when.
	Deleted   bool
	DeletedAt time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Stream returns the state of a stream, deleted or not; ErrStreamNotFound
// when it has no events.
func (s *Store) Stream(ctx context.Context, q keeltype.DBTX, streamID string) (StreamInfo, error) {
	if err := checkRead(q, streamID); err != nil {
		return StreamInfo{}, err
	}
	st, err := db.New(q).GetStream(ctx, streamID)
	if errors.Is(err, pgx.ErrNoRows) {
		return StreamInfo{}, fmt.Errorf("%w: %q", ErrStreamNotFound, streamID)
	}
	if err != nil {
		return StreamInfo{}, fmt.Errorf("keel events: stream %q: %w", streamID, err)
	}
	return StreamInfo{
		StreamID: st.StreamID, Version: st.Version, TruncatedBefore: st.TruncatedBefore,
		Deleted: st.DeletedAt.Valid, DeletedAt: st.DeletedAt.Time,
		CreatedAt: st.CreatedAt.Time, UpdatedAt: st.UpdatedAt.Time,
	}, nil
}

// liveStream returns a stream's row, or ErrStreamNotFound / ErrStreamDeleted.
func liveStream(ctx context.Context, q *db.Queries, streamID string) (db.KeelStream, error) {
	st, err := q.GetStream(ctx, streamID)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("%w: %q", ErrStreamNotFound, streamID)
	}
	if err != nil {
		return st, fmt.Errorf("keel events: stream %q: %w", streamID, err)
	}
	if st.DeletedAt.Valid {
		return st, fmt.Errorf("%w: %q", ErrStreamDeleted, streamID)
	}
	return st, nil
}

// FeedOpts selects part of the global feed. nil, like the zero value,
// reads it all (a thousand events at a time).
type FeedOpts struct {
	// After is the position after which reading starts. Default: 0, the
	// beginning.
	After int64
	// Limit is the most events returned. Default: 1000.
	Limit int
	// UntilPosition leaves out events above this position. Default: none.
	UntilPosition int64
}

// ReadAll returns events of the global feed after a position, in position
// order: every stream's events in version order, in the order they became
// visible, with no gaps. Only events the sequencer has stamped are returned
// (see Sequence); events of tombstoned streams and truncated events are left
// out.
func (s *Store) ReadAll(ctx context.Context, q keeltype.DBTX, opts *FeedOpts) ([]RecordedEvent, error) {
	if err := checkDBTX(q); err != nil {
		return nil, err
	}
	after, until, limit, err := opts.bounds()
	if err != nil {
		return nil, err
	}
	rows, err := db.New(q).ReadAll(ctx, db.ReadAllParams{After: after, UntilPosition: until, MaxCount: limit})
	if err != nil {
		return nil, fmt.Errorf("keel events: reading the feed: %w", err)
	}
	return convert(rows, fromFeedRow), nil
}

// ReadCategory is ReadAll restricted to the streams of one category.
//
// It reads the feed in windows of positions, so no statement reads more
// than a window's appends however the category is spread over the feed: the
// first covers categoryWindow positions (or ten times the limit when that
// is more), and each window that finds none of the category's events
// covers twice as many as the one before, up to 16 times the first, so a
// long stretch of other categories' appends costs a few statements.
func (s *Store) ReadCategory(ctx context.Context, q keeltype.DBTX, category string, opts *FeedOpts) ([]RecordedEvent, error) {
	if err := checkDBTX(q); err != nil {
		return nil, err
	}
	if err := checkCategory("category", category); err != nil {
		return nil, err
	}
	after, until, limit, err := opts.bounds()
	if err != nil {
		return nil, err
	}
	queries := db.New(q)
	bound, err := queries.FeedBound(ctx, until)
	if err != nil {
		return nil, fmt.Errorf("keel events: reading category %q: %w", category, err)
	}
	first := max(categoryWindow, 10*limit)
	window := first
	var out []RecordedEvent
	for start := after; start < bound && int64(len(out)) < limit; {
		end := bound
		if bound-start > window {
			end = start + window
		}
		rows, err := queries.ReadCategory(ctx, db.ReadCategoryParams{
			Category: category, After: after, WindowStart: start, WindowEnd: end, UntilPosition: until, MaxCount: limit - int64(len(out)),
		})
		if err != nil {
			return nil, fmt.Errorf("keel events: reading category %q: %w", category, err)
		}
		if len(rows) == 0 {
			window = min(2*window, 16*first)
		}
		out = append(out, convert(rows, func(r db.ReadCategoryRow) RecordedEvent { return fromFeedRow(db.ReadAllRow(r)) })...)
		start = end
	}
	return out, nil
}

// categoryWindow is the fewest feed positions one statement of
// ReadCategory covers.
const categoryWindow = 10_000

func (o *FeedOpts) bounds() (after, until, limit int64, err error) {
	if o == nil {
		o = &FeedOpts{}
	}
	if o.After < 0 || o.Limit < 0 || o.UntilPosition < 0 {
		return 0, 0, 0, invalid("feed options: After, Limit and UntilPosition must not be negative")
	}
	until, limit = math.MaxInt64, 1000
	if o.UntilPosition > 0 {
		until = o.UntilPosition
	}
	if o.Limit > 0 {
		limit = int64(o.Limit)
	}
	return o.After, until, limit, nil
}

// HeadPosition returns the newest stamped position of the global feed, 0
// when it is empty.
func (s *Store) HeadPosition(ctx context.Context, q keeltype.DBTX) (int64, error) {
	if err := checkDBTX(q); err != nil {
		return 0, err
	}
	head, err := db.New(q).HeadPosition(ctx)
	if err != nil {
		return 0, fmt.Errorf("keel events: feed head: %w", err)
	}
	return head, nil
}
