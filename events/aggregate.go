package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/keeltype"
)

// Aggregate folds a stream's events into a state of type S and appends new
// events decided from that state with the right expected version. S must
// encode to and decode from JSON when snapshots are used.
type Aggregate[S any] struct {
	// Store holds the streams. Required.
	Store *Store
	// Apply folds one event into the state. Required.
	Apply func(state S, ev RecordedEvent) (S, error)
	// Initial returns the state of a stream with no events.
	// Default: the zero S.
	Initial func() S
	// SnapshotEvery makes Execute save a snapshot whenever the stream's
	// version passes a multiple of it, so loads replay at most that many
	// events. Default: 0, no snapshots.
	SnapshotEvery int64
}

// Load returns the stream's current state and version: the latest snapshot
// and the events after it. A stream with no events has the initial state at
// version 0.
func (a Aggregate[S]) Load(ctx context.Context, q keeltype.DBTX, streamID string) (S, int64, error) {
	return a.LoadAt(ctx, q, streamID, nil)
}

// LoadAt returns the stream's state as it was at opts.UntilVersion or
// opts.UntilTime (point-in-time reconstruction); the other fields of opts
// are ignored, and nil opts load the current state. A snapshot is used when it is not newer than UntilVersion and
// no UntilTime is given.
func (a Aggregate[S]) LoadAt(ctx context.Context, q keeltype.DBTX, streamID string, opts *ReadOpts) (S, int64, error) {
	state := a.initial()
	var version int64
	if a.Store == nil || a.Apply == nil {
		return state, 0, invalid("aggregate needs a Store and an Apply function")
	}
	if err := checkRead(q, streamID); err != nil {
		return state, 0, err
	}
	if opts == nil {
		opts = &ReadOpts{}
	}
	if opts.UntilTime.IsZero() {
		maxVersion := opts.UntilVersion
		if maxVersion == 0 {
			maxVersion = math.MaxInt64
		}
		snap, err := loadSnapshot(ctx, db.New(q), streamID, maxVersion)
		switch {
		case errors.Is(err, ErrNoSnapshot):
		case err != nil:
			return state, 0, err
		default:
			if err := json.Unmarshal(snap.State, &state); err != nil {
				return state, 0, fmt.Errorf("keel events: decoding snapshot of %q: %w", streamID, err)
			}
			version = snap.Version
		}
	}
	evs, err := a.Store.ReadStream(ctx, q, streamID, &ReadOpts{From: version + 1, UntilVersion: opts.UntilVersion, UntilTime: opts.UntilTime})
	if errors.Is(err, ErrStreamNotFound) {
		return state, 0, nil
	}
	if err != nil {
		return state, 0, err
	}
	return a.fold(state, version, evs)
}

func (a Aggregate[S]) fold(state S, version int64, evs []RecordedEvent) (S, int64, error) {
	for _, e := range evs {
		var err error
		if state, err = a.Apply(state, e); err != nil {
			return state, version, fmt.Errorf("keel events: applying %s %s@%d: %w", e.Type, e.StreamID, e.Version, err)
		}
		version = e.Version
	}
	return state, version, nil
}

func (a Aggregate[S]) initial() S {
	if a.Initial != nil {
		return a.Initial()
	}
	var zero S
	return zero
}

// Execute loads the stream, asks decide for new events, appends them in tx
// expecting the version it loaded, and returns the new state. A concurrent
// writer makes it fail with a *VersionConflictError; load and decide again
// (in a new transaction) to retry. When decide returns no events nothing is
// written.
//
// The events decide returns are checked like any Append's before anything
// is written: ErrInvalidArgument, with nothing written. An error from Apply
// on the new events, or a new state that cannot be stored as a snapshot
// (ErrInvalidArgument, sent nothing), comes after the events were appended
// in tx; roll tx back.
func (a Aggregate[S]) Execute(ctx context.Context, tx keeltype.DBTX, streamID string, decide func(S) ([]EventData, error)) (S, AppendResult, error) {
	if decide == nil {
		return a.initial(), AppendResult{}, invalid("aggregate Execute needs a decide function")
	}
	if err := a.Store.writable(tx); err != nil {
		return a.initial(), AppendResult{}, err
	}
	state, version, err := a.Load(ctx, tx, streamID)
	if err != nil {
		return state, AppendResult{}, err
	}
	evs, err := decide(state)
	if err != nil || len(evs) == 0 {
		return state, AppendResult{StreamID: streamID, Version: version}, err
	}
	res, err := a.Store.Append(ctx, tx, streamID, Exactly(version), evs...)
	if err != nil {
		return state, res, err
	}
	if state, _, err = a.fold(state, version, res.Events); err != nil {
		return state, res, err
	}
	if a.SnapshotEvery > 0 && version/a.SnapshotEvery != res.Version/a.SnapshotEvery {
		if err := a.Store.SaveSnapshot(ctx, tx, streamID, res.Version, state); err != nil {
			return state, res, err
		}
	}
	return state, res, nil
}
