// Package keelotel traces keel's work and records its metrics through
// OpenTelemetry. It is one keeltype.Hook: give it to keel.Config.Hook and
// every component a keel.Client runs reports to it (or set it on each
// component's own config: jobs.Config.Hook, outbox.Config.Hook,
// outbox.RelayConfig.Hook, events.Config.Hook, saga.Config.Hook).
//
//	hook, err := keelotel.NewHook(keelotel.Config{}) // otel's global providers
//	k, err := keel.New(pool, keel.Config{Hook: hook, Jobs: jobs.Config{Workers: workers}})
//
// It lives in a module of its own, github.com/keelpg/keel/integrations/otel,
// so keel's own go.mod stays free of OpenTelemetry.
//
// # One trace through the database
//
// A job, an outbox message or an event is written in one process and acted
// on in another, later. The hook puts the context of the write's span in
// the write's Operation.Carrier and keel stores it with each row (a job's
// or an event's metadata under "keel_trace", a message's headers; see
// keeltype's package doc). When a worker runs the job, a relay publishes
// the message or a subscription handles the event, keel hands the stored
// entries back and the hook makes the write's span the parent of the new
// one. So one trace runs from the request that inserted a job to the
// handler's own spans, in whatever process claimed it:
//
//	POST /orders                       (the application's span)
//	└── jobs.insert send_receipt       producer, in the request's process
//	    ├── jobs.run send_receipt      consumer, attempt 1, in a worker process
//	    │   └── (the handler's spans)
//	    └── jobs.run send_receipt      consumer, attempt 2, after a retry
//
// The stored context is a parent, not a link: a job's attempts, a message's
// publishes and an event's handlings are children of the span that wrote
// them. When the context the work runs in has a span of its own, the new
// span links to it. Every process must use the same propagator
// (Config.Propagator; W3C Trace Context by default). A message's headers
// carry the enqueue's trace context on to the Publisher and so to the
// broker: a consumer downstream that extracts it continues the trace
// under the enqueue.
//
// A saga run's start is a write of its own (saga.start, a producer span),
// whose context its first job stores; each later execution is a job
// inserted in the context of what caused it (a Signal, the execution that
// parked the run). So the first execution's jobs.run span is a child of
// saga.start, the execution's saga.run span a child of its jobs.run, and
// each step's saga.step span a child of saga.run. StartRuns grouped into
// one transaction (given the engine's pool) keep each its own trace.
//
// # Spans
//
// A span is named after the operation and, where it is a small set of
// values, what it acts on: "jobs.run send_receipt", "outbox.publish
// orders", "events.handle projector", "saga.step charge"; an append is
// "events.append" (stream ids are many). Inserts, enqueues, appends and
// saga starts are producer spans; runs, publishes and handlings are consumer spans; saga
// executions and steps are internal. An operation that ended with an error
// has the Error status and the error as an event. Attributes:
//
//	keel.operation            every span: the keeltype.OperationKind, "jobs.run"
//	keel.job.kind             jobs.insert (one job), jobs.run
//	keel.job.queue            jobs.insert (one job), jobs.run
//	keel.job.id               jobs.run
//	keel.outbox.topic         outbox.enqueue (its first message's), outbox.publish
//	keel.outbox.message_id    outbox.publish
//	keel.events.stream        events.append
//	keel.events.category      events.append
//	keel.events.subscription  events.handle
//	keel.events.event_id      events.handle
//	keel.saga.workflow        saga.start, saga.run
//	keel.saga.step            saga.step
//	keel.saga.run_id          saga.start, saga.run, saga.step
//	keel.attempt              jobs.run, outbox.publish, saga.run
//	keel.count                jobs.insert, outbox.enqueue, events.append: rows written
//	keel.state                what the item became, where keel says: a job's state,
//	                          "delivered"/"failed"/"released", a run's status
//
// # Metrics
//
// Through the Config.MeterProvider's meter (scope ScopeName). Durations are
// in seconds; a Prometheus exporter adds the unit and _total suffixes
// (keel.jobs.duration is keel_jobs_duration_seconds, keel.jobs.attempts is
// keel_jobs_attempts_total).
//
//	keel.jobs.inserted              counter    jobs inserted (keel.job.kind, keel.job.queue for one-job inserts)
//	keel.jobs.attempts              counter    attempts ended, by the state each left its job in
//	                                           (keel.job.kind, keel.job.queue, keel.state: completed,
//	                                           retryable, discarded, cancelled, scheduled for a snooze …)
//	keel.jobs.duration              histogram  an attempt's handler time (kind, queue, state)
//	keel.jobs.queue_latency         histogram  from a job's run-at time to its attempt's start (kind, queue)
//	keel.jobs.claimed               counter    jobs claimed (keel.job.queue)
//	keel.jobs                       gauge      jobs in the database by keel.state; only with ObserveJobs
//	keel.outbox.enqueued            counter    messages enqueued
//	keel.outbox.published           counter    publish attempts (keel.outbox.topic, keel.state)
//	keel.outbox.publish.duration    histogram  a publish attempt, the Publisher's call included (topic, state)
//	keel.outbox.publish.latency     histogram  from a message's enqueue to its delivery (topic)
//	keel.outbox.lag                 gauge      age of the oldest undelivered message, each relay poll
//	keel.events.appended            counter    events appended (keel.events.category)
//	keel.events.handled             counter    events handled (keel.events.subscription, keel.outcome: ok, error)
//	keel.events.handle.duration     histogram  a handler's time for one event (subscription, outcome)
//	keel.events.subscription.lag    gauge      feed positions behind the head (subscription)
//	keel.events.subscription.age    gauge      since the newest handled event was recorded (subscription)
//	keel.saga.executions            counter    executions of runs (keel.saga.workflow, keel.state, keel.outcome)
//	keel.saga.execution.duration    histogram  an execution's time (workflow, state, outcome)
//	keel.saga.step.duration         histogram  a step's time, all its attempts (keel.saga.step, keel.outcome)
//	keel.outages                    counter    database outages begun (keel.component)
//	keel.outages.active             updown     outages going on now (keel.component)
//	keel.outage.duration            histogram  how long an outage lasted (keel.component)
//
// Counters and histograms count what this process did; add them up across
// processes. Metric attributes hold no ids, but a topic, a subscription, a
// job kind or a step name per tenant would make many series. Latencies
// compare the database's clock (a job's run-at time, a message's enqueue
// time) with this process's, so clock skew shows in them.
//
// keel.jobs needs a query, so it is not recorded unless asked for:
// [Hook.ObserveJobs] registers it, counting the jobs in each state through a
// *jobs.Client whenever the meter's readers collect — in one process of the
// service, as every process would read the same counts.
//
// # Prometheus
//
// OpenTelemetry's Prometheus exporter (go.opentelemetry.io/otel/exporters/prometheus)
// is a metric reader: put it in the MeterProvider given to NewHook and serve
// its registry with promhttp; Example_prometheus shows it.
package keelotel
