package saga

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
)

// ErrChildFailed: a child run failed or was cancelled; the error's message
// carries the child's error.
var ErrChildFailed = errors.New("keel saga: child run did not succeed")

// ChildOpts are the options of StartChild.
type ChildOpts struct {
	// RunID names the child, in at most 255 bytes like any run id. Default:
	// the parent's id, "/" and the position of the start in the parent's
	// history (so a parent whose id is near 255 bytes names its children).
	RunID string
	// Version picks a registered version. Default: the newest registered.
	Version int
	// Queue is the child's jobs queue. Default: the parent's.
	Queue string
}

// Child is a child run started by StartChild.
type Child[Out any] struct {
	id       string
	workflow string
	err      error
}

// ID is the child run's id.
func (c *Child[Out]) ID() string { return c.id }

// StartChild starts a run of workflow with input as a child of the running
// workflow, and returns at once: start several and Get each to fan out and
// in. The start is a step (recorded with the child's id), so a replay never
// starts a child twice. Cancelling the parent cancels the child; a parent
// that fails cancels its unfinished children.
func StartChild[Out any](wc Context, workflow string, input any, opts *ChildOpts) *Child[Out] {
	ex := wc.execution()
	c := &Child[Out]{workflow: workflow}
	seq, rec := ex.nextStep(workflow, "child")
	if rec != nil {
		if rec.Status == db.KeelSagaStepStatusFailed {
			c.err = fmt.Errorf("keel saga: starting child %q: %s", workflow, deref(rec.Error))
			return c
		}
		if err := json.Unmarshal(rec.Output, &c.id); err != nil {
			panic(abort{failure{fmt.Errorf("%w: child id at step %d: %w", ErrDecode, seq, err)}})
		}
		ex.addChild(c.id)
		return c
	}
	var o ChildOpts
	if opts != nil {
		o = *opts
	}
	if o.RunID == "" {
		o.RunID = ex.run.ID + "/" + strconv.Itoa(int(seq))
	}
	if o.Queue == "" {
		o.Queue = ex.run.Queue
	}
	p := db.CheckpointParams{Seq: seq, Name: workflow, Kind: "child", Status: db.KeelSagaStepStatusCompleted}
	wf, err := ex.e.registry.get(workflow, o.Version)
	if err == nil {
		err = checkChild(o)
	}
	var encoded json.RawMessage
	if err == nil {
		encoded, err = wf.checkInput(input)
	}
	if err != nil {
		c.err = err
		p.Status, p.Error = db.KeelSagaStepStatusFailed, ptr(err.Error())
		ex.mustRecord(p)
		return c
	}
	p.Output, _ = json.Marshal(o.RunID) // a string always encodes
	err = pgx.BeginFunc(ex.ctx, ex.e.pool, func(tx pgx.Tx) error {
		if err := ex.checkpoint(ex.ctx, tx, p); err != nil {
			return err
		}
		// The child's first job carries the execution's trace context, as
		// every job the execution inserts does.
		_, err := ex.e.insertRun(ex.ctx, tx, startReq{p: db.InsertRunParams{
			ID: o.RunID, Workflow: wf.name, Version: int32(wf.version), Queue: o.Queue, Input: encoded,
			ParentID: &ex.run.ID, ParentSeq: ptr(seq),
		}})
		return err
	})
	if errors.Is(err, ErrRunIDInUse) {
		c.err = err
		p.Status, p.Output, p.Error = db.KeelSagaStepStatusFailed, nil, ptr(err.Error())
		ex.mustRecord(p)
		return c
	}
	if err != nil {
		panic(abort{err})
	}
	c.id = o.RunID
	ex.addChild(c.id)
	return c
}

// Get waits for the child to finish and returns its result: the run parks
// (holding no worker) until the child ends. A child that failed or was
// cancelled gives an error wrapping ErrChildFailed. The outcome is
// checkpointed, so a replay returns it at once.
func (c *Child[Out]) Get(wc Context) (Out, error) {
	var out Out
	if c.err != nil {
		return out, c.err
	}
	ex := wc.execution()
	seq, rec := ex.nextStep(c.workflow, "await")
	if rec == nil {
		ex.wait("child "+c.id, time.Time{}, func(tx pgx.Tx) (bool, error) {
			child, err := db.New(tx).GetRun(ex.ctx, c.id)
			if err != nil {
				return false, fmt.Errorf("keel saga: reading child %s: %w", c.id, err)
			}
			if !Status(child.Status).Final() {
				return false, nil
			}
			p := db.CheckpointParams{Seq: seq, Name: c.workflow, Kind: "await", Status: db.KeelSagaStepStatusCompleted, Output: child.Output}
			if child.Status != db.KeelSagaRunStatusSucceeded {
				msg := fmt.Sprintf("child %s %s: %s", c.id, child.Status, runFromDB(&child).Err())
				p.Status, p.Output, p.Error = db.KeelSagaStepStatusFailed, nil, &msg
			}
			err = ex.checkpoint(ex.ctx, tx, p)
			if err == nil {
				r := db.KeelSagaStep{Seq: seq, Name: c.workflow, Status: p.Status, Output: p.Output, Error: p.Error}
				rec = &r
			}
			return true, err
		})
	}
	if rec.Status == db.KeelSagaStepStatusFailed {
		return out, fmt.Errorf("%w: %s", ErrChildFailed, deref(rec.Error))
	}
	if err := json.Unmarshal(rec.Output, &out); err != nil {
		return out, fmt.Errorf("%w: result of child %s into %T: %w", ErrDecode, c.id, out, err)
	}
	return out, nil
}
