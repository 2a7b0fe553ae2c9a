package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keelpg/keel/migrations"
)

// TestPartitioned converts keel.jobs with history in it and checks what a
// user relies on: jobs are worked across partitions, a unique key holds
// across them, and retention drops the partitions whose jobs all expired
// while it keeps the ones a live job is still in.
func TestPartitioned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := newPool(t, 8)
	handled := newCounter()
	w := NewWorkers()
	AddWorker(w, func(ctx context.Context, j *Job[testArgs]) error { handled.add(j.ID); return nil }, nil)
	c := startClient(t, pool, fastConfig(w))

	// History: worked jobs, and one scheduled a year ahead holding a key.
	var old []int64
	for i := range 20 {
		old = append(old, insert(t, c, testArgs{N: i}, nil).ID)
	}
	for _, id := range old {
		waitState(t, c, id, StateCompleted)
	}
	held := insert(t, c, testArgs{N: -1}, &InsertOpts{UniqueKey: "held", RunAt: time.Now().Add(365 * 24 * time.Hour)})

	const rows = 1000
	if err := migrations.Partition(ctx, pool, migrations.PartitionJobs, migrations.PartitionConfig{Rows: rows}); err != nil {
		t.Fatal(err)
	}
	parts := partitionNames(t, c)
	if len(parts) != 5 || parts[0] != "jobs_history" || parts[1] != "jobs_default" {
		t.Fatalf("partitions after the conversion: %v, want jobs_history, jobs_default and three ahead", parts)
	}
	// Converting again changes nothing.
	if err := migrations.Partition(ctx, pool, migrations.PartitionJobs, migrations.PartitionConfig{Rows: rows}); err != nil {
		t.Fatal(err)
	}

	// A unique key held by a job in the history partition is held for the
	// new partitions too.
	var dup *DuplicateError
	if _, err := c.Insert(ctx, pool, testArgs{}, &InsertOpts{UniqueKey: "held"}); !errors.As(err, &dup) || dup.ExistingID != held.ID {
		t.Fatalf("insert with a held key: %v, want a DuplicateError naming %d", err, held.ID)
	}

	// New jobs get keys above the history and are worked: 2,500 of them
	// fill two partitions and start a third.
	params := make([]InsertManyParams, 2500)
	for i := range params {
		params[i] = InsertManyParams{Args: testArgs{N: i}}
	}
	if _, err := c.InsertMany(ctx, pool, params); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "2,520 jobs handled", func() bool { return handled.len() == 2520 })
	waitFor(t, "every new job completed", func() bool {
		n, err := c.JobCount(ctx, StateCompleted)
		if err != nil {
			t.Fatal(err)
		}
		return n == 2520
	})
	if _, _, err := runDuty(ctx, c, c.retentionDuty()); err != nil {
		t.Fatal(err)
	}
	if got := partitionNames(t, c); len(got) < 5 {
		t.Fatalf("partitions after 2,500 inserts and a retention pass: %v, want two or more ahead of the sequence", got)
	}

	// A day later every completed job expired. The two full partitions go;
	// the history stays for the scheduled job, the partition being filled
	// stays because keys are still handed out in it.
	before := partitionNames(t, c)
	later := insertOnly(t, pool)
	later.now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	if _, _, err := runDuty(ctx, later, later.retentionDuty()); err != nil {
		t.Fatal(err)
	}
	after := partitionNames(t, c)
	if len(after) != len(before)-2 || after[0] != "jobs_history" || after[1] != "jobs_default" {
		t.Fatalf("partitions after retention: %v (before: %v), want the history kept and two dropped", after, before)
	}
	var history, open int64
	if err := pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM keel.jobs_history), (SELECT count(*) FROM keel.jobs WHERE id > $1)", held.ID).Scan(&history, &open); err != nil {
		t.Fatal(err)
	}
	if history != 21 || open == 0 || open >= rows {
		t.Fatalf("jobs left: %d in the history, %d new; want 21 (20 completed and the scheduled one) and those of the partition being filled", history, open)
	}
	if n, err := c.JobCount(ctx, StateCompleted); err != nil || n != 20+open {
		t.Fatalf("completed jobs left: %d, %v; want %d", n, err, 20+open)
	}
	if _, err := c.JobGet(ctx, held.ID); err != nil {
		t.Fatalf("the scheduled job: %v", err)
	}

	// A burst larger than the partitions ahead lands in the default
	// partition; the next pass starts the partitions above it, and once
	// the burst expired retention empties the default partition.
	burst := make([]InsertManyParams, 4*rows)
	for i := range burst {
		burst[i] = InsertManyParams{Args: testArgs{N: i}, Opts: &InsertOpts{Queue: "burst"}}
	}
	if _, err := c.InsertMany(ctx, pool, burst); err != nil {
		t.Fatalf("a burst past the partitions ahead: %v", err)
	}
	var overflow int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.jobs_default").Scan(&overflow); err != nil || overflow == 0 {
		t.Fatalf("jobs in the default partition after the burst: %d, %v", overflow, err)
	}
	if _, _, err := runDuty(ctx, c, c.retentionDuty()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InsertMany(ctx, pool, burst[:rows]); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.jobs_default").Scan(&overflow); err != nil || overflow == 0 || overflow >= 4*rows {
		t.Fatalf("jobs in the default partition after the next pass: %d, %v; want the burst's overflow alone", overflow, err)
	}
	if _, err := pool.Exec(ctx, "UPDATE keel.jobs SET state = 'completed', finalized_at = now() WHERE queue = 'burst'"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runDuty(ctx, later, later.retentionDuty()); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM keel.jobs_default").Scan(&overflow); err != nil || overflow != 0 {
		t.Fatalf("jobs in the default partition once they expired: %d, %v; want none", overflow, err)
	}

	// Once its holder is final the key is free; retrying the old holder
	// would make two holders.
	if _, err := c.JobCancel(ctx, held.ID); err != nil {
		t.Fatal(err)
	}
	again, err := c.Insert(ctx, pool, testArgs{}, &InsertOpts{UniqueKey: "held", RunAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.JobRetry(ctx, held.ID); !errors.As(err, &dup) || dup.ExistingID != again.ID {
		t.Fatalf("retry of the old holder: %v, want a DuplicateError naming %d", err, again.ID)
	}
}

// partitionNames lists keel.jobs' partitions, oldest first.
func partitionNames(t *testing.T, c *Client) []string {
	t.Helper()
	parts, err := migrations.Partitions(context.Background(), c.pool)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		if p.Table == migrations.PartitionJobs {
			names = append(names, p.Name)
		}
	}
	return names
}
