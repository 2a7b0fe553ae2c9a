// Package saga will hold keel's durable workflows: steps checkpointed in
// Postgres and replayed after a crash, durable timers, signals, child
// workflows, parallel steps and compensation. Workflow runs execute on
// package jobs.
//
// The package has no API yet; it arrives with its own migration and queries.
package saga
