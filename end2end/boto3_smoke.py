"""The LFV API through boto3, the Python client most LFV scripts used.

Run by server/scripts/test.sh against the end-to-end server: VIGIL_E2E_URL gives its address. Exits non-zero
on the first failed check. botocore must be pinned to 1.40.60: later releases dropped the lookoutvision model.
"""
import os
import sys

import boto3
import botocore

URL = os.environ["VIGIL_E2E_URL"]
lfv = boto3.client("lookoutvision", endpoint_url=URL, region_name="us-east-1",
                   aws_access_key_id="AKIDBOTO3", aws_secret_access_key="secret")
checks = 0


def check(cond, what):
    global checks
    if not cond:
        sys.exit(f"FAILED: {what}")
    checks += 1


def error_code(fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


prefix = f"boto3-{os.getpid()}"
meta = lfv.create_project(ProjectName=f"{prefix}-a")["ProjectMetadata"]
check(meta["ProjectArn"].endswith(f":project/{prefix}-a"), "CreateProject returns the ARN")
check(hasattr(meta["CreationTimestamp"], "year"), "CreationTimestamp parses as a datetime")
check(error_code(lfv.create_project, ProjectName=f"{prefix}-a") == ("ConflictException", 409), "duplicate → ConflictException")
check(error_code(lfv.create_project, ProjectName="bad name") == ("ValidationException", 400), "bad name → ValidationException")
check(error_code(lfv.describe_project, ProjectName=f"{prefix}-missing") == ("ResourceNotFoundException", 404), "missing → 404")

# Idempotency with an explicit token.
a = lfv.create_project(ProjectName=f"{prefix}-t", ClientToken="boto3-token-1")["ProjectMetadata"]
b = lfv.create_project(ProjectName=f"{prefix}-t", ClientToken="boto3-token-1")["ProjectMetadata"]
check(a == b, "same ClientToken → same answer")

for i in range(5):
    lfv.create_project(ProjectName=f"{prefix}-p{i}")
names = [p["ProjectName"] for page in lfv.get_paginator("list_projects").paginate(PaginationConfig={"PageSize": 2})
         for p in page["Projects"]]
check(len(names) == len(set(names)), "pagination lists each project once")
check({f"{prefix}-p{i}" for i in range(5)} <= set(names), "pagination lists every project")
check(error_code(lfv.list_projects, MaxResults=101)[0] == "ValidationException", "MaxResults 101 → ValidationException")

# An empty dataset, its stats, entries and deletion.
r = lfv.create_dataset(ProjectName=f"{prefix}-a", DatasetType="train")
check(r["ResponseMetadata"]["HTTPStatusCode"] == 202, "CreateDataset answers 202")
check(r["DatasetMetadata"]["Status"] == "CREATE_COMPLETE", "an empty dataset is complete at once")
d = lfv.describe_dataset(ProjectName=f"{prefix}-a", DatasetType="train")["DatasetDescription"]
check(d["ImageStats"] == {"Total": 0, "Labeled": 0, "Normal": 0, "Anomaly": 0}, "ImageStats of an empty dataset")
check(lfv.list_dataset_entries(ProjectName=f"{prefix}-a", DatasetType="train")["DatasetEntries"] == [], "no entries")
check(error_code(lfv.update_dataset_entries, ProjectName=f"{prefix}-a", DatasetType="train",
                 Changes=b"not json")[0] == "ValidationException", "malformed Changes → ValidationException")
datasets = lfv.describe_project(ProjectName=f"{prefix}-a")["ProjectDescription"]["Datasets"]
check([x["DatasetType"] for x in datasets] == ["train"], "DescribeProject lists the dataset")
check(error_code(lfv.delete_project, ProjectName=f"{prefix}-a")[0] == "ConflictException", "a project with datasets is not deleted")
lfv.delete_dataset(ProjectName=f"{prefix}-a", DatasetType="train")
check(lfv.delete_project(ProjectName=f"{prefix}-a")["ProjectArn"].endswith(f"project/{prefix}-a"), "DeleteProject")
print(f"boto3 smoke test: {checks} checks passed (boto3 {boto3.__version__}, botocore {botocore.__version__})")
