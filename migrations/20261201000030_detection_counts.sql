-- DetectAnomalies counted per model version and hour, for the dashboard and /metrics (LFV's CloudWatch
-- metrics, namespace AWS/LookoutVision). Hosted models count in memory and add their counts here every few
-- seconds, so several Vigil processes sharing one database add up. Rows outlive the model version (the
-- dashboard's history stays true after a DeleteModel) and go with their project.
create table detection_hour (
    project_id text not null,
    model_id text not null,
    model_version integer not null,  -- LFV ModelVersion, kept for the dashboard once the model is deleted
    hour bigint not null,            -- hours since the epoch (UTC)
    processed bigint not null default 0,   -- ProcessedImageCount (successful detections)
    anomalous bigint not null default 0,   -- DetectedAnomalyCount
    invalid bigint not null default 0,     -- InvalidImageCount
    throttled bigint not null default 0,   -- ThrottledCount
    errors bigint not null default 0,      -- ErrorCount (server-side failures)
    time_us bigint not null default 0,     -- sum of detection times of processed images (Time)
    primary key (model_id, hour)
);

create index detection_hour_project on detection_hour (project_id, hour);
