package keel

import "github.com/keelpg/keel/internal/outage"

// Outage describes one database outage as one of keel's long-running
// components saw it. Each component retries through an outage with a capped
// exponential backoff, logs one line when it loses the database and one when
// it has it back, and hands an Outage to its metrics hook at both ends: once
// with Over false when the first attempt fails, once with Over true, the
// Duration and the count of failed attempts when one succeeds again.
type Outage = outage.Event
