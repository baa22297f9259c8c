-- Datasets, their entries (images with labels and masks), content-addressed blobs and import reports.

-- One train and optionally one test dataset per project (LFV's DatasetType).
create table dataset (
    id text primary key,
    project_id text not null references project (id) on delete cascade,
    dataset_type text not null,     -- 'train' or 'test'
    status text not null,           -- LFV DatasetStatus, e.g. CREATE_IN_PROGRESS, CREATE_COMPLETE
    status_message text,            -- a sentence a person can act on
    created_at bigint not null,
    updated_at bigint not null,
    unique (project_id, dataset_type)
);

-- Image and mask bytes, stored once by content (sha256) in the blob store.
create table blob (
    hash text primary key,          -- sha256 of the bytes, hex
    size bigint not null,           -- bytes
    content_type text not null,     -- image/jpeg or image/png
    width integer not null,         -- pixels, after EXIF orientation
    height integer not null,
    created_at bigint not null,
    updated_at bigint not null
);

-- One image in a dataset, as LFV's JSON line plus the columns the filters need.
create table dataset_entry (
    id text primary key,
    dataset_id text not null references dataset (id) on delete cascade,
    source_ref text not null,       -- the line's source-ref (s3:// URI, or vigil://upload/... for uploads)
    image_hash text not null references blob (hash),
    label text,                     -- 'normal', 'anomaly', or null when unlabelled
    mask_hash text references blob (hash),  -- PNG mask in the line's colour map, if any
    entry text not null,            -- the JSON line returned by ListDatasetEntries
    created_at bigint not null,
    updated_at bigint not null,
    unique (dataset_id, source_ref)
);

create index dataset_entry_page on dataset_entry (dataset_id, created_at, id);

-- What an import or update skipped, and why (per line), for the latest import into a dataset.
create table import_issue (
    id text primary key,
    dataset_id text not null references dataset (id) on delete cascade,
    line integer,                   -- 1-based manifest line, null for folder imports
    source_ref text,                -- the object or file concerned, when known
    reason text not null,           -- e.g. 'object not found', 'not a JPEG or PNG image'
    created_at bigint not null,
    updated_at bigint not null
);

create index import_issue_dataset on import_issue (dataset_id, line);
