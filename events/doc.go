// Package events will hold keel's event store: append-only streams with
// optimistic concurrency, a gap-free global feed, catch-up subscriptions with
// checkpoints, snapshots and point-in-time reconstruction.
//
// The package has no API yet; it arrives with its own migration and queries.
package events
