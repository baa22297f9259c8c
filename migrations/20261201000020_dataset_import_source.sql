-- Where the console's import into a dataset came from, so that a failed import can be run again from the
-- dataset's page (issue 11: a failed import is settled, not a dead end).
-- import_source: the import job's spec (JSON, as in job.spec) that created the dataset; null for datasets
-- created otherwise (uploads, CreateDataset through the API, archives, whose upload is not kept).
alter table dataset add column import_source text;
