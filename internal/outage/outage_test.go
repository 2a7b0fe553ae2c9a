package outage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keelpg/keel/internal/outage"
)

func TestIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"read-only standby", &pgconn.PgError{Code: "25006"}, true},
		{"wrapped shutdown", fmt.Errorf("keel: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"unexpected EOF", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), true},
		{"deadline", context.DeadlineExceeded, true},
		{"cancelled by the caller", context.Canceled, false},
		{"anything else", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := outage.Is(tt.err); got != tt.want {
				t.Fatalf("Is(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

type events struct {
	mu  sync.Mutex
	got []outage.Event
}

func (e *events) add(ev outage.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

func (e *events) list() []outage.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]outage.Event(nil), e.got...)
}

var down = &pgconn.PgError{Code: "57P01"}

// Failures a success follows at once are no outage; failures that go on for
// a second are one, reported at its start and end with the count between.
func TestTracker(t *testing.T) {
	t.Parallel()
	var evs events
	tr := outage.NewTracker("test", nil, evs.add)

	if tr.Failed(errors.New("not an outage")) {
		t.Fatal("a statement's own error counted as an outage")
	}
	if !tr.Failed(down) || !tr.Failed(down) {
		t.Fatal("an outage error was not counted")
	}
	tr.Succeeded()
	if got := evs.list(); len(got) != 0 {
		t.Fatalf("a blip was reported: %+v", got)
	}
	if !tr.FailedWithin(time.Minute) {
		t.Fatal("FailedWithin forgot the last outage error")
	}

	start := time.Now()
	tr.Failed(down)
	time.Sleep(1100 * time.Millisecond)
	tr.Failed(down)
	tr.Failed(down)
	tr.Succeeded()
	tr.Succeeded()
	got := evs.list()
	if len(got) != 2 {
		t.Fatalf("got %d events, want the start and the end: %+v", len(got), got)
	}
	if b := got[0]; b.Over || b.Component != "test" || b.Failures != 2 || !errors.Is(b.Err, down) || b.Start.Before(start) {
		t.Errorf("start event %+v", b)
	}
	if e := got[1]; !e.Over || e.Failures != 3 || e.Duration < time.Second || !e.Start.Equal(got[0].Start) {
		t.Errorf("end event %+v", e)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := outage.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		if got := b.Next(); got < w*4/5 || got > w*6/5 {
			t.Fatalf("wait %d: %s, want %s ± a fifth", i, got, w)
		}
	}
	b.Reset()
	if got := b.Next(); got > 120*time.Millisecond {
		t.Fatalf("after Reset: %s, want about Min", got)
	}
	var zero outage.Backoff
	if got := zero.Next(); got < 40*time.Millisecond || got > 60*time.Millisecond {
		t.Fatalf("zero value's first wait %s, want about 50ms", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on an ended context: %v", err)
	}
}
