package outbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/outbox"
)

// A started relay publishes in the background; Stop ends it, Start again
// while it runs is refused, and after Stop it starts again.
func TestRelayStartStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	o := newOutbox(t, pool)
	rec := &recorder{}
	r := newRelay(t, pool, rec, outbox.RelayConfig{PollInterval: 10 * time.Millisecond})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); !errors.Is(err, outbox.ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	enqueue(t, pool, o, outbox.Message{Topic: "t", Payload: []byte("1")})
	waitFor(t, 30*time.Second, func() bool { return len(rec.published()) == 1 })
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	enqueue(t, pool, o, outbox.Message{Topic: "t", Payload: []byte("2")})
	waitFor(t, 30*time.Second, func() bool { return len(rec.published()) == 2 })
	if err := r.StopAndCancel(ctx); err != nil {
		t.Fatal(err)
	}
}

// A relay whose pool is closed under it stops with an error saying so,
// both run blocking and started in the background.
func TestRelayClosedPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.NewURL(t)

	// The pool closes under a relay seen running: it published a message.
	blocking := testdb.OpenSized(t, url, 4)
	rec := &recorder{}
	enqueue(t, blocking, newOutbox(t, blocking), outbox.Message{Topic: "t", Payload: []byte("1")})
	r := newRelay(t, blocking, rec, outbox.RelayConfig{PollInterval: 10 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, 30*time.Second, func() bool { return len(rec.published()) == 1 })
	blocking.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Run after pool.Close = %v, want a closed-pool error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of pool.Close")
	}

	// Started on a pool closed already, the relay stops by itself at its
	// first claim, and Stop returns why.
	closed := testdb.OpenSized(t, url, 4)
	closed.Close()
	r = newRelay(t, closed, &recorder{}, outbox.RelayConfig{})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Stop of a relay on a closed pool = %v, want a closed-pool error", err)
	}
}
