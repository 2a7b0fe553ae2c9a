package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/internal/outage"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/listener"
)

// Client inserts jobs and, when it has workers, runs them. Any number of
// clients in any number of processes may work the same database.
type Client struct {
	pool      *pgxpool.Pool
	cfg       Config
	workers   *Workers
	id        string
	debouncer *notify.Debouncer
	outage    *outage.Tracker
	schedules []*schedule
	// now is the client's clock: every time written to the database comes
	// from it, so tests can move it.
	now func() time.Time

	mu      sync.Mutex
	started bool
	run     *run
}

// run is the state of one Start…Stop.
type run struct {
	// stopFetch stops claiming; stopJobs cancels running handlers; stopAll
	// ends the background loops once jobs are done and completions written.
	stopFetch, stopAll context.CancelFunc
	stopJobs           context.CancelCauseFunc
	jobsCtx            context.Context
	listener           *listener.Listener
	queues             map[string]*queue
	completer          *completer
	kickResolve        chan struct{}
	// writesCtx scopes the retries of writing attempts' outcomes; Stop
	// abandons them (the jobs are rescued) when its context ends.
	writesCtx     context.Context
	abandonWrites context.CancelFunc

	fetchers   sync.WaitGroup
	handlers   sync.WaitGroup
	background sync.WaitGroup

	mu      sync.Mutex
	running map[int64]*runningJob
	// completing holds the jobs whose handlers returned nil and whose
	// completion is not written yet; they are heartbeated like running ones.
	completing map[int64]struct{}
}

// NewClient returns a client on pool. It validates cfg and the workers'
// options; nothing runs until Start.
func NewClient(pool *pgxpool.Pool, cfg Config) (*Client, error) {
	if pool == nil {
		return nil, fmt.Errorf("%w: nil pool", ErrInvalidOptions)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	id := cfg.ID
	if id == "" {
		id = newClientID()
	}
	c := &Client{
		pool:      pool,
		cfg:       cfg,
		workers:   cfg.Workers,
		id:        id,
		debouncer: notify.NewDebouncer(pool, cfg.NotifyInterval, cfg.Logger),
		outage:    outage.NewTracker("jobs", cfg.Logger, outage.Report(cfg.Hook)),
		now:       time.Now,
	}
	for _, pj := range cfg.PeriodicJobs {
		s, err := newSchedule(pj)
		if err != nil {
			return nil, err
		}
		c.schedules = append(c.schedules, s)
	}
	if err := c.checkSchedules(); err != nil {
		return nil, err
	}
	return c, nil
}

// ID returns the client's id, as written in keel.jobs.owner.
func (c *Client) ID() string { return c.id }

func newClientID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	host = validate.ErrorText(host) // keel.jobs.owner is text
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Start begins working the configured queues, heartbeating, maintenance and
// periodic jobs. It returns at once; the client runs until Stop or
// StopAndCancel (ctx only scopes start-up).
func (c *Client) Start(ctx context.Context) error {
	if c.workers == nil {
		return ErrNoWorkers
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return ErrStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.started = true
	bgCtx, stopAll := context.WithCancel(context.WithoutCancel(ctx))
	fetchCtx, stopFetch := context.WithCancel(bgCtx)
	jobsCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	writesCtx, abandonWrites := context.WithCancel(context.WithoutCancel(ctx))
	r := &run{
		stopFetch: stopFetch, stopAll: stopAll, stopJobs: stopJobs, jobsCtx: jobsCtx,
		writesCtx: writesCtx, abandonWrites: abandonWrites,
		listener:    c.cfg.Listener,
		queues:      map[string]*queue{},
		kickResolve: make(chan struct{}, 1),
		running:     map[int64]*runningJob{},
		completing:  map[int64]struct{}{},
	}
	if r.listener == nil {
		r.listener = listener.New(c.pool, c.cfg.Logger)
	}
	r.completer = newCompleter(c, r)
	c.run = r

	inserts := r.listener.Subscribe(channelInsert, 64)
	control := r.listener.Subscribe(channelControl, 64)
	for name, qc := range c.cfg.Queues {
		q := newQueue(c, r, name, qc.MaxWorkers)
		r.queues[name] = q
		r.fetchers.Add(1)
		go func() {
			defer r.fetchers.Done()
			q.loop(fetchCtx)
		}()
	}
	c.goBackground(r, func(ctx context.Context) { _ = r.listener.Run(ctx) }, bgCtx)
	c.goBackground(r, func(ctx context.Context) { c.dispatch(ctx, r, inserts, control) }, bgCtx)
	go r.completer.loop()
	c.goBackground(r, func(ctx context.Context) { c.heartbeatLoop(ctx, r) }, bgCtx)
	c.startMaintenance(bgCtx, r)
	for _, s := range c.schedules {
		c.goBackground(r, func(ctx context.Context) { c.scheduleLoop(ctx, s) }, fetchCtx)
	}
	c.cfg.Logger.InfoContext(ctx, "keel jobs: client started", "id", c.id, "queues", len(r.queues))
	return nil
}

func (c *Client) goBackground(r *run, f func(context.Context), ctx context.Context) {
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		f(ctx)
	}()
}

// dispatch routes notifications: inserts wake their queue's fetcher, control
// messages cancel running jobs or wake resumed queues. After a reconnect
// every queue looks for work.
func (c *Client) dispatch(ctx context.Context, r *run, inserts, control *listener.Subscription) {
	defer inserts.Close()
	defer control.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case payload := <-inserts.C:
			if payload == listener.Reconnected {
				for _, q := range r.queues {
					q.wakeUp()
				}
				continue
			}
			if q := r.queues[payload]; q != nil {
				q.wakeUp()
			}
		case payload := <-control.C:
			c.handleControl(r, payload)
		}
	}
}

// Stop stops claiming jobs and waits for running ones to finish and for
// their results to be written, through a database outage if need be. When
// ctx ends first, the running jobs' contexts are cancelled and Stop waits for
// their handlers to return, abandons the results it could not write yet and
// returns ctx's error; those jobs stay running and are rescued after
// RescueAfter. Background work is stopped before it returns.
func (c *Client) Stop(ctx context.Context) error {
	return c.stop(ctx, false)
}

// StopAndCancel is a hard stop: it cancels the contexts of running jobs at
// once, waits for their handlers to return and their results to be written,
// and stops.
func (c *Client) StopAndCancel(ctx context.Context) error {
	return c.stop(ctx, true)
}

func (c *Client) stop(ctx context.Context, hard bool) error {
	c.mu.Lock()
	r := c.run
	c.run = nil
	c.mu.Unlock()
	if r == nil { // never started, or already stopping
		return nil
	}
	r.stopFetch()
	r.fetchers.Wait()
	if hard {
		r.stopJobs(context.Canceled)
	}
	done := make(chan struct{})
	go func() {
		r.handlers.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		r.stopJobs(err)
		r.abandonWrites()
		<-done
	}
	written := make(chan struct{})
	go func() {
		r.completer.close()
		close(written)
	}()
	select {
	case <-written:
	case <-ctx.Done():
		err = ctx.Err()
		r.abandonWrites()
		<-written
	}
	r.abandonWrites()
	r.stopAll()
	r.background.Wait()
	r.stopJobs(context.Canceled)
	c.mu.Lock()
	c.started = false
	c.mu.Unlock()
	c.cfg.Logger.Info("keel jobs: client stopped", "id", c.id)
	return err
}
