package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

// The fuzz targets check, for any input to a public write, that it either
// succeeds and the rows hold what it was given, or fails with one of the
// package's typed errors having written nothing, the caller's transaction
// still usable. Their seeds run as ordinary tests.

// fuzzWrite runs write in a transaction rolled back afterwards and checks
// that property.
func fuzzWrite(t *testing.T, pool *pgxpool.Pool, typed []error, write, stored func(ctx context.Context, tx pgx.Tx) error) {
	t.Helper()
	err := inTx(t, pool, write, stored)
	if err == nil {
		return
	}
	for _, want := range typed {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("error %v is none of %v", err, typed)
}

// Seeds shared by the targets: the edges of every limit, NUL, invalid UTF-8
// and 100 kB strings.
var (
	seedIDs = []string{
		"", "order-1", "a\x00b", "\x00", "a\xffb", "\xc3", "\xed\xa0\x80", strings.Repeat("r", 255),
		strings.Repeat("r", 256), strings.Repeat("€", 85), strings.Repeat("€", 86), strings.Repeat("r", kB100),
	}
	seedJSON = []string{
		``, `null`, `1`, `"x"`, ` {"a": [1, 2.5, true]} `, `{"a":1,"a":2}`, `"\u0000"`, `{"\u0000":1}`, `"\ud800"`,
		`"\udc00"`, `"\ud83d\ude00"`, "\"\xff\"", `{"a"`, `1e131071`, `1e131072`, `-1e131072`, `1e-16383`,
		`1e-16384`, `-0.000`, `0e1073741823`, `123456789012345678901234567890`, string(deepJSON(1000)),
		string(deepJSON(1001)), `"` + strings.Repeat("v", kB100) + `"`,
	}
)

func FuzzStart(f *testing.F) {
	for i, id := range seedIDs {
		f.Add(id, "", []byte(`1`), true)
		f.Add("", id, []byte(`1`), true)
		f.Add("", "", []byte(id), i%2 == 0)
	}
	for _, q := range []string{"saga", strings.Repeat("q", 128), strings.Repeat("q", 129), "q\x00", "q\xff"} {
		f.Add("", q, []byte(`"x"`), false)
	}
	for _, raw := range seedJSON {
		f.Add("", "", []byte(raw), true)
		f.Add("run", "", []byte(raw), false)
	}
	pool := openPool(f, testdb.NewURL(f), 4)
	e := newEngine(f, pool, inputRegistry(), false)
	f.Fuzz(func(t *testing.T, runID, queue string, input []byte, raw bool) {
		workflow, in, want := "text", any(string(input)), "to_jsonb($3::text)"
		if raw {
			workflow, in, want = "raw", json.RawMessage(input), "$3::jsonb"
		}
		var run *saga.Run
		fuzzWrite(t, pool, []error{saga.ErrInvalidOptions, saga.ErrEncode}, func(ctx context.Context, tx pgx.Tx) error {
			var err error
			run, err = e.StartRun(ctx, tx, workflow, in, &saga.StartOpts{RunID: runID, Queue: queue})
			return err
		}, func(ctx context.Context, tx pgx.Tx) error {
			wantID, wantQueue, wantInput := runID, queue, string(input)
			if wantID == "" {
				wantID = run.ID
			}
			if wantQueue == "" {
				wantQueue = saga.DefaultQueue
			}
			if raw && len(input) == 0 {
				wantInput = "null" // an empty json.RawMessage encodes as null
			}
			var same bool
			err := tx.QueryRow(ctx, `SELECT r.queue = $2 AND r.input = `+want+`
				AND EXISTS (SELECT 1 FROM keel.jobs j WHERE j.args->>'run_id' = r.id)
				FROM keel.saga_runs r WHERE r.id = $1`, wantID, wantQueue, wantInput).Scan(&same)
			if err != nil || !same || run.ID != wantID {
				return fmt.Errorf("run %q (returned %q) in queue %q: input or job differ (%v)", wantID, run.ID, wantQueue, err)
			}
			return nil
		})
		// On the engine's pool a start that commits alone takes another
		// path (one statement for the run and its job): it refuses the same
		// input, or stores the run with its job.
		ctx := context.Background()
		alone, err := e.StartRun(ctx, pool, workflow, in, &saga.StartOpts{RunID: runID, Queue: queue})
		if err != nil {
			if !errors.Is(err, saga.ErrInvalidOptions) && !errors.Is(err, saga.ErrEncode) {
				t.Fatalf("start on the pool: error %v is neither ErrInvalidOptions nor ErrEncode", err)
			}
			return
		}
		var jobs int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM keel.jobs WHERE args->>'run_id' = $1`, alone.ID).Scan(&jobs); err != nil || jobs != 1 {
			t.Fatalf("run %q started on the pool has %d jobs (%v), want 1", alone.ID, jobs, err)
		}
		// The next input may name the same run: it starts afresh.
		if _, err := pool.Exec(ctx, `WITH j AS (DELETE FROM keel.jobs WHERE args->>'run_id' = $1)
			DELETE FROM keel.saga_runs WHERE id = $1`, alone.ID); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzSignal(f *testing.F) {
	for i, s := range seedIDs {
		f.Add("target", s, "", []byte(`1`), true)
		f.Add("target", "go", s, []byte(`1`), true)
		f.Add(s, "go", "", []byte(`1`), true)
		f.Add("target", "go", "", []byte(s), i%2 == 0)
	}
	for _, name := range []string{strings.Repeat("n", 255), strings.Repeat("n", 256)} {
		f.Add("target", name, "", []byte(`1`), true)
	}
	for _, key := range []string{strings.Repeat("k", 1024), strings.Repeat("k", 1025)} {
		f.Add("target", "go", key, []byte(`1`), true)
	}
	for _, raw := range seedJSON {
		f.Add("target", "go", "key", []byte(raw), true)
		f.Add("target", "go", "", []byte(raw), false)
	}
	pool := openPool(f, testdb.NewURL(f), 4)
	e := newEngine(f, pool, inputRegistry(), false)
	start(f, e, pool, "text", "x", &saga.StartOpts{RunID: "target"})
	f.Fuzz(func(t *testing.T, runID, name, key string, value []byte, raw bool) {
		in, want := any(string(value)), "to_jsonb($4::text)"
		if raw {
			in, want = json.RawMessage(value), "$4::jsonb"
		}
		fuzzWrite(t, pool, []error{saga.ErrInvalidOptions, saga.ErrEncode, saga.ErrRunNotFound}, func(ctx context.Context, tx pgx.Tx) error {
			return e.Signal(ctx, tx, runID, name, in, &saga.SignalOpts{IdempotencyKey: key})
		}, func(ctx context.Context, tx pgx.Tx) error {
			wantValue := string(value)
			if raw && len(value) == 0 {
				wantValue = "null"
			}
			var same bool
			err := tx.QueryRow(ctx, `SELECT s.run_id = $1 AND s.name = $2 AND s.idempotency_key IS NOT DISTINCT FROM NULLIF($3, '')
				AND s.value = `+want+` FROM keel.saga_signals s ORDER BY s.id DESC LIMIT 1`,
				runID, name, key, wantValue).Scan(&same)
			if err != nil || !same {
				return fmt.Errorf("the last signal is not %q to %q (%v)", name, runID, err)
			}
			return nil
		})
	})
}

func FuzzFork(f *testing.F) {
	seqs := []int{math.MinInt, -1, 0, 1, 2, math.MaxInt32, math.MaxInt32 + 1, math.MaxInt}
	versions := []int{math.MinInt, -1, 0, 1, 2, math.MaxInt32, math.MaxInt32 + 1}
	timeouts := []int64{math.MinInt64, -1, 0, 1, int64(time.Hour), math.MaxInt64}
	for i, s := range seedIDs {
		f.Add("source", s, seqs[i%len(seqs)], versions[i%len(versions)], timeouts[i%len(timeouts)])
		f.Add(s, "", 1, 0, int64(0))
	}
	for _, seq := range seqs {
		f.Add("source", "", seq, 0, int64(0))
	}
	for _, v := range versions {
		f.Add("source", "fork", 1, v, int64(0))
	}
	for _, d := range timeouts {
		f.Add("source", "fork", 1, 1, d)
	}
	f.Add("source", "taken", 1, 1, int64(0))
	f.Add("source", "source", 1, 0, int64(0))
	f.Add("missing", "fork", 1, 0, int64(0))
	pool := openPool(f, testdb.NewURL(f), 4)
	e := newEngine(f, pool, inputRegistry(), false)
	start(f, e, pool, "text", "x", &saga.StartOpts{RunID: "source"})
	start(f, e, pool, "text", "y", &saga.StartOpts{RunID: "taken"})
	f.Fuzz(func(t *testing.T, srcID, newID string, fromSeq, version int, timeout int64) {
		var run *saga.Run
		typed := []error{saga.ErrInvalidOptions, saga.ErrRunNotFound, saga.ErrUnknownWorkflow, saga.ErrRunIDInUse}
		fuzzWrite(t, pool, typed, func(ctx context.Context, tx pgx.Tx) error {
			var err error
			run, err = e.Fork(ctx, tx, srcID, fromSeq, &saga.ForkOpts{RunID: newID, Version: version, Timeout: time.Duration(timeout)})
			return err
		}, func(ctx context.Context, tx pgx.Tx) error {
			wantID := newID
			if wantID == "" {
				wantID = run.ID
			}
			var same bool
			err := tx.QueryRow(ctx, `SELECT r.forked_from = $2 AND r.forked_at_seq = $3 AND r.version = 1
				AND r.input = s.input AND r.workflow = s.workflow AND (r.deadline IS NOT NULL) = $4
				AND EXISTS (SELECT 1 FROM keel.jobs j WHERE j.args->>'run_id' = r.id)
				FROM keel.saga_runs r, keel.saga_runs s WHERE r.id = $1 AND s.id = $2`,
				wantID, srcID, fromSeq, timeout > 0).Scan(&same)
			if err != nil || !same || run.ID != wantID {
				return fmt.Errorf("fork %q (returned %q) of %q at %d differs (%v)", wantID, run.ID, srcID, fromSeq, err)
			}
			return nil
		})
	})
}

func FuzzCancelResume(f *testing.F) {
	for _, s := range append(seedIDs, "pending", "missing") {
		f.Add(s, false)
		f.Add(s, true)
	}
	pool := openPool(f, testdb.NewURL(f), 4)
	e := newEngine(f, pool, inputRegistry(), false)
	start(f, e, pool, "text", "x", &saga.StartOpts{RunID: "pending"})
	f.Fuzz(func(t *testing.T, runID string, resume bool) {
		typed := []error{saga.ErrInvalidOptions, saga.ErrRunNotFound, saga.ErrRunFinished, saga.ErrRunNotFinished}
		fuzzWrite(t, pool, typed, func(ctx context.Context, tx pgx.Tx) error {
			if resume {
				return e.Resume(ctx, tx, runID)
			}
			return e.Cancel(ctx, tx, runID)
		}, func(ctx context.Context, tx pgx.Tx) error {
			if resume {
				return fmt.Errorf("resume of the pending run %q succeeded", runID)
			}
			var requested bool
			err := tx.QueryRow(ctx, `SELECT cancel_requested_at IS NOT NULL FROM keel.saga_runs WHERE id = $1`, runID).Scan(&requested)
			if err != nil || !requested {
				return fmt.Errorf("cancel of %q succeeded but no cancel is requested (%v)", runID, err)
			}
			return nil
		})
	})
}
