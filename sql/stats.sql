-- name: QueueStats :many
SELECT * FROM keel.queue_stats ORDER BY queue;

-- name: StuckJobs :many
SELECT * FROM keel.stuck_jobs ORDER BY heartbeat_at;

-- name: DeadJobCount :one
SELECT count(*) FROM keel.dead_jobs;

-- name: OutboxStats :one
SELECT * FROM keel.outbox_stats;

-- name: SubscriptionLag :many
SELECT * FROM keel.subscription_lag ORDER BY status = 'parked' DESC, name;

-- name: SagaStats :many
SELECT * FROM keel.saga_stats ORDER BY workflow;
