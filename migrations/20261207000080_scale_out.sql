-- Many processes on one database: who is running, what changed that every process must notice, shared sign-in
-- throttling, and batch results kept in the blob store.

-- Every running Vigil process, with its role and blob store, renewed every few seconds (cluster.rs). A process
-- refuses to start beside live ones it cannot work with (SQLite or a local blob store shared across hosts).
create table vigil_node (
    id text primary key,                 -- random hex, one per process start
    host text not null,                  -- the machine's host name (VIGIL_HOST_NAME overrides it)
    role text not null,                  -- 'all' (vigil serve), 'api' (serve --no-worker) or 'worker'
    blob_store text not null,            -- 'local:/abs/path' or 's3://bucket/prefix'
    addr text,                           -- where its API listens, if it serves one
    started_at bigint not null,
    heartbeat_at bigint not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- A counter per topic ('hosting', 'keys', 'users'): a process that changes hosted models, thresholds, access keys
-- or users bumps it, and every process polls the table every second to act on the change.
create table cluster_event (
    topic text primary key,
    seq bigint not null,
    updated_at bigint not null
);

-- Settings every process must agree on: the fingerprint of the server key that seals stored secrets.
create table cluster_setting (
    name text primary key,
    value text not null,
    updated_at bigint not null
);

-- Failed sign-ins per user name ('user:NAME') and per client address ('addr:IP'), shared by every replica.
create table signin_failure (
    key text primary key,
    failures bigint not null,
    last_at bigint not null             -- ms since the epoch of the latest failure
);

-- A finished batch's results (a zip) are a blob; null for batches written before (their file stays on disk).
alter table trial add column output_hash text;

-- Drift (models/drift.rs): per hosted version and hour, how many detections scored in each bin of the distance
-- from its validation median, in validation spreads (0.25 wide from -6 to +10, with one bin below and one above).
create table drift_bin (
    model_id text not null,
    hour bigint not null,                -- hours since the epoch
    bin integer not null,
    n bigint not null,
    primary key (model_id, hour, bin)
);

-- The number of normal validation scores behind a hosted version's reference (the test's m).
create table drift_reference (
    model_id text primary key,
    normal_scores bigint not null,
    updated_at bigint not null
);
