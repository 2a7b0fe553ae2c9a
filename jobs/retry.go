package jobs

import (
	"math/rand/v2"
	"time"
)

// RetryPolicy returns how long to wait before running a job again after its
// attempt-th attempt (from 1) failed with err.
type RetryPolicy func(attempt int, err error) time.Duration

// ExponentialBackoff is the default retry policy: 2^attempt seconds (2s, 4s,
// 8s …) capped at 24 hours, with ±10% jitter so that jobs that failed
// together do not retry together.
func ExponentialBackoff(attempt int, _ error) time.Duration {
	const maxWait = 24 * time.Hour
	d := maxWait
	if attempt < 17 { // 2^17 s is past the cap
		d = min(time.Duration(1<<max(attempt, 1))*time.Second, maxWait)
	}
	spread := int64(d / 10)
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1))
}
