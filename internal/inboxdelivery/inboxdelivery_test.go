package inboxdelivery_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/inboxdelivery"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/outbox"
)

func TestMain(m *testing.M) { testdb.Main(m) }

var errPanicked = errors.New("handler panicked")

func TestProcess(t *testing.T) {
	t.Parallel()
	inbox, err := outbox.NewInbox(testdb.New(t), outbox.InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ok := func(context.Context, pgx.Tx) error { return nil }
	failure := errors.New("handler failed")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		id        string
		handle    func(context.Context, pgx.Tx) error
		outcome   inboxdelivery.Outcome
		duplicate bool
		err       error
	}{
		{"fails", ctx, "m1", func(context.Context, pgx.Tx) error { return failure }, inboxdelivery.Retry, false, failure},
		{"panics", ctx, "m1", func(context.Context, pgx.Tx) error { panic("bug") }, inboxdelivery.Retry, false, errPanicked},
		{"commits", ctx, "m1", ok, inboxdelivery.Ack, false, nil},
		{"again", ctx, "m1", ok, inboxdelivery.Ack, true, nil},
		{"id not recordable", ctx, strings.Repeat("x", 1025), ok, inboxdelivery.Drop, false, outbox.ErrInvalidInboxKey},
		{"cancelled", cancelled, "m2", ok, inboxdelivery.Requeue, false, context.Canceled},
	} {
		res := inboxdelivery.Process(tc.ctx, inbox, "consumer", tc.id, errPanicked, tc.handle)
		if res.Outcome != tc.outcome || res.Duplicate != tc.duplicate || !errors.Is(res.Err, tc.err) || (tc.err == nil) != (res.Err == nil) {
			t.Errorf("%s: %+v, want outcome %d, duplicate %t, error %v", tc.name, res, tc.outcome, tc.duplicate, tc.err)
		}
	}
}
