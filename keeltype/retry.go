package keeltype

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy decides how long failed work waits before its next attempt.
// Every retrying part of keel takes one — a job kind or jobs client, the
// outbox relay, an event subscription, a saga step — and keeps how many
// attempts there are beside it, as MaxAttempts.
type RetryPolicy interface {
	// NextRetry is the wait before the next attempt after the attempt-th
	// (from 1) failed with err. A negative wait counts as none.
	NextRetry(attempt int, err error) time.Duration
}

// RetryPolicyFunc makes a function a RetryPolicy.
type RetryPolicyFunc func(attempt int, err error) time.Duration

// NextRetry implements RetryPolicy.
func (f RetryPolicyFunc) NextRetry(attempt int, err error) time.Duration { return f(attempt, err) }

// ExponentialBackoff waits Initial after the first failure and twice as long
// after each next one, at most Max (no cap when Max is 0). Jitter spreads
// each wait at random by up to that fraction either way (0.1: ±10%), so work
// that failed together does not retry together; 0 means none, and it is
// clamped to [0, 1].
type ExponentialBackoff struct {
	Initial time.Duration
	Max     time.Duration
	Jitter  float64
}

// NextRetry implements RetryPolicy.
func (b ExponentialBackoff) NextRetry(attempt int, _ error) time.Duration {
	d := max(b.Initial, 0)
	for i := 1; i < attempt && d > 0 && (b.Max <= 0 || d < b.Max); i++ {
		if d > time.Duration(1<<62) {
			break // doubling again would overflow
		}
		d *= 2
	}
	if b.Max > 0 {
		d = min(d, b.Max)
	}
	jitter := min(max(b.Jitter, 0), 1)
	spread := int64(float64(d) * jitter)
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1))
}
