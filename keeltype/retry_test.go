package keeltype_test

import (
	"errors"
	"testing"
	"time"

	"github.com/keelpg/keel/keeltype"
)

func TestExponentialBackoff(t *testing.T) {
	t.Parallel()
	s := time.Second
	tests := []struct {
		name    string
		policy  keeltype.ExponentialBackoff
		attempt int
		lo, hi  time.Duration
	}{
		{"first failure", keeltype.ExponentialBackoff{Initial: s}, 1, s, s},
		{"doubles", keeltype.ExponentialBackoff{Initial: s}, 4, 8 * s, 8 * s},
		{"capped", keeltype.ExponentialBackoff{Initial: s, Max: 5 * s}, 10, 5 * s, 5 * s},
		{"no overflow", keeltype.ExponentialBackoff{Initial: s}, 200, time.Duration(1 << 62), time.Duration(1<<63 - 1)},
		{"jitter bounds", keeltype.ExponentialBackoff{Initial: 10 * s, Jitter: 0.1}, 1, 9 * s, 11 * s},
		{"jitter clamped", keeltype.ExponentialBackoff{Initial: 10 * s, Jitter: 7}, 1, 0, 20 * s},
		{"negative initial", keeltype.ExponentialBackoff{Initial: -s}, 3, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for range 200 {
				if got := tc.policy.NextRetry(tc.attempt, nil); got < tc.lo || got > tc.hi {
					t.Fatalf("NextRetry(%d) = %s, want within [%s, %s]", tc.attempt, got, tc.lo, tc.hi)
				}
			}
		})
	}
}

func TestRetryPolicyFunc(t *testing.T) {
	t.Parallel()
	errTransient := errors.New("transient")
	p := keeltype.RetryPolicyFunc(func(attempt int, err error) time.Duration {
		if errors.Is(err, errTransient) {
			return time.Duration(attempt) * time.Millisecond
		}
		return time.Hour
	})
	if got := p.NextRetry(3, errTransient); got != 3*time.Millisecond {
		t.Errorf("NextRetry(3, transient) = %s, want 3ms", got)
	}
	if got := p.NextRetry(3, errors.New("other")); got != time.Hour {
		t.Errorf("NextRetry(3, other) = %s, want 1h", got)
	}
}
