package keel_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel"
	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// countListening counts this database's sessions whose last statement was a
// LISTEN: the connections Listeners hold.
const countListening = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"

type shareArgs struct {
	N int `json:"n"`
}

func (shareArgs) Kind() string { return "share" }

const never = time.Hour

// service is a Client running every feature, with counters of what each
// did.
type service struct {
	k                            *keel.Client
	ran, published, handled, bad atomic.Int64
}

func newService(t *testing.T, pool *pgxpool.Pool, poll time.Duration) *service {
	t.Helper()
	s := &service{}
	w := jobs.NewWorkers()
	jobs.AddWorker(w, func(context.Context, *jobs.Job[shareArgs]) error { s.ran.Add(1); return nil }, nil)
	reg := saga.NewRegistry()
	saga.Register(reg, "gate", 1, func(ctx saga.Context, in string) (string, error) {
		if _, err := saga.AwaitSignal[bool](ctx, "open", never); err != nil {
			return "", err
		}
		return saga.Step(ctx, "echo", func(context.Context) (string, error) { return in, nil }, nil)
	})
	k, err := keel.New(pool, keel.Config{
		Jobs:      jobs.Config{Workers: w, FetchPollInterval: poll},
		Workflows: reg,
		Saga:      saga.Config{AwaitPollInterval: poll},
		Publisher: outbox.PublisherFunc(func(context.Context, outbox.Delivery) error { s.published.Add(1); return nil }),
		Relay:     outbox.RelayConfig{PollInterval: poll},
		Subscriptions: []events.SubscriptionConfig{{Name: "shared", PollInterval: poll,
			Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { s.handled.Add(1); return nil }}},
		Sequencer: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.k = k
	return s
}

// work inserts a job, enqueues a message and appends an event in one
// transaction.
func (s *service) work(ctx context.Context, t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := s.k.Jobs().Insert(ctx, tx, shareArgs{N: n}, nil); err != nil {
			return err
		}
		if _, err := s.k.Outbox().Enqueue(ctx, tx, outbox.Message{Topic: "t", Payload: []byte("x")}); err != nil {
			return err
		}
		e, err := events.NewEvent("Made", map[string]int{"n": n})
		if err != nil {
			return err
		}
		_, err = s.k.Events().Append(ctx, tx, "work-1", events.Any, e)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// until makes work every 100ms until every feature acted on some, or fails
// after 30s.
func (s *service) until(ctx context.Context, t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for n := 0; s.ran.Load() == 0 || s.published.Load() == 0 || s.handled.Load() == 0; n++ {
		select {
		case <-deadline:
			t.Fatalf("after 30s: %d jobs ran, %d messages published, %d events handled", s.ran.Load(), s.published.Load(), s.handled.Load())
		case <-tick.C:
		}
		s.work(ctx, t, pool, n)
	}
}

// signalGate starts a gate run, signals it and waits for its result.
func (s *service) signalGate(ctx context.Context, t *testing.T, pool *pgxpool.Pool, runID string) {
	t.Helper()
	eng := s.k.Saga()
	if _, err := eng.StartRun(ctx, pool, "gate", "through", &saga.StartOpts{RunID: runID}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Signal(ctx, pool, runID, "open", true, nil); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	run, err := eng.Await(waitCtx, runID)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := saga.Result[string](run); err != nil || out != "through" {
		t.Fatalf("saga result %q, %v; want through", out, err)
	}
}

// A Client running a jobs client, a relay, a subscription, the sequencer and
// a saga engine (with an Await waiting) holds one listening connection, and
// with every poll interval an hour the work below is picked up on the
// notifications that connection receives. Stop leaves no connection
// acquired, so the pool closes at once.
func TestClientSharesOneListener(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	s := newService(t, pool, never)
	if err := s.k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s.until(ctx, t, pool)
	var listening int
	if err := pool.QueryRow(ctx, countListening).Scan(&listening); err != nil {
		t.Fatal(err)
	}
	if listening != 1 {
		t.Errorf("the process holds %d listening connections, want 1", listening)
	}
	s.signalGate(ctx, t, pool, "gate-1")
	if err := s.k.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Errorf("after Stop %d connections are still acquired, want 0", n)
	}
}

// Every feature makes progress on a pool of two connections: one for LISTEN
// and one shared by everything else.
func TestClientOnTwoConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.NewSized(t, 2)
	s := newService(t, pool, 50*time.Millisecond)
	if err := s.k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s.until(ctx, t, pool)
	s.signalGate(ctx, t, pool, "gate-2")
	if err := s.k.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// New refuses a pool that cannot serve the LISTEN connection and one more,
// naming the numbers; a client that listens to nothing needs one.
func TestNewChecksPoolSize(t *testing.T) {
	t.Parallel()
	pool := testdb.NewSized(t, 1)
	w := jobs.NewWorkers()
	jobs.AddWorker(w, func(context.Context, *jobs.Job[shareArgs]) error { return nil }, nil)
	pub := outbox.PublisherFunc(func(context.Context, outbox.Delivery) error { return nil })
	tests := []struct {
		name    string
		cfg     keel.Config
		wantErr bool
	}{
		{"workers", keel.Config{Jobs: jobs.Config{Workers: w}}, true},
		{"relay", keel.Config{Publisher: pub}, true},
		{"workflows", keel.Config{Workflows: saga.NewRegistry()}, true},
		{"insert only", keel.Config{}, false},
		{"listening on another pool", keel.Config{Jobs: jobs.Config{Workers: w}, ListenPool: testdb.NewSized(t, 1)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keel.New(pool, tc.cfg)
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, keel.ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
			for _, want := range []string{"allows 1 connection", "keel needs 2", "1 held for LISTEN"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// The application's workers and the saga engine run on one jobs client: no
// job of the application's fails as an unknown kind, and a client with
// workflows but no workers of its own leaves the default queue alone.
func TestClientOneJobsClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	s := newService(t, pool, 50*time.Millisecond)
	if err := s.k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.k.Stop(context.Background()) })

	// Its own saga queue: on the same one it would claim gate runs it
	// cannot run, and leave them for UnknownVersionRetry.
	sagaOnly, err := keel.New(pool, keel.Config{
		Workflows: saga.NewRegistry(),
		Saga:      saga.Config{Queue: "other-saga"},
		Jobs:      jobs.Config{FetchPollInterval: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sagaOnly.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sagaOnly.Stop(context.Background()) })

	const n = 20
	for i := range n {
		if _, err := s.k.Jobs().Insert(ctx, pool, shareArgs{N: i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	s.signalGate(ctx, t, pool, "gate-3")
	deadline := time.Now().Add(30 * time.Second)
	for s.ran.Load() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := s.ran.Load(); got != n {
		t.Fatalf("%d of %d jobs ran", got, n)
	}
	var failed int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.jobs WHERE kind = 'share' AND (state <> 'completed' OR attempt > 1)").Scan(&failed); err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Errorf("%d application jobs were not completed at their first attempt", failed)
	}
}

// A Client starts once and stops once; Stop is idempotent.
func TestClientLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	k, err := keel.New(pool, keel.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Start(ctx); !errors.Is(err, keel.ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	if err := k.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Stop(ctx); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
	if err := k.Start(ctx); !errors.Is(err, keel.ErrStopped) {
		t.Errorf("Start after Stop = %v, want ErrStopped", err)
	}
	if _, err := k.Outbox().Enqueue(ctx, pool, outbox.Message{Topic: "t", Payload: []byte("x")}); !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("Enqueue after Stop = %v, want outbox.ErrClosed", err)
	}
	if _, err := keel.New(nil, keel.Config{}); !errors.Is(err, keel.ErrInvalidConfig) {
		t.Errorf("New(nil) = %v, want ErrInvalidConfig", err)
	}
}
