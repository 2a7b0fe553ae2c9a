package events

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/internal/outage"
	"github.com/keelpg/keel/internal/service"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/listener"
)

// channel is the NOTIFY channel on which appends wake subscriptions.
const channel = "keel_events"

// Store is keel's event store on one database. It is safe for concurrent
// use. Close it when done, after its subscriptions have stopped.
type Store struct {
	pool     *pgxpool.Pool
	cfg      Config
	debounce *notify.Debouncer
	listener *listener.Listener
	outage   *outage.Tracker
	runner   service.Runner // the sequencer

	closed     atomic.Bool
	listenOnce sync.Once
	ctx        context.Context // the store's lifetime, for its listener
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// NewStore returns a Store on the pool. It does not touch the database; the
// schema comes from keel's migrations.
func NewStore(pool *pgxpool.Pool, cfg Config) (*Store, error) {
	if pool == nil {
		return nil, invalid("the pool is nil")
	}
	cfg = cfg.withDefaults()
	if cfg.Listener == nil {
		cfg.Listener = listener.New(pool, cfg.Logger)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Store{
		pool:     pool,
		cfg:      cfg,
		debounce: notify.NewDebouncer(pool, cfg.NotifyInterval, cfg.Logger),
		listener: cfg.Listener,
		outage:   outage.NewTracker("events", cfg.Logger, outage.Report(cfg.Hook)),
		ctx:      ctx,
		cancel:   cancel,
	}, nil
}

// Close stops the store's listening connection and pending notifications.
// Stop the store's subscriptions first: once the store is closed, its
// running subscriptions and sequencer stop, and every write through it
// (Append, Tombstone, TruncateBefore, SaveSnapshot, Aggregate.Execute,
// Sequence, NewSubscription and a subscription's Start and Run,
// SubscriptionResume, SubscriptionReset, the sequencer's Start and Run)
// returns ErrClosed before sending anything. An Append already past that
// check when Close is called completes without its wake-up notification;
// subscriptions find its events when they poll. Reads keep working. The
// pool stays open.
func (s *Store) Close() {
	s.closed.Store(true)
	s.cancel()
	s.wg.Wait()
	s.debounce.Close()
}

// usable refuses a write through a store that is nil or closed. It is the
// first thing every write does.
func (s *Store) usable() error {
	if s == nil || s.pool == nil {
		return invalid("the store is nil: make it with NewStore")
	}
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// writable is usable and a check of the DBTX the write was given.
func (s *Store) writable(q keeltype.DBTX) error {
	if err := s.usable(); err != nil {
		return err
	}
	return checkDBTX(q)
}

// wakeups returns a subscription to append notifications, starting the
// process's one listening connection on first use.
func (s *Store) wakeups() *listener.Subscription {
	s.listenOnce.Do(func() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.listener.Run(s.ctx)
		}()
	})
	return s.listener.Subscribe(channel, 1)
}
