package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/internal/validate"
)

// The fuzz targets hold every write to one property: it succeeds and the
// stored row is what was given, or it fails with one of keel's errors for
// bad input, writes nothing and leaves the caller's transaction usable.

// edgeStrings are the seeds of every text a fuzz target takes.
var edgeStrings = []string{
	"", "a", "default", "a\x00b", "\x00", "a\xffb", "\xc3", "é", "\xed\xa0\x80", `\u0000`,
	strings.Repeat("k", validate.MaxName), strings.Repeat("k", validate.MaxName+1),
	strings.Repeat("q", validate.MaxQueue), strings.Repeat("q", validate.MaxQueue+1),
	strings.Repeat("u", validate.MaxKey), strings.Repeat("u", validate.MaxKey+1),
	strings.Repeat("x", 100_000),
}

// edgeJSON are the seeds of raw args.
var edgeJSON = []string{
	`{}`, `null`, `[]`, `0`, `""`, `{"a":"é","b":[1,2.5,-3e-7,true,null]}`,
	`{"s":"\u0000"}`, `"\ud800"`, `"\ud83d\ude00"`, "\"\xff\"", "{\"a\x00\":1}", `{`, ``, `1 2`,
	`1e200000`, `-1e200000`, `1e-20000`, `1e1000`, `-123456789012345678901234567890.5`, `1e1000001`,
	string(deepJSON(validate.MaxJSONDepth)), string(deepJSON(validate.MaxJSONDepth + 1)),
	`{"x":"` + strings.Repeat("x", 100_000) + `"}`,
}

// runAtEdges are the seeds of a job's run-at time, in Unix seconds; 0
// leaves it unset.
var runAtEdges = []int64{
	0, 1, -1, -62135596800, -62135596799, 253402300799, 253402300800, math.MinInt64, math.MaxInt64,
}

// wantJob is what a stored job must hold.
type wantJob struct {
	kind, queue, uniqueKey, runWhen, workflow, task string
	tags                                            []string
	priority, maxAttempts                           int
	runAt                                           time.Time // zero: not checked
	args, metadata                                  string    // JSON, compared as jsonb
	dependsOn                                       []int64
}

// checkWrite runs write in a transaction that is then rolled back, and
// holds it to the property above: on success the rows whose ids write
// returns must hold want, in order (write may fill want in as it runs).
func checkWrite(t *testing.T, pool *pgxpool.Pool, write func(ctx context.Context, tx pgx.Tx) ([]int64, error), want []wantJob) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	ids, refused := write(ctx, tx)
	if refused != nil {
		if !errors.Is(refused, ErrInvalidOptions) && !errors.Is(refused, ErrEncode) {
			t.Fatalf("error of no documented type: %v", refused)
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM keel.jobs").Scan(&n); err != nil {
			t.Fatalf("the transaction is not usable after %v: %v", refused, err)
		}
		if n != 0 {
			t.Fatalf("refused with %v but wrote %d jobs", refused, n)
		}
		return
	}
	if len(ids) != len(want) {
		t.Fatalf("wrote %d jobs, want %d", len(ids), len(want))
	}
	for i, id := range ids {
		checkStored(ctx, t, tx, id, want[i])
	}
}

func checkStored(ctx context.Context, t *testing.T, tx pgx.Tx, id int64, want wantJob) {
	t.Helper()
	var (
		got                       wantJob
		priority                  int16
		maxAttempts               int32
		uniqueKey, workflow, task *string
		sameArgs, sameMeta        bool
	)
	err := tx.QueryRow(ctx, `
		SELECT kind, queue, tags, unique_key, priority, max_attempts, run_when::text, run_at,
		       workflow, task, depends_on, args = $2::jsonb, metadata = $3::jsonb
		FROM keel.jobs WHERE id = $1`, id, want.args, want.metadata).Scan(
		&got.kind, &got.queue, &got.tags, &uniqueKey, &priority, &maxAttempts, &got.runWhen, &got.runAt,
		&workflow, &task, &got.dependsOn, &sameArgs, &sameMeta)
	if err != nil {
		t.Fatalf("reading job %d: %v", id, err)
	}
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	got.uniqueKey, got.workflow, got.task = deref(uniqueKey), deref(workflow), deref(task)
	got.priority, got.maxAttempts = int(priority), int(maxAttempts)
	switch {
	case got.kind != want.kind || got.queue != want.queue || got.uniqueKey != want.uniqueKey:
		t.Fatalf("stored kind %q, queue %q, key %q; want %q, %q, %q", got.kind, got.queue, got.uniqueKey, want.kind, want.queue, want.uniqueKey)
	case !slices.Equal(got.tags, want.tags):
		t.Fatalf("stored tags %q, want %q", got.tags, want.tags)
	case got.priority != want.priority || got.maxAttempts != want.maxAttempts || got.runWhen != want.runWhen:
		t.Fatalf("stored priority %d, attempts %d, run when %s; want %d, %d, %s", got.priority, got.maxAttempts, got.runWhen, want.priority, want.maxAttempts, want.runWhen)
	case !want.runAt.IsZero() && !got.runAt.Equal(want.runAt):
		t.Fatalf("stored run-at %s, want %s", got.runAt, want.runAt)
	case got.workflow != want.workflow || got.task != want.task || !slices.Equal(got.dependsOn, want.dependsOn):
		t.Fatalf("stored workflow %q, task %q, depends on %v; want %q, %q, %v", got.workflow, got.task, got.dependsOn, want.workflow, want.task, want.dependsOn)
	case !sameArgs:
		t.Fatalf("stored args differ from %.200s", want.args)
	case !sameMeta:
		t.Fatalf("stored metadata differs from %.200s", want.metadata)
	}
}

// fuzzInput is one fuzzed job: its args are raw JSON under a chosen kind.
type fuzzInput struct {
	kind, queue, tag, uniqueKey, metaKey, metaVal string
	args                                          []byte
	priority, maxAttempts                         int
	runWhen                                       string
	runAt                                         int64
}

func (in fuzzInput) job() (JobArgs, *InsertOpts) {
	opts := &InsertOpts{
		Queue: in.queue, Priority: in.priority, MaxAttempts: in.maxAttempts, Tags: []string{in.tag},
		UniqueKey: in.uniqueKey, Metadata: map[string]any{in.metaKey: in.metaVal}, RunWhen: RunWhen(in.runWhen),
	}
	if in.runAt != 0 {
		opts.RunAt = time.Unix(in.runAt, 0)
	}
	return freeArgs{kind: in.kind, raw: in.args}, opts
}

// want is the row a successful insert of in stores, defaults applied.
func (in fuzzInput) want() wantJob {
	w := wantJob{
		kind: in.kind, queue: in.queue, uniqueKey: in.uniqueKey, runWhen: in.runWhen, tags: []string{in.tag},
		priority: in.priority, maxAttempts: in.maxAttempts, args: string(in.args), dependsOn: []int64{},
	}
	meta, _ := json.Marshal(map[string]string{in.metaKey: in.metaVal})
	w.metadata = string(meta)
	if in.runAt != 0 {
		w.runAt = time.Unix(in.runAt, 0)
	}
	if w.queue == "" {
		w.queue = DefaultQueue
	}
	if w.priority == 0 {
		w.priority = 1
	}
	if w.maxAttempts == 0 {
		w.maxAttempts = 25
	}
	if w.runWhen == "" {
		w.runWhen = string(RunAfterSuccess)
	}
	return w
}

// fuzzSeeds gives every edge string to each text field in turn, every edge
// of JSON to the args, and every edge of the numbers and the enum.
func fuzzSeeds() []fuzzInput {
	base := fuzzInput{kind: "k", tag: "t", metaKey: "m", metaVal: "v", args: []byte(`{}`)}
	var seeds []fuzzInput
	for _, s := range edgeStrings {
		for _, set := range []func(*fuzzInput){
			func(in *fuzzInput) { in.kind = s },
			func(in *fuzzInput) { in.queue = s },
			func(in *fuzzInput) { in.tag = s },
			func(in *fuzzInput) { in.uniqueKey = s },
			func(in *fuzzInput) { in.metaKey = s },
			func(in *fuzzInput) { in.metaVal = s },
		} {
			in := base
			set(&in)
			seeds = append(seeds, in)
		}
	}
	for _, raw := range edgeJSON {
		in := base
		in.args = []byte(raw)
		seeds = append(seeds, in)
	}
	for _, n := range []int{math.MinInt, -1, 0, 1, 4, 5, 1 << 20, 1<<20 + 1, math.MaxInt} {
		in := base
		in.priority, in.maxAttempts = n, n
		seeds = append(seeds, in)
	}
	for _, rw := range []string{"", "success", "failure", "always", "never", "\x00"} {
		in := base
		in.runWhen = rw
		seeds = append(seeds, in)
	}
	for _, at := range runAtEdges {
		in := base
		in.runAt = at
		seeds = append(seeds, in)
	}
	return seeds
}

// fuzzClient is an insert-only client on a fresh database.
func fuzzClient(f *testing.F) (*Client, *pgxpool.Pool) {
	pool := testdb.New(f)
	c, err := NewClient(pool, Config{})
	if err != nil {
		f.Fatal(err)
	}
	return c, pool
}

func FuzzInsert(f *testing.F) {
	for _, in := range fuzzSeeds() {
		f.Add(in.kind, in.queue, in.tag, in.uniqueKey, in.metaKey, in.metaVal, in.args, in.priority, in.maxAttempts, in.runWhen, in.runAt)
	}
	c, pool := fuzzClient(f)
	f.Fuzz(func(t *testing.T, kind, queue, tag, uniqueKey, metaKey, metaVal string, args []byte, priority, maxAttempts int, runWhen string, runAt int64) {
		in := fuzzInput{kind, queue, tag, uniqueKey, metaKey, metaVal, args, priority, maxAttempts, runWhen, runAt}
		checkWrite(t, pool, func(ctx context.Context, tx pgx.Tx) ([]int64, error) {
			args, opts := in.job()
			row, err := c.Insert(ctx, tx, args, opts)
			if err != nil {
				return nil, err
			}
			return []int64{row.ID}, nil
		}, []wantJob{in.want()})
	})
}

func FuzzInsertMany(f *testing.F) {
	for _, in := range fuzzSeeds() {
		f.Add(in.kind, in.queue, in.tag, in.uniqueKey, in.metaKey, in.metaVal, in.args, in.priority, in.maxAttempts, in.runWhen, in.runAt)
	}
	c, pool := fuzzClient(f)
	f.Fuzz(func(t *testing.T, kind, queue, tag, uniqueKey, metaKey, metaVal string, args []byte, priority, maxAttempts int, runWhen string, runAt int64) {
		first := fuzzInput{kind, queue, tag, uniqueKey, metaKey, metaVal, args, priority, maxAttempts, runWhen, runAt}
		// The second job takes the texts in other places, so one bad
		// value is refused wherever it is.
		second := fuzzInput{kind: "k", queue: tag, tag: queue, metaKey: metaVal, metaVal: kind, args: []byte(`[1]`)}
		checkWrite(t, pool, func(ctx context.Context, tx pgx.Tx) ([]int64, error) {
			a1, o1 := first.job()
			a2, o2 := second.job()
			n, err := c.InsertMany(ctx, tx, []InsertManyParams{{Args: a1, Opts: o1}, {Args: a2, Opts: o2}})
			if err != nil {
				return nil, err
			}
			if n != 2 {
				t.Fatalf("InsertMany reported %d jobs, want 2", n)
			}
			return insertedIDs(ctx, t, tx), nil
		}, []wantJob{first.want(), second.want()})
	})
}

func FuzzInsertWorkflow(f *testing.F) {
	for _, s := range edgeStrings {
		f.Add(s, "first", "second", "k", "q", []byte(`{}`))
		f.Add("w", s, "second", "k", "q", []byte(`{}`))
		f.Add("w", "first", s, "k", "q", []byte(`{}`))
		f.Add("w", "first", "second", s, s, []byte(`{}`))
	}
	for _, raw := range edgeJSON {
		f.Add("w", "first", "second", "k", "q", []byte(raw))
	}
	f.Add("w", "same", "same", "k", "q", []byte(`{}`))
	c, pool := fuzzClient(f)
	f.Fuzz(func(t *testing.T, name, task1, task2, kind, queue string, args []byte) {
		first := fuzzInput{kind: kind, queue: queue, tag: queue, metaKey: kind, metaVal: queue, args: args}
		second := fuzzInput{kind: "k", queue: queue, tag: "t", metaKey: "m", metaVal: "v", args: []byte(`{}`)}
		want := []wantJob{first.want(), second.want()}
		want[0].workflow, want[0].task, want[1].workflow, want[1].task = name, task1, name, task2
		checkWrite(t, pool, func(ctx context.Context, tx pgx.Tx) ([]int64, error) {
			a1, o1 := first.job()
			a2, o2 := second.job()
			w := NewWorkflow(name).
				Add(task1, a1, &TaskOpts{InsertOpts: *o1}).
				Add(task2, a2, &TaskOpts{InsertOpts: *o2, After: []string{task1}})
			ids, err := c.InsertWorkflow(ctx, tx, w)
			if err != nil {
				return nil, err
			}
			want[1].dependsOn = []int64{ids[task1]}
			return []int64{ids[task1], ids[task2]}, nil
		}, want)
	})
}

// FuzzQueuePause: pausing and resuming a queue stores its name as given, or
// refuses it and stores nothing.
func FuzzQueuePause(f *testing.F) {
	for _, s := range edgeStrings {
		f.Add(s)
	}
	c, pool := fuzzClient(f)
	f.Fuzz(func(t *testing.T, queue string) {
		ctx := context.Background()
		err := c.QueuePause(ctx, queue)
		if err != nil {
			if !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("error of no documented type: %v", err)
			}
			for _, err := range []error{
				c.QueueResume(ctx, queue),
				func() error { _, err := c.QueuePaused(ctx, queue); return err }(),
			} {
				if !errors.Is(err, ErrInvalidOptions) {
					t.Fatalf("pause refused the queue, but not %v", err)
				}
			}
			var n int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.job_queues").Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d queues stored (%v)", n, err)
			}
			return
		}
		defer func() {
			if _, err := pool.Exec(ctx, "DELETE FROM keel.job_queues"); err != nil {
				t.Fatal(err)
			}
		}()
		if paused, err := c.QueuePaused(ctx, queue); err != nil || !paused {
			t.Fatalf("paused %q reads as paused=%v (%v)", queue, paused, err)
		}
		var stored string
		if err := pool.QueryRow(ctx, "SELECT name FROM keel.job_queues").Scan(&stored); err != nil || stored != queue {
			t.Fatalf("stored %q, want %q (%v)", stored, queue, err)
		}
		if err := c.QueueResume(ctx, queue); err != nil {
			t.Fatal(err)
		}
		if paused, err := c.QueuePaused(ctx, queue); err != nil || paused {
			t.Fatalf("resumed %q reads as paused=%v (%v)", queue, paused, err)
		}
	})
}

// insertedIDs lists the jobs tx wrote, in id order.
func insertedIDs(ctx context.Context, t *testing.T, tx pgx.Tx) []int64 {
	t.Helper()
	rows, err := tx.Query(ctx, "SELECT id FROM keel.jobs ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
