package saga_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

// undoLog returns the names of the compensations run so far, in order.
func undoLog(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT name FROM test_undo ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgxCollectStrings(rows)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// booking registers a workflow of three compensable steps a, b, c; then,
// by its input, it fails (step d), waits for a signal (to be cancelled) or
// succeeds. Each undo appends its step's name to test_undo.
func booking(reg *saga.Registry, pool *pgxpool.Pool, undoHang bool) {
	saga.Register(reg, "booking", 1, func(ctx saga.Context, mode string) (string, error) {
		for _, name := range []string{"a", "b", "c"} {
			_, err := saga.StepWithCompensation(ctx, name,
				func(context.Context) (string, error) { return name, nil },
				func(ctx context.Context, out string) error {
					if _, err := pool.Exec(ctx, "INSERT INTO test_undo (name) VALUES ($1)", out); err != nil {
						return err
					}
					if undoHang && out == "b" {
						<-ctx.Done()
						return ctx.Err()
					}
					return nil
				}, nil)
			if err != nil {
				return "", err
			}
		}
		switch mode {
		case "fail":
			_, err := saga.Step(ctx, "d", func(context.Context) (int, error) { return 0, errors.New("card declined") },
				&saga.StepOpts{MaxAttempts: 1})
			return "", err
		case "wait":
			return saga.AwaitSignal[string](ctx, "never", 0)
		}
		return "booked", nil
	})
}

func newUndoTable(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), "CREATE TABLE test_undo (id serial PRIMARY KEY, name text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
}

func TestCompensationsRunInReverseOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		mode       string
		cancel     bool
		wantStatus saga.Status
		wantErr    error
		wantUndo   []string
	}{
		{name: "on failure", mode: "fail", wantStatus: saga.StatusFailed, wantUndo: []string{"c", "b", "a"}},
		{name: "on cancel", mode: "wait", cancel: true, wantStatus: saga.StatusCancelled, wantErr: saga.ErrCancelled, wantUndo: []string{"c", "b", "a"}},
		{name: "not on success", mode: "ok", wantStatus: saga.StatusSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := openPool(t, testdb.NewURL(t), 8)
			newUndoTable(t, pool)
			reg := saga.NewRegistry()
			booking(reg, pool, false)
			e := newEngine(t, pool, reg, true)
			run := start(t, e, pool, "booking", tt.mode, nil)
			if tt.cancel {
				waitStatus(t, e, pool, run.ID, saga.StatusWaiting)
				if err := e.Cancel(context.Background(), pool, run.ID); err != nil {
					t.Fatal(err)
				}
			}
			done := await(t, e, run.ID)
			if done.Status != tt.wantStatus {
				t.Fatalf("status %s (%v), want %s", done.Status, done.Err(), tt.wantStatus)
			}
			if tt.wantErr != nil && !errors.Is(done.Err(), tt.wantErr) {
				t.Fatalf("error %v, want %v", done.Err(), tt.wantErr)
			}
			if got := undoLog(t, pool); !slices.Equal(got, tt.wantUndo) {
				t.Fatalf("compensations ran %v, want %v", got, tt.wantUndo)
			}
			steps, err := e.Steps(context.Background(), run.ID)
			if err != nil {
				t.Fatal(err)
			}
			var undone []int
			for _, s := range steps {
				if s.Kind == "compensation" {
					undone = append(undone, s.Seq)
				}
			}
			if len(tt.wantUndo) > 0 && !slices.Equal(undone, []int{-3, -2, -1}) {
				t.Fatalf("compensation steps at %v, want -3, -2, -1", undone)
			}
			if tt.cancel {
				if err := e.Cancel(context.Background(), pool, run.ID); !errors.Is(err, saga.ErrRunFinished) {
					t.Fatalf("cancelling a cancelled run: %v, want ErrRunFinished", err)
				}
			}
		})
	}
}

func TestCompensationsSurviveACrash(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	pool := openPool(t, url, 8)
	newUndoTable(t, pool)
	reg := saga.NewRegistry()
	booking(reg, pool, false)
	starter := newEngine(t, pool, reg, false)
	run := start(t, starter, pool, "booking", "fail", nil)

	kill := runHelper(t, "booking", url)
	waitFor(t, "the subprocess to be compensating b", func() bool { return len(undoLog(t, pool)) == 2 })
	kill()

	newEngine(t, pool, reg, true)
	done := await(t, starter, run.ID)
	if done.Status != saga.StatusFailed {
		t.Fatalf("status %s", done.Status)
	}
	if got := undoLog(t, pool); !slices.Equal(got, []string{"c", "b", "b", "a"}) {
		t.Fatalf("compensations ran %v, want c, b (in flight at the kill, again), a", got)
	}
}
