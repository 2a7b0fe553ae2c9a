package jobs

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/listener"
)

// DefaultQueue is the queue of jobs inserted without one, and the queue a
// client with workers works when Config.Queues is empty.
const DefaultQueue = "default"

// Config configures a Client. Every zero value means the documented default.
type Config struct {
	// Workers are the handlers this client runs. nil makes an insert-only
	// client: it inserts and controls jobs but cannot Start.
	Workers *Workers
	// Queues are the queues this client works and how many jobs of each it
	// runs at once. Default: {"default": {MaxWorkers: 500}} when Workers is
	// set.
	Queues map[string]QueueConfig
	// ID names this client in keel.jobs.owner, at most 255 bytes of UTF-8.
	// Default: host/pid/random.
	ID string
	// Logger receives the client's logs. Default: none.
	Logger *slog.Logger
	// Hook observes the client's work: each insert and attempt
	// (keeltype.OpJobInsert, OpJobRun), each claim and outage. Default:
	// none.
	Hook keeltype.Hook

	// FetchCooldown is the least time between two claims of one queue while
	// fewer than half its workers are free, so jobs that finish one by one
	// are claimed in batches rather than one by one. With half the workers
	// free a queue claims at once. Default 2ms.
	FetchCooldown time.Duration
	// FetchPollInterval is how often an idle queue looks for work without
	// being notified (notifications are lost behind PgBouncer in transaction
	// mode, or while the listen connection is down). Default 1s.
	FetchPollInterval time.Duration
	// NotifyInterval is the least time between two insert notifications of
	// one queue from this client; inserts in between get one trailing
	// notification. Default 5ms.
	NotifyInterval time.Duration
	// Listener is the LISTEN connection the client shares with the
	// process's other keel components (see package listener). Default: the
	// client opens its own.
	Listener *listener.Listener

	// JobTimeout bounds an attempt when neither the job nor its kind set a
	// timeout. Default 1 minute; negative means no timeout.
	JobTimeout time.Duration
	// MaxAttempts is the attempts a job gets when inserted without its own
	// value. Default 25.
	MaxAttempts int
	// RetryPolicy is the retry policy of kinds without their own. Default:
	// keeltype.ExponentialBackoff{Initial: 2s, Max: 24h, Jitter: 0.1}, that
	// is 2^attempt seconds (2s, 4s, 8s …) capped at a day, ±10%.
	RetryPolicy keeltype.RetryPolicy

	// HeartbeatInterval is how often the client refreshes the heartbeat of
	// the jobs it runs and learns of cancel requests. Default 5s.
	HeartbeatInterval time.Duration
	// RescueAfter is how old a running job's heartbeat may be before the job
	// is taken to be orphaned (its process died) and returned to retryable.
	// It must exceed HeartbeatInterval. Default 30s.
	RescueAfter time.Duration
	// MaintenanceInterval is how often scheduled and retryable jobs whose time
	// came are made available, and pending jobs whose dependencies settled
	// move on. Default 1s.
	MaintenanceInterval time.Duration

	// CompletedRetention, CancelledRetention and DiscardedRetention are how
	// long final jobs are kept. Defaults: 24h, 7 days, 7 days. Negative keeps
	// them forever.
	CompletedRetention time.Duration
	CancelledRetention time.Duration
	DiscardedRetention time.Duration

	// PeriodicJobs are inserted on their cron schedules while the client
	// runs, each tick once however many clients run them.
	PeriodicJobs []PeriodicJob
}

// defaultRetryPolicy is Config.RetryPolicy's default.
var defaultRetryPolicy = keeltype.ExponentialBackoff{Initial: 2 * time.Second, Max: 24 * time.Hour, Jitter: 0.1}

// QueueConfig configures one queue of a client.
type QueueConfig struct {
	// MaxWorkers is how many of the queue's jobs the client runs at once,
	// one goroutine each; it also bounds how many jobs one claim takes, and
	// claims of a few hundred rows cost the database far less per job than
	// claims of a few dozen. Default 500: right for short or I/O-bound
	// handlers; lower it when each job holds a scarce resource (a
	// connection of a small pool, a rate-limited API).
	MaxWorkers int
}

func (c Config) withDefaults() (Config, error) {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Hook == nil {
		c.Hook = keeltype.NoHook{}
	}
	if err := validate.Text("client id", c.ID, validate.MaxName); err != nil {
		return c, invalid(err)
	}
	if c.Workers != nil && len(c.Queues) == 0 {
		c.Queues = map[string]QueueConfig{DefaultQueue: {}}
	}
	queues := make(map[string]QueueConfig, len(c.Queues))
	for name, q := range c.Queues {
		if err := checkQueue(name); err != nil {
			return c, invalid(err)
		}
		if q.MaxWorkers < 0 {
			return c, fmt.Errorf("%w: queue %q: negative MaxWorkers", ErrInvalidOptions, name)
		}
		if q.MaxWorkers == 0 {
			q.MaxWorkers = 500
		}
		queues[name] = q
	}
	c.Queues = queues
	setDefault(&c.FetchCooldown, 2*time.Millisecond)
	setDefault(&c.FetchPollInterval, time.Second)
	setDefault(&c.NotifyInterval, 5*time.Millisecond)
	setDefault(&c.JobTimeout, time.Minute)
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 25
	}
	if c.RetryPolicy == nil {
		c.RetryPolicy = defaultRetryPolicy
	}
	setDefault(&c.HeartbeatInterval, 5*time.Second)
	setDefault(&c.RescueAfter, 30*time.Second)
	setDefault(&c.MaintenanceInterval, time.Second)
	setDefault(&c.CompletedRetention, 24*time.Hour)
	setDefault(&c.CancelledRetention, 7*24*time.Hour)
	setDefault(&c.DiscardedRetention, 7*24*time.Hour)
	switch {
	case c.MaxAttempts < 0:
		return c, fmt.Errorf("%w: negative MaxAttempts", ErrInvalidOptions)
	case c.FetchCooldown < 0 || c.FetchPollInterval < 0 || c.NotifyInterval < 0 ||
		c.HeartbeatInterval < 0 || c.RescueAfter < 0 || c.MaintenanceInterval < 0:
		return c, fmt.Errorf("%w: negative interval", ErrInvalidOptions)
	case c.RescueAfter <= c.HeartbeatInterval:
		return c, fmt.Errorf("%w: RescueAfter (%s) must exceed HeartbeatInterval (%s)", ErrInvalidOptions, c.RescueAfter, c.HeartbeatInterval)
	}
	return c, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}
