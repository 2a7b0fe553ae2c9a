package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// freeArgs is a job whose kind and encoded args a test chooses; its args
// reach keel as the bytes of raw, as a json.RawMessage would.
type freeArgs struct {
	kind string
	raw  json.RawMessage
}

func (a freeArgs) Kind() string { return a.kind }

func (a freeArgs) MarshalJSON() ([]byte, error) {
	if a.raw == nil {
		return []byte("{}"), nil
	}
	return a.raw, nil
}

// textArgs carries a Go string, which encoding/json rewrites when it is not
// UTF-8.
type textArgs struct {
	S string `json:"s"`
}

func (textArgs) Kind() string { return "text" }

// deepJSON nests n arrays.
func deepJSON(n int) json.RawMessage {
	return json.RawMessage(strings.Repeat("[", n) + strings.Repeat("]", n))
}

// checkRefused runs call in a transaction and checks that it failed with
// want (and, when field is set, a *validate.Error whose field starts with
// it), wrote no job and left the transaction usable.
func checkRefused(t *testing.T, pool *pgxpool.Pool, want error, field string, call func(ctx context.Context, tx pgx.Tx) error) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	err = call(ctx, tx)
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	var ve *validate.Error
	if field != "" && (!errors.As(err, &ve) || !strings.HasPrefix(ve.Field, field)) {
		t.Fatalf("error %v does not name the field %q", err, field)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM keel.jobs").Scan(&n); err != nil {
		t.Fatalf("the transaction is not usable after the refusal: %v", err)
	}
	if n != 0 {
		t.Fatalf("%d jobs written", n)
	}
}

func TestInsertRefusesWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	c := insertOnly(t, pool)
	for _, tc := range []struct {
		name  string
		args  JobArgs
		opts  InsertOpts
		want  error
		field string
	}{
		{"kind with NUL", freeArgs{kind: "a\x00b"}, InsertOpts{}, ErrInvalidOptions, "kind"},
		{"kind not UTF-8", freeArgs{kind: "a\xffb"}, InsertOpts{}, ErrInvalidOptions, "kind"},
		{"kind too long", freeArgs{kind: strings.Repeat("k", validate.MaxName+1)}, InsertOpts{}, ErrInvalidOptions, "kind"},
		{"empty kind", freeArgs{}, InsertOpts{}, ErrInvalidOptions, "kind"},
		{"queue with NUL", testArgs{}, InsertOpts{Queue: "q\x00"}, ErrInvalidOptions, "queue"},
		{"queue not UTF-8", testArgs{}, InsertOpts{Queue: "q\xc3"}, ErrInvalidOptions, "queue"},
		{"queue too long", testArgs{}, InsertOpts{Queue: strings.Repeat("q", validate.MaxQueue+1)}, ErrInvalidOptions, "queue"},
		{"tag with NUL", testArgs{}, InsertOpts{Tags: []string{"ok", "t\x00"}}, ErrInvalidOptions, "tags[1]"},
		{"tag not UTF-8", testArgs{}, InsertOpts{Tags: []string{"\xfe"}}, ErrInvalidOptions, "tags[0]"},
		{"unique key with NUL", testArgs{}, InsertOpts{UniqueKey: "k\x00"}, ErrInvalidOptions, "unique key"},
		{"unique key not UTF-8", testArgs{}, InsertOpts{UniqueKey: "k\xff"}, ErrInvalidOptions, "unique key"},
		{"unique key too long", testArgs{}, InsertOpts{UniqueKey: strings.Repeat("u", validate.MaxKey+1)}, ErrInvalidOptions, "unique key"},
		{"metadata value with NUL", testArgs{}, InsertOpts{Metadata: map[string]any{"k": "v\x00"}}, ErrInvalidOptions, "metadata"},
		{"metadata value not UTF-8", testArgs{}, InsertOpts{Metadata: map[string]any{"k": "v\xff"}}, ErrInvalidOptions, "metadata"},
		{"metadata key not UTF-8", testArgs{}, InsertOpts{Metadata: map[string]any{"k\xff": 1}}, ErrInvalidOptions, "metadata"},
		{"metadata raw \\u0000", testArgs{}, InsertOpts{Metadata: map[string]any{"k": json.RawMessage(`"\u0000"`)}}, ErrInvalidOptions, "metadata"},
		{"metadata too deep", testArgs{}, InsertOpts{Metadata: map[string]any{"k": deepJSON(validate.MaxJSONDepth + 1)}}, ErrInvalidOptions, "metadata"},
		{"metadata does not encode", testArgs{}, InsertOpts{Metadata: map[string]any{"f": func() {}}}, ErrInvalidOptions, "metadata"},
		{"args string with NUL", textArgs{S: "a\x00b"}, InsertOpts{}, ErrEncode, "args"},
		{"args string not UTF-8", textArgs{S: "a\xffb"}, InsertOpts{}, ErrEncode, "args"},
		{"raw args \\u0000", freeArgs{kind: "raw", raw: json.RawMessage(`{"s":"\u0000"}`)}, InsertOpts{}, ErrEncode, "args"},
		{"raw args lone surrogate", freeArgs{kind: "raw", raw: json.RawMessage(`"\ud800"`)}, InsertOpts{}, ErrEncode, "args"},
		{"raw args not UTF-8", freeArgs{kind: "raw", raw: json.RawMessage("\"\xff\"")}, InsertOpts{}, ErrEncode, "args"},
		{"raw args huge number", freeArgs{kind: "raw", raw: json.RawMessage(`1e200000`)}, InsertOpts{}, ErrEncode, "args"},
		{"raw args too deep", freeArgs{kind: "raw", raw: deepJSON(validate.MaxJSONDepth + 1)}, InsertOpts{}, ErrEncode, "args"},
		{"raw args not JSON", freeArgs{kind: "raw", raw: json.RawMessage(`{`)}, InsertOpts{}, ErrEncode, "args"},
		{"run-at past year 9999", testArgs{}, InsertOpts{RunAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, ErrInvalidOptions, ""},
		{"run-at before year 1", testArgs{}, InsertOpts{RunAt: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)}, ErrInvalidOptions, ""},
		{"nil pointer args", (*testArgs)(nil), InsertOpts{}, ErrInvalidOptions, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			t.Run("Insert", func(t *testing.T) {
				checkRefused(t, pool, tc.want, tc.field, func(ctx context.Context, tx pgx.Tx) error {
					_, err := c.Insert(ctx, tx, tc.args, &tc.opts)
					return err
				})
			})
			t.Run("InsertMany", func(t *testing.T) {
				checkRefused(t, pool, tc.want, tc.field, func(ctx context.Context, tx pgx.Tx) error {
					_, err := c.InsertMany(ctx, tx, []InsertManyParams{{Args: testArgs{}}, {Args: tc.args, Opts: &tc.opts}})
					return err
				})
			})
			t.Run("InsertWorkflow", func(t *testing.T) {
				checkRefused(t, pool, tc.want, tc.field, func(ctx context.Context, tx pgx.Tx) error {
					w := NewWorkflow("w").Add("first", testArgs{}, nil).Add("bad", tc.args, &TaskOpts{InsertOpts: tc.opts, After: []string{"first"}})
					_, err := c.InsertWorkflow(ctx, tx, w)
					return err
				})
			})
		})
	}
}

func TestInsertWorkflowRefusesBadNames(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	c := insertOnly(t, pool)
	long := strings.Repeat("n", validate.MaxName+1)
	for _, tc := range []struct {
		name     string
		workflow string
		task     string
		field    string
	}{
		{"workflow name with NUL", "w\x00", "t", "workflow name"},
		{"workflow name not UTF-8", "w\xff", "t", "workflow name"},
		{"workflow name too long", long, "t", "workflow name"},
		{"empty workflow name", "", "t", "workflow name"},
		{"task name with NUL", "w", "t\x00", "task name"},
		{"task name not UTF-8", "w", "t\xff", "task name"},
		{"task name too long", "w", long, "task name"},
		{"empty task name", "w", "", "task name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkRefused(t, pool, ErrInvalidOptions, tc.field, func(ctx context.Context, tx pgx.Tx) error {
				_, err := c.InsertWorkflow(ctx, tx, NewWorkflow(tc.workflow).Add(tc.task, testArgs{}, nil))
				return err
			})
		})
	}
}

// TestInsertAcceptsTheLimits stores values at each limit exactly as given.
func TestInsertAcceptsTheLimits(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	c := insertOnly(t, pool)
	ctx := context.Background()
	kind := strings.Repeat("é", validate.MaxName/2) + "k"
	opts := &InsertOpts{
		Queue:     strings.Repeat("q", validate.MaxQueue),
		UniqueKey: strings.Repeat("u", validate.MaxKey),
		Tags:      []string{"", "ünïcode", strings.Repeat("t", 100_000)},
		Metadata:  map[string]any{"deep": deepJSON(validate.MaxJSONDepth - 1), "n": json.Number("-1e-300")},
		RunAt:     time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	}
	raw := json.RawMessage(`{"s":"\u00e9\ud83d\ude00","big":1e1000,"neg":-123456789012345678901234567890}`)
	row, err := c.Insert(ctx, pool, freeArgs{kind: kind, raw: raw}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if row.Kind != kind || row.Queue != opts.Queue || row.UniqueKey != opts.UniqueKey ||
		len(row.Tags) != 3 || row.Tags[2] != opts.Tags[2] || !row.RunAt.Equal(opts.RunAt) {
		t.Fatalf("stored %+v", row)
	}
	var same bool
	if err := pool.QueryRow(ctx, "SELECT args = $1::jsonb FROM keel.jobs WHERE id = $2", string(raw), row.ID).Scan(&same); err != nil || !same {
		t.Fatalf("args stored as %s (%v)", row.EncodedArgs, err)
	}
}

func TestNilArgumentsAreErrors(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 2)
	c := insertOnly(t, pool)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		tx   keeltype.DBTX
	}{
		{"nil DBTX", nil},
		{"nil pool", (*pgxpool.Pool)(nil)},
		{"nil conn", (*pgx.Conn)(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := c.Insert(ctx, tc.tx, testArgs{}, nil); !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("Insert: %v", err)
			}
			if _, err := c.InsertMany(ctx, tc.tx, []InsertManyParams{{Args: testArgs{}}}); !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("InsertMany: %v", err)
			}
			if _, err := c.InsertWorkflow(ctx, tc.tx, NewWorkflow("w").Add("t", testArgs{}, nil)); !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("InsertWorkflow: %v", err)
			}
		})
	}
	if _, err := c.InsertWorkflow(ctx, pool, nil); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("InsertWorkflow of a nil workflow: %v", err)
	}
	if n, err := countState(c, ""); err != nil || n != 0 {
		t.Fatalf("%d jobs written (%v)", n, err)
	}
}

// outcomeArgs picks how outcomeHandler ends its attempt.
type outcomeArgs struct {
	Case string `json:"case"`
}

func (outcomeArgs) Kind() string { return "outcome" }

// outcomeHandler ends an attempt as its args say, with values keel cannot
// store as they are; it keeps what RecordOutput returned per case.
func outcomeHandler(recorded *sync.Map) func(ctx context.Context, j *Job[outcomeArgs]) error {
	return func(ctx context.Context, j *Job[outcomeArgs]) error {
		record := func(v any) error {
			err := RecordOutput(ctx, v)
			recorded.Store(j.Args.Case, err)
			return err
		}
		switch j.Args.Case {
		case "error with NUL":
			return errors.New("bad\x00byte")
		case "error not UTF-8":
			return errors.New("bad\xffbyte")
		case "panic with NUL":
			panic("p\x00")
		case "cancel with NUL":
			return JobCancel(errors.New("c\x00"))
		case "huge error":
			return errors.New(strings.Repeat("x", 1<<20))
		case "output with NUL":
			_ = record("o\x00")
		case "output not UTF-8":
			_ = record("o\xff")
		case "raw output \\u0000":
			_ = record(json.RawMessage(`{"a":"\u0000"}`))
		case "output too deep":
			_ = record(deepJSON(validate.MaxJSONDepth + 1))
		case "output huge number":
			_ = record(json.RawMessage(`1e200000`))
		case "output refused, then replaced":
			_ = record("o\x00")
			return RecordOutput(ctx, "ok")
		case "output stored":
			return RecordOutput(ctx, map[string]string{"a": "é"})
		}
		return nil
	}
}

// TestRunTimeValuesThatCannotBeStored: an attempt's outcome is always
// written, with what keel cannot store cleaned out of error text and an
// output that cannot be stored failing the attempt with the reason.
func TestRunTimeValuesThatCannotBeStored(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	var recorded sync.Map
	w := NewWorkers()
	AddWorker(w, outcomeHandler(&recorded), nil)
	c := startClient(t, pool, fastConfig(w))
	for _, tc := range []struct {
		name      string
		state     JobState
		error     string // what the stored error must contain
		refused   bool   // RecordOutput must have returned ErrEncode
		output    string // the stored output; "" for none
		errLength int    // the stored error's length, when it was cut
	}{
		{"error with NUL", StateDiscarded, "bad\uFFFDbyte", false, "", 0},
		{"error not UTF-8", StateDiscarded, "bad\uFFFDbyte", false, "", 0},
		{"panic with NUL", StateDiscarded, "handler panicked: p\uFFFD", false, "", 0},
		{"cancel with NUL", StateCancelled, "cancelled by its handler: c\uFFFD", false, "", 0},
		{"huge error", StateDiscarded, "bytes cut", false, "", validate.MaxErrorText},
		{"output with NUL", StateDiscarded, "NUL", true, "", 0},
		{"output not UTF-8", StateDiscarded, "UTF-8", true, "", 0},
		{"raw output \\u0000", StateDiscarded, `\u0000`, true, "", 0},
		{"output too deep", StateDiscarded, "deeper", true, "", 0},
		{"output huge number", StateDiscarded, "numeric", true, "", 0},
		{"output refused, then replaced", StateCompleted, "", true, `"ok"`, 0},
		{"output stored", StateCompleted, "", false, `{"a": "é"}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job := insert(t, c, outcomeArgs{Case: tc.name}, &InsertOpts{MaxAttempts: 1})
			row := waitState(t, c, job.ID, tc.state)
			if got, _ := recorded.Load(tc.name); tc.refused != errors.Is(asError(got), ErrEncode) {
				t.Errorf("RecordOutput returned %v", got)
			}
			if string(row.Output) != tc.output {
				t.Errorf("output %s, want %s", row.Output, tc.output)
			}
			if tc.error == "" {
				if len(row.Errors) != 0 {
					t.Errorf("errors %+v", row.Errors)
				}
				return
			}
			if len(row.Errors) != 1 || !strings.Contains(row.Errors[0].Error, tc.error) {
				t.Fatalf("errors %+v, want one containing %q", row.Errors, tc.error)
			}
			if tc.errLength > 0 && len(row.Errors[0].Error) > tc.errLength {
				t.Errorf("error of %d bytes kept, want at most %d", len(row.Errors[0].Error), tc.errLength)
			}
		})
	}
}

func asError(v any) error {
	err, _ := v.(error)
	return err
}

func TestControlCallsRefuseBadStrings(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 4)
	c := insertOnly(t, pool)
	long := strings.Repeat("q", validate.MaxQueue+1)
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"pause a queue with NUL", func(ctx context.Context) error { return c.QueuePause(ctx, "q\x00") }},
		{"pause a queue not UTF-8", func(ctx context.Context) error { return c.QueuePause(ctx, "q\xff") }},
		{"pause a queue too long", func(ctx context.Context) error { return c.QueuePause(ctx, long) }},
		{"resume a queue with NUL", func(ctx context.Context) error { return c.QueueResume(ctx, "q\x00") }},
		{"ask about a queue with NUL", func(ctx context.Context) error { _, err := c.QueuePaused(ctx, "q\x00"); return err }},
		{"ask about a queue not UTF-8", func(ctx context.Context) error { _, err := c.QueuePaused(ctx, "q\xff"); return err }},
		{"list a queue with NUL", func(ctx context.Context) error { _, err := c.JobList(ctx, &JobListParams{Queue: "q\x00"}); return err }},
		{"list a kind not UTF-8", func(ctx context.Context) error { _, err := c.JobList(ctx, &JobListParams{Kind: "k\xff"}); return err }},
		{"list a kind too long", func(ctx context.Context) error {
			_, err := c.JobList(ctx, &JobListParams{Kind: strings.Repeat("k", validate.MaxName+1)})
			return err
		}},
		{"count an unknown state", func(ctx context.Context) error { _, err := c.JobCount(ctx, "lost"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.call(context.Background()); !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("got %v, want ErrInvalidOptions", err)
			}
		})
	}
}

// nulKind and longKind are kinds keel cannot store.
type (
	nulKind  struct{}
	longKind struct{}
)

func (nulKind) Kind() string  { return "nul\x00" }
func (longKind) Kind() string { return strings.Repeat("k", validate.MaxName+1) }

func TestConfigRefusesBadStrings(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 1)
	periodic := func(name string) []PeriodicJob {
		return []PeriodicJob{{Name: name, Schedule: "@hourly", Args: func() (JobArgs, *InsertOpts) { return testArgs{}, nil }}}
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"client id with NUL", Config{ID: "id\x00"}},
		{"client id not UTF-8", Config{ID: "id\xff"}},
		{"client id too long", Config{ID: strings.Repeat("i", validate.MaxName+1)}},
		{"queue with NUL", Config{Workers: NewWorkers(), Queues: map[string]QueueConfig{"q\x00": {}}}},
		{"queue too long", Config{Workers: NewWorkers(), Queues: map[string]QueueConfig{strings.Repeat("q", validate.MaxQueue+1): {}}}},
		{"periodic job name with NUL", Config{PeriodicJobs: periodic("p\x00")}},
		{"periodic job name not UTF-8", Config{PeriodicJobs: periodic("p\xff")}},
		{"periodic job name too long", Config{PeriodicJobs: periodic(strings.Repeat("p", validate.MaxName+1))}},
		{"periodic job args with NUL", Config{PeriodicJobs: []PeriodicJob{{Name: "p", Schedule: "@hourly",
			Args: func() (JobArgs, *InsertOpts) { return textArgs{S: "\x00"}, nil }}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ve *validate.Error
			if _, err := NewClient(pool, tc.cfg); !errors.Is(err, ErrInvalidOptions) && !errors.Is(err, ErrEncode) || !errors.As(err, &ve) {
				t.Fatalf("got %v, want a *validate.Error", err)
			}
		})
	}
	w := NewWorkers()
	if err := AddWorkerSafely(w, func(context.Context, *Job[nulKind]) error { return nil }, nil); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("worker of a kind with NUL: %v", err)
	}
	if err := AddWorkerSafely(w, func(context.Context, *Job[longKind]) error { return nil }, nil); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("worker of a kind too long: %v", err)
	}
}

// TestInsertAfterStop: Stop stops working, not inserting — an insert-only
// client is never started, and a stopped client may start again — so a
// stopped client inserts as before, and its job runs once a client works.
func TestInsertAfterStop(t *testing.T) {
	t.Parallel()
	pool, _ := newPool(t, 8)
	ctx := context.Background()
	ran := make(chan int64, 1)
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { ran <- j.ID; return nil }, nil)
	c := startClient(t, pool, fastConfig(w))
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Insert(ctx, tx, testArgs{N: 1}, nil)
	if err != nil {
		t.Fatalf("insert after stop: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if id := <-ran; id != job.ID {
		t.Fatalf("ran job %d, want %d", id, job.ID)
	}
}
