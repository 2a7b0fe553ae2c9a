package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/migrations"
	"github.com/keelpg/keel/outbox"
)

// TestPartitioned converts keel.outbox with history in it — delivered
// messages, a dead letter, messages still pending — and checks that per-key
// order holds across the old and the new partitions, and that retention
// drops the partitions whose messages were all delivered long enough ago
// while it keeps the one a dead letter is in.
func TestPartitioned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	const keys = 10
	var rounds int
	order := map[uuid.UUID]int{}
	enqueueRounds := func(n int) {
		for range n {
			msgs := make([]outbox.Message, keys)
			for k := range msgs {
				msgs[k] = outbox.Message{ID: uuid.New(), Topic: "t", Key: fmt.Sprintf("k%d", k), Payload: []byte(fmt.Sprint(rounds))}
				order[msgs[k].ID] = rounds
			}
			enqueue(t, pool, o, msgs...)
			rounds++
		}
	}
	rec := &recorder{fail: func(d outbox.Delivery) error {
		if d.Topic == "poison" {
			return errors.New("refused")
		}
		return nil
	}}
	relay := newRelay(t, pool, rec, outbox.RelayConfig{MaxAttempts: 1})
	enqueueRounds(3)
	enqueue(t, pool, o, outbox.Message{ID: uuid.New(), Topic: "poison", Payload: []byte("x")})
	drain(t, relay, nil)
	enqueueRounds(2) // pending in the history partition when it becomes one

	const rows = 1000
	if err := migrations.Partition(ctx, pool, migrations.PartitionOutbox, migrations.PartitionConfig{Rows: rows}); err != nil {
		t.Fatal(err)
	}
	if parts := outboxPartitions(t, pool); len(parts) != 5 || parts[0] != "outbox_history" || parts[1] != "outbox_default" {
		t.Fatalf("partitions after the conversion: %v, want outbox_history, outbox_default and three ahead", parts)
	}
	enqueueRounds(250)
	again := outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte("once")}
	enqueue(t, pool, o, again)
	enqueue(t, pool, o, again)
	if n := count(t, pool, fmt.Sprintf("id = '%s'", again.ID)); n != 1 {
		t.Fatalf("a message enqueued twice into one partition is stored %d times", n)
	}
	drain(t, relay, nil)

	seen := map[uuid.UUID]bool{}
	next := map[string]int{}
	for _, d := range rec.published() {
		if seen[d.ID] || d.Key == "" {
			continue
		}
		seen[d.ID] = true
		if got, want := order[d.ID], next[d.Key]; got != want {
			t.Fatalf("key %s: message of round %d first published when round %d was next", d.Key, got, want)
		}
		next[d.Key]++
	}
	if len(seen) != keys*rounds {
		t.Fatalf("published %d keyed messages, want %d", len(seen), keys*rounds)
	}

	// With a retention of a millisecond every delivered message expired:
	// the relay's retention drops the two full partitions, keeps the
	// history for its dead letter and the partition still being filled.
	before := outboxPartitions(t, pool)
	time.Sleep(10 * time.Millisecond)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	retention := newRelay(t, pool, rec, outbox.RelayConfig{Retention: time.Millisecond, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	go func() { done <- retention.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	full := before[2:4]
	waitFor(t, time.Minute, func() bool {
		parts := outboxPartitions(t, pool)
		return !slices.Contains(parts, full[0]) && !slices.Contains(parts, full[1])
	})
	after := outboxPartitions(t, pool)
	if after[0] != "outbox_history" || after[2] != before[4] {
		t.Fatalf("partitions after retention: %v (before: %v), want the history and the partition being filled kept, %v dropped", after, before, full)
	}
	if n := count(t, pool, "state = 'dead'"); n != 1 {
		t.Fatalf("dead letters left: %d, want 1", n)
	}
	open, err := strconv.ParseInt(strings.TrimPrefix(after[2], "outbox_"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if n, want := count(t, pool, "true"), 5*keys+1+count(t, pool, fmt.Sprintf("seq >= %d", open)); n != want {
		t.Fatalf("messages left: %d, want %d: the history's and those of the partition being filled", n, want)
	}
}

// outboxPartitions lists keel.outbox's partitions, oldest first.
func outboxPartitions(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	parts, err := migrations.Partitions(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		if p.Table == migrations.PartitionOutbox {
			names = append(names, p.Name)
		}
	}
	return names
}
