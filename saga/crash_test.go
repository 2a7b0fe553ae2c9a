package saga_test

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/saga"
)

// The environment of TestHelperSagaProcess: the database, and which
// workflows to run ("five" or "booking"), hanging in the middle.
const (
	helperURLEnv      = "KEEL_SAGA_HELPER_URL"
	helperWorkflowEnv = "KEEL_SAGA_HELPER_WORKFLOW"
)

// fiveSteps registers a five-step workflow that records each step it runs in
// test_executions; step 3 is transactional and writes test_effects. With
// hang, step 4 never returns (the process is killed in it).
func fiveSteps(reg *saga.Registry, pool *pgxpool.Pool, hang bool) {
	record := func(ctx context.Context, step string) error {
		_, err := pool.Exec(ctx, "INSERT INTO test_executions (step, pid) VALUES ($1, $2)", step, os.Getpid())
		return err
	}
	plain := func(name string) func(ctx context.Context) (string, error) {
		return func(ctx context.Context) (string, error) { return name, record(ctx, name) }
	}
	saga.Register(reg, "five", 1, func(ctx saga.Context, in string) (string, error) {
		out := in
		for _, name := range []string{"s1", "s2"} {
			v, err := saga.Step(ctx, name, plain(name), nil)
			if err != nil {
				return "", err
			}
			out += v
		}
		v, err := saga.TxStep(ctx, "s3", func(ctx context.Context, tx pgx.Tx) (string, error) {
			if err := record(ctx, "s3"); err != nil {
				return "", err
			}
			_, err := tx.Exec(ctx, "INSERT INTO test_effects (run_id) VALUES ($1)", in)
			return "s3", err
		}, nil)
		if err != nil {
			return "", err
		}
		out += v
		v, err = saga.Step(ctx, "s4", func(ctx context.Context) (string, error) {
			if err := record(ctx, "s4"); err != nil {
				return "", err
			}
			if hang {
				<-ctx.Done()
				return "", ctx.Err()
			}
			return "s4", nil
		}, nil)
		if err != nil {
			return "", err
		}
		out += v
		v, err = saga.Step(ctx, "s5", plain("s5"), nil)
		return out + v, err
	})
}

// TestHelperSagaProcess is not a test: the crash tests run it in a
// subprocess, where it executes runs that hang mid-way until it is killed.
func TestHelperSagaProcess(t *testing.T) {
	url := os.Getenv(helperURLEnv)
	if url == "" {
		t.Skip("runs only as a subprocess")
	}
	pool := openPool(t, url, 4)
	reg := saga.NewRegistry()
	switch os.Getenv(helperWorkflowEnv) {
	case "five":
		fiveSteps(reg, pool, true)
	case "five-started-here":
		// The run is started through the started engine's pool, so its
		// first job is written claimed by this process.
		fiveSteps(reg, pool, true)
		e := newEngine(t, pool, reg, true)
		start(t, e, pool, "five", ">", &saga.StartOpts{RunID: handoffCrashRunID})
		time.Sleep(time.Minute) // killed long before
		return
	case "booking":
		booking(reg, pool, true)
	default:
		t.Fatalf("unknown %s", helperWorkflowEnv)
	}
	newEngine(t, pool, reg, true)
	time.Sleep(time.Minute) // killed long before
}

func TestKilledExecutorRunFinishesElsewhere(t *testing.T) {
	t.Parallel()
	url, pool, reg, count := fiveStepsDB(t)
	starter := newEngine(t, pool, reg, false)
	run := start(t, starter, pool, "five", ">", &saga.StartOpts{RunID: "crash-1"})

	kill := runHelper(t, "five", url)
	waitFor(t, "the subprocess to reach step 4", func() bool { return count("s4") == 1 })
	kill()

	newEngine(t, pool, reg, true)
	done := await(t, starter, run.ID)
	checkRescuedFiveSteps(t, pool, done, count)
}

// fiveStepsDB makes a database for the crash tests of fiveSteps: its
// tables, a registry with the workflow (not hanging), and count, how many
// times a step of it ran in any process.
func fiveStepsDB(t *testing.T) (url string, pool *pgxpool.Pool, reg *saga.Registry, count func(step string) int) {
	t.Helper()
	url = testdb.NewURL(t)
	pool = openPool(t, url, 8)
	if _, err := pool.Exec(context.Background(), `CREATE TABLE test_executions (step text NOT NULL, pid int NOT NULL);
		CREATE TABLE test_effects (run_id text)`); err != nil {
		t.Fatal(err)
	}
	reg = saga.NewRegistry()
	fiveSteps(reg, pool, false)
	count = func(step string) (n int) {
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM test_executions WHERE step = $1", step).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	return url, pool, reg, count
}

// checkRescuedFiveSteps checks a run of fiveSteps whose executor was killed
// in step 4 and that another process finished: step 4 ran twice, every
// other step once, the transactional step's effect once, and the run was
// taken twice.
func checkRescuedFiveSteps(t *testing.T, pool *pgxpool.Pool, done *saga.Run, count func(step string) int) {
	t.Helper()
	out, err := saga.Result[string](done)
	if err != nil || out != ">s1s2s3s4s5" {
		t.Fatalf("result %q, %v (run %+v)", out, err, done)
	}
	for step, want := range map[string]int{"s1": 1, "s2": 1, "s3": 1, "s4": 2, "s5": 1} {
		if got := count(step); got != want {
			t.Errorf("step %s ran %d times, want %d", step, got, want)
		}
	}
	var effects int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM test_effects").Scan(&effects); err != nil {
		t.Fatal(err)
	}
	if effects != 1 {
		t.Errorf("transactional step wrote %d rows, want 1", effects)
	}
	if done.Resumes != 2 {
		t.Errorf("run was taken %d times, want 2", done.Resumes)
	}
}

// runHelper re-executes the test binary running only TestHelperSagaProcess
// with workflow, on the database url, and returns a function that kills it
// with SIGKILL and waits for it to end. The helper is killed when the test
// ends anyway.
func runHelper(t *testing.T, workflow, url string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSagaProcess$")
	cmd.Env = append(os.Environ(), helperURLEnv+"="+url, helperWorkflowEnv+"="+workflow)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Errorf("killing the helper: %v", err)
			}
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	return kill
}
