package saga_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/saga"
)

// runCase is a workflow that meets, at run time, something Postgres cannot
// store. Its run must end failed with want in its error, its counted
// function having run ran times: never a job that retries the run (and
// reruns its step) for ever.
type runCase struct {
	name string
	want string
	ran  int64
	// runID names the run; default a random UUID.
	runID string
	// register registers the workflow called name; count counts the runs
	// of the function the case watches.
	register func(reg *saga.Registry, name string, count func())
}

// stepReturning registers a workflow whose step returns v.
func stepReturning[T any](v T) func(*saga.Registry, string, func()) {
	return func(reg *saga.Registry, name string, count func()) {
		saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (T, error) {
			return saga.Step(ctx, "produce", func(context.Context) (T, error) { count(); return v, nil }, nil)
		})
	}
}

func TestUnstorableResultsFailTheRun(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 12)
	once := &saga.StepOpts{MaxAttempts: 1}
	cases := []runCase{
		{"step result with NUL", "has a NUL byte", 1, "", stepReturning("a\x00b")},
		{"step result of invalid UTF-8", "not valid UTF-8", 1, "", stepReturning("a\xffb")},
		{`step result \u0000`, `\u0000`, 1, "", stepReturning(json.RawMessage(`{"k":"\u0000"}`))},
		{"step result 1001 levels deep", "deeper than 1000", 1, "", stepReturning(deepJSON(1001))},
		{"step result beyond numeric", "exponent", 1, "", stepReturning(json.Number("1e1000000000"))},
		{"step result with a NUL map key", "NUL", 1, "", stepReturning(map[string]int{"\x00": 1})},
		{"transactional step result with NUL", "has a NUL byte", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (string, error) {
				return saga.TxStep(ctx, "produce", func(context.Context, pgx.Tx) (string, error) { count(); return "\x00", nil }, nil)
			})
		}},
		{"async step result with NUL", "has a NUL byte", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (string, error) {
				return saga.StepAsync(ctx, "produce", func(context.Context) (string, error) { count(); return "\x00", nil }, nil).Get(ctx)
			})
		}},
		{"workflow output with NUL", "output of workflow", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (string, error) { count(); return "\x00", nil })
		}},
		{"workflow output of invalid UTF-8", "output of workflow", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (string, error) { count(); return "\xc3", nil })
		}},
		{"workflow output beyond numeric", "output of workflow", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (json.Number, error) { count(); return "-1e-17000", nil })
		}},
		{"published value with NUL", `value "progress"`, 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				count()
				return 0, saga.SetValue(ctx, "progress", "\x00")
			})
		}},
		{"published value name with NUL", "value name", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				err := saga.SetValue(ctx, "pro\x00gress", 1)
				count()
				return 0, err
			})
		}},
		{"published value name of 256 bytes", "value name", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				err := saga.SetValue(ctx, strings.Repeat("v", 256), 1)
				count()
				return 0, err
			})
		}},
		{"step name of invalid UTF-8", "step name", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				return saga.Step(ctx, "st\xffep", func(context.Context) (int, error) { count(); return 1, nil }, nil)
			})
		}},
		{"signal name with NUL", "signal name", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				v, err := saga.AwaitSignal[int](ctx, "go\x00", time.Hour)
				count()
				return v, err
			})
		}},
		{"signal name of 100 kB", "signal name", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				v, err := saga.AwaitSignal[int](ctx, strings.Repeat("s", kB100), 0)
				count()
				return v, err
			})
		}},
		{"wake time beyond year 9999", "wake time", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				saga.SleepUntil(ctx, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
				count()
				return 0, nil
			})
		}},
		{"child input with NUL", "input of workflow", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (string, error) {
				return saga.StartChild[string](ctx, "echo", "\x00", nil).Get(ctx)
			})
		}},
		{"child run id with NUL", "child run id", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (string, error) {
				return saga.StartChild[string](ctx, "echo", "x", &saga.ChildOpts{RunID: "c\x00"}).Get(ctx)
			})
		}},
		{"child run id of 256 bytes", "child run id", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (string, error) {
				return saga.StartChild[string](ctx, "echo", "x", &saga.ChildOpts{RunID: strings.Repeat("c", 256)}).Get(ctx)
			})
		}},
		{"child queue of 129 bytes", "queue", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (string, error) {
				return saga.StartChild[string](ctx, "echo", "x", &saga.ChildOpts{Queue: strings.Repeat("q", 129)}).Get(ctx)
			})
		}},
		{"child id past 255 bytes by default", "child run id", 0, strings.Repeat("p", 254), func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (string, error) {
				return saga.StartChild[string](ctx, "echo", "x", nil).Get(ctx)
			})
		}},
		{"child result with NUL", "child run did not succeed", 0, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (string, error) {
				return saga.StartChild[string](ctx, "echo", "a", &saga.ChildOpts{Version: 2}).Get(ctx)
			})
		}},
		{"step error with NUL and invalid UTF-8", "bad \uFFFD row \uFFFD", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				return saga.Step(ctx, "produce", func(context.Context) (int, error) { count(); return 0, errors.New("bad \x00 row \xff") }, once)
			})
		}},
		{"transactional step error with NUL", "bad \uFFFD", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				return saga.TxStep(ctx, "produce", func(context.Context, pgx.Tx) (int, error) { count(); return 0, errors.New("bad \x00") }, once)
			})
		}},
		{"step panic with NUL", "panicked: bad \uFFFD", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				return saga.Step(ctx, "produce", func(context.Context) (int, error) { count(); panic("bad \x00") }, once)
			})
		}},
		{"workflow error with NUL", "bad \uFFFD", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) { count(); return 0, errors.New("bad \x00") })
		}},
		{"workflow panic of invalid UTF-8", "bad \uFFFD", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) { count(); panic("bad \xff") })
		}},
		{"compensation error with NUL", "undo \uFFFD", 1, "", func(reg *saga.Registry, name string, count func()) {
			saga.Register(reg, name, 1, func(ctx saga.Context, _ int) (int, error) {
				_, err := saga.StepWithCompensation(ctx, "reserve",
					func(context.Context) (int, error) { return 1, nil },
					func(context.Context, int) error { count(); return errors.New("undo \x00") },
					&saga.StepOpts{CompensationMaxAttempts: 1})
				if err != nil {
					return 0, err
				}
				return 0, errors.New("boom")
			})
		}},
	}
	reg := saga.NewRegistry()
	saga.Register(reg, "echo", 1, func(ctx saga.Context, in string) (string, error) { return in, nil })
	saga.Register(reg, "echo", 2, func(ctx saga.Context, in string) (string, error) {
		return in + "\x00", nil // the child's own result cannot be stored
	})
	counts := make([]atomic.Int64, len(cases))
	for i, tc := range cases {
		tc.register(reg, tc.name, func() { counts[i].Add(1) })
	}
	e := newEngine(t, pool, reg, true)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run := start(t, e, pool, tc.name, 0, &saga.StartOpts{RunID: tc.runID})
			done := await(t, e, run.ID)
			if done.Status != saga.StatusFailed || done.Err() == nil || !strings.Contains(done.Err().Error(), tc.want) {
				t.Fatalf("run %s: %v; want failed with %q", done.Status, done.Err(), tc.want)
			}
			if !utf8.ValidString(done.Err().Error()) {
				t.Errorf("stored error %q is not valid UTF-8", done.Err())
			}
			if got := counts[i].Load(); got != tc.ran {
				t.Errorf("the function ran %d times, want %d", got, tc.ran)
			}
			steps, err := e.Steps(context.Background(), run.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range steps {
				if s.Name == "produce" && (s.Status != "failed" || !strings.Contains(s.Error, tc.want)) {
					t.Errorf("step %+v; want failed with %q", s, tc.want)
				}
			}
		})
	}
}

func TestLongErrorsAreCut(t *testing.T) {
	t.Parallel()
	pool := openPool(t, testdb.NewURL(t), 8)
	reg := saga.NewRegistry()
	long := strings.Repeat("é", 1<<20)
	saga.Register(reg, "loud", 1, func(ctx saga.Context, _ int) (int, error) {
		return saga.Step(ctx, "produce", func(context.Context) (int, error) { return 0, errors.New(long) },
			&saga.StepOpts{MaxAttempts: 1})
	})
	e := newEngine(t, pool, reg, true)
	done := await(t, e, start(t, e, pool, "loud", 0, nil).ID)
	msg := done.Err().Error() // the stored text, cut, behind the run's own prefix
	if done.Status != saga.StatusFailed || len(msg) > validate.MaxErrorText+200 || !utf8.ValidString(msg) || !strings.HasSuffix(msg, "bytes cut)") {
		t.Fatalf("run %s with an error of %d bytes ending %q", done.Status, len(msg), msg[max(0, len(msg)-20):])
	}
}
