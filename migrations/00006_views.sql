-- +goose Up
CREATE VIEW keel.queue_stats AS
WITH queues AS (
    SELECT DISTINCT queue FROM keel.jobs
    UNION
    SELECT name FROM keel.job_queues
)
SELECT q.queue,
       count(j.id) FILTER (WHERE j.state = 'pending')   AS pending,
       count(j.id) FILTER (WHERE j.state = 'scheduled') AS scheduled,
       count(j.id) FILTER (WHERE j.state = 'available') AS available,
       count(j.id) FILTER (WHERE j.state = 'running')   AS running,
       count(j.id) FILTER (WHERE j.state = 'retryable') AS retryable,
       count(j.id) FILTER (WHERE j.state = 'completed') AS completed,
       count(j.id) FILTER (WHERE j.state = 'cancelled') AS cancelled,
       count(j.id) FILTER (WHERE j.state = 'discarded') AS discarded,
       (now() - min(j.run_at) FILTER (WHERE j.state = 'available' AND j.run_at <= now()))::interval AS oldest_available_age,
       (p.paused_at IS NOT NULL)::boolean AS paused
FROM queues q
LEFT JOIN keel.jobs j ON j.queue = q.queue
LEFT JOIN keel.job_queues p ON p.name = q.queue
GROUP BY q.queue, p.paused_at;
COMMENT ON VIEW keel.queue_stats IS 'One row per job queue: how many jobs are in each state, how long the oldest available job has waited, and whether the queue is paused.';

CREATE VIEW keel.stuck_jobs AS
SELECT id, kind, queue, attempt, owner, attempted_at, heartbeat_at, (now() - heartbeat_at)::interval AS silent_for
FROM keel.jobs
WHERE state = 'running' AND heartbeat_at < now() - interval '1 minute';
COMMENT ON VIEW keel.stuck_jobs IS 'Running jobs whose owner has not sent a heartbeat for over a minute: its process is probably gone, and the rescue duty will return them to retryable after RescueAfter.';

CREATE VIEW keel.dead_jobs AS
SELECT id, kind, queue, attempt, max_attempts, finalized_at, COALESCE(errors -> -1 ->> 'error', '')::text AS last_error
FROM keel.jobs
WHERE state = 'discarded';
COMMENT ON VIEW keel.dead_jobs IS 'Discarded jobs (the dead letters of keel.jobs) with their last error; keel jobs retry ID runs one again.';

CREATE VIEW keel.outbox_stats AS
SELECT count(*) FILTER (WHERE state = 'pending')   AS pending,
       count(*) FILTER (WHERE state = 'dead')      AS dead,
       count(*) FILTER (WHERE state = 'delivered') AS delivered,
       (now() - min(created_at) FILTER (WHERE state = 'pending'))::interval AS oldest_pending_age
FROM keel.outbox;
COMMENT ON VIEW keel.outbox_stats IS 'The outbox in one row: messages waiting, dead and delivered (until retention deletes them), and the age of the oldest undelivered message (the relay lag).';

CREATE VIEW keel.outbox_dead_letters AS
SELECT id, topic, key, type, attempts, created_at, last_error
FROM keel.outbox
WHERE state = 'dead';
COMMENT ON VIEW keel.outbox_dead_letters IS 'Outbox messages that failed every attempt; keel outbox requeue ID puts one back in line.';

CREATE VIEW keel.subscription_lag AS
SELECT s.name,
       s.category,
       s.status,
       s.position,
       (SELECT count(*) FROM keel.events e
         WHERE e.position > s.position AND (s.category IS NULL OR e.category = s.category)) AS behind,
       (now() - (SELECT e.recorded_at FROM keel.events e
                  WHERE e.position > s.position AND (s.category IS NULL OR e.category = s.category)
                  ORDER BY e.position LIMIT 1))::interval AS lag,
       s.owner,
       s.last_error
FROM keel.subscriptions s;
COMMENT ON VIEW keel.subscription_lag IS 'Each event subscription: its checkpoint, how many events of its feed or category it has yet to handle, how long the oldest of them has waited, and why it is parked if it is.';

CREATE VIEW keel.saga_stats AS
SELECT workflow,
       count(*) FILTER (WHERE status = 'pending')      AS pending,
       count(*) FILTER (WHERE status = 'running')      AS running,
       count(*) FILTER (WHERE status = 'waiting')      AS waiting,
       count(*) FILTER (WHERE status = 'compensating') AS compensating,
       count(*) FILTER (WHERE status = 'succeeded')    AS succeeded,
       count(*) FILTER (WHERE status = 'failed')       AS failed,
       count(*) FILTER (WHERE status = 'cancelled')    AS cancelled,
       count(*) FILTER (WHERE status = 'pending' AND last_error IS NOT NULL) AS blocked
FROM keel.saga_runs
GROUP BY workflow;
COMMENT ON VIEW keel.saga_stats IS 'One row per workflow: its runs in each status; blocked counts pending runs that cannot go on (their last_error says why, e.g. no process registers their version).';

CREATE VIEW keel.failed_sagas AS
SELECT id, workflow, version, status, (error ->> 'message')::text AS error, finished_at
FROM keel.saga_runs
WHERE status IN ('failed', 'cancelled');
COMMENT ON VIEW keel.failed_sagas IS 'Workflow runs that failed or were cancelled, with why; keel sagas show ID prints their steps.';

-- +goose Down
DROP VIEW keel.failed_sagas;
DROP VIEW keel.saga_stats;
DROP VIEW keel.subscription_lag;
DROP VIEW keel.outbox_dead_letters;
DROP VIEW keel.outbox_stats;
DROP VIEW keel.dead_jobs;
DROP VIEW keel.stuck_jobs;
DROP VIEW keel.queue_stats;
