package notify_test

import (
	"slices"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/notify"
)

func TestRechecks(t *testing.T) {
	t.Parallel()
	const poll = time.Second
	var r notify.Rechecks
	if got := r.Wait(poll); got != poll {
		t.Fatalf("before any wake-up: %s, want the poll", got)
	}
	r.Woken()
	var waits []time.Duration
	for range 9 {
		waits = append(waits, r.Wait(poll))
	}
	ms := time.Millisecond
	want := []time.Duration{20 * ms, 20 * ms, 20 * ms, 20 * ms, 20 * ms, 200 * ms, 400 * ms, poll, poll}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	r.Woken()
	r.Wait(poll)
	r.Found()
	if got := r.Wait(poll); got != poll {
		t.Fatalf("after finding work: %s, want the poll", got)
	}
	r.Woken()
	if got := r.Wait(10 * ms); got != 10*ms {
		t.Fatalf("a poll shorter than the recheck: %s, want the poll", got)
	}
}
