package outbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
)

// A seen-record older than the dedup window that expiry has not yet deleted
// does not make a redelivery a duplicate.
func TestInboxWindowWithoutExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	i, err := NewInbox(pool, InboxConfig{DedupWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now()
	at := func(d time.Duration) *time.Time { t := base.Add(d); return &t }
	steps := []struct {
		at   time.Duration
		want error
	}{
		{0, nil},
		{59 * time.Minute, ErrDuplicate},
		{61 * time.Minute, nil},
		{62 * time.Minute, ErrDuplicate},
	}
	for _, s := range steps {
		if err := i.claim(ctx, pool, "c", "m", at(s.at)); !errors.Is(err, s.want) {
			t.Errorf("claim at +%s: %v, want %v", s.at, err, s.want)
		}
	}
}
