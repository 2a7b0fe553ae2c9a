package saga

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
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
	// StepMaxAttempts is how many attempts steps and compensations that set
	// none get, counting the first. Default 3.
	StepMaxAttempts int
	// StepRetryPolicy is the retry policy of steps and compensations that
	// set none. Default: keeltype.ExponentialBackoff{Initial: 100ms, Max:
	// 10s}.
	StepRetryPolicy keeltype.RetryPolicy
	// StepParkAfter is the longest wait between a step's attempts spent in
	// the executing process. A longer one parks the run, as Sleep does: the
	// step is checkpointed waiting, with its attempts so far, and the run
	// resumes its attempts at the retry time, in any process, holding no
	// worker meanwhile and keeping its attempt count across crashes and
	// restarts. A wait of 40ms or less is never parked. It does not apply
	// to steps started with StepAsync nor to compensations, whose waits
	// are spent in the process (a crash restarts their attempts). Default
	// 1s.
	StepParkAfter time.Duration
	// AwaitPollInterval is how often Await reads a run it was not notified
	// about, and how often the engine checks the runs it executes for a
	// cancel request it was not notified of (notifications are lost behind
	// PgBouncer in transaction mode, and while the listener reconnects).
	// Default 1s.
	AwaitPollInterval time.Duration
	// UnknownVersionRetry is how long a run whose version this process does
	// not register waits before its job looks again (any process may take
	// it in between). Default 30s.
	UnknownVersionRetry time.Duration
	// Logger receives the engine's logs. Default: Jobs.Logger, else none.
	Logger *slog.Logger
	// Hook observes each execution of a run (keeltype.OpSagaRun) and each
	// step (keeltype.OpSagaStep); a step's function runs with the context
	// the hook returned. The engine's jobs client reports to Jobs.Hook.
	// Default: Jobs.Hook, else none.
	Hook keeltype.Hook
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
	if c.StepMaxAttempts < 0 {
		return c, fmt.Errorf("%w: negative StepMaxAttempts", ErrInvalidOptions)
	}
	if c.StepMaxAttempts == 0 {
		c.StepMaxAttempts = 3
	}
	if c.StepRetryPolicy == nil {
		c.StepRetryPolicy = defaultRetryPolicy
	}
	if c.StepParkAfter < 0 {
		return c, fmt.Errorf("%w: negative StepParkAfter", ErrInvalidOptions)
	}
	if c.StepParkAfter == 0 {
		c.StepParkAfter = time.Second
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
	if c.Hook == nil {
		c.Hook = c.Jobs.Hook
	}
	if c.Hook == nil {
		c.Hook = keeltype.NoHook{}
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

// defaultRetryPolicy is Config.StepRetryPolicy's default.
var defaultRetryPolicy = keeltype.ExponentialBackoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

// retrying is how one step or compensation retries.
type retrying struct {
	maxAttempts int
	policy      keeltype.RetryPolicy
	// parkAfter is the longest wait for the next attempt spent in the
	// process; a longer one parks the run. 0: every wait is spent in the
	// process.
	parkAfter time.Duration
}

// StepOpts configures one step. nil or zero fields take the engine's
// defaults.
type StepOpts struct {
	// MaxAttempts is how many attempts the step gets, counting the first
	// and those before a park, a crash or a restart; 1 means no retry.
	// Default Config.StepMaxAttempts.
	MaxAttempts int
	// RetryPolicy is the step's retry policy: the wait before each next
	// attempt. A wait longer than Config.StepParkAfter parks the run until
	// the attempt is due, unless the step was started with StepAsync.
	// Default Config.StepRetryPolicy.
	RetryPolicy keeltype.RetryPolicy
	// CompensationMaxAttempts and CompensationRetryPolicy are the same for
	// the step's compensation, whose waits are always spent in the
	// process. Defaults: the Config's.
	CompensationMaxAttempts int
	CompensationRetryPolicy keeltype.RetryPolicy
}

// SignalOpts are the options of one Signal.
type SignalOpts struct {
	// IdempotencyKey makes the signal idempotent: a second signal to the
	// run with the same key is dropped. Default: none, every signal counts.
	IdempotencyKey string
}

// StartOpts are the options of one StartRun.
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
