package saga

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/google/uuid"

	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/keeltype"
)

// The checks every public call makes before its first statement, so that
// what Postgres would refuse is refused here with a typed error and the
// caller's transaction stays usable. The limits are internal/validate's.

// invalid wraps a *validate.Error in ErrInvalidOptions.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
}

// encode encodes v for a jsonb column: invalid UTF-8 and NUL in its strings,
// and JSON that jsonb cannot store, fail with ErrEncode naming field.
func encode(field string, v any) (json.RawMessage, error) {
	raw, err := validate.Marshal(field, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEncode, err)
	}
	return raw, nil
}

// checkTx refuses a nil DBTX, a typed nil pointer included (a nil
// *pgxpool.Pool), which would panic at the first statement.
func checkTx(tx keeltype.DBTX) error {
	if tx == nil {
		return fmt.Errorf("%w: nil tx", ErrInvalidOptions)
	}
	if v := reflect.ValueOf(tx); v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Errorf("%w: nil tx (%T)", ErrInvalidOptions, tx)
	}
	return nil
}

// checkWrite is what every write checks first: the engine is not stopped
// and tx is not nil.
func (e *Engine) checkWrite(tx keeltype.DBTX) error {
	if e.closed.Load() {
		return ErrClosed
	}
	return checkTx(tx)
}

// checkRunID checks a run id that is looked up: a longer one names no run,
// and NUL or invalid UTF-8 would abort the transaction.
func checkRunID(field, id string) error {
	return invalid(validate.Text(field, id, validate.MaxRunID))
}

// checkQueue checks the jobs queue a run executes in.
func checkQueue(queue string) error {
	return invalid(validate.Name("queue", queue, validate.MaxQueue))
}

// checkTimeout checks a workflow timeout.
func checkTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%w: negative timeout %s", ErrInvalidOptions, d)
	}
	return nil
}

// prepareStart fills in and checks StartOpts.
func (e *Engine) prepareStart(opts *StartOpts) (StartOpts, error) {
	var o StartOpts
	if opts != nil {
		o = *opts
	}
	if o.RunID == "" {
		o.RunID = uuid.NewString()
	}
	if o.Queue == "" {
		o.Queue = e.cfg.Queue
	}
	if err := validate.Name("run id", o.RunID, validate.MaxRunID); err != nil {
		return o, invalid(err)
	}
	if err := checkQueue(o.Queue); err != nil {
		return o, err
	}
	return o, checkTimeout(o.Timeout)
}

// checkSignal checks what Signal stores besides the value.
func checkSignal(runID, name, idempotencyKey string) error {
	if err := checkRunID("run id", runID); err != nil {
		return err
	}
	if err := validate.Name("signal name", name, validate.MaxName); err != nil {
		return invalid(err)
	}
	return invalid(validate.Text("idempotency key", idempotencyKey, validate.MaxKey))
}

// prepareFork fills in and checks ForkOpts.
func prepareFork(runID string, fromSeq int, opts *ForkOpts) (ForkOpts, error) {
	var o ForkOpts
	if opts != nil {
		o = *opts
	}
	if o.RunID == "" {
		o.RunID = uuid.NewString()
	}
	if err := checkRunID("run id", runID); err != nil {
		return o, err
	}
	if err := validate.Name("fork run id", o.RunID, validate.MaxRunID); err != nil {
		return o, invalid(err)
	}
	if fromSeq < 1 || fromSeq > math.MaxInt32 {
		return o, fmt.Errorf("%w: fork position %d is not between 1 and %d", ErrInvalidOptions, fromSeq, math.MaxInt32)
	}
	return o, checkTimeout(o.Timeout)
}

// checkList checks List's filters.
func checkList(o ListParams) error {
	switch o.Status {
	case "", StatusPending, StatusRunning, StatusWaiting, StatusCompensating, StatusSucceeded, StatusFailed, StatusCancelled:
	default:
		return fmt.Errorf("%w: status %q is not a run status", ErrInvalidOptions, o.Status)
	}
	if err := validate.Text("workflow", o.Workflow, validate.MaxName); err != nil {
		return invalid(err)
	}
	return checkRunID("parent id", o.ParentID)
}

// checkRegistration checks a workflow's name and version.
func checkRegistration(name string, version int) error {
	if err := validate.Name("workflow name", name, validate.MaxName); err != nil {
		return invalid(err)
	}
	if version < 1 || version > math.MaxInt32 {
		return fmt.Errorf("%w: workflow %q: version %d is not between 1 and %d", ErrInvalidOptions, name, version, math.MaxInt32)
	}
	return nil
}

// checkStepName checks the name of a step a workflow reaches for the first
// time. Signal and value names are indexed and bounded as Signal bounds
// them; other step names need only be storable text.
func checkStepName(kind, name string) error {
	switch kind {
	case "signal":
		return invalid(validate.Name("signal name", name, validate.MaxName))
	case "value":
		return invalid(validate.Name("value name", name, validate.MaxName))
	}
	return invalid(validate.Text(kind+" name", name, 0))
}

// checkChild checks a child's run id and queue.
func checkChild(o ChildOpts) error {
	if err := validate.Name("child run id", o.RunID, validate.MaxRunID); err != nil {
		return invalid(err)
	}
	return checkQueue(o.Queue)
}
