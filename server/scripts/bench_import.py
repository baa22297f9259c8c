#!/usr/bin/env python3
"""Import benchmark: how fast Vigil takes in a data set through each import path, with figures printed.

Starts a private s3s-fs (S3-compatible server) and a Vigil server on free ports, then, for every JPEG/PNG
under DATA (labelled by a `normal` or `anomaly` folder anywhere in its path, else unlabelled):
  1. CreateDataset from a Ground Truth manifest in the bucket (the LFV API, through boto3),
  2. the export of that dataset as a zip (GET /export/...),
  3. the import of that zip into a second project (POST /import/...),
and prints images, bytes, seconds and images per second for each.

    server/scripts/bench_import.py [--vigil target/release/vigil] [DATA]

DATA defaults to ../shared/datasets/lfv-circuitboard. Needs the set-up's .venv (boto3 is installed by the
test command) and s3s-fs on PATH (also installed by the test command).
"""
import argparse, http.cookiejar, json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(url, proc, what):
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except Exception:
            if proc.poll() is not None:
                sys.exit(f"{what} exited early")
            time.sleep(0.1)
    sys.exit(f"{what} did not start")


def settle(lfv, project, dataset_type):
    while True:
        d = lfv.describe_dataset(ProjectName=project, DatasetType=dataset_type)["DatasetDescription"]
        if not d["Status"].endswith("IN_PROGRESS"):
            return d
        time.sleep(0.05)


def import_manifest(lfv, project, dataset_type, bucket, key):
    """CreateDataset from a Ground Truth manifest in the bucket; waits for it; returns (description, seconds)."""
    t = time.perf_counter()
    lfv.create_dataset(ProjectName=project, DatasetType=dataset_type,
                       DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Key": key}}})
    d = settle(lfv, project, dataset_type)
    return d, time.perf_counter() - t


def write_manifest(images, bucket_dir, bucket, key_prefix, manifest_name):
    """Copies IMAGES into BUCKET_DIR/KEY_PREFIX/ and writes a Ground Truth manifest of them, labelled by a
    `normal` or `anomaly` folder anywhere in their path (else unlabelled)."""
    lines = []
    for i, p in enumerate(images):
        key = f"{key_prefix}/{i:05d}-{os.path.basename(p)}"
        os.makedirs(os.path.dirname(os.path.join(bucket_dir, key)), exist_ok=True)
        shutil.copyfile(p, os.path.join(bucket_dir, key))
        parts = p.lower().split(os.sep)
        line = {"source-ref": f"s3://{bucket}/{key}"}
        label = "anomaly" if "anomaly" in parts else "normal" if "normal" in parts else None
        if label:
            line["anomaly-label"] = 1 if label == "anomaly" else 0
            line["anomaly-label-metadata"] = {"class-name": label, "human-annotated": "yes",
                                              "type": "groundtruth/image-classification", "job-name": "bench"}
        lines.append(json.dumps(line))
    with open(os.path.join(bucket_dir, manifest_name), "w") as f:
        f.write("\n".join(lines) + "\n")


def start_servers(vigil_bin, work, extra_env=None):
    """A private s3s-fs serving WORK/s3 (one folder per bucket) and a Vigil server using it, on free ports;
    returns (s3 process, vigil process, base URL, boto3 lookoutvision client). The caller terminates both."""
    import boto3, botocore.config
    s3_port, vigil_port = free_port(), free_port()
    s3 = subprocess.Popen(["s3s-fs", "--host", "127.0.0.1", "--port", str(s3_port), "--access-key", "benchkey",
                           "--secret-key", "benchsecret", os.path.join(work, "s3")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, VIGIL_ADDR=f"127.0.0.1:{vigil_port}", DATABASE_URL=f"sqlite://{work}/vigil.db",
               VIGIL_DATA_DIR=f"{work}/data", VIGIL_S3_ENDPOINT=f"http://127.0.0.1:{s3_port}",
               VIGIL_S3_ACCESS_KEY_ID="benchkey", VIGIL_S3_SECRET_ACCESS_KEY="benchsecret", RUST_LOG="warn",
               VIGIL_ACCESS_KEY_ID="AKIDBENCH", VIGIL_SECRET_ACCESS_KEY="bench-secret", VIGIL_ADMIN_PASSWORD="bench-admin",
               **(extra_env or {}))
    vigil = subprocess.Popen([vigil_bin, "serve"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{vigil_port}"
    wait_for(f"http://127.0.0.1:{s3_port}/", s3, "s3s-fs")
    wait_for(f"{base}/2020-11-20/projects", vigil, "vigil")
    lfv = boto3.client("lookoutvision", endpoint_url=base, region_name="us-east-1",
                       aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench-secret",
                       config=botocore.config.Config(retries={"max_attempts": 1}))
    return s3, vigil, base, lfv


def stop_servers(s3, vigil, work):
    """Ends what `start_servers` started and removes the work folder."""
    vigil.terminate()
    s3.terminate()
    vigil.wait()
    s3.wait()
    shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=os.path.join(ROOT, "..", "shared", "datasets", "lfv-circuitboard"))
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    args = ap.parse_args()

    images = []
    for dirpath, _, files in os.walk(args.data):
        for f in sorted(files):
            if f.lower().endswith((".jpg", ".jpeg", ".png")):
                images.append(os.path.join(dirpath, f))
    if not images:
        sys.exit(f"no images under {args.data}")
    total_bytes = sum(os.path.getsize(p) for p in images)

    work = tempfile.mkdtemp(prefix="vigil-bench-import-")
    bucket_dir = os.path.join(work, "s3", "bench")
    os.makedirs(bucket_dir)
    write_manifest(images, bucket_dir, "bench", "images", "train.manifest")

    s3, vigil, base, lfv = start_servers(args.vigil, work)
    try:
        # The console's endpoints (export, archive import) need a session: sign in as the admin.
        console = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        console.open(f"{base}/auth/signin", data=urllib.parse.urlencode(
            {"name": "admin", "password": "bench-admin", "next": "/"}).encode()).read()
        print(f"data: {args.data}: {len(images)} images, {total_bytes / 1e6:.1f} MB")
        print(f"{'path':<34} {'images':>7} {'MB':>8} {'seconds':>8} {'images/s':>9}")

        def row(name, n, nbytes, secs):
            print(f"{name:<34} {n:>7} {nbytes / 1e6:>8.1f} {secs:>8.2f} {n / secs if secs > 0 else 0:>9.1f}")

        lfv.create_project(ProjectName="bench")
        d, secs = import_manifest(lfv, "bench", "train", "bench", "train.manifest")
        assert d["Status"] == "CREATE_COMPLETE", d
        n = d["ImageStats"]["Total"]
        row("CreateDataset from S3 manifest", n, total_bytes, secs)

        t = time.perf_counter()
        archive = console.open(f"{base}/export/bench/train.zip").read()
        row("export as zip (streamed)", n, len(archive), time.perf_counter() - t)

        lfv.create_project(ProjectName="copy")
        t = time.perf_counter()
        req = urllib.request.Request(f"{base}/import/copy/train?name=bench.zip", data=archive, method="POST",
                                     headers={"Content-Type": "application/zip"})
        console.open(req).read()
        d = settle(lfv, "copy", "train")
        secs = time.perf_counter() - t
        assert d["Status"] == "CREATE_COMPLETE", d
        row("archive import (upload + import)", d["ImageStats"]["Total"], len(archive), secs)

        t = time.perf_counter()
        pages = 0
        token = None
        while True:
            kw = {"NextToken": token} if token else {}
            r = lfv.list_dataset_entries(ProjectName="copy", DatasetType="train", MaxResults=100, **kw)
            pages += 1
            token = r.get("NextToken")
            if not token:
                break
        row(f"ListDatasetEntries ({pages} pages of 100)", d["ImageStats"]["Total"], 0, time.perf_counter() - t)
    finally:
        stop_servers(s3, vigil, work)


if __name__ == "__main__":
    main()
