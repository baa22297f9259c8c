"""The LFV API through boto3, the Python client most LFV scripts used.

Run by server/scripts/test.sh against the end-to-end server: VIGIL_E2E_URL gives its address. Exits non-zero
on the first failed check. botocore must be pinned to 1.40.60: later releases dropped the lookoutvision model.
"""
import os
import sys

import boto3
import botocore
import botocore.config

URL = os.environ["VIGIL_E2E_URL"]
KEY = os.environ["VIGIL_E2E_ACCESS_KEY_ID"]
SECRET = os.environ["VIGIL_E2E_SECRET_ACCESS_KEY"]
lfv = boto3.client("lookoutvision", endpoint_url=URL, region_name="us-east-1",
                   aws_access_key_id=KEY, aws_secret_access_key=SECRET)
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

# Signatures: calls signed with a wrong secret, an unknown key, a stale date or no signature at all are
# refused with the error AWS sends for each, and change nothing.
def client(key, secret):
    return boto3.client("lookoutvision", endpoint_url=URL, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


check(error_code(client(KEY, "wrong-secret").create_project, ProjectName=f"{prefix}-wrong")
      == ("InvalidSignatureException", 403), "wrong secret → InvalidSignatureException")
check(error_code(client("AKIDUNKNOWN", SECRET).create_project, ProjectName=f"{prefix}-unknown")
      == ("UnrecognizedClientException", 403), "unknown key → UnrecognizedClientException")
unsigned = boto3.client("lookoutvision", endpoint_url=URL, region_name="us-east-1",
                        config=botocore.config.Config(signature_version=botocore.UNSIGNED))
check(error_code(unsigned.create_project, ProjectName=f"{prefix}-unsigned")
      == ("MissingAuthenticationTokenException", 403), "unsigned → MissingAuthenticationTokenException")


# A stale date: botocore signs with botocore.auth.get_current_datetime; make its clock 20 minutes slow.
import datetime
import botocore.auth

real_now = botocore.auth.get_current_datetime
botocore.auth.get_current_datetime = lambda *a, **kw: real_now(*a, **kw) - datetime.timedelta(minutes=20)
try:
    code, status = error_code(lfv.create_project, ProjectName=f"{prefix}-stale")
finally:
    botocore.auth.get_current_datetime = real_now
check((code, status) == ("InvalidSignatureException", 403), f"stale date → InvalidSignatureException (got {code})")
# Percent-encoded ARNs in the path and repeated query keys are signed and verified like any call.
code, status = error_code(lfv.list_tags_for_resource,
                          ResourceArn=f"arn:aws:lookoutvision:us-east-1:000000000000:project/{prefix}-none")
check(status != 403, f"a signed call with an ARN in its path passes the signature check (got {code})")
names_before = {p["ProjectName"] for p in lfv.list_projects()["Projects"]}
check(not any(n.startswith(f"{prefix}-") for n in names_before), "refused calls created nothing")
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

# Model packaging: the shapes through botocore. This server has no S3 endpoint and no trained model, so only the
# calls that need neither: a listing, a missing job, a refused configuration and a missing model version (the
# whole job, S3 files included, is tested in server/tests/it/packaging.rs).
greengrass = {"ComponentName": "com.example.boto3", "S3OutputLocation": {"Bucket": "vigil-e2e-out", "Prefix": "edge/"},
              "TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"}}
check(lfv.list_model_packaging_jobs(ProjectName=f"{prefix}-t")["ModelPackagingJobs"] == [], "no packaging jobs yet")
check(error_code(lfv.describe_model_packaging_job, ProjectName=f"{prefix}-t", JobName="missing")
      == ("ResourceNotFoundException", 404), "missing packaging job → ResourceNotFoundException")
check(error_code(lfv.start_model_packaging_job, ProjectName=f"{prefix}-t", ModelVersion="1",
                 Configuration={"Greengrass": dict(greengrass, TargetDevice="jetson_xavier")})
      == ("ValidationException", 400), "TargetDevice and TargetPlatform together → ValidationException")
check(error_code(lfv.start_model_packaging_job, ProjectName=f"{prefix}-t", ModelVersion="1",
                 Configuration={"Greengrass": greengrass})
      == ("ResourceNotFoundException", 404), "packaging a missing model version → ResourceNotFoundException")

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
