-- A project's anomaly labels (names and mask colours), kept even while no mask uses them, the labels each
-- entry's mask uses (for the gallery's anomaly-type filter), and durable background jobs.

create table anomaly_label (
    project_id text not null references project (id) on delete cascade,
    name text not null,             -- LFV's rule: letters, digits, '-' and '_'
    color text not null,            -- '#RRGGBB', the colour new masks paint it in
    created_at bigint not null,
    updated_at bigint not null,
    primary key (project_id, name)
);

-- ',cracked,scratch,' for an entry whose colour map names those labels, '' for none, null until computed
-- (entries written before this migration are filled in at start-up).
alter table dataset_entry add column anomaly_types text;

-- Background jobs (imports and updates), kept until they finish so that a restart resumes them instead of
-- losing them. A job re-run from the start writes the same entries (imports upsert by source-ref; an update
-- commits all or nothing).
create table job (
    id text primary key,
    dataset_id text not null,       -- the dataset the job fills or changes
    other_dataset_id text,          -- MVTec imports fill a test dataset too
    spec text not null,             -- what to do, as JSON (jobs::Job)
    attempts integer not null,      -- starts so far, including after restarts
    created_at bigint not null,
    updated_at bigint not null
);
