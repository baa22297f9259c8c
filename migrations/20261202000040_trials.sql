-- Trial detections (LFV's console loop: run a model version over new images, verify its verdicts, add the
-- verified images to the training dataset) and batch runs (a hosted model over a folder or an S3 prefix,
-- results written as JSON lines). Both are background jobs; a trial keeps one row per image, a batch only
-- its counts and the place its results went.
create table trial (
    id text primary key,
    project_id text not null references project (id) on delete cascade,
    model_id text not null references model_version (id) on delete cascade,
    model_version bigint not null,  -- LFV ModelVersion, for display
    kind text not null,              -- 'trial' or 'batch'
    name text not null,              -- the trial's name (unique per project and kind); a batch's id
    source text not null,            -- what it reads, as the user gave it: 'dataset:train', 's3://b/p/', 'upload', a folder
    output text,                     -- batch: 's3://b/p/' or 'download'
    status text not null,            -- RUNNING, COMPLETED, FAILED, CANCELLED
    status_message text,
    total bigint not null default 0,
    processed bigint not null default 0,
    anomalous bigint not null default 0,
    failed bigint not null default 0,
    created_at bigint not null,
    updated_at bigint not null,
    unique (project_id, kind, name)
);

create index trial_model on trial (model_id);

create table trial_image (
    trial_id text not null references trial (id) on delete cascade,
    seq bigint not null,            -- 0, 1, 2, ... in source order
    name text not null,              -- where it came from (source-ref, S3 URI or file name)
    image_hash text not null,        -- blob
    size bigint not null,            -- bytes
    content_type text not null,
    width bigint not null,
    height bigint not null,
    done bigint not null default 0, -- 1 once detected (or refused)
    error text,                      -- why the image could not be run
    is_anomalous bigint,
    confidence double precision,
    score double precision,
    heat_hash text,                  -- blob: the heat map as a transparent PNG
    mask_hash text,                  -- blob: the segmentation mask (segmentation models)
    anomalies text,                  -- JSON [[name, colour, area], ...] of the anomaly types found
    verdict text,                    -- null, 'correct' or 'incorrect'
    added_at bigint,                 -- when it was added to a dataset
    primary key (trial_id, seq)
);
