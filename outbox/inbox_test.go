package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/outbox"
)

// 1,000 message ids, each delivered 3 times at once by different
// goroutines: the consumer's effect happens exactly once per id.
func TestInboxExactlyOnceUnderConcurrentRedelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	if _, err := pool.Exec(ctx, "CREATE TABLE effects (message_id text, n int)"); err != nil {
		t.Fatal(err)
	}
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	const ids, copies = 1000, 3
	work := make(chan string, ids*copies)
	for i := range ids {
		for range copies {
			work <- fmt.Sprintf("m-%d", i)
		}
	}
	close(work)
	var mu sync.Mutex
	ran, skipped := 0, 0
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				processed, err := inbox.Process(ctx, "billing", id, func(ctx context.Context, tx pgx.Tx) error {
					_, err := tx.Exec(ctx, "INSERT INTO effects VALUES ($1, 1)", id)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if processed {
					ran++
				} else {
					skipped++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var rows, distinct int
	if err := pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT message_id) FROM effects").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != ids || distinct != ids || ran != ids || skipped != ids*(copies-1) {
		t.Errorf("effects %d (distinct %d), processed %d, skipped %d; want %d, %d, %d, %d", rows, distinct, ran, skipped, ids, ids, ids, ids*(copies-1))
	}
}

// A failing handler leaves neither its write nor the seen-record, so the
// redelivery runs it again; other consumers see the message as new.
func TestInboxFailingHandlerLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	if _, err := pool.Exec(ctx, "CREATE TABLE effects (message_id text)"); err != nil {
		t.Fatal(err)
	}
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	write := func(fail bool) func(context.Context, pgx.Tx) error {
		return func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO effects VALUES ('m1')"); err != nil {
				return err
			}
			if fail {
				return boom
			}
			return nil
		}
	}
	steps := []struct {
		consumer string
		fail     bool
		wantRan  bool
		wantErr  error
		effects  int
	}{
		{"billing", true, false, boom, 0},
		{"billing", false, true, nil, 1},
		{"billing", false, false, nil, 1},
		{"shipping", false, true, nil, 2},
	}
	for i, s := range steps {
		ran, err := inbox.Process(ctx, s.consumer, "m1", write(s.fail))
		if ran != s.wantRan || !errors.Is(err, s.wantErr) {
			t.Errorf("step %d: ran=%v err=%v, want %v %v", i, ran, err, s.wantRan, s.wantErr)
		}
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM effects").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != s.effects {
			t.Errorf("step %d: %d effects, want %d", i, n, s.effects)
		}
	}
	var seen int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.inbox").Scan(&seen); err != nil || seen != 2 {
		t.Errorf("%d seen-records (%v), want 2", seen, err)
	}
}

func TestInboxClaimInCallersTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		consumer string
		id       string
		want     error
	}{
		{"first delivery", "c", "m", nil},
		{"second delivery", "c", "m", outbox.ErrDuplicate},
		{"empty consumer", "", "m", outbox.ErrInvalidInboxKey},
		{"empty id", "c", "", outbox.ErrInvalidInboxKey},
	}
	for _, tc := range tests {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return inbox.Claim(ctx, tx, tc.consumer, tc.id) })
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestInboxExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	inbox, err := outbox.NewInbox(pool, outbox.InboxConfig{DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := inbox.Claim(ctx, pool, "c", "old"); err != nil {
		t.Fatal(err)
	}
	if n, err := outbox.ExpireAt(ctx, inbox, pool, time.Now().Add(30*time.Minute)); err != nil || n != 0 {
		t.Fatalf("expired %d (%v) inside the window", n, err)
	}
	if err := inbox.Claim(ctx, pool, "c", "old"); !errors.Is(err, outbox.ErrDuplicate) {
		t.Fatalf("inside the window: %v", err)
	}
	if n, err := outbox.ExpireAt(ctx, inbox, pool, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("expired %d (%v) after the window, want 1", n, err)
	}
	if err := inbox.Claim(ctx, pool, "c", "old"); err != nil {
		t.Errorf("after expiry the message is new again: %v", err)
	}
}
