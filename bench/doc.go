// Package bench measures keel against its peers (River, Watermill, DBOS) and
// against the SQL floor, on the same PostgreSQL, with `make bench`. It is a
// module of its own so the peers' dependencies stay out of keel's go.mod.
//
// Benchmarks read DATABASE_URL and work in databases of their own that they
// create and drop. Numbers are reported, never asserted.
//
// # History
//
// The throughput workloads whose queries touch retained rows also run with
// a day of history in place: jobs worked with defaults and tuned (keel and
// River), the outbox relayed unkeyed and over 1,000 keys, a category
// subscription catching up on 10,000 single-event appends with events of
// other categories in the feed, and three-step saga workflows. Such a case
// is the empty one's name with /history=2M after it, run in a database of
// its own that first gets the history, written with set-based SQL straight
// into the tables in the states retention keeps, and VACUUM ANALYZE:
//
//   - jobs: completed no-op jobs (keel.jobs; River's river_job),
//   - outbox: delivered messages with the workload's keys (keel.outbox),
//   - events: single-event appends to streams of ten other categories,
//     ten events a stream (keel.streams, keel.events, keel.feed; positions
//     dense from 1),
//   - sagas: succeeded three-step runs (keel.saga_runs, three completed
//     keel.saga_steps each, and each run's completed keel.saga.run job).
//
// Timestamps are spread over the last 23 hours, so the default retention of
// 24 hours deletes none of it during the run. KEEL_BENCH_HISTORY sets the
// sizes, rows of the main table (runs for sagas): default 2000000, a list
// such as 2000000,10000000 runs each size, 0 runs none:
//
//	cd bench && KEEL_BENCH_HISTORY=10000000 go run ./cmd/benchreport -bench 'JobsWork|OutboxRelay|EventsSubscription|SagaThroughput'
//
// benchreport puts these cases in RESULTS.md's "With history" table: keel
// with history against keel empty (target: at least 0.9 of it) and, for jobs,
// against River with the same history (target: at least 3 times River).
//
// # Retention
//
// BenchmarkRetention writes the same history with all but its last hour
// past a retention of one hour, then starts keel's own retention (the jobs
// client's, the relay's) beside the usual workload: 50,000 no-op jobs with
// defaults, 50,000 unkeyed messages. It reports how fast retention deleted
// the expired rows (deleted/s; a service inserting 30,000 jobs/s needs at
// least that) and the workload's throughput meanwhile, to set against the
// same workload with the history retention keeps.
//
// # Soak
//
// `make soak` (cd bench && go run ./cmd/soak) offers 5,000 jobs/s and 5,000
// outbox messages/s, paced by a ticker, to a jobs client with keel's default
// configuration and an outbox relay with a publisher that does nothing, for
// 30 minutes with keel's retention as it comes, in a fresh database on
// DATABASE_URL's server. It prints a line a minute (throughput offered and
// done, backlog, table sizes, dead tuples) and a summary: the last minute's
// throughput against the first, the largest tables, and whether keel kept up.
// On a server whose autovacuum is off it does autovacuum's work on the two
// tables itself, by each table's own settings (keel's migrations set them)
// and the cost limit keel recommends at this rate (-vacuum-cost-limit 2000).
// Flags: -duration, -retention (shorter retention, so the tables stop
// growing), -keys (keyed messages), -jobs-rate, -outbox-rate, -out SOAK.md
// (write the report there too); pass them with
// make soak SOAKFLAGS='-duration 3m -out SOAK.md'. bench/SOAK.md is the
// last 30-minute run, with a retention of 5 minutes.
package bench
