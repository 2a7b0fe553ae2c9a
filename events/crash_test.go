package events_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/testdb"
)

// Environment of the subscriber subprocess.
const (
	envSubscriberURL = "KEEL_EVENTS_SUBSCRIBER_URL"
	envBlockAt       = "KEEL_EVENTS_BLOCK_AT"
	blockedLine      = "blocked mid-batch"
)

// TestSubscriberProcess is the body of the subprocess TestSubscriberKilled
// starts: it runs the projecting subscription and, on reaching the event at
// position KEEL_EVENTS_BLOCK_AT, says so on stdout and hangs inside the
// batch's transaction until it is killed.
func TestSubscriberProcess(t *testing.T) {
	url := os.Getenv(envSubscriberURL)
	if url == "" {
		t.Skip("runs only as TestSubscriberKilled's subprocess")
	}
	blockAt, err := strconv.ParseInt(os.Getenv(envBlockAt), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pool := testdb.Open(t, url)
	store := newStore(t, pool, events.Config{})
	sub, err := store.NewSubscription(events.SubscriptionConfig{
		Name: "crash", BatchSize: 50, PollInterval: 20 * time.Millisecond, Lease: time.Second,
		Handler: func(ctx context.Context, tx pgx.Tx, e events.RecordedEvent) error {
			if err := project(ctx, tx, e); err != nil {
				return err
			}
			if e.Position == blockAt {
				fmt.Println(blockedLine)
				select {}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Fatal(sub.Run(ctx))
}

// A subscriber killed with SIGKILL in the middle of a batch loses that
// batch's writes with its transaction; another consumer takes over once the
// lease runs out, resumes from the checkpoint, and the projection equals a
// rebuild from scratch.
func TestSubscriberKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := testdb.Open(t, url)
	store := newStore(t, pool, events.Config{})
	createReadModelIn(ctx, t, pool)
	for i := range 300 {
		appendTx(ctx, t, store, pool, fmt.Sprintf("crash-%d", i%11), events.Any, ev("E", i))
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestSubscriberProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envSubscriberURL+"="+url, envBlockAt+"=120")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == blockedLine {
				blocked <- true
				return
			}
		}
		blocked <- false
	}()
	select {
	case ok := <-blocked:
		if !ok {
			_ = cmd.Wait()
			t.Fatal("the subscriber process ended without reaching the event it blocks on")
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the subscriber process did not reach the event it blocks on")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	info, err := store.SubscriptionGet(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	if info.Position != 100 {
		t.Fatalf("checkpoint after the kill is %d, want 100 (two committed batches of 50)", info.Position)
	}
	if n, err := seenCount(ctx, pool); err != nil || n != 100 {
		t.Fatalf("projection holds %d events after the kill (%v), want 100: the killed batch leaked", n, err)
	}

	runSub(t, store, events.SubscriptionConfig{Name: "crash", Handler: project, PollInterval: 20 * time.Millisecond, Lease: time.Second})
	eventually(t, time.Minute, "the new consumer catches up", func() (bool, error) {
		n, err := seenCount(ctx, pool)
		return n == 300, err
	})
	checkSeen(ctx, t, pool, 300)
	if got, rebuilt := readTotals(ctx, t, pool), rebuild(ctx, t, store, pool); !slices.Equal(got, rebuilt) {
		t.Errorf("projection %v differs from a rebuild %v", got, rebuilt)
	}
}
