package keeltest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/keeltest"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// fakeTB records what the helpers report instead of failing the test.
type fakeTB struct {
	testing.TB
	errs []string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

type EmailArgs struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

func (EmailArgs) Kind() string { return "email" }

func TestAssertions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := testdb.New(t)
	client, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	box, err := outbox.New(pool, outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	store, err := events.NewStore(pool, events.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := client.Insert(ctx, tx, EmailArgs{To: "ada@example.com", Subject: "hi"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := box.Enqueue(ctx, tx, outbox.Message{Topic: "orders", Key: "order-1", Type: "OrderPlaced", Payload: []byte(`{"id": 1, "total": 5}`)}); err != nil {
		t.Fatal(err)
	}
	e, _ := events.NewEvent("OrderPlaced", map[string]int{"id": 1})
	if _, err := store.Append(ctx, tx, "order-1", events.NoStream, e); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		assert func(tb testing.TB) bool
		fails  string // "" when the assertion holds
	}{
		{"job", func(tb testing.TB) bool {
			return keeltest.JobInserted(ctx, tb, client, tx, EmailArgs{To: "ada@example.com", Subject: "hi"}) != nil
		}, ""},
		{"job with other args", func(tb testing.TB) bool {
			return keeltest.JobInserted(ctx, tb, client, tx, EmailArgs{To: "bob@example.com", Subject: "hi"}) != nil
		}, `no job of kind "email" with args {"to":"bob@example.com","subject":"hi"}; jobs of that kind: [{"to": "ada@example.com", "subject": "hi"}]`},
		{"message", func(tb testing.TB) bool {
			return keeltest.OutboxEnqueued(ctx, tb, tx, keeltest.Message{Topic: "orders", Key: "order-1", Type: "OrderPlaced", Payload: []byte(`{"total":5,"id":1}`)}) != nil
		}, ""},
		{"message by topic", func(tb testing.TB) bool {
			return keeltest.OutboxEnqueued(ctx, tb, tx, keeltest.Message{Topic: "orders"}) != nil
		}, ""},
		{"message with other key", func(tb testing.TB) bool {
			return keeltest.OutboxEnqueued(ctx, tb, tx, keeltest.Message{Topic: "orders", Key: "order-2"}) != nil
		}, `no outbox message on topic "orders" with key "order-2"`},
		{"message on other topic", func(tb testing.TB) bool {
			return keeltest.OutboxEnqueued(ctx, tb, tx, keeltest.Message{Topic: "billing"}) != nil
		}, `no outbox message on topic "billing"`},
		{"event", func(tb testing.TB) bool {
			return keeltest.EventAppended(ctx, tb, store, tx, "order-1", "OrderPlaced") != nil
		}, ""},
		{"event of other type", func(tb testing.TB) bool {
			return keeltest.EventAppended(ctx, tb, store, tx, "order-1", "OrderShipped") != nil
		}, `no OrderShipped event in stream "order-1"; it has [OrderPlaced]`},
	} {
		tb := &fakeTB{}
		found := tc.assert(tb)
		switch {
		case tc.fails == "" && (len(tb.errs) > 0 || !found):
			t.Errorf("%s: want a pass, got %v", tc.name, tb.errs)
		case tc.fails != "" && (len(tb.errs) != 1 || found || !strings.Contains(tb.errs[0], tc.fails)):
			t.Errorf("%s: want one failure containing %q, got %v (found %v)", tc.name, tc.fails, tb.errs, found)
		}
	}

	// Rolled back, nothing is there to find.
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	tb := &fakeTB{}
	keeltest.JobInserted(ctx, tb, client, pool, EmailArgs{To: "ada@example.com", Subject: "hi"})
	keeltest.OutboxEnqueued(ctx, tb, pool, keeltest.Message{Topic: "orders"})
	keeltest.EventAppended(ctx, tb, store, pool, "order-1", "OrderPlaced")
	if len(tb.errs) != 3 {
		t.Errorf("after rollback: %d failures, want 3: %v", len(tb.errs), tb.errs)
	}
}

func TestRunJob(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pool := testdb.New(t)
	// Another job in the database is left alone.
	other, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bystander, err := other.Insert(ctx, pool, EmailArgs{To: "bystander@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	var got EmailArgs
	row, err := keeltest.RunJob(ctx, pool, func(_ context.Context, job *jobs.Job[EmailArgs]) error {
		got = job.Args
		return nil
	}, EmailArgs{To: "ada@example.com", Subject: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if row.State != jobs.StateCompleted || got.To != "ada@example.com" || row.Attempt != 1 {
		t.Errorf("job %s attempt %d, handler saw %+v", row.State, row.Attempt, got)
	}

	row, err = keeltest.RunJob(ctx, pool, func(context.Context, *jobs.Job[EmailArgs]) error {
		return errors.New("smtp down")
	}, EmailArgs{To: "bob@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if row.State != jobs.StateDiscarded || len(row.Errors) != 1 || !strings.Contains(row.Errors[0].Error, "smtp down") {
		t.Errorf("failing job: %s, errors %+v", row.State, row.Errors)
	}
	b, err := other.JobGet(ctx, bystander.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b.State != jobs.StateAvailable || b.Attempt != 0 {
		t.Errorf("the bystander job was touched: %s attempt %d", b.State, b.Attempt)
	}
}

func TestRunWorkflow(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pool := testdb.New(t)
	var undone []string
	run, err := keeltest.RunWorkflow(ctx, pool, "charge", func(wc saga.Context, cents int) (string, error) {
		id, err := saga.StepWithCompensation(wc, "charge",
			func(context.Context) (string, error) { return fmt.Sprint("charge-", cents), nil },
			func(_ context.Context, id string) error { undone = append(undone, id); return nil }, nil)
		if err != nil {
			return "", err
		}
		if cents > 100 {
			return "", errors.New("over the limit")
		}
		return id, nil
	}, 42)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := saga.Result[string](run); out != "charge-42" || err != nil {
		t.Errorf("run: %q, %v", out, err)
	}
	run, err = keeltest.RunWorkflow(ctx, pool, "charge", func(wc saga.Context, cents int) (string, error) {
		id, err := saga.StepWithCompensation(wc, "charge",
			func(context.Context) (string, error) { return fmt.Sprint("charge-", cents), nil },
			func(_ context.Context, id string) error { undone = append(undone, id); return nil }, nil)
		if err != nil || cents <= 100 {
			return id, err
		}
		return "", errors.New("over the limit")
	}, 500)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != saga.StatusFailed || !strings.Contains(fmt.Sprint(run.Err()), "over the limit") {
		t.Errorf("run: %s %v", run.Status, run.Err())
	}
	if fmt.Sprint(undone) != "[charge-500]" {
		t.Errorf("compensations: %v", undone)
	}

	// A workflow that waits for a signal no one sends ends with ctx.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err = keeltest.RunWorkflow(short, pool, "waits", func(wc saga.Context, _ int) (bool, error) {
		return saga.AwaitSignal[bool](wc, "never", 0)
	}, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting workflow: %v", err)
	}
}

var _ pgx.Tx // keeltest reads through any keeltype.DBTX, a pgx.Tx included
