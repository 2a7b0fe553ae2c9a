package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/carrier"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/notify"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// InsertOpts are the options of one insert. Zero fields take the kind's
// defaults (JobArgsWithInsertOpts) and then the client's.
type InsertOpts struct {
	// Queue to run in. Default "default".
	Queue string
	// Priority from 1 (first) to 4 (last). Default 1.
	Priority int
	// RunAt is the earliest time to run; Delay is the same relative to now.
	// At most one may be set. Default: at once.
	RunAt time.Time
	Delay time.Duration
	// MaxAttempts before the job is discarded. Default Config.MaxAttempts.
	MaxAttempts int
	// Timeout bounds each attempt; it overrides the kind's timeout. Default:
	// the kind's.
	Timeout time.Duration
	// Tags label the job for people and queries.
	Tags []string
	// Metadata is stored as a JSON object beside the args. The key
	// keeltype.CarrierKey is where keel keeps the trace context of the
	// insert; a value the caller gives under it is stored instead.
	Metadata map[string]any
	// UniqueKey: while a non-final job holds the key, another insert with it
	// fails with a *DuplicateError (ErrDuplicate) and writes nothing.
	UniqueKey string
	// DependsOn are ids of jobs that must be final before this one runs; the
	// job stays pending until then.
	DependsOn []int64
	// RunWhen is the condition on DependsOn. Default RunAfterSuccess.
	RunWhen RunWhen
}

// InsertManyParams is one job of InsertMany.
type InsertManyParams struct {
	Args JobArgs
	Opts *InsertOpts
}

// Notification channels. Inserts notify channelInsert with the queue name as
// payload; cancel requests and resumed queues notify channelControl.
const (
	channelInsert  = notify.JobsChannel
	channelControl = "keel_jobs_control"
)

// job is an insert made ready: validated and encoded.
type job struct {
	kind, queue string
	state       JobState
	priority    int16
	args, meta  json.RawMessage
	tags        []string
	maxAttempts int32
	timeoutMS   int64
	runAt       time.Time
	uniqueKey   string
	dependsOn   []int64
	runWhen     RunWhen
}

// Insert inserts one job through tx, the caller's transaction (or a pool or
// connection). The insert notifies the job's queue; in a transaction the
// notification fires on commit, and a rolled-back insert never runs.
//
// When a non-final job holds opts.UniqueKey, Insert writes nothing and
// returns a *DuplicateError; tx stays usable.
func (c *Client) Insert(ctx context.Context, tx keeltype.DBTX, args JobArgs, opts *InsertOpts) (*JobRow, error) {
	if err := checkDBTX(tx); err != nil {
		return nil, err
	}
	j, err := c.prepare(args, opts, c.now())
	if err != nil {
		return nil, err
	}
	op := keeltype.Operation{Kind: keeltype.OpJobInsert, Name: j.kind, Queue: j.queue, Count: 1, Carrier: map[string]string{}}
	ctx, end := c.cfg.Hook.Start(ctx, op)
	j.meta = carrier.Clean(op.Carrier).Metadata(j.meta)
	row, err := c.insert(ctx, tx, j)
	end(keeltype.Outcome{Err: err})
	return row, err
}

func (c *Client) insert(ctx context.Context, tx keeltype.DBTX, j *job) (*JobRow, error) {
	if len(j.dependsOn) > 0 {
		if err := checkDependencies(ctx, tx, j.dependsOn); err != nil {
			return nil, err
		}
	}
	row, err := db.New(tx).InsertJob(ctx, db.InsertJobParams{
		Kind: j.kind, Queue: j.queue, State: db.KeelJobState(j.state), Priority: j.priority,
		Args: j.args, Metadata: j.meta, Tags: j.tags, MaxAttempts: j.maxAttempts, TimeoutMs: j.timeoutMS,
		RunAt: ts(j.runAt), UniqueKey: optional(j.uniqueKey), DependsOn: j.dependsOn,
		RunWhen: db.KeelJobRunWhen(j.runWhen),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		existing, lookupErr := db.New(tx).ActiveJobByUniqueKey(ctx, &j.uniqueKey)
		if lookupErr != nil && !errors.Is(lookupErr, pgx.ErrNoRows) {
			return nil, fmt.Errorf("keel jobs: insert: finding the holder of unique key %q: %w", j.uniqueKey, lookupErr)
		}
		return nil, &DuplicateError{UniqueKey: j.uniqueKey, ExistingID: existing}
	}
	if err != nil {
		return nil, fmt.Errorf("keel jobs: insert %s: %w", j.kind, err)
	}
	if j.state == StateAvailable {
		if err := c.notifyQueue(ctx, tx, j.queue); err != nil {
			return nil, err
		}
	}
	return rowFromDB(&row)
}

// InsertMany inserts jobs through tx with one COPY and returns how many it
// inserted. Every job is validated and encoded before anything is written,
// so a bad one fails the call with nothing written. Unique keys need Insert
// (COPY cannot skip a duplicate), and are rejected here.
func (c *Client) InsertMany(ctx context.Context, tx keeltype.DBTX, params []InsertManyParams) (int64, error) {
	if err := checkDBTX(tx); err != nil {
		return 0, err
	}
	now := c.now()
	rows := make([]db.InsertJobsCopyParams, len(params))
	var deps []int64
	queues := map[string]bool{}
	for i, p := range params {
		j, err := c.prepare(p.Args, p.Opts, now)
		if err != nil {
			return 0, fmt.Errorf("job %d of %d: %w", i, len(params), err)
		}
		if j.uniqueKey != "" {
			return 0, fmt.Errorf("%w: job %d of %d: InsertMany cannot insert unique jobs; use Insert", ErrInvalidOptions, i, len(params))
		}
		deps = append(deps, j.dependsOn...)
		if j.state == StateAvailable {
			queues[j.queue] = true
		}
		rows[i] = db.InsertJobsCopyParams{
			Kind: j.kind, Queue: j.queue, State: db.KeelJobState(j.state), Priority: j.priority,
			Args: j.args, Metadata: j.meta, Tags: j.tags, MaxAttempts: j.maxAttempts, TimeoutMs: j.timeoutMS,
			RunAt: ts(j.runAt), DependsOn: j.dependsOn, RunWhen: db.KeelJobRunWhen(j.runWhen),
		}
	}
	op := keeltype.Operation{Kind: keeltype.OpJobInsert, Count: len(rows), Carrier: map[string]string{}}
	ctx, end := c.cfg.Hook.Start(ctx, op)
	if entries := carrier.Clean(op.Carrier); entries != nil {
		for i := range rows {
			rows[i].Metadata = entries.Metadata(rows[i].Metadata)
		}
	}
	n, err := c.insertMany(ctx, tx, rows, deps, queues)
	end(keeltype.Outcome{Err: err})
	return n, err
}

func (c *Client) insertMany(ctx context.Context, tx keeltype.DBTX, rows []db.InsertJobsCopyParams, deps []int64, queues map[string]bool) (int64, error) {
	if len(deps) > 0 {
		if err := checkDependencies(ctx, tx, deps); err != nil {
			return 0, err
		}
	}
	n, err := db.New(tx).InsertJobsCopy(ctx, rows)
	if err != nil {
		return 0, fmt.Errorf("keel jobs: insert many: %w", err)
	}
	for q := range queues {
		if err := c.notifyQueue(ctx, tx, q); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (c *Client) notifyQueue(ctx context.Context, tx keeltype.DBTX, queue string) error {
	if err := c.debouncer.Notify(ctx, tx, channelInsert, queue); err != nil {
		return fmt.Errorf("keel jobs: notifying queue %q: %w", queue, err)
	}
	return nil
}

// checkDependencies fails unless every id names an existing job.
func checkDependencies(ctx context.Context, tx keeltype.DBTX, ids []int64) error {
	uniq := map[int64]bool{}
	for _, id := range ids {
		uniq[id] = true
	}
	n, err := db.New(tx).CountJobsByIDs(ctx, ids)
	if err != nil {
		return fmt.Errorf("keel jobs: checking dependencies: %w", err)
	}
	if int(n) != len(uniq) {
		return fmt.Errorf("%w: DependsOn names %d jobs of which only %d exist", ErrInvalidOptions, len(uniq), n)
	}
	return nil
}

// prepare validates an insert and encodes it; it writes nothing.
func (c *Client) prepare(args JobArgs, opts *InsertOpts, now time.Time) (*job, error) {
	if isNil(args) {
		return nil, fmt.Errorf("%w: nil args", ErrInvalidOptions)
	}
	kind := args.Kind()
	if err := checkKind(kind); err != nil {
		return nil, fmt.Errorf("%w: %T: %w", ErrInvalidOptions, args, err)
	}
	if c.workers != nil {
		if _, ok := c.workers.kinds[kind]; !ok {
			return nil, fmt.Errorf("%w: %q has no worker in this client", ErrUnknownKind, kind)
		}
	}
	o := mergeOpts(args, opts)
	if o.Queue == "" {
		o.Queue = DefaultQueue
	}
	if o.Priority == 0 {
		o.Priority = 1
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = c.cfg.MaxAttempts
	}
	if o.RunWhen == "" {
		o.RunWhen = RunAfterSuccess
	}
	if err := o.validate(kind); err != nil {
		return nil, err
	}
	encoded, err := validate.Marshal("args", args)
	if err != nil {
		return nil, fmt.Errorf("%w: kind %q: %w", ErrEncode, kind, err)
	}
	meta := json.RawMessage("{}")
	if o.Metadata != nil {
		if meta, err = validate.Marshal("metadata", o.Metadata); err != nil {
			return nil, fmt.Errorf("%w: kind %q: %w", ErrInvalidOptions, kind, err)
		}
	}
	runAt := now
	switch {
	case !o.RunAt.IsZero():
		runAt = o.RunAt
	case o.Delay > 0:
		runAt = now.Add(o.Delay)
	}
	state := StateAvailable
	switch {
	case len(o.DependsOn) > 0:
		state = StatePending
	case runAt.After(now):
		state = StateScheduled
	}
	tags := o.Tags
	if tags == nil {
		tags = []string{}
	}
	deps := append([]int64{}, o.DependsOn...) // a workflow appends to it
	return &job{
		kind: kind, queue: o.Queue, state: state, priority: int16(o.Priority),
		args: encoded, meta: meta, tags: tags, maxAttempts: int32(o.MaxAttempts),
		timeoutMS: o.Timeout.Milliseconds(), runAt: runAt, uniqueKey: o.UniqueKey,
		dependsOn: deps, runWhen: o.RunWhen,
	}, nil
}

// mergeOpts lays opts over the kind's default options, field by field.
func mergeOpts(args JobArgs, opts *InsertOpts) InsertOpts {
	var o InsertOpts
	if d, ok := args.(JobArgsWithInsertOpts); ok {
		o = d.InsertOpts()
	}
	if opts == nil {
		return o
	}
	if opts.Queue != "" {
		o.Queue = opts.Queue
	}
	if opts.Priority != 0 {
		o.Priority = opts.Priority
	}
	if !opts.RunAt.IsZero() || opts.Delay != 0 {
		o.RunAt, o.Delay = opts.RunAt, opts.Delay
	}
	if opts.MaxAttempts != 0 {
		o.MaxAttempts = opts.MaxAttempts
	}
	if opts.Timeout != 0 {
		o.Timeout = opts.Timeout
	}
	if opts.Tags != nil {
		o.Tags = opts.Tags
	}
	if opts.Metadata != nil {
		o.Metadata = opts.Metadata
	}
	if opts.UniqueKey != "" {
		o.UniqueKey = opts.UniqueKey
	}
	if opts.DependsOn != nil {
		o.DependsOn = opts.DependsOn
	}
	if opts.RunWhen != "" {
		o.RunWhen = opts.RunWhen
	}
	return o
}

// validate checks the options once defaults are in place: the text against
// what Postgres stores and indexes, the numbers against their ranges.
func (o *InsertOpts) validate(kind string) error {
	for _, err := range []error{
		checkQueue(o.Queue),
		validate.Texts("tags", o.Tags, 0),
		validate.Text("unique key", o.UniqueKey, validate.MaxKey),
	} {
		if err != nil {
			return fmt.Errorf("%w: kind %q: %w", ErrInvalidOptions, kind, err)
		}
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: kind %q: %s", ErrInvalidOptions, kind, fmt.Sprintf(format, a...))
	}
	switch {
	case o.Priority < 1 || o.Priority > 4:
		return bad("priority %d is not 1 to 4", o.Priority)
	case o.MaxAttempts < 1 || o.MaxAttempts > 1<<20:
		return bad("max attempts %d is out of range", o.MaxAttempts)
	case o.Timeout < 0:
		return bad("negative timeout")
	case o.Delay < 0:
		return bad("negative delay")
	case !o.RunAt.IsZero() && o.Delay != 0:
		return bad("set RunAt or Delay, not both")
	case !o.RunAt.IsZero() && (o.RunAt.UTC().Year() < 1 || o.RunAt.UTC().Year() > 9999):
		return bad("RunAt %s is outside the years 1 to 9999", o.RunAt)
	case o.RunWhen != RunAfterSuccess && o.RunWhen != RunAfterFailure && o.RunWhen != RunAlways:
		return bad("unknown RunWhen %q", o.RunWhen)
	}
	return nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
