// Package inboxdelivery runs one broker delivery through an outbox.Inbox:
// the step keel's broker consumers (integrations/nats and
// integrations/rabbitmq) share. The handler runs in the inbox transaction,
// a panic in it fails the attempt like an error, and the Outcome says what
// the consumer owes the broker. How it settles the delivery — an ack, a nak
// with a delay, a requeue after holding the message — is the consumer's
// own, as is the retry delay.
package inboxdelivery

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/outbox"
)

// Outcome is what a consumer does with a delivery the inbox is done with.
type Outcome int

const (
	// Ack: the handler's transaction committed, or the inbox had processed
	// the message already (Result.Duplicate).
	Ack Outcome = iota
	// Drop: the message id cannot be recorded (outbox.ErrInvalidInboxKey),
	// so no delivery of it can succeed; terminate or reject it.
	Drop
	// Requeue: the work was cancelled and its transaction rolled back; give
	// the message back at once, without a retry delay.
	Requeue
	// Retry: the handler failed; give the message back after the retry
	// delay.
	Retry
)

// Result is how one delivery went.
type Result struct {
	Outcome Outcome
	// Duplicate is set with Ack when the inbox skipped the message: it had
	// processed it already.
	Duplicate bool
	// Err is the failure behind Drop, Requeue and Retry.
	Err error
}

// Process runs handle in inbox's transaction for message id under
// consumer. A panic in handle becomes an error wrapping panicked, so the
// transaction rolls back and the delivery fails. ctx is the delivery's work
// context: a failure after it ended is a Requeue, not a Retry.
func Process(ctx context.Context, inbox *outbox.Inbox, consumer, id string, panicked error, handle func(context.Context, pgx.Tx) error) Result {
	processed, err := inbox.Process(ctx, consumer, id, func(ctx context.Context, tx pgx.Tx) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: %v", panicked, r)
			}
		}()
		return handle(ctx, tx)
	})
	switch {
	case errors.Is(err, outbox.ErrInvalidInboxKey):
		return Result{Outcome: Drop, Err: err}
	case err != nil && ctx.Err() != nil:
		return Result{Outcome: Requeue, Err: err}
	case err != nil:
		return Result{Outcome: Retry, Err: err}
	}
	return Result{Outcome: Ack, Duplicate: !processed}
}
