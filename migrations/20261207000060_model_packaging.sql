-- Model packaging jobs (LFV's StartModelPackagingJob): a trained model version packaged as an AWS IoT Greengrass
-- V2 component (`edge::package`) whose files are written to the job's S3 output location by a background job.
-- The row keeps the package's small files (manifest and recipes) so the package can be rebuilt or downloaded
-- without reading S3 again; its model file is the version's model blob (`model_version.artifact_hash`).
create table model_packaging_job (
    id text primary key,
    project_id text not null references project (id) on delete cascade,
    model_id text not null references model_version (id) on delete cascade,  -- also deleted with the version (models::delete)
    model_version bigint not null,         -- LFV ModelVersion, for display
    job_name text not null,                -- LFV JobName: given, or generated at StartModelPackagingJob
    description text,                      -- LFV ModelPackagingJobDescription
    configuration text not null,           -- JSON: packaging::Greengrass (ComponentVersion resolved)
    status text not null,                  -- CREATED, RUNNING, SUCCEEDED, FAILED
    status_message text,
    component_arn text,                    -- once SUCCEEDED: the Greengrass component version's ARN
    component_name text,                   -- once SUCCEEDED
    component_version text,                -- once SUCCEEDED
    manifest text,                         -- once SUCCEEDED: vigil-model.json as written
    recipe_json text,                      -- once SUCCEEDED: recipe.json as written
    recipe_yaml text,                      -- once SUCCEEDED: recipe.yaml as written
    created_at bigint not null,
    updated_at bigint not null,
    unique (project_id, job_name)
);

create index model_packaging_job_model on model_packaging_job (model_id);
create index model_packaging_job_listing on model_packaging_job (project_id, created_at);
