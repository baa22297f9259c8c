-- Model versions (LFV's CreateModel ... DeleteModel), their tags, and what the job worker needs to claim jobs
-- with a lease instead of running them as bare tasks.

-- What kind of job a row is, so that lanes (one training at a time, a few imports) claim only their own.
alter table job add column kind text not null default 'import';
-- The model version a training job trains (null for imports; their target is dataset_id). dataset_id is not
-- null, so a training job puts its model version's id there too.
alter table job add column model_id text;
-- Which worker holds the job ('host:pid:random'); null while it waits.
alter table job add column owner text;
-- Until when the owner's claim holds (ms since the epoch); renewed while the job runs. A job whose lease
-- has run out is claimable again (its worker died).
alter table job add column lease_until bigint;
-- Progress as the console shows it: stage name, fraction 0-1 and estimated time left (ms).
alter table job add column stage text;
alter table job add column fraction double precision;
alter table job add column eta_ms bigint;
-- 1 once someone asked to cancel; the worker checks it while the job runs.
alter table job add column cancel_requested integer not null default 0;

create index job_claim on job (kind, lease_until, created_at);

-- Model versions are numbered per project and never reused, as in LFV.
alter table project add column next_model_version integer not null default 1;

create table model_version (
    id text primary key,            -- random hex id; the artifact file and jobs refer to it
    project_id text not null references project (id) on delete cascade,
    version integer not null,       -- LFV ModelVersion, 1, 2, 3, ... per project
    description text,               -- LFV Description (1-500 chars) or null
    status text not null,           -- LFV ModelStatus: TRAINING, TRAINED, TRAINING_FAILED, STARTING_HOSTING, HOSTED, ...
    status_message text,            -- a sentence the user can act on
    output_bucket text not null,    -- OutputConfig.S3Location.Bucket: where the evaluation files go
    output_prefix text not null,    -- OutputConfig.S3Location.Prefix ('' when none)
    kms_key_id text,                -- accepted and reported; Vigil's own storage does not use KMS
    performance text,               -- JSON {F1Score, Recall, Precision} once trained
    evaluation_manifest_key text,   -- S3 key of the evaluation manifest (in output_bucket)
    evaluation_result_key text,     -- S3 key of the evaluation result JSON
    evaluation_end_at bigint,       -- when the evaluation finished (ms)
    evaluation text,                -- the engine's full evaluation (curves, per-image results) as JSON, for the console
    trained_threshold double precision, -- the threshold training chose
    threshold double precision,     -- the threshold in use (the console's slider may move it)
    artifact text,                  -- model file, relative to the data directory
    min_inference_units integer,    -- while hosted (StartModel)
    max_inference_units integer,
    training_ms bigint,             -- wall time of the training job
    created_at bigint not null,
    updated_at bigint not null,
    unique (project_id, version)
);

create index model_version_page on model_version (project_id, version);

-- Tags of model versions (LFV TagResource), at most 200 per model.
create table model_tag (
    model_id text not null references model_version (id) on delete cascade,
    tag_key text not null,
    tag_value text not null,
    created_at bigint not null,
    updated_at bigint not null,
    primary key (model_id, tag_key)
);
