package notify

import "time"

// recheckAfter is when a consumer that a wake-up found nothing for looks
// again: five times 20ms apart, then after 200ms and 400ms more, before it
// falls back to its poll. The schedule covers a writer that commits up to
// about 0.8s after its notification was sent.
var recheckAfter = [...]time.Duration{
	20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond,
	200 * time.Millisecond, 400 * time.Millisecond,
}

// Rechecks spaces the looks of a consumer after a wake-up. A wake-up can
// arrive before the commit it announces — the Debouncer's trailing
// notification goes out an interval after the insert it stands for, and the
// writer's transaction may not have committed by then — so a consumer that a
// wake-up found nothing for looks again a few times soon after, at the cost
// of at most seven empty looks per wake-up, instead of sleeping a whole poll
// interval. The zero value waits for a wake-up.
type Rechecks struct {
	next  int
	armed bool
}

// Woken records a wake-up: the rechecks start again.
func (r *Rechecks) Woken() { r.next, r.armed = 0, true }

// Found records a look that found work: no rechecks until the next wake-up.
func (r *Rechecks) Found() { r.armed = false }

// Wait returns how long to wait after a look that found nothing: the next
// recheck while any is left since the last wake-up, else poll.
func (r *Rechecks) Wait(poll time.Duration) time.Duration {
	if !r.armed || r.next >= len(recheckAfter) {
		r.armed = false
		return poll
	}
	d := recheckAfter[r.next]
	r.next++
	return min(d, poll)
}
