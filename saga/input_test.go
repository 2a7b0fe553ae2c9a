package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
	"github.com/keelpg/keel/saga"
)

// fingerprintSQL digests every row of the saga tables and keel.jobs, so a
// test sees whether a refused call wrote, updated or deleted anything.
const fingerprintSQL = `SELECT concat_ws('|',
	(SELECT md5(coalesce(string_agg(r::text, ',' ORDER BY r.id), '')) FROM keel.saga_runs r),
	(SELECT md5(coalesce(string_agg(s::text, ',' ORDER BY s.id), '')) FROM keel.saga_signals s),
	(SELECT md5(coalesce(string_agg(s::text, ',' ORDER BY s.run_id, s.seq), '')) FROM keel.saga_steps s),
	(SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.run_id, v.name), '')) FROM keel.saga_values v),
	(SELECT md5(coalesce(string_agg(j::text, ',' ORDER BY j.id), '')) FROM keel.jobs j))`

func fingerprint(t testing.TB, tx pgx.Tx) string {
	t.Helper()
	var fp string
	if err := tx.QueryRow(context.Background(), fingerprintSQL).Scan(&fp); err != nil {
		t.Fatalf("reading the tables after the call (is the transaction still usable?): %v", err)
	}
	return fp
}

// inTx calls write in a transaction that is rolled back afterwards. When
// write fails, it checks that the transaction is still usable and that
// nothing was written; when it succeeds, it calls stored (when not nil) to
// check what was. It returns write's error.
func inTx(t testing.TB, pool *pgxpool.Pool, write, stored func(ctx context.Context, tx pgx.Tx) error) error {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	before := fingerprint(t, tx)
	err = write(ctx, tx)
	if err != nil {
		if after := fingerprint(t, tx); after != before {
			t.Errorf("the call failed (%v) but wrote rows", err)
		}
		var one int
		if qerr := tx.QueryRow(ctx, "SELECT 1").Scan(&one); qerr != nil {
			t.Errorf("the transaction is not usable after %v: %v", err, qerr)
		}
		return err
	}
	if stored != nil {
		if err := stored(ctx, tx); err != nil {
			t.Errorf("the call succeeded but stored something else: %v", err)
		}
	}
	return nil
}

// writeCase is one call of a public write: want nil means it must succeed;
// otherwise it must fail with want, name field in its message, write nothing
// and leave the caller's transaction usable.
type writeCase struct {
	name  string
	want  error
	field string
	write func(ctx context.Context, tx pgx.Tx) error
}

func runWriteCases(t *testing.T, pool *pgxpool.Pool, cases []writeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := inTx(t, pool, tc.write, nil)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("error %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
}

// deepJSON nests depth arrays.
func deepJSON(depth int) json.RawMessage {
	return json.RawMessage(strings.Repeat("[", depth) + strings.Repeat("]", depth))
}

type labelled struct {
	Label string         `json:"label"`
	Tags  map[string]int `json:"tags"`
}

// inputRegistry registers workflows taking raw JSON, a string and a struct,
// none of which is run.
func inputRegistry() *saga.Registry {
	reg := saga.NewRegistry()
	saga.Register(reg, "raw", 1, func(ctx saga.Context, in json.RawMessage) (int, error) { return 0, nil })
	saga.Register(reg, "text", 1, func(ctx saga.Context, in string) (int, error) { return 0, nil })
	saga.Register(reg, "doc", 1, func(ctx saga.Context, in labelled) (int, error) { return 0, nil })
	return reg
}

const kB100 = 100_000

func TestStartRefusesWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	e := newEngine(t, pool, inputRegistry(), false)
	startCase := func(name string, want error, field, workflow string, input any, opts *saga.StartOpts) writeCase {
		return writeCase{name, want, field, func(ctx context.Context, tx pgx.Tx) error {
			_, err := e.StartRun(ctx, tx, workflow, input, opts)
			return err
		}}
	}
	id := func(s string) *saga.StartOpts { return &saga.StartOpts{RunID: s} }
	queue := func(s string) *saga.StartOpts { return &saga.StartOpts{Queue: s} }
	runWriteCases(t, pool, []writeCase{
		startCase("run id with NUL", saga.ErrInvalidOptions, "run id", "text", "x", id("a\x00b")),
		startCase("run id of invalid UTF-8", saga.ErrInvalidOptions, "run id", "text", "x", id("a\xffb")),
		startCase("run id of 256 bytes", saga.ErrInvalidOptions, "run id", "text", "x", id(strings.Repeat("r", 256))),
		startCase("run id of 100 kB", saga.ErrInvalidOptions, "run id", "text", "x", id(strings.Repeat("r", kB100))),
		startCase("run id of 255 bytes", nil, "", "text", "x", id(strings.Repeat("r", 255))),
		startCase("run id of 85 three-byte runes", nil, "", "text", "x", id(strings.Repeat("€", 85))),
		startCase("run id of 86 three-byte runes", saga.ErrInvalidOptions, "run id", "text", "x", id(strings.Repeat("€", 86))),
		startCase("queue with NUL", saga.ErrInvalidOptions, "queue", "text", "x", queue("q\x00")),
		startCase("queue of invalid UTF-8", saga.ErrInvalidOptions, "queue", "text", "x", queue("\xc3")),
		startCase("queue of 129 bytes", saga.ErrInvalidOptions, "queue", "text", "x", queue(strings.Repeat("q", 129))),
		startCase("queue of 100 kB", saga.ErrInvalidOptions, "queue", "text", "x", queue(strings.Repeat("q", kB100))),
		startCase("queue of 128 bytes", nil, "", "text", "x", queue(strings.Repeat("q", 128))),
		startCase("string input with NUL", saga.ErrEncode, "input", "text", "a\x00b", nil),
		startCase("string input of invalid UTF-8", saga.ErrEncode, "input", "text", "a\xffb", nil),
		startCase("string input of 100 kB", nil, "", "text", strings.Repeat("i", kB100), nil),
		startCase("struct input with NUL", saga.ErrEncode, "input", "doc", labelled{Label: "\x00"}, nil),
		startCase("struct input with a NUL map key", saga.ErrEncode, "input", "doc", labelled{Tags: map[string]int{"k\x00": 1}}, nil),
		startCase("struct input of invalid UTF-8", saga.ErrEncode, "input", "doc", &labelled{Label: "\xed\xa0\x80"}, nil),
		startCase(`raw input \u0000`, saga.ErrEncode, "input", "raw", json.RawMessage(`"a\u0000"`), nil),
		startCase(`raw input \u0000 in a key`, saga.ErrEncode, "input", "raw", json.RawMessage(`{"\u0000":1}`), nil),
		startCase("raw input of invalid UTF-8", saga.ErrEncode, "input", "raw", json.RawMessage("\"\xff\""), nil),
		startCase("raw input with a lone surrogate", saga.ErrEncode, "input", "raw", json.RawMessage(`"\ud800"`), nil),
		startCase("raw input that is not JSON", saga.ErrEncode, "input", "raw", json.RawMessage(`{"a"`), nil),
		startCase("raw input 1001 levels deep", saga.ErrEncode, "input", "raw", deepJSON(1001), nil),
		startCase("raw input 1000 levels deep", nil, "", "raw", deepJSON(1000), nil),
		startCase("raw input with a huge number", saga.ErrEncode, "input", "raw", json.RawMessage(`1e131072`), nil),
		startCase("raw input with a huge negative number", saga.ErrEncode, "input", "raw", json.RawMessage(`-1e131072`), nil),
		startCase("raw input with a tiny number", saga.ErrEncode, "input", "raw", json.RawMessage(`1e-16384`), nil),
		startCase("raw input with a large number", nil, "", "raw", json.RawMessage(`-1e300`), nil),
		startCase("negative timeout", saga.ErrInvalidOptions, "timeout", "text", "x", &saga.StartOpts{Timeout: -time.Second}),
		startCase("version -1", saga.ErrUnknownWorkflow, "version", "text", "x", &saga.StartOpts{Version: -1}),
		startCase("version beyond int32", saga.ErrUnknownWorkflow, "version", "text", "x", &saga.StartOpts{Version: math.MaxInt32 + 1}),
		startCase("workflow name with NUL", saga.ErrUnknownWorkflow, "registered", "te\x00xt", "x", nil),
	})
}

func TestSignalRefusesWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	e := newEngine(t, pool, inputRegistry(), false)
	run := start(t, e, pool, "text", "x", &saga.StartOpts{RunID: "target"})
	signal := func(name string, want error, field, runID, signal string, value any, key string) writeCase {
		return writeCase{name, want, field, func(ctx context.Context, tx pgx.Tx) error {
			return e.Signal(ctx, tx, runID, signal, value, &saga.SignalOpts{IdempotencyKey: key})
		}}
	}
	runWriteCases(t, pool, []writeCase{
		signal("run id with NUL", saga.ErrInvalidOptions, "run id", "tar\x00get", "go", 1, ""),
		signal("run id of invalid UTF-8", saga.ErrInvalidOptions, "run id", "\xfftarget", "go", 1, ""),
		signal("run id of 100 kB", saga.ErrInvalidOptions, "run id", strings.Repeat("r", kB100), "go", 1, ""),
		signal("missing run", saga.ErrRunNotFound, "missing", "missing", "go", 1, ""),
		signal("empty name", saga.ErrInvalidOptions, "signal name", run.ID, "", 1, ""),
		signal("name with NUL", saga.ErrInvalidOptions, "signal name", run.ID, "g\x00o", 1, ""),
		signal("name of invalid UTF-8", saga.ErrInvalidOptions, "signal name", run.ID, "g\xffo", 1, ""),
		signal("name of 256 bytes", saga.ErrInvalidOptions, "signal name", run.ID, strings.Repeat("n", 256), 1, ""),
		signal("name of 100 kB", saga.ErrInvalidOptions, "signal name", run.ID, strings.Repeat("n", kB100), 1, ""),
		signal("name of 255 bytes", nil, "", run.ID, strings.Repeat("n", 255), 1, ""),
		signal("key with NUL", saga.ErrInvalidOptions, "idempotency key", run.ID, "go", 1, "k\x00"),
		signal("key of invalid UTF-8", saga.ErrInvalidOptions, "idempotency key", run.ID, "go", 1, "k\xff"),
		signal("key of 1025 bytes", saga.ErrInvalidOptions, "idempotency key", run.ID, "go", 1, strings.Repeat("k", 1025)),
		signal("key of 100 kB", saga.ErrInvalidOptions, "idempotency key", run.ID, "go", 1, strings.Repeat("k", kB100)),
		signal("key of 1024 bytes", nil, "", run.ID, "go", 1, strings.Repeat("k", 1024)),
		signal("value with NUL", saga.ErrEncode, "signal value", run.ID, "go", "a\x00", ""),
		signal("value of invalid UTF-8", saga.ErrEncode, "signal value", run.ID, "go", "a\xff", ""),
		signal(`raw value \u0000`, saga.ErrEncode, "signal value", run.ID, "go", json.RawMessage(`["\u0000"]`), ""),
		signal("raw value 1001 levels deep", saga.ErrEncode, "signal value", run.ID, "go", deepJSON(1001), ""),
		signal("raw value with a huge number", saga.ErrEncode, "signal value", run.ID, "go", json.RawMessage(`[1e1000000000]`), ""),
		signal("value of 100 kB", nil, "", run.ID, "go", strings.Repeat("v", kB100), ""),
	})
}

func TestControlRefusesWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	e := newEngine(t, pool, inputRegistry(), false)
	src := start(t, e, pool, "text", "x", &saga.StartOpts{RunID: "source"})
	start(t, e, pool, "text", "x", &saga.StartOpts{RunID: "taken"})
	bad := map[string]string{"NUL": "ru\x00n", "invalid UTF-8": "run\xff", "256 bytes": strings.Repeat("r", 256), "100 kB": strings.Repeat("r", kB100)}
	var cases []writeCase
	for what, id := range bad {
		cases = append(cases,
			writeCase{"cancel: run id of " + what, saga.ErrInvalidOptions, "run id", func(ctx context.Context, tx pgx.Tx) error {
				return e.Cancel(ctx, tx, id)
			}},
			writeCase{"resume: run id of " + what, saga.ErrInvalidOptions, "run id", func(ctx context.Context, tx pgx.Tx) error {
				return e.Resume(ctx, tx, id)
			}},
			writeCase{"get: run id of " + what, saga.ErrInvalidOptions, "run id", func(ctx context.Context, tx pgx.Tx) error {
				_, err := e.Get(ctx, tx, id)
				return err
			}},
			writeCase{"fork: source of " + what, saga.ErrInvalidOptions, "run id", func(ctx context.Context, tx pgx.Tx) error {
				_, err := e.Fork(ctx, tx, id, 1, nil)
				return err
			}},
			writeCase{"fork: new run id of " + what, saga.ErrInvalidOptions, "fork run id", func(ctx context.Context, tx pgx.Tx) error {
				_, err := e.Fork(ctx, tx, src.ID, 1, &saga.ForkOpts{RunID: id})
				return err
			}},
		)
	}
	fork := func(name string, want error, field, srcID string, fromSeq int, opts *saga.ForkOpts) writeCase {
		return writeCase{name, want, field, func(ctx context.Context, tx pgx.Tx) error {
			_, err := e.Fork(ctx, tx, srcID, fromSeq, opts)
			return err
		}}
	}
	cases = append(cases,
		fork("fork onto a taken run id", saga.ErrRunIDInUse, "taken", src.ID, 1, &saga.ForkOpts{RunID: "taken"}),
		fork("fork onto its source", saga.ErrRunIDInUse, "source", src.ID, 1, &saga.ForkOpts{RunID: "source"}),
		fork("fork to an unregistered version", saga.ErrUnknownWorkflow, "version 9", src.ID, 1, &saga.ForkOpts{Version: 9}),
		fork("fork to version beyond int32", saga.ErrUnknownWorkflow, "version", src.ID, 1, &saga.ForkOpts{Version: math.MaxInt32 + 1}),
		fork("fork at position 0", saga.ErrInvalidOptions, "position", src.ID, 0, nil),
		fork("fork at a position beyond int32", saga.ErrInvalidOptions, "position", src.ID, math.MaxInt32+1, nil),
		fork("fork with a negative timeout", saga.ErrInvalidOptions, "timeout", src.ID, 1, &saga.ForkOpts{Timeout: -1}),
		fork("fork of a missing run", saga.ErrRunNotFound, "missing", "missing", 1, nil),
		fork("fork onto 255 bytes", nil, "", src.ID, 1, &saga.ForkOpts{RunID: strings.Repeat("f", 255), Version: 1}),
		fork("fork at the last int32 position", nil, "", src.ID, math.MaxInt32, nil),
		writeCase{"cancel a missing run", saga.ErrRunNotFound, "missing", func(ctx context.Context, tx pgx.Tx) error {
			return e.Cancel(ctx, tx, "missing")
		}},
		writeCase{"resume a pending run", saga.ErrRunNotFinished, "source", func(ctx context.Context, tx pgx.Tx) error {
			return e.Resume(ctx, tx, src.ID)
		}},
	)
	runWriteCases(t, pool, cases)
}

func TestReadsRefuseWhatPostgresCannotStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	e := newEngine(t, pool, inputRegistry(), false)
	for _, tc := range []struct {
		name, field string
		read        func() error
	}{
		{"steps: run id with NUL", "run id", func() error { _, err := e.Steps(ctx, "a\x00"); return err }},
		{"value: run id of invalid UTF-8", "run id", func() error { var v int; return e.GetValue(ctx, "a\xff", "v", &v) }},
		{"value: name with NUL", "value name", func() error { var v int; return e.GetValue(ctx, "a", "v\x00", &v) }},
		{"value: name of 100 kB", "value name", func() error { var v int; return e.GetValue(ctx, "a", strings.Repeat("v", kB100), &v) }},
		{"list: unknown status", "status", func() error { _, err := e.List(ctx, &saga.ListParams{Status: "done"}); return err }},
		{"list: workflow with NUL", "workflow", func() error { _, err := e.List(ctx, &saga.ListParams{Workflow: "\x00"}); return err }},
		{"list: parent of invalid UTF-8", "parent", func() error { _, err := e.List(ctx, &saga.ListParams{ParentID: "\xff"}); return err }},
		{"await: run id with NUL", "run id", func() error { _, err := e.Await(ctx, "a\x00"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.read()
			if !errors.Is(err, saga.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v, want ErrInvalidOptions naming %q", err, tc.field)
			}
		})
	}
	if runs, err := e.List(ctx, &saga.ListParams{Limit: math.MaxInt32 + 1}); err != nil || len(runs) != 0 {
		t.Fatalf("list with a limit beyond int32: %v, %v", runs, err)
	}
}

func TestRegisterRefusesUnstorableNames(t *testing.T) {
	t.Parallel()
	fn := func(saga.Context, int) (int, error) { return 0, nil }
	for _, tc := range []struct {
		name     string
		workflow string
		version  int
	}{
		{"NUL", "a\x00", 1},
		{"invalid UTF-8", "a\xff", 1},
		{"256 bytes", strings.Repeat("w", 256), 1},
		{"version beyond int32", "w", math.MaxInt32 + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := saga.RegisterSafely(saga.NewRegistry(), tc.workflow, tc.version, fn)
			if !errors.Is(err, saga.ErrInvalidOptions) {
				t.Fatalf("error %v, want ErrInvalidOptions", err)
			}
		})
	}
	if _, err := saga.NewEngine(testdb.New(t), saga.NewRegistry(), saga.Config{Queue: strings.Repeat("q", 129)}); !errors.Is(err, saga.ErrInvalidOptions) || !strings.Contains(err.Error(), "queue") {
		t.Fatalf("engine with a queue of 129 bytes: %v", err)
	}
}

// nilTx is a nil DBTX, or a nil *pgxpool.Pool in a DBTX.
func nilTx(untyped bool) keeltype.DBTX {
	if untyped {
		return nil
	}
	var pool *pgxpool.Pool
	return pool
}

func TestNilTxIsAnError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	e := newEngine(t, pool, inputRegistry(), false)
	run := start(t, e, pool, "text", "x", nil)
	for _, tc := range []struct {
		name string
		call func(untyped bool) error
	}{
		{"start", func(untyped bool) error {
			_, err := e.StartRun(ctx, nilTx(untyped), "text", "x", nil)
			return err
		}},
		{"signal", func(untyped bool) error { return e.Signal(ctx, nilTx(untyped), run.ID, "go", 1, nil) }},
		{"cancel", func(untyped bool) error { return e.Cancel(ctx, nilTx(untyped), run.ID) }},
		{"resume", func(untyped bool) error { return e.Resume(ctx, nilTx(untyped), run.ID) }},
		{"fork", func(untyped bool) error { _, err := e.Fork(ctx, nilTx(untyped), run.ID, 1, nil); return err }},
		{"get", func(untyped bool) error { _, err := e.Get(ctx, nilTx(untyped), run.ID); return err }},
	} {
		for _, untyped := range []bool{true, false} {
			name := tc.name + " with a nil *pgxpool.Pool"
			if untyped {
				name = tc.name + " with nil"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				err := tc.call(untyped)
				if !errors.Is(err, saga.ErrInvalidOptions) || !strings.Contains(err.Error(), "nil") {
					t.Fatalf("error %v, want ErrInvalidOptions naming the nil tx", err)
				}
			})
		}
	}
}

func TestStoppedEngineRefusesWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := openPool(t, testdb.NewURL(t), 8)
	e := newEngine(t, pool, inputRegistry(), true)
	run := start(t, e, pool, "text", "x", &saga.StartOpts{RunID: "stopped"})
	await(t, e, run.ID)
	other := start(t, e, pool, "raw", json.RawMessage(`1`), nil)
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	runWriteCases(t, pool, []writeCase{
		{"start", saga.ErrClosed, "stopped", func(ctx context.Context, tx pgx.Tx) error {
			_, err := e.StartRun(ctx, tx, "text", "y", nil)
			return err
		}},
		{"signal", saga.ErrClosed, "stopped", func(ctx context.Context, tx pgx.Tx) error {
			return e.Signal(ctx, tx, other.ID, "go", 1, nil)
		}},
		{"cancel", saga.ErrClosed, "stopped", func(ctx context.Context, tx pgx.Tx) error { return e.Cancel(ctx, tx, other.ID) }},
		{"resume", saga.ErrClosed, "stopped", func(ctx context.Context, tx pgx.Tx) error { return e.Resume(ctx, tx, run.ID) }},
		{"fork", saga.ErrClosed, "stopped", func(ctx context.Context, tx pgx.Tx) error {
			_, err := e.Fork(ctx, tx, run.ID, 1, nil)
			return err
		}},
		{"get still reads", nil, "", func(ctx context.Context, tx pgx.Tx) error {
			_, err := e.Get(ctx, tx, run.ID)
			return err
		}},
	})
	if err := e.Start(ctx); !errors.Is(err, saga.ErrClosed) {
		t.Fatalf("Start after Stop: %v", err)
	}
	if done, err := e.Await(ctx, run.ID); err != nil || done.Status != saga.StatusSucceeded {
		t.Fatalf("Await after Stop: %+v, %v", done, err)
	}
}
