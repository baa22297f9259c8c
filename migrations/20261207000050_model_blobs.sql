-- A model version is blobs: its model file and its evaluation live in the blob store, referenced by hash from
-- the version's row, so a version can travel (to an edge device, to another server) like any other bytes.
-- Versions trained before this migration keep `artifact` (a file under the data directory) and `evaluation`
-- (JSON text) until the server's start-up moves them into the blob store and clears both.
alter table model_version add column artifact_hash text;    -- blob: the engine's model file
alter table model_version add column evaluation_hash text;  -- blob: the evaluation JSON the model page reads

-- Every blob a model version keeps alive: its model file, its evaluation, and the test images and masks its
-- evaluation shows (they outlive the dataset entries). Blob collection reads these rows, never the JSON.
create table model_blob (
    model_id text not null,  -- model_version.id; the rows go with the version (models::delete)
    hash text not null,      -- blob
    created_at bigint not null,
    updated_at bigint not null,
    primary key (model_id, hash)
);
create index model_blob_hash on model_blob (hash);
