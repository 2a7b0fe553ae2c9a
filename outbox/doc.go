// Package outbox will hold keel's transactional outbox, its relay and the
// consumer-side inbox: messages written in the caller's transaction and
// delivered at least once, in order per key, with retries and dead letters,
// and processed exactly once in effect.
//
// The package has no API yet; it arrives with its own migration and queries.
package outbox
