// Package orders is keel's example service: a small order service over HTTP
// whose POST /orders writes, in ONE transaction, the order row, an
// OrderPlaced event, an outbox message, a confirmation-email job and the
// start of the fulfil-order saga — all of it commits, or none of it does.
//
// The saga reserves stock, charges the card, waits for the
// payment-confirmed signal (POST /orders/{id}/payment) and ships; a refused
// or missing payment runs the compensations (refund, release stock) in
// reverse order. A read model, orders per customer, is kept by an events
// subscription that writes it in the transaction that advances its
// checkpoint.
//
// The package is what examples/orders/cmd/orders-demo (make demo) and the
// tests drive; a real service would call [Service.Run] from main and serve
// [Service.Handler].
package orders

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/keelpg/keel"
	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/examples/orders/ordersdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// VersionTable is where the example records its own migrations, apart from
// keel's public.keel_db_version.
const VersionTable = "public.orders_db_version"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Names the example uses in keel.
const (
	Topic          = "orders"
	Workflow       = "fulfil-order"
	PaymentSignal  = "payment-confirmed"
	Subscription   = "orders-per-customer"
	EventPlaced    = "OrderPlaced"
	StreamCategory = "order"
)

// Item is one line of an order.
type Item struct {
	SKU        string `json:"sku"`
	Qty        int    `json:"qty"`
	PriceCents int64  `json:"price_cents"`
}

// NewOrder is the body of POST /orders.
type NewOrder struct {
	Customer string `json:"customer"`
	Email    string `json:"email"`
	Items    []Item `json:"items"`
}

// Placed is an order as stored and as carried by the event, the outbox
// message, the job and the saga.
type Placed struct {
	ID         int64  `json:"id"`
	Customer   string `json:"customer"`
	Email      string `json:"email"`
	Items      []Item `json:"items"`
	TotalCents int64  `json:"total_cents"`
}

// ValidationError is bad input: the handler answers 400 with its message,
// and nothing is written.
type ValidationError struct{ Reason string }

func (e *ValidationError) Error() string { return "invalid order: " + e.Reason }

// Validate checks an order before anything is written and returns its total.
func (o NewOrder) Validate() (int64, error) {
	if strings.TrimSpace(o.Customer) == "" {
		return 0, &ValidationError{"customer is required"}
	}
	if at := strings.IndexByte(o.Email, '@'); at < 1 || at == len(o.Email)-1 {
		return 0, &ValidationError{fmt.Sprintf("email %q is not an address", o.Email)}
	}
	if len(o.Items) == 0 {
		return 0, &ValidationError{"an order needs at least one item"}
	}
	var total int64
	for i, it := range o.Items {
		switch {
		case strings.TrimSpace(it.SKU) == "":
			return 0, &ValidationError{fmt.Sprintf("item %d has no sku", i+1)}
		case it.Qty <= 0:
			return 0, &ValidationError{fmt.Sprintf("item %d (%s): qty must be positive, got %d", i+1, it.SKU, it.Qty)}
		case it.PriceCents <= 0:
			return 0, &ValidationError{fmt.Sprintf("item %d (%s): price_cents must be positive, got %d", i+1, it.SKU, it.PriceCents)}
		}
		total += int64(it.Qty) * it.PriceCents
	}
	return total, nil
}

// ConfirmationEmail is the job inserted with each order.
type ConfirmationEmail struct {
	OrderID int64  `json:"order_id"`
	Email   string `json:"email"`
}

// Kind names the job kind.
func (ConfirmationEmail) Kind() string { return "order_confirmation_email" }

// Happening is one thing the service did, reported to Config.Observe as it
// happens.
type Happening struct {
	What    string // "order placed", "job ran", "message relayed", "saga step", "projection updated", …
	OrderID int64
	Detail  string
}

// Config configures a Service. Zero values take the documented defaults.
type Config struct {
	// PaymentTimeout is how long the saga waits for the payment signal
	// before it compensates. Default 10 minutes.
	PaymentTimeout time.Duration
	// Observe hears of each Happening, from the goroutine it happened on.
	// Default: none.
	Observe func(Happening)
	// Logger receives keel's logs. Default: none.
	Logger *slog.Logger
	// PollInterval bounds how late the relay and the subscription notice
	// work they were not notified of. Default: keel's defaults.
	PollInterval time.Duration
}

// Service is the order service: keel's outbox, events, jobs and saga engine
// on one pool.
type Service struct {
	pool *pgxpool.Pool
	cfg  Config
	keel *keel.Client
}

// Migrate applies keel's migrations' companion — the example's own goose
// migrations (table orders and the read model) — recording them in
// VersionTable. keel's schema is applied separately (migrations.New).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	sub, err := fsSub()
	if err != nil {
		return err
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer func() { _ = sqlDB.Close() }()
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, sub,
		goose.WithTableName(VersionTable), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("orders migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("orders migrations: %w", err)
	}
	return nil
}

// New builds the service on pool, where keel's and the example's migrations
// are applied: one keel.Client runs the confirmation job's worker and the
// fulfilment saga on one jobs client, the outbox relay and the read-model
// subscription. Nothing runs until Run.
func New(pool *pgxpool.Pool, cfg Config) (*Service, error) {
	if cfg.PaymentTimeout == 0 {
		cfg.PaymentTimeout = 10 * time.Minute
	}
	if cfg.Observe == nil {
		cfg.Observe = func(Happening) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{pool: pool, cfg: cfg}
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, s.sendConfirmation, nil)
	reg := saga.NewRegistry()
	saga.Register(reg, Workflow, 1, s.fulfil)
	jcfg := jobs.Config{Workers: workers, Queues: map[string]jobs.QueueConfig{jobs.DefaultQueue: {MaxWorkers: 10}}}
	if cfg.PollInterval > 0 {
		jcfg.FetchPollInterval = cfg.PollInterval
		jcfg.MaintenanceInterval = cfg.PollInterval
	}
	var err error
	s.keel, err = keel.New(pool, keel.Config{
		Logger:    cfg.Logger,
		Jobs:      jcfg,
		Workflows: reg,
		Saga: saga.Config{
			StepMaxAttempts: 3,
			StepRetryPolicy: keeltype.ExponentialBackoff{Initial: 10 * time.Millisecond, Max: time.Second},
		},
		Publisher: outbox.PublisherFunc(s.publish),
		Relay:     outbox.RelayConfig{PollInterval: cfg.PollInterval},
		Subscriptions: []events.SubscriptionConfig{{
			Name: Subscription, Category: StreamCategory, Handler: s.project, PollInterval: cfg.PollInterval,
		}},
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Engine is the saga engine (and, through Engine().Jobs(), the jobs client).
func (s *Service) Engine() *saga.Engine { return s.keel.Saga() }

// Run starts the service's keel components and blocks until ctx ends; then
// it stops them, giving work in hand up to 10s to finish.
func (s *Service) Run(ctx context.Context) error {
	if err := s.keel.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return s.keel.Stop(stopCtx)
}

// StreamID is the event stream of an order.
func StreamID(id int64) string { return "order-" + strconv.FormatInt(id, 10) }

// RunID is the saga run of an order.
func RunID(id int64) string { return "fulfil-order-" + strconv.FormatInt(id, 10) }

// Place writes a valid order in tx — the caller's transaction — with its
// event, outbox message, confirmation job and saga start. It begins,
// commits and rolls back nothing: either tx commits and all of it happened,
// or none of it did. Bad input fails with a *ValidationError before any
// write.
func (s *Service) Place(ctx context.Context, tx keeltype.DBTX, o NewOrder) (Placed, error) {
	total, err := o.Validate()
	if err != nil {
		return Placed{}, err
	}
	p := Placed{Customer: o.Customer, Email: o.Email, Items: o.Items, TotalCents: total}
	items, err := json.Marshal(o.Items)
	if err != nil {
		return Placed{}, err
	}
	if p.ID, err = ordersdb.New(tx).InsertOrder(ctx, ordersdb.InsertOrderParams{
		Customer: p.Customer, Email: p.Email, Items: items, TotalCents: p.TotalCents,
	}); err != nil {
		return Placed{}, fmt.Errorf("inserting the order: %w", err)
	}
	ev, err := events.NewEvent(EventPlaced, p)
	if err != nil {
		return Placed{}, err
	}
	if _, err := s.keel.Events().Append(ctx, tx, StreamID(p.ID), events.NoStream, ev); err != nil {
		return Placed{}, fmt.Errorf("appending %s: %w", EventPlaced, err)
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return Placed{}, err
	}
	if _, err := s.keel.Outbox().Enqueue(ctx, tx, outbox.Message{
		Topic: Topic, Key: StreamID(p.ID), Type: EventPlaced, Payload: payload,
	}); err != nil {
		return Placed{}, fmt.Errorf("enqueueing the message: %w", err)
	}
	if _, err := s.keel.Jobs().Insert(ctx, tx, ConfirmationEmail{OrderID: p.ID, Email: p.Email}, nil); err != nil {
		return Placed{}, fmt.Errorf("inserting the confirmation job: %w", err)
	}
	if _, err := s.keel.Saga().StartRun(ctx, tx, Workflow, p, &saga.StartOpts{RunID: RunID(p.ID)}); err != nil {
		return Placed{}, fmt.Errorf("starting %s: %w", Workflow, err)
	}
	return p, nil
}

// ErrNoOrder is a payment for an order that does not exist.
var ErrNoOrder = errors.New("no such order")

// Pay sends the payment-confirmed signal to the order's saga through tx.
func (s *Service) Pay(ctx context.Context, tx keeltype.DBTX, id int64, confirmed bool) error {
	ok, err := ordersdb.New(tx).OrderExists(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %d", ErrNoOrder, id)
	}
	return s.keel.Saga().Signal(ctx, tx, RunID(id), PaymentSignal, confirmed, nil)
}

func (s *Service) observe(what string, id int64, detail string) {
	s.cfg.Observe(Happening{What: what, OrderID: id, Detail: detail})
}

func (s *Service) sendConfirmation(_ context.Context, job *jobs.Job[ConfirmationEmail]) error {
	// A real service would send mail here; the example reports it.
	s.observe("job ran", job.Args.OrderID, fmt.Sprintf("%s #%d to %s (attempt %d)",
		job.Kind, job.ID, job.Args.Email, job.Attempt))
	return nil
}

func (s *Service) publish(_ context.Context, d outbox.Delivery) error {
	var p Placed
	if err := json.Unmarshal(d.Payload, &p); err != nil {
		return err
	}
	// A real service would hand the message to Kafka, NATS or a webhook.
	s.observe("message relayed", p.ID, fmt.Sprintf("%s %s to topic %s (attempt %d)", d.Type, d.Key, d.Topic, d.Attempt))
	return nil
}

func (s *Service) project(ctx context.Context, tx pgx.Tx, e events.RecordedEvent) error {
	if e.Type != EventPlaced {
		return nil
	}
	var p Placed
	if err := e.Decode(&p); err != nil {
		return err
	}
	if err := ordersdb.New(tx).ProjectOrder(ctx, ordersdb.ProjectOrderParams{Customer: p.Customer, TotalCents: p.TotalCents, OrderID: p.ID}); err != nil {
		return err
	}
	s.observe("projection updated", p.ID, fmt.Sprintf("%s: +1 order, +%d cents (feed position %d)", p.Customer, p.TotalCents, e.Position))
	return nil
}

// status records a saga step on the order row and reports it.
func (s *Service) status(ctx context.Context, id int64, status string) error {
	if err := ordersdb.New(s.pool).SetOrderStatus(ctx, ordersdb.SetOrderStatusParams{ID: id, Status: status}); err != nil {
		return err
	}
	s.observe("saga step", id, status)
	return nil
}

// ErrPaymentRefused fails a run whose payment signal said false.
var ErrPaymentRefused = errors.New("payment refused")

// fulfil is the fulfil-order workflow.
func (s *Service) fulfil(ctx saga.Context, p Placed) (string, error) {
	_, err := saga.StepWithCompensation(ctx, "reserve-stock",
		func(ctx context.Context) (string, error) {
			return fmt.Sprintf("reservation-%d", p.ID), s.status(ctx, p.ID, "stock reserved")
		},
		func(ctx context.Context, _ string) error { return s.status(ctx, p.ID, "stock released") }, nil)
	if err != nil {
		return "", err
	}
	_, err = saga.StepWithCompensation(ctx, "charge-card",
		func(ctx context.Context) (int64, error) { return p.TotalCents, s.status(ctx, p.ID, "card charged") },
		func(ctx context.Context, cents int64) error {
			return s.status(ctx, p.ID, fmt.Sprintf("refunded %d cents", cents))
		}, nil)
	if err != nil {
		return "", err
	}
	if _, err := saga.Step(ctx, "await-payment", func(ctx context.Context) (bool, error) {
		return true, s.status(ctx, p.ID, "awaiting payment confirmation")
	}, nil); err != nil {
		return "", err
	}
	paid, err := saga.AwaitSignal[bool](ctx, PaymentSignal, s.cfg.PaymentTimeout)
	if err != nil {
		return "", err // a timeout: the compensations run
	}
	if !paid {
		return "", ErrPaymentRefused
	}
	return saga.Step(ctx, "ship", func(ctx context.Context) (string, error) {
		return fmt.Sprintf("parcel-%d", p.ID), s.status(ctx, p.ID, "shipped")
	}, nil)
}

// Pool is the service's pool.
func (s *Service) Pool() *pgxpool.Pool { return s.pool }
