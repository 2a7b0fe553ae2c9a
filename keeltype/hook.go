package keeltype

import (
	"context"
	"time"
)

// Hook observes keel's work: the one interface through which metrics,
// traces and logs see every package. jobs.Config, outbox.Config,
// outbox.RelayConfig, events.Config and saga.Config each take one, and
// keel.Config.Hook hands one to every component a keel.Client runs. Embed
// NoHook to implement only one of the methods.
//
// keel calls a Hook synchronously from the goroutine doing the work, so its
// methods must be safe for concurrent use and must not block.
type Hook interface {
	// Start is called as an operation begins. The context it returns is the
	// one the operation goes on with — a tracer puts its span in it, so the
	// handler's own spans nest under the job's — and end is called once when
	// the operation is over, with its outcome.
	Start(ctx context.Context, op Operation) (context.Context, func(Outcome))
	// Measure reports a measurement taken outside any one operation: the
	// size of a claim, how far behind a relay or a subscription is, a
	// database outage beginning or ending.
	Measure(ctx context.Context, m Measurement)
}

// NoHook observes nothing. Embed it in a Hook that implements only one of
// the methods.
type NoHook struct{}

// Start implements Hook: it returns ctx and an end that does nothing.
func (NoHook) Start(ctx context.Context, _ Operation) (context.Context, func(Outcome)) {
	return ctx, func(Outcome) {}
}

// Measure implements Hook.
func (NoHook) Measure(context.Context, Measurement) {}

// OperationKind says what an Operation is.
type OperationKind string

// The operations keel reports. Operation.Name and Operation.ID say what
// each acts on.
const (
	// OpJobInsert is one insert call (Name: the job's kind and Queue its
	// queue, or both empty for InsertMany and InsertWorkflow; Count: the
	// jobs).
	OpJobInsert OperationKind = "jobs.insert"
	// OpJobRun is one attempt of a job's handler (Name: its kind; ID: the
	// job's id; Queue, Attempt). Outcome.State is the job's state after it.
	OpJobRun OperationKind = "jobs.run"
	// OpOutboxEnqueue is one Enqueue call (Name: the first message's topic;
	// Count: its messages).
	OpOutboxEnqueue OperationKind = "outbox.enqueue"
	// OpOutboxPublish is the publishing of one message by the relay (Name:
	// its topic; ID: its id; Attempt), from before the Publisher is called
	// to its result. Outcome.State is "delivered", "failed" (to be retried,
	// or dead after its last attempt) or "released" (the relay stopped while
	// publishing; it goes out again).
	OpOutboxPublish OperationKind = "outbox.publish"
	// OpEventsAppend is one Append (Name: the stream id; Count: its
	// events).
	OpEventsAppend OperationKind = "events.append"
	// OpEventsHandle is a subscription's handling of one event (Name: the
	// subscription; ID: the event's id).
	OpEventsHandle OperationKind = "events.handle"
	// OpSagaStart is one StartRun (Name: the workflow; ID: the run's id;
	// Queue). Like the other writes it stores its Carrier, with the job
	// that executes the run first, so the run joins the trace of its start.
	OpSagaStart OperationKind = "saga.start"
	// OpSagaRun is one execution of a saga run, from its claim until it
	// finishes, parks or stops (Name: the workflow; ID: the run's id;
	// Attempt: the execution's). Outcome.State is the run's status when it
	// finished ("succeeded", "failed", "cancelled"; Err says why) or
	// "parked"; empty when the execution stopped (Err: why, when it is an
	// error).
	OpSagaRun OperationKind = "saga.run"
	// OpSagaStep is one step of a run, all its attempts in one execution
	// (Name: the step; ID: the run's id); a step whose retry parks the run
	// ends with Outcome.State "parked", and its later attempts are another
	// operation. A step replayed from the history is not reported.
	OpSagaStep OperationKind = "saga.step"
)

// Operation is one unit of keel's work, as Hook.Start sees it.
type Operation struct {
	Kind OperationKind
	// Name is what the operation is about: a job kind, a topic, a stream,
	// a subscription, a workflow or a step (see each OperationKind).
	Name string
	// ID identifies the item: a job id, a message id, an event id, a run id.
	// Empty when there is none yet.
	ID string
	// Queue is a job's queue.
	Queue string
	// Attempt counts attempts of the item, from 1; 0 where it means nothing.
	Attempt int
	// Count is how many items one operation carries (appended events,
	// enqueued messages); 0 where it means nothing.
	Count int
	// Scheduled is when the item became due: a job's run-at time
	// (OpJobRun), a message's enqueue time (OpOutboxPublish), an event's
	// recording time (OpEventsHandle); zero elsewhere. From Scheduled to
	// Start is a job's queue latency; to a delivered publish's end, a
	// message's publish latency. It is the database's clock, so skew
	// between the database and this process shows in such differences.
	Scheduled time.Time
	// Carrier carries trace context through the database, so that one trace
	// runs from the request that wrote an item to whichever process acts on
	// it; see the package doc. On a write (OpJobInsert, OpOutboxEnqueue,
	// OpEventsAppend, OpSagaStart) it is an empty map Start may fill; keel
	// stores the entries with every row the operation writes, once Start
	// returns. On
	// the work on a stored item (OpJobRun, OpOutboxPublish, OpEventsHandle)
	// it holds what was stored with the item, for Start to read; nil when
	// nothing was. Elsewhere it is nil.
	Carrier map[string]string
}

// CarrierKey is the key under which a job's and an event's metadata hold
// the Carrier of the write that stored them: a JSON object of strings, as
// in {"keel_trace": {"traceparent": "00-…-01"}}.
const CarrierKey = "keel_trace"

// Limits of the Carrier entries keel stores. An entry beyond them is
// dropped, and the write goes on without it.
const (
	// MaxCarrierEntries is how many entries are stored, the first in name
	// order.
	MaxCarrierEntries = 8
	// MaxCarrierName bounds an entry's name, in bytes.
	MaxCarrierName = 64
	// MaxCarrierValue bounds an entry's value, in bytes: W3C baggage fits.
	MaxCarrierValue = 8192
)

// Outcome is how an operation ended.
type Outcome struct {
	// Err is the operation's error; nil when it succeeded.
	Err error
	// State is what the item became, where the kind says (a job's state, a
	// run's status, a message's delivery).
	State string
}

// MeasurementKind says what a Measurement is.
type MeasurementKind string

// The measurements keel reports.
const (
	// MeasureJobsClaimed is one claim of a queue (Name: the queue; Value:
	// the jobs it took).
	MeasureJobsClaimed MeasurementKind = "jobs.claimed"
	// MeasureOutboxLag is the age of the oldest undelivered message, once
	// per relay poll interval (Age; 0 when there is none).
	MeasureOutboxLag MeasurementKind = "outbox.lag"
	// MeasureSubscriptionLag is how far a subscription is behind after a
	// batch (Name: the subscription; Value: feed positions past its
	// checkpoint — for a category subscription, other categories' events
	// included, as counting only its own would cost a query per batch; Age:
	// since its newest handled event was recorded).
	MeasureSubscriptionLag MeasurementKind = "events.subscription_lag"
	// MeasureOutage is a component losing the database or having it back
	// (Outage; Name: the component).
	MeasureOutage MeasurementKind = "outage"
)

// Measurement is one value a Hook is told of.
type Measurement struct {
	Kind  MeasurementKind
	Name  string
	Value int64
	Age   time.Duration
	// Outage is set for MeasureOutage.
	Outage *Outage
}
