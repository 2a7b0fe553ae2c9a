package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/periodic"
	"github.com/keelpg/keel/internal/service"
)

// sequencerKey is the advisory lock under which one process at a time stamps
// positions.
const sequencerKey int64 = 0x6b65656c736571 // "keelseq"

func (s *Store) sequencerDuty(interval time.Duration) periodic.Duty {
	return periodic.Duty{
		Name:     "event sequencer",
		Key:      sequencerKey,
		Interval: interval,
		Pass: func(ctx context.Context, tx pgx.Tx) (bool, error) {
			n, err := db.New(tx).SequenceAppends(ctx, int64(s.cfg.SequencerBatch))
			return n == int64(s.cfg.SequencerBatch), err
		},
	}
}

// Sequence stamps the events that have committed since the last pass with
// their global feed positions, so ReadAll and ReadCategory see them: once it
// returns, every event committed before the call has its position. When
// another process is stamping, Sequence waits for that pass to end and then
// stamps what it left. Subscriptions call it before each read; call it
// before ReadAll to see the latest events, or keep the sequencer running
// (Start).
// A closed store returns ErrClosed.
func (s *Store) Sequence(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	d := s.sequencerDuty(0)
	for {
		more, err := periodic.RunOnceWaiting(ctx, s.pool, d)
		if err != nil {
			return fmt.Errorf("keel events: %w", err)
		}
		if !more {
			return nil
		}
	}
}

// Start runs the sequencer in the background, stamping positions every
// SequencerInterval until Stop; it returns at once (ctx only scopes the
// start). Any number of processes may run it; one at a time does each pass.
// It returns ErrStarted while the sequencer runs and ErrClosed on a closed
// store.
func (s *Store) Start(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	err := s.runner.Start(ctx, func(loop, _ context.Context) error { return s.Run(loop) })
	if errors.Is(err, service.ErrStarted) {
		return ErrStarted
	}
	return err
}

// Stop ends the sequencer Start began and waits for it; a pass in hand rolls
// back and the next pass, in any process, stamps its events. It returns
// ctx's error when ctx ends first.
func (s *Store) Stop(ctx context.Context) error { return s.runner.Stop(ctx) }

// StopAndCancel is Stop; a sequencer pass holds no work worth finishing.
func (s *Store) StopAndCancel(ctx context.Context) error { return s.runner.StopAndCancel(ctx) }

// Run is Start and Stop in one blocking call: it runs the sequencer until
// ctx ends, then returns nil. Closing the store stops it with ErrClosed (on a
// closed store it returns ErrClosed at once), and closing its pool with an
// error.
func (s *Store) Run(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(s.ctx, stop)()
	if err := periodic.Run(runCtx, s.pool, s.sequencerDuty(s.cfg.SequencerInterval), s.cfg.Logger, s.outage); err != nil {
		return err
	}
	if ctx.Err() == nil && s.closed.Load() {
		return ErrClosed
	}
	return nil
}
