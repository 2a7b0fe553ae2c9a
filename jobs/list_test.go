package jobs

import (
	"context"
	"errors"
	"testing"
)

type otherArgs struct{}

func (otherArgs) Kind() string { return "other" }

func TestJobListAndQueues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := newPool(t, 4)
	c, err := NewClient(pool, Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Insert(ctx, pool, testArgs{N: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Insert(ctx, pool, testArgs{N: 2}, &InsertOpts{Queue: "mail"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Insert(ctx, pool, otherArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.JobCancel(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.QueuePause(ctx, "reports"); err != nil {
		t.Fatal(err)
	}
	ids := func(rows []*JobRow) []int64 {
		out := make([]int64, len(rows))
		for i, r := range rows {
			out[i] = r.ID
		}
		return out
	}
	tests := []struct {
		name string
		p    JobListParams
		want []int64
	}{
		{"all, newest first", JobListParams{}, []int64{o.ID, b.ID, a.ID}},
		{"by state", JobListParams{State: StateCancelled}, []int64{a.ID}},
		{"by queue", JobListParams{Queue: "mail"}, []int64{b.ID}},
		{"by kind", JobListParams{Kind: "other"}, []int64{o.ID}},
		{"limit", JobListParams{Limit: 1}, []int64{o.ID}},
		{"no match", JobListParams{Queue: "mail", Kind: "other"}, []int64{}},
	}
	for _, tc := range tests {
		rows, err := c.JobList(ctx, &tc.p)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := ids(rows); len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) || (len(got) == 3 && got[2] != tc.want[2]) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if rows, err := c.JobList(ctx, nil); err != nil || len(rows) != 3 {
		t.Errorf("JobList(nil): %d rows, %v; want every job", len(rows), err)
	}
	for _, bad := range []JobListParams{{State: "lost"}, {Limit: -1}} {
		if _, err := c.JobList(ctx, &bad); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("JobList(%+v): %v, want ErrInvalidOptions", bad, err)
		}
	}
	qs, err := c.QueueList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []QueueState{{"default", false}, {"mail", false}, {"reports", true}}
	if len(qs) != len(want) {
		t.Fatalf("queues %+v, want %+v", qs, want)
	}
	for i := range want {
		if qs[i] != want[i] {
			t.Errorf("queue %d: %+v, want %+v", i, qs[i], want[i])
		}
	}
}
