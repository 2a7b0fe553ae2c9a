package saga

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/keelpg/keel/jobs"
)

// DefaultQueue is the jobs queue runs execute in unless Config.Queue or
// StartOpts.Queue says otherwise.
const DefaultQueue = "saga"

// Config configures an Engine. Every zero value means the documented
// default.
type Config struct {
	// Queue is the jobs queue new runs execute in. Default "saga".
	Queue string
	// MaxConcurrentRuns is how many runs of Queue this process executes at
	// once; parked runs do not count. Default 100. Ignored when Jobs.Queues
	// configures Queue.
	MaxConcurrentRuns int
	// Jobs configures the jobs client the engine runs on. The engine adds its
	// worker to Jobs.Workers and works Queue. With Jobs.Workers nil the
	// client works Queue alone and leaves every other queue to the
	// application's own clients. Given the application's Workers (so one
	// client runs the application's job kinds and the runs), it also works
	// Jobs.Queues — jobs' default queue when that is empty, as a plain jobs
	// client would. Its zero values
	// take jobs' defaults, except NotifyInterval and FetchCooldown, which
	// default to 1ms: a run woken by a signal or a child is one job whose
	// latency is the resume latency. Await listens through Jobs.Listener
	// too, when it is set.
	Jobs jobs.Config
	// StepRetry is the retry policy of steps and compensations that set
	// none. Default: 3 attempts, 100ms doubling to at most 10s.
	StepRetry RetryPolicy
	// AwaitPollInterval is how often Await reads a run it was not notified
	// about (notifications are lost behind PgBouncer in transaction mode).
	// Default 1s.
	AwaitPollInterval time.Duration
	// UnknownVersionRetry is how long a run whose version this process does
	// not register waits before its job looks again (any process may take
	// it in between). Default 30s.
	UnknownVersionRetry time.Duration
	// Logger receives the engine's logs. Default: Jobs.Logger, else none.
	Logger *slog.Logger
}

// runJobKind is the kind of the jobs that execute runs.
const runJobKind = "keel.saga.run"

func (c Config) withDefaults() (Config, error) {
	if c.Queue == "" {
		c.Queue = DefaultQueue
	}
	if err := checkQueue(c.Queue); err != nil {
		return c, err
	}
	if c.MaxConcurrentRuns < 0 {
		return c, fmt.Errorf("%w: negative MaxConcurrentRuns", ErrInvalidOptions)
	}
	if c.MaxConcurrentRuns == 0 {
		c.MaxConcurrentRuns = 100
	}
	if c.StepRetry == (RetryPolicy{}) {
		c.StepRetry = defaultRetry
	}
	if err := c.StepRetry.validate(); err != nil {
		return c, err
	}
	if c.AwaitPollInterval == 0 {
		c.AwaitPollInterval = time.Second
	}
	if c.UnknownVersionRetry == 0 {
		c.UnknownVersionRetry = 30 * time.Second
	}
	if c.AwaitPollInterval < 0 || c.UnknownVersionRetry < 0 {
		return c, fmt.Errorf("%w: negative interval", ErrInvalidOptions)
	}
	if c.Logger == nil {
		c.Logger = c.Jobs.Logger
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	appWorkers := c.Jobs.Workers != nil
	if !appWorkers {
		c.Jobs.Workers = jobs.NewWorkers()
	}
	queues := make(map[string]jobs.QueueConfig, len(c.Jobs.Queues)+2)
	for name, q := range c.Jobs.Queues {
		queues[name] = q
	}
	if appWorkers && len(c.Jobs.Queues) == 0 {
		queues[jobs.DefaultQueue] = jobs.QueueConfig{}
	}
	if _, ok := queues[c.Queue]; !ok {
		queues[c.Queue] = jobs.QueueConfig{MaxWorkers: c.MaxConcurrentRuns}
	}
	c.Jobs.Queues = queues
	if c.Jobs.NotifyInterval == 0 {
		c.Jobs.NotifyInterval = time.Millisecond
	}
	if c.Jobs.FetchCooldown == 0 {
		c.Jobs.FetchCooldown = time.Millisecond
	}
	return c, nil
}

// RetryPolicy is how a step or a compensation retries: up to MaxAttempts
// attempts, waiting InitialBackoff after the first failure and twice as long
// after each next one, at most MaxBackoff. The waits are spent in the
// executing process; a crash restarts the step's attempts.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt; 1 means no retry.
	MaxAttempts    int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
}

var defaultRetry = RetryPolicy{MaxAttempts: 3, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second}

func (p RetryPolicy) validate() error {
	if p.MaxAttempts < 1 || p.InitialBackoff < 0 || p.MaxBackoff < 0 {
		return fmt.Errorf("%w: retry policy %+v needs MaxAttempts ≥ 1 and non-negative backoffs", ErrInvalidOptions, p)
	}
	return nil
}

// backoff is the wait after the attempt-th failed attempt (from 1).
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < attempt && d < p.MaxBackoff; i++ {
		d *= 2
	}
	if p.MaxBackoff > 0 {
		d = min(d, p.MaxBackoff)
	}
	return d
}

// StepOpts configures one step. nil or zero fields take the engine's
// defaults.
type StepOpts struct {
	// Retry overrides Config.StepRetry for this step.
	Retry *RetryPolicy
	// CompensationRetry is the retry policy of the step's compensation.
	// Default Config.StepRetry.
	CompensationRetry *RetryPolicy
}

// StartOpts are the options of one Start.
type StartOpts struct {
	// RunID names the run; starting again with the same id returns the
	// existing run and writes nothing. Default: a random UUID.
	RunID string
	// Version picks a registered version. Default: the newest registered.
	Version int
	// Queue is the jobs queue the run executes in. Default Config.Queue.
	Queue string
	// Timeout is the workflow timeout: past it the run stops at its next
	// step, compensates and fails with ErrTimeout. Default: none.
	Timeout time.Duration
}
