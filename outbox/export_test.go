package outbox

import (
	"context"
	"time"

	"github.com/keelpg/keel/keeltype"
)

// RunOnceAt is Relay.RunOnce with the clock moved to now.
func RunOnceAt(ctx context.Context, r *Relay, now time.Time) (int, error) {
	return r.runOnce(ctx, &now)
}

// ExpireAt is Inbox.Expire as of now.
func ExpireAt(ctx context.Context, i *Inbox, tx keeltype.DBTX, now time.Time) (int, error) {
	return i.expire(ctx, tx, now)
}
