#!/usr/bin/env python3
"""Hosting benchmark: DetectAnomalies over HTTP through boto3, with figures printed.

Starts a private s3s-fs and a Vigil server (as bench_import.py does), imports a data set through manifests
(images under a `test` folder go to the test dataset, the rest to train; labels from `normal` / `anomaly`
folders), trains one model version (CreateModel → TRAINED, timed), then for 1, 2 and 4 inference units:
StartModel → HOSTED (timed), single-client latency p50 / p99 over the test images, throughput with 8 concurrent
clients (ThrottlingException answers counted and retried after a pause), the server's resident memory, and
StopModel. Then Vigil's extension: a trial over the test dataset (model not hosted) and a batch over the test
images' S3 prefix through the hosted model (1 unit) to S3, each timed from the request to COMPLETED. With --five
it trains four more versions and hosts all five at once for the memory figure.

    server/scripts/bench_detect.py [--vigil target/release/vigil] [--requests 64] [--five] [DATA]

DATA defaults to ../shared/datasets/lfv-aliens. The bare backbone forward at the model's input size, to
compare with, is printed by `vigil bench` (README, Benchmark).
"""
import argparse, os, shutil, statistics, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_import import ROOT, settle, start_servers, stop_servers, write_manifest  # noqa: E402


def rss_mib(pid):
    """(resident, peak resident) memory of a process, MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return out.get("VmRSS", 0.0), out.get("VmHWM", 0.0)


def wait_status(lfv, project, version, passing):
    while True:
        d = lfv.describe_model(ProjectName=project, ModelVersion=version)["ModelDescription"]
        if d["Status"] not in passing:
            return d
        time.sleep(0.05)


def detect(lfv, project, version, body, content_type):
    """One DetectAnomalies call, retried after ThrottlingException; returns (seconds, throttled answers)."""
    throttled = 0
    while True:
        t = time.perf_counter()
        try:
            lfv.detect_anomalies(ProjectName=project, ModelVersion=version, Body=body, ContentType=content_type)
            return time.perf_counter() - t, throttled
        except lfv.exceptions.ThrottlingException:
            throttled += 1
            time.sleep(0.05)


def vigil_call(base, method, path, body=None):
    """A signed call to Vigil's /vigil/v1 extension (SigV4 with the bench key, as the LFV API)."""
    import json as _json, urllib.request
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    data = _json.dumps(body).encode() if body is not None else None
    req = AWSRequest(method=method, url=f"{base}/vigil/v1{path}", data=data,
                     headers={"Content-Type": "application/json"} if data else {})
    SigV4Auth(Credentials("AKIDBENCH", "bench-secret"), "lookoutvision", "us-east-1").add_auth(req)
    r = urllib.request.Request(req.url, data=data, method=method, headers=dict(req.headers.items()))
    with urllib.request.urlopen(r) as resp:
        return _json.loads(resp.read() or b"{}")


def run_until_done(base, create_path, body, describe, key):
    """Starts a trial or batch and polls it; returns (seconds, final description)."""
    t = time.perf_counter()
    created = vigil_call(base, "POST", create_path, body)[key]
    name = created.get("TrialName") or created.get("BatchId")
    while True:
        d = vigil_call(base, "GET", describe(name))[key]
        if d["Status"] != "RUNNING":
            return time.perf_counter() - t, d
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=os.path.join(ROOT, "..", "shared", "datasets", "lfv-aliens"))
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--requests", type=int, default=64, help="requests per measurement")
    ap.add_argument("--five", action="store_true", help="also host five model versions at once (memory)")
    args = ap.parse_args()
    import boto3, botocore.config

    train, test = [], []
    for dirpath, _, files in os.walk(args.data):
        for f in sorted(files):
            if f.lower().endswith((".jpg", ".jpeg", ".png")) and "mask" not in dirpath.lower():
                p = os.path.join(dirpath, f)
                (test if "test" in os.path.relpath(p, args.data).lower().split(os.sep) else train).append(p)
    if not test:
        test = train[::5]
        train = [p for p in train if p not in test]
    if not train:
        sys.exit(f"no images under {args.data}")

    work = tempfile.mkdtemp(prefix="vigil-bench-detect-")
    bucket_dir = os.path.join(work, "s3", "bench")
    os.makedirs(bucket_dir)
    write_manifest(train, bucket_dir, "bench", "train", "train.manifest")
    write_manifest(test, bucket_dir, "bench", "test", "test.manifest")
    os.makedirs(os.path.join(work, "s3", "out"))
    s3, vigil, base, lfv = start_servers(args.vigil, work)
    # One client per thread (boto3 clients are not shared across threads here).
    clients = [boto3.client("lookoutvision", endpoint_url=base, region_name="us-east-1", aws_access_key_id="AKIDBENCH",
                            aws_secret_access_key="bench-secret",
                            config=botocore.config.Config(retries={"max_attempts": 1}, max_pool_connections=4))
               for _ in range(8)]
    bodies = []
    for p in test:
        with open(p, "rb") as f:
            bodies.append((f.read(), "image/png" if p.lower().endswith(".png") else "image/jpeg"))
    try:
        print(f"data: {args.data}: {len(train)} training and {len(test)} test images")
        lfv.create_project(ProjectName="bench")
        for t in ("train", "test"):
            lfv.create_dataset(ProjectName="bench", DatasetType=t,
                               DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": "bench", "Key": f"{t}.manifest"}}})
            d = settle(lfv, "bench", t)
            assert d["Status"] == "CREATE_COMPLETE", d

        def train_version():
            t = time.perf_counter()
            v = lfv.create_model(ProjectName="bench", OutputConfig={"S3Location": {"Bucket": "out", "Prefix": "eval/"}})
            version = v["ModelMetadata"]["ModelVersion"]
            d = wait_status(lfv, "bench", version, ("TRAINING",))
            assert d["Status"] == "TRAINED", d
            return version, time.perf_counter() - t, d

        version, secs, d = train_version()
        perf = d.get("Performance", {})
        print(f"CreateModel → TRAINED: {secs:.1f} s (F1 {perf.get('F1Score', 0):.3f}, "
              f"precision {perf.get('Precision', 0):.3f}, recall {perf.get('Recall', 0):.3f})")
        print(f"RSS after training: {rss_mib(vigil.pid)[0]:.0f} MiB")
        print(f"{'units':>5} {'→HOSTED s':>10} {'p50 ms':>7} {'p99 ms':>7} {'1 client img/s':>15} "
              f"{'8 clients img/s':>16} {'429s':>5} {'RSS MiB':>8}")
        for units in (1, 2, 4):
            t = time.perf_counter()
            lfv.start_model(ProjectName="bench", ModelVersion=version, MinInferenceUnits=units, MaxInferenceUnits=units)
            d = wait_status(lfv, "bench", version, ("STARTING_HOSTING",))
            assert d["Status"] == "HOSTED", d
            hosted_s = time.perf_counter() - t
            # One client, one request at a time.
            lat = []
            t = time.perf_counter()
            for i in range(args.requests):
                body, ct = bodies[i % len(bodies)]
                lat.append(detect(lfv, "bench", version, body, ct)[0])
            one = args.requests / (time.perf_counter() - t)
            lat.sort()
            p50 = statistics.median(lat) * 1000
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
            # Eight clients at once.
            throttled = [0] * 8

            def client(k):
                for i in range(k, args.requests, 8):
                    body, ct = bodies[i % len(bodies)]
                    throttled[k] += detect(clients[k], "bench", version, body, ct)[1]

            t = time.perf_counter()
            threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            eight = args.requests / (time.perf_counter() - t)
            rss = rss_mib(vigil.pid)[0]
            print(f"{units:>5} {hosted_s:>10.2f} {p50:>7.1f} {p99:>7.1f} {one:>15.1f} {eight:>16.1f} "
                  f"{sum(throttled):>5} {rss:>8.0f}")
            lfv.stop_model(ProjectName="bench", ModelVersion=version)
            wait_status(lfv, "bench", version, ("STOPPING_HOSTING",))
        # Trial detection (model file, not hosted) and a batch through the hosted model (1 unit), end to end.
        secs, d = run_until_done(base, "/projects/bench/trials", {"TrialName": "bench", "ModelVersion": version, "Source": "dataset:test"},
                                 lambda n: f"/projects/bench/trials/{n}", "Trial")
        assert d["Status"] == "COMPLETED", d
        print(f"trial over the test dataset: {d['ImageCount']} images in {secs:.1f} s ({d['ImageCount'] / secs:.1f} img/s, heat maps kept)")
        lfv.start_model(ProjectName="bench", ModelVersion=version, MinInferenceUnits=1, MaxInferenceUnits=1)
        assert wait_status(lfv, "bench", version, ("STARTING_HOSTING",))["Status"] == "HOSTED"
        secs, d = run_until_done(base, f"/projects/bench/models/{version}/batches", {"Source": "s3://bench/test/", "Output": "s3://out/batches/"},
                                 lambda n: f"/projects/bench/batches/{n}", "Batch")
        assert d["Status"] == "COMPLETED", d
        print(f"batch over s3://bench/test/ to S3, 1 unit: {d['ImageCount']} images in {secs:.1f} s ({d['ImageCount'] / secs:.1f} img/s)")
        lfv.stop_model(ProjectName="bench", ModelVersion=version)
        wait_status(lfv, "bench", version, ("STOPPING_HOSTING",))
        if args.five:
            versions = [version] + [train_version()[0] for _ in range(4)]
            for v in versions:
                lfv.start_model(ProjectName="bench", ModelVersion=v, MinInferenceUnits=1)
            for v in versions:
                assert wait_status(lfv, "bench", v, ("STARTING_HOSTING",))["Status"] == "HOSTED"
            for v in versions:
                body, ct = bodies[0]
                detect(lfv, "bench", v, body, ct)
            rss, peak = rss_mib(vigil.pid)
            print(f"five models hosted: RSS {rss:.0f} MiB (peak {peak:.0f} MiB)")
        print(f"peak RSS of the server: {rss_mib(vigil.pid)[1]:.0f} MiB")
    finally:
        stop_servers(s3, vigil, work)


if __name__ == "__main__":
    main()
