package events

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/db"
	"github.com/keelpg/keel/internal/periodic"
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
// before ReadAll to see the latest events, or keep RunSequencer running.
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

// RunSequencer stamps positions every SequencerInterval until ctx ends, and
// then returns nil. Any number of processes may run it; one at a time does
// each pass. Closing the store stops it with ErrClosed; on a closed store it
// returns ErrClosed at once.
func (s *Store) RunSequencer(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(s.ctx, stop)()
	periodic.Run(runCtx, s.pool, s.sequencerDuty(s.cfg.SequencerInterval), s.cfg.Logger, s.outage)
	if ctx.Err() == nil && s.closed.Load() {
		return ErrClosed
	}
	return nil
}
