package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel"
	"github.com/keelpg/keel/console"
	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// The environment the test reads.
const (
	// requireEnv set to 1 makes a missing Node.js or Chromium fail the test
	// rather than skip it (CI sets it).
	requireEnv = "KEEL_E2E"
	// artifactsEnv is where the script saves its screenshots. Default:
	// artifacts/ beside this file; a relative path is taken from here too.
	artifactsEnv = "KEEL_E2E_ARTIFACTS"
	// screenshotsEnv set to "docs" copies docsPictures into docs/.
	screenshotsEnv = "KEEL_E2E_SCREENSHOTS"
)

// chromiumPath is Debian's Chromium, the browser the script drives.
const chromiumPath = "/usr/bin/chromium"

// minNode is the oldest Node.js major version playwright-core supports.
const minNode = 20

// docsPictures are the screenshots that refresh the README's pictures:
// the script's file name and the name in docs/.
var docsPictures = []struct{ shot, doc string }{
	{"overview.png", "console-overview.png"},
	{"saga-signalled.png", "console-saga.png"},
	{"outbox.png", "console-dead-letters.png"},
}

// scenario is what the test seeds and the script looks for; the script
// reads it as JSON from KEEL_E2E_SCENARIO.
type scenario struct {
	// PauseQueue has jobs that no process works: the script pauses and
	// resumes it.
	PauseQueue string `json:"pauseQueue"`
	// Job is a discarded job of JobKind that failed with JobError; the
	// script retries it and watches it complete.
	Job      int64  `json:"job"`
	JobKind  string `json:"jobKind"`
	JobError string `json:"jobError"`
	// Message is a dead letter of Topic that failed with MessageError;
	// the script requeues it and watches it be delivered.
	Message      string `json:"message"`
	Topic        string `json:"topic"`
	MessageError string `json:"messageError"`
	// Run is a run of Workflow waiting for the signal Signal; the script
	// sends it and watches the run succeed. DoneRun succeeded already.
	Workflow string `json:"workflow"`
	Run      string `json:"run"`
	Signal   string `json:"signal"`
	DoneRun  string `json:"doneRun"`
	// Stream holds EventTypes, oldest first.
	Stream     string   `json:"stream"`
	EventTypes []string `json:"eventTypes"`
	// Subscription follows the streams; Parked stopped on an event with
	// ParkedError.
	Subscription string `json:"subscription"`
	Parked       string `json:"parked"`
	ParkedError  string `json:"parkedError"`
}

type invoiceArgs struct {
	Invoice string `json:"invoice"`
}

func (invoiceArgs) Kind() string { return "invoice.send" }

type receiptArgs struct {
	Order string `json:"order"`
}

func (receiptArgs) Kind() string { return "receipt.send" }

type reportArgs struct {
	Day string `json:"day"`
}

func (reportArgs) Kind() string { return "report.build" }

type order struct {
	ID    string `json:"id"`
	Items int    `json:"items"`
}

// TestConsoleInBrowser drives the console in headless Chromium over a live
// keel and checks in Postgres what its buttons did.
func TestConsoleInBrowser(t *testing.T) {
	node := browserTools(t)
	installModules(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	pool := testdb.New(t)
	l := startKeel(t, pool)
	sc := l.seed(ctx, t)
	// The outage is over: the job's handler and the publisher succeed
	// from now on, each holding its work until the script opens its gate.
	l.fixed.Store(true)

	h, err := console.New(pool, console.Config{RefreshInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("POST /_e2e/open/{gate}", l.openGate)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	artifacts := artifactsDir(t)
	scenarioJSON, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, node, "console.mjs")
	cmd.Env = append(os.Environ(),
		"KEEL_E2E_URL="+srv.URL,
		"KEEL_E2E_CHROMIUM="+chromiumPath,
		artifactsEnv+"="+artifacts,
		"KEEL_E2E_SCENARIO="+string(scenarioJSON),
	)
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node console.mjs: %v after %v (screenshots in %s):\n%s", err, time.Since(start).Round(time.Millisecond), artifacts, out)
	}
	t.Logf("node console.mjs passed in %v (screenshots in %s):\n%s", time.Since(start).Round(time.Millisecond), artifacts, out)

	l.checkEffects(ctx, t, sc)
	if os.Getenv(screenshotsEnv) == "docs" {
		copyToDocs(t, artifacts)
	}
}

// browserTools returns the node binary, or skips the test (fails it under
// KEEL_E2E=1) with one line saying what to install.
func browserTools(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		t.Helper()
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("the console's browser test needs %s (%s=1 makes that a failure)", what, requireEnv)
		}
		t.Skipf("skipping the console's browser test: it needs %s (set %s=1 to fail instead)", what, requireEnv)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing(fmt.Sprintf("Node.js %d or later: apt-get install nodejs npm", minNode))
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		missing(fmt.Sprintf("a working Node.js %d or later (node --version: %v)", minNode, err))
	}
	version := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	if n, err := strconv.Atoi(major); err != nil || n < minNode {
		missing(fmt.Sprintf("Node.js %d or later, not %s", minNode, version))
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		missing("Chromium at " + chromiumPath + ": apt-get install chromium")
	}
	return node
}

// installModules runs npm ci when node_modules lacks the playwright-core
// that package-lock.json pins. It installs into a directory of its own and
// renames it into place, so test runs in parallel never see a half-made
// node_modules, and one killed mid-install leaves none.
func installModules(t *testing.T) {
	t.Helper()
	want := lockedVersion(t)
	if installedVersion() == want {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		if os.Getenv(requireEnv) == "1" {
			t.Fatal("the console's browser test needs npm to install playwright-core: apt-get install npm")
		}
		t.Skip("skipping the console's browser test: it needs npm to install playwright-core: apt-get install npm")
	}
	tmp, err := os.MkdirTemp(".", ".install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, f), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in console/e2e: %v\n%s", err, out)
	}
	if installedVersion() == want {
		return // another run installed it meanwhile
	}
	if err := os.Rename("node_modules", filepath.Join(tmp, "old_node_modules")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(tmp, "node_modules"), "node_modules"); err != nil && installedVersion() != want {
		t.Fatal(err)
	}
}

// lockedVersion is the playwright-core version package-lock.json pins.
func lockedVersion(t *testing.T) string {
	t.Helper()
	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	b, err := os.ReadFile("package-lock.json")
	if err == nil {
		err = json.Unmarshal(b, &lock)
	}
	if err != nil {
		t.Fatal(err)
	}
	v := lock.Packages["node_modules/playwright-core"].Version
	if v == "" {
		t.Fatal("package-lock.json pins no playwright-core")
	}
	return v
}

// installedVersion is the version of the playwright-core in node_modules,
// or "" when there is none.
func installedVersion() string {
	var pkg struct{ Version string }
	b, err := os.ReadFile(filepath.Join("node_modules", "playwright-core", "package.json"))
	if err != nil || json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	return pkg.Version
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(artifactsEnv)
	if dir == "" {
		dir = "artifacts"
	}
	dir, err := filepath.Abs(dir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyToDocs copies the README's pictures from the script's screenshots.
func copyToDocs(t *testing.T, artifacts string) {
	t.Helper()
	docs := filepath.Join("..", "..", "docs")
	if err := os.MkdirAll(docs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range docsPictures {
		b, err := os.ReadFile(filepath.Join(artifacts, p.shot))
		if err == nil {
			err = os.WriteFile(filepath.Join(docs, p.doc), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote docs/%s", p.doc)
	}
}

// gate holds one piece of work (a job's handler, a publish, a saga step)
// until the script opens it, so the script sees the page before the work
// ends and then sees the page update itself.
type gate struct {
	entered, release   chan struct{}
	enterOnce, relOnce sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

// hold is called by the work: it waits for the gate to open.
func (g *gate) hold(ctx context.Context) error {
	g.enterOnce.Do(func() { close(g.entered) })
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// open waits until the work is held, then lets it go on.
func (g *gate) open(ctx context.Context) error {
	select {
	case <-g.entered:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.free()
	return nil
}

func (g *gate) free() { g.relOnce.Do(func() { close(g.release) }) }

// live is the keel the browser acts on.
type live struct {
	pool *pgxpool.Pool
	k    *keel.Client
	// fixed ends the outage: until it is set, the invoice handler and the
	// publisher of the payments topic fail.
	fixed atomic.Bool
	// gates hold the retried job ("job"), the requeued message ("message")
	// and the signalled run's last step ("run").
	gates map[string]*gate
	// delivered are the ids the publisher published.
	delivered sync.Map
}

const (
	workQueue    = "billing"
	pauseQueue   = "reports"
	paymentTopic = "payments"
	jobError     = "smtp: 421 mail.example.com: service not available"
	messageError = "broker: payments: no route to host"
	parkedError  = "audit: PaymentCaptured: ledger unreachable"
	workflow     = "checkout"
	signalName   = "approval"
	// waitingRun waits for the signal until the script sends it; doneRun
	// got it from the seed.
	waitingRun = "order-1042"
	doneRun    = "order-1041"
)

// startKeel runs jobs, the relay, the saga engine and two subscriptions
// over pool until the test ends.
func startKeel(t *testing.T, pool *pgxpool.Pool) *live {
	t.Helper()
	l := &live{pool: pool, gates: map[string]*gate{"job": newGate(), "message": newGate(), "run": newGate()}}
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, func(ctx context.Context, _ *jobs.Job[invoiceArgs]) error {
		if !l.fixed.Load() {
			return errors.New(jobError)
		}
		return l.gates["job"].hold(ctx)
	}, nil)
	jobs.AddWorker(workers, func(context.Context, *jobs.Job[receiptArgs]) error { return nil }, nil)
	// Nothing works the reports queue, but a client with workers inserts
	// only kinds it has a worker for.
	jobs.AddWorker(workers, func(context.Context, *jobs.Job[reportArgs]) error { return nil }, nil)

	reg := saga.NewRegistry()
	saga.Register(reg, workflow, 1, func(wc saga.Context, o order) (string, error) {
		if _, err := saga.Step(wc, "reserve-stock", func(context.Context) (int, error) { return o.Items, nil }, nil); err != nil {
			return "", err
		}
		if _, err := saga.Step(wc, "charge-card", func(context.Context) (string, error) { return "ch_" + o.ID, nil }, nil); err != nil {
			return "", err
		}
		if _, err := saga.AwaitSignal[any](wc, signalName, 0); err != nil {
			return "", err
		}
		return saga.Step(wc, "ship", func(ctx context.Context) (string, error) {
			if o.ID == waitingRun {
				if err := l.gates["run"].hold(ctx); err != nil {
					return "", err
				}
			}
			return "shipped " + o.ID, nil
		}, nil)
	})

	publish := outbox.PublisherFunc(func(ctx context.Context, d outbox.Delivery) error {
		if d.Topic == paymentTopic {
			if !l.fixed.Load() {
				return errors.New(messageError)
			}
			if err := l.gates["message"].hold(ctx); err != nil {
				return err
			}
		}
		l.delivered.Store(d.ID, true)
		return nil
	})

	var err error
	l.k, err = keel.New(pool, keel.Config{
		Jobs: jobs.Config{
			Workers:     workers,
			Queues:      map[string]jobs.QueueConfig{workQueue: {MaxWorkers: 4}},
			MaxAttempts: 1,
		},
		Workflows: reg,
		Publisher: publish,
		Relay:     outbox.RelayConfig{MaxAttempts: 1},
		Subscriptions: []events.SubscriptionConfig{
			{Name: "order-projector", Category: "order", Handler: func(context.Context, pgx.Tx, events.RecordedEvent) error { return nil }},
			{Name: "audit-log", MaxAttempts: 1, Handler: func(_ context.Context, _ pgx.Tx, ev events.RecordedEvent) error {
				if ev.Type == "PaymentCaptured" {
					return errors.New(parkedError)
				}
				return nil
			}},
		},
		Sequencer: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.k.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, g := range l.gates {
			g.free()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.k.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return l
}

// openGate serves the script's POST /_e2e/open/{gate}: it answers once the
// gate's work is held and let go.
func (l *live) openGate(w http.ResponseWriter, r *http.Request) {
	g, ok := l.gates[r.PathValue("gate")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := g.open(ctx); err != nil {
		http.Error(w, "the work never reached the gate "+r.PathValue("gate")+": "+err.Error(), http.StatusGatewayTimeout)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// seed writes what the pages show and waits until the live keel has acted
// on it: completed and discarded jobs, delivered and dead messages, a
// succeeded run and a waiting one, events a subscription followed and one
// that parked another.
func (l *live) seed(ctx context.Context, t *testing.T) scenario {
	t.Helper()
	sc := scenario{
		PauseQueue: pauseQueue, JobKind: invoiceArgs{}.Kind(), JobError: jobError,
		Topic: paymentTopic, MessageError: messageError,
		Workflow: workflow, Run: waitingRun, Signal: signalName, DoneRun: doneRun,
		Stream: doneRun, EventTypes: []string{"OrderPlaced", "PaymentCaptured", "OrderShipped"},
		Subscription: "order-projector", Parked: "audit-log", ParkedError: parkedError,
	}
	jc := l.k.Jobs()
	var receipts []int64
	for _, o := range []string{"order-1039", "order-1040", "order-1041"} {
		row, err := jc.Insert(ctx, l.pool, receiptArgs{Order: o}, &jobs.InsertOpts{Queue: workQueue})
		if err != nil {
			t.Fatal(err)
		}
		receipts = append(receipts, row.ID)
	}
	for _, day := range []string{"2026-12-01", "2026-12-02"} {
		if _, err := jc.Insert(ctx, l.pool, reportArgs{Day: day}, &jobs.InsertOpts{Queue: pauseQueue}); err != nil {
			t.Fatal(err)
		}
	}
	job, err := jc.Insert(ctx, l.pool, invoiceArgs{Invoice: "INV-2026-0042"}, &jobs.InsertOpts{Queue: workQueue, Tags: []string{"billing", "e2e"}})
	if err != nil {
		t.Fatal(err)
	}
	sc.Job = job.ID

	box := l.k.Outbox()
	var placed []uuid.UUID
	for _, o := range []string{"order-1039", "order-1040", "order-1041"} {
		m := outbox.Message{ID: uuid.Must(uuid.NewV7()), Topic: "orders", Key: o, Type: "order.placed", Payload: []byte(`{"order":"` + o + `"}`)}
		if _, err := box.Enqueue(ctx, l.pool, m); err != nil {
			t.Fatal(err)
		}
		placed = append(placed, m.ID)
	}
	if _, err := box.Enqueue(ctx, l.pool, outbox.Message{Topic: "orders", Key: "order-1043", Type: "order.placed", Payload: []byte(`{"order":"order-1043"}`), NotBefore: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	dead := uuid.Must(uuid.NewV7())
	if _, err := box.Enqueue(ctx, l.pool, outbox.Message{ID: dead, Topic: paymentTopic, Key: "order-1042", Type: "payment.captured",
		Payload: []byte(`{"order":"order-1042","amount_cents":4999,"currency":"EUR"}`), Headers: map[string]string{"source": "e2e"}}); err != nil {
		t.Fatal(err)
	}
	sc.Message = dead.String()

	eng := l.k.Saga()
	for _, o := range []order{{ID: sc.DoneRun, Items: 3}, {ID: sc.Run, Items: 1}} {
		if _, err := eng.StartRun(ctx, l.pool, workflow, o, &saga.StartOpts{RunID: o.ID}); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Signal(ctx, l.pool, sc.DoneRun, signalName, map[string]string{"by": "seed"}, nil); err != nil {
		t.Fatal(err)
	}

	store := l.k.Events()
	for stream, types := range map[string][]string{sc.Stream: sc.EventTypes, waitingRun: {"OrderPlaced"}} {
		var evs []events.EventData
		for i, typ := range types {
			ev, err := events.NewEvent(typ, map[string]any{"order": stream, "step": i + 1})
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
		if _, err := store.Append(ctx, l.pool, stream, events.NoStream, evs...); err != nil {
			t.Fatal(err)
		}
	}

	eventually(ctx, t, "the seeded work to settle", func() (string, bool) {
		for _, id := range receipts {
			if j, err := jc.JobGet(ctx, id); err != nil || j.State != jobs.StateCompleted {
				return fmt.Sprintf("receipt job %d: %v %v", id, stateOf(j), err), false
			}
		}
		if j, err := jc.JobGet(ctx, sc.Job); err != nil || j.State != jobs.StateDiscarded {
			return fmt.Sprintf("invoice job %d: %v %v", sc.Job, stateOf(j), err), false
		}
		for _, id := range placed {
			if _, ok := l.delivered.Load(id); !ok {
				return "message " + id.String() + " not delivered", false
			}
		}
		if m, err := db.New(l.pool).OutboxGet(ctx, dead); err != nil || m.State != db.KeelOutboxStateDead {
			return fmt.Sprintf("payment message: %s %v", m.State, err), false
		}
		for _, id := range []string{sc.DoneRun, sc.Run} {
			want := saga.StatusSucceeded
			if id == sc.Run {
				want = saga.StatusWaiting
			}
			if r, err := eng.Get(ctx, l.pool, id); err != nil || r.Status != want {
				return fmt.Sprintf("run %s: %s (%v), want %s", id, statusOf(r), err, want), false
			}
		}
		head, err := store.HeadPosition(ctx, l.pool)
		if err != nil || head != 4 {
			return fmt.Sprintf("feed head %d: %v", head, err), false
		}
		sub, err := store.SubscriptionGet(ctx, sc.Subscription)
		if err != nil || sub.Position != head {
			return fmt.Sprintf("subscription %s at %d: %v", sc.Subscription, sub.Position, err), false
		}
		parked, err := store.SubscriptionGet(ctx, sc.Parked)
		if err != nil || !parked.Parked {
			return fmt.Sprintf("subscription %s not parked: %v", sc.Parked, err), false
		}
		return "", true
	})
	return sc
}

// checkEffects checks in Postgres what the script's clicks did: the queue
// runs again, the retried job completed, the requeued message was
// delivered, and the signalled run succeeded.
func (l *live) checkEffects(ctx context.Context, t *testing.T, sc scenario) {
	t.Helper()
	if paused, err := l.k.Jobs().QueuePaused(ctx, sc.PauseQueue); err != nil || paused {
		t.Errorf("queue %s paused = %v (%v) after the script paused and resumed it", sc.PauseQueue, paused, err)
	}
	if j, err := l.k.Jobs().JobGet(ctx, sc.Job); err != nil || j.State != jobs.StateCompleted || j.Attempt != 2 {
		t.Errorf("job %d after its retry: %s, attempt %d (%v); want completed at attempt 2", sc.Job, stateOf(j), attemptOf(j), err)
	}
	id := uuid.MustParse(sc.Message)
	if m, err := db.New(l.pool).OutboxGet(ctx, id); err != nil || m.State != db.KeelOutboxStateDelivered {
		t.Errorf("message %s after its requeue: %s (%v); want delivered", id, m.State, err)
	}
	if _, ok := l.delivered.Load(id); !ok {
		t.Errorf("message %s: the publisher never published it", id)
	}
	r, err := l.k.Saga().Get(ctx, l.pool, sc.Run)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if r.Status != saga.StatusSucceeded || json.Unmarshal(r.Output, &out) != nil || out != "shipped "+sc.Run {
		t.Errorf("run %s after its signal: %s, output %s; want succeeded, shipped", sc.Run, r.Status, r.Output)
	}
}

// eventually polls cond until it holds; it fails the test with cond's last
// word when ctx ends or 30 seconds pass.
func eventually(ctx context.Context, t *testing.T, what string, cond func() (string, bool)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		why, ok := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %s", what, why)
		case <-tick.C:
		}
	}
}

func stateOf(j *jobs.JobRow) jobs.JobState {
	if j == nil {
		return ""
	}
	return j.State
}

func statusOf(r *saga.Run) saga.Status {
	if r == nil {
		return ""
	}
	return r.Status
}

func attemptOf(j *jobs.JobRow) int {
	if j == nil {
		return 0
	}
	return j.Attempt
}
