package keel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/listener"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// Config configures a Client: which of keel's components it runs and how.
// The zero value runs an insert-only jobs client, an outbox writer, an
// inbox with its expiry and an event store; every component's own config
// keeps its documented defaults.
type Config struct {
	// Logger receives the logs of every component whose own config names
	// no logger. Default: nothing is logged.
	Logger *slog.Logger
	// Hook observes every component's work (see keeltype.Hook): it is
	// given to each component whose own config names no hook. Default:
	// none.
	Hook keeltype.Hook
	// ListenPool is the pool the LISTEN connection comes from. Default: the
	// pool given to New. Behind PgBouncer in transaction mode give it a pool
	// that connects to Postgres directly: a notification is heard only on
	// the session that listened.
	ListenPool *pgxpool.Pool

	// Jobs configures the process's one jobs client. With Workers set it
	// runs them, on Jobs.Queues (default: jobs' default queue only); with
	// Workers nil it only inserts and controls jobs. Its Listener is
	// replaced by the client's.
	Jobs jobs.Config
	// Workflows holds the workflows this process runs. nil runs no saga
	// engine.
	Workflows *saga.Registry
	// Saga configures the saga engine. Its Jobs field is ignored: the
	// engine runs on the one jobs client that Jobs configures, and adds its
	// own queue (Saga.Queue, default "saga") to it.
	Saga saga.Config

	// Outbox configures the outbox writer.
	Outbox outbox.Config
	// Publisher, when set, makes the client run an outbox relay that
	// publishes through it. Default: no relay.
	Publisher outbox.Publisher
	// Relay configures that relay. Its Listener is replaced by the client's.
	Relay outbox.RelayConfig
	// Inbox configures the inbox; the client runs its expiry.
	Inbox outbox.InboxConfig

	// Events configures the event store. Its Listener is replaced by the
	// client's.
	Events events.Config
	// Subscriptions are the event subscriptions the client runs.
	Subscriptions []events.SubscriptionConfig
	// Sequencer runs the event store's sequencer, so events.Store.ReadAll
	// sees new events within Events.SequencerInterval without calling
	// Sequence. Subscriptions sequence for themselves. Default: false.
	Sequencer bool
}

// Client is the one keel object a process makes over its pool. It owns the
// process's one LISTEN connection, builds every component Config asks for
// on it, and starts and stops them in order: what consumes work stops
// before what it depends on, so Stop leaves no component holding a
// connection and the pool can then be closed.
//
// Each feature stays usable on its own (jobs.NewClient, outbox.NewRelay …);
// the Client is how a service runs several of them on one pool without
// wiring them by hand.
type Client struct {
	cfg      Config
	listener *listener.Listener
	jobs     *jobs.Client
	saga     *saga.Engine
	outbox   *outbox.Outbox
	relay    *outbox.Relay
	inbox    *outbox.Inbox
	events   *events.Store
	subs     []*events.Subscription

	mu      sync.Mutex
	started bool
	stopped bool
}

// ErrInvalidConfig is matched by every error New returns about its
// arguments: a nil pool, a pool too small for what the Config starts, or a
// component's config that its own constructor refused (wrapped with that
// package's error).
var ErrInvalidConfig = errors.New("keel: invalid config")

// ErrStarted is returned by Start on a Client that was started before;
// ErrStopped by Start after Stop. A Client runs once: make a new one to run
// again.
var (
	ErrStarted = errors.New("keel: client already started")
	ErrStopped = errors.New("keel: client stopped")
)

// New builds every component cfg asks for on pool and checks that pool can
// serve them; nothing runs until Start. The pool must allow at least one
// connection more than keel holds for good (the LISTEN connection) — New
// names the numbers when it does not, rather than leave the process to
// hang waiting for a connection.
func New(pool *pgxpool.Pool, cfg Config) (*Client, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: nil pool", ErrInvalidConfig)
	}
	listenPool := cfg.ListenPool
	if listenPool == nil {
		listenPool = pool
	}
	c := &Client{cfg: cfg, listener: listener.New(listenPool, cfg.Logger)}
	if err := c.build(pool); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := c.checkPool(pool); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Client) build(pool *pgxpool.Pool) error {
	cfg := c.cfg
	jc := cfg.Jobs
	jc.Listener = c.listener
	jc.Logger = orLogger(jc.Logger, cfg.Logger)
	jc.Hook = orHook(jc.Hook, cfg.Hook)
	var err error
	if cfg.Workflows != nil {
		sc := cfg.Saga
		sc.Jobs = jc
		sc.Logger = orLogger(sc.Logger, cfg.Logger)
		sc.Hook = orHook(sc.Hook, cfg.Hook)
		if c.saga, err = saga.NewEngine(pool, cfg.Workflows, sc); err != nil {
			return err
		}
		c.jobs = c.saga.Jobs()
	} else if c.jobs, err = jobs.NewClient(pool, jc); err != nil {
		return err
	}

	oc := cfg.Outbox
	oc.Logger = orLogger(oc.Logger, cfg.Logger)
	oc.Hook = orHook(oc.Hook, cfg.Hook)
	if c.outbox, err = outbox.New(pool, oc); err != nil {
		return err
	}
	if cfg.Publisher != nil {
		rc := cfg.Relay
		rc.Listener = c.listener
		rc.Logger = orLogger(rc.Logger, cfg.Logger)
		rc.Hook = orHook(rc.Hook, cfg.Hook)
		if c.relay, err = outbox.NewRelay(pool, cfg.Publisher, rc); err != nil {
			return err
		}
	}
	ic := cfg.Inbox
	ic.Logger = orLogger(ic.Logger, cfg.Logger)
	if c.inbox, err = outbox.NewInbox(pool, ic); err != nil {
		return err
	}

	ec := cfg.Events
	ec.Listener = c.listener
	ec.Logger = orLogger(ec.Logger, cfg.Logger)
	ec.Hook = orHook(ec.Hook, cfg.Hook)
	if c.events, err = events.NewStore(pool, ec); err != nil {
		return err
	}
	for _, sc := range cfg.Subscriptions {
		sub, err := c.events.NewSubscription(sc)
		if err != nil {
			return err
		}
		c.subs = append(c.subs, sub)
	}
	return nil
}

func orLogger(l, fallback *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return fallback
}

func orHook(h, fallback keeltype.Hook) keeltype.Hook {
	if h != nil {
		return h
	}
	return fallback
}

// checkPool refuses a pool that cannot serve the LISTEN connection (unless
// it comes from Config.ListenPool) and at least one connection of work
// beside it. Every other connection keel uses
// is taken per statement or per transaction and given back, so one is
// enough for progress; more only make it faster.
func (c *Client) checkPool(pool *pgxpool.Pool) error {
	held := 0
	if c.listens() && c.cfg.ListenPool == nil {
		held = 1
	}
	need := int32(held + 1)
	if max := pool.Config().MaxConns; max < need {
		return fmt.Errorf("%w: the pool allows %d connection(s) (MaxConns) and keel needs %d: %d held for LISTEN and 1 for its work and yours; raise pool_max_conns",
			ErrInvalidConfig, max, need, held)
	}
	return nil
}

// listens reports whether anything the client starts uses the LISTEN
// connection.
func (c *Client) listens() bool {
	return c.runsJobs() || c.relay != nil || len(c.subs) > 0
}

func (c *Client) runsJobs() bool { return c.saga != nil || c.cfg.Jobs.Workers != nil }

// Jobs returns the process's one jobs client: insert, control and list
// jobs with it. It also runs the saga engine's runs when Config.Workflows is
// set.
func (c *Client) Jobs() *jobs.Client { return c.jobs }

// Saga returns the saga engine, or nil when Config.Workflows is nil.
func (c *Client) Saga() *saga.Engine { return c.saga }

// Outbox returns the outbox writer.
func (c *Client) Outbox() *outbox.Outbox { return c.outbox }

// Inbox returns the inbox.
func (c *Client) Inbox() *outbox.Inbox { return c.inbox }

// Events returns the event store.
func (c *Client) Events() *events.Store { return c.events }

// component is the lifecycle every running part of keel shares.
type component struct {
	name          string
	start         func(context.Context) error
	stop          func(context.Context) error
	stopAndCancel func(context.Context) error
}

// components lists what the client runs in start order: what produces or
// orders work first, what consumes it last.
func (c *Client) components() []component {
	var cs []component
	if c.cfg.Sequencer {
		cs = append(cs, component{"events sequencer", c.events.Start, c.events.Stop, c.events.StopAndCancel})
	}
	for i, sub := range c.subs {
		cs = append(cs, component{"events subscription " + c.cfg.Subscriptions[i].Name, sub.Start, sub.Stop, sub.StopAndCancel})
	}
	if c.relay != nil {
		cs = append(cs, component{"outbox relay", c.relay.Start, c.relay.Stop, c.relay.StopAndCancel})
	}
	cs = append(cs, component{"outbox inbox expiry", c.inbox.Start, c.inbox.Stop, c.inbox.StopAndCancel})
	switch {
	case c.saga != nil:
		cs = append(cs, component{"saga engine", c.saga.Start, c.saga.Stop, c.saga.StopAndCancel})
	case c.runsJobs():
		cs = append(cs, component{"jobs client", c.jobs.Start, c.jobs.Stop, c.jobs.StopAndCancel})
	}
	return cs
}

// Start starts every component Config asks for and returns at once; ctx
// only scopes the start. When one fails to start, those already started
// are stopped and its error is returned.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped:
		return ErrStopped
	case c.started:
		return ErrStarted
	}
	cs := c.components()
	for i, comp := range cs {
		if err := comp.start(ctx); err != nil {
			stopErr := stopAll(context.WithoutCancel(ctx), cs[:i], false)
			return errors.Join(fmt.Errorf("keel: starting the %s: %w", comp.name, err), stopErr)
		}
	}
	c.started = true
	return nil
}

// Stop stops every component in the reverse of start order, each letting
// the work it holds finish (see jobs.Client.Stop, outbox.Relay.Stop,
// events.Subscription.Stop and saga.Engine.Stop), then closes the outbox
// writer and the event store. When ctx ends first, the work in hand is
// cancelled, to be done again by whoever takes it next. It returns every
// component's error, joined; once it returns, keel holds no connection and
// the pool may be closed. The client's writers refuse after Stop.
func (c *Client) Stop(ctx context.Context) error { return c.stop(ctx, false) }

// StopAndCancel is Stop that cancels the work in hand at once.
func (c *Client) StopAndCancel(ctx context.Context) error { return c.stop(ctx, true) }

func (c *Client) stop(ctx context.Context, cancel bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var err error
	if c.started {
		err = stopAll(ctx, c.components(), cancel)
	}
	c.outbox.Close()
	c.events.Close()
	return err
}

// stopAll stops cs in reverse order and joins their errors.
func stopAll(ctx context.Context, cs []component, cancel bool) error {
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		stop := cs[i].stop
		if cancel {
			stop = cs[i].stopAndCancel
		}
		if err := stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("keel: stopping the %s: %w", cs[i].name, err))
		}
	}
	return errors.Join(errs...)
}
