// Package jobs will hold keel's durable background jobs: typed handlers,
// queues with concurrency, priorities, delayed and recurring jobs, retries
// with backoff, timeouts, cancellation, unique jobs and dependencies, claimed
// with FOR UPDATE SKIP LOCKED and woken with LISTEN/NOTIFY.
//
// The package has no API yet; it arrives with its own migration and queries.
package jobs
