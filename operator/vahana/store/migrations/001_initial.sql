-- Tasks, their attempts, and registered workers.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    key TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    namespace TEXT NOT NULL DEFAULT '',
    pool TEXT NOT NULL DEFAULT '',
    spec TEXT NOT NULL,
    retry TEXT NOT NULL,
    phase TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT NOT NULL DEFAULT '',
    exit_code INTEGER,
    message TEXT NOT NULL DEFAULT '',
    output_tail TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    assigned_at DOUBLE PRECISION,
    task_failures INTEGER NOT NULL DEFAULT 0,
    infra_failures INTEGER NOT NULL DEFAULT 0,
    not_before DOUBLE PRECISION NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX tasks_by_key ON tasks (key) WHERE key <> '';
CREATE INDEX tasks_by_name ON tasks (name);
CREATE INDEX tasks_unfinished ON tasks (phase) WHERE phase IN ('PENDING', 'ASSIGNED', 'RUNNING');
CREATE INDEX tasks_by_seq ON tasks (seq);

CREATE TABLE attempts (
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    assigned_at DOUBLE PRECISION NOT NULL,
    phase TEXT NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    exit_code INTEGER,
    failure_kind TEXT,
    message TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (task_id, attempt)
);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    pool TEXT NOT NULL DEFAULT '',
    hostname TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    capacity TEXT NOT NULL,
    max_tasks INTEGER NOT NULL,
    registered_at DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    allocation_ends_at DOUBLE PRECISION,
    experiment_id TEXT NOT NULL DEFAULT '',
    compute_resource_id TEXT NOT NULL DEFAULT '',
    leases TEXT NOT NULL DEFAULT '{}'
);
