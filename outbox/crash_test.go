package outbox_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/outbox"
)

// The relay process that TestRelayKilledMidBatch kills. It publishes by
// writing to a table, and after half of its first batch it stops publishing
// and waits to be killed.
func TestHelperRelayProcess(t *testing.T) {
	url := os.Getenv("KEEL_OUTBOX_HELPER_URL")
	if url == "" {
		t.Skip("runs only as TestRelayKilledMidBatch's subprocess")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	published := 0
	pub := outbox.PublisherFunc(func(ctx context.Context, d outbox.Delivery) error {
		if published == 50 {
			if _, err := pool.Exec(ctx, "INSERT INTO helper_state VALUES ('stuck')"); err != nil {
				return err
			}
			select {} // killed here, mid-batch
		}
		published++
		_, err := pool.Exec(ctx, "INSERT INTO published (id, by) VALUES ($1, 'child')", d.ID)
		return err
	})
	r, err := outbox.NewRelay(pool, pub, outbox.RelayConfig{Name: "child", BatchSize: 100, Lease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Run(ctx)
}

// A relay killed with SIGKILL in the middle of a batch loses nothing: once
// its lease has run out, another relay publishes every message it had not.
func TestRelayKilledMidBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)
	pool := testdb.Open(t, url)
	if _, err := pool.Exec(ctx, "CREATE TABLE published (id uuid, by text); CREATE TABLE helper_state (s text)"); err != nil {
		t.Fatal(err)
	}
	o := newOutbox(t, pool)
	msgs := make([]outbox.Message, 300)
	for i := range msgs {
		msgs[i] = outbox.Message{Topic: "t", Key: fmt.Sprintf("k%d", i%150), Payload: []byte(fmt.Sprint(i))}
	}
	enqueue(t, pool, o, msgs...)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRelayProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "KEEL_OUTBOX_HELPER_URL="+url)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, func() bool {
		var n int
		_ = pool.QueryRow(ctx, "SELECT count(*) FROM helper_state").Scan(&n)
		return n == 1
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	var leased int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.outbox WHERE state = 'pending' AND locked_by = 'child' AND locked_until > now()").Scan(&leased); err != nil {
		t.Fatal(err)
	}
	if leased != 100 {
		t.Errorf("the killed relay left %d messages leased, want its whole batch of 100", leased)
	}

	rec := &recorder{}
	survivor := newRelay(t, pool, rec, outbox.RelayConfig{Name: "survivor"})
	drain(t, survivor, nil)
	// Until the lease runs out, the keys of the killed relay's batch wait:
	// only the other 50 keys' 100 messages go out.
	if n := len(rec.published()); n != 100 {
		t.Errorf("before the lease ran out the survivor published %d, want 100", n)
	}
	afterLease := time.Now().Add(2 * time.Hour)
	drain(t, survivor, &afterLease)

	for _, d := range rec.published() {
		if _, err := pool.Exec(ctx, "INSERT INTO published (id, by) VALUES ($1, 'survivor')", d.ID); err != nil {
			t.Fatal(err)
		}
	}
	var missing, delivered int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.outbox o WHERE NOT EXISTS (SELECT 1 FROM published p WHERE p.id = o.id)").Scan(&missing); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.outbox WHERE state = 'delivered'").Scan(&delivered); err != nil {
		t.Fatal(err)
	}
	if missing != 0 || delivered != len(msgs) {
		t.Errorf("%d messages never published, %d of %d delivered", missing, delivered, len(msgs))
	}
}
