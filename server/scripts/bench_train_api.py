#!/usr/bin/env python3
"""Training through the LFV API, as a user meets it: CreateModel to TRAINED, and the server's memory after.

Starts a private s3s-fs and a Vigil server (`bench_import.start_servers`; SQLite, local blobs, the server's own
torch threads), then for every DATA folder: imports its images by Ground Truth manifests (`train/` and `test/`
as the training and test datasets when both exist, else one training dataset), calls CreateModel and polls
DescribeModel until TRAINED, and prints the seconds and the server's resident memory (VmRSS) after the
training. `--repeat N` trains the first folder N times more (does the server's memory come back?).

    server/scripts/bench_train_api.py [--vigil target/release/vigil] [--repeat 2] DATA...
"""
import argparse, os, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_import import ROOT, import_manifest, start_servers, stop_servers, write_manifest  # noqa: E402


def images_under(d):
    out = []
    for dirpath, _, files in os.walk(d):
        out += [os.path.join(dirpath, f) for f in sorted(files) if f.lower().endswith((".jpg", ".jpeg", ".png"))
                and "mask" not in dirpath.lower() and "ground_truth" not in dirpath.lower()]
    return out


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def train(lfv, project):
    t = time.perf_counter()
    v = lfv.create_model(ProjectName=project, OutputConfig={"S3Location": {"Bucket": "bench", "Prefix": f"out/{project}/"}})
    version = v["ModelMetadata"]["ModelVersion"]
    while True:
        d = lfv.describe_model(ProjectName=project, ModelVersion=version)["ModelDescription"]
        if d["Status"] != "TRAINING":
            break
        time.sleep(0.2)
    return d, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="+")
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vigil-bench-train-")
    bucket_dir = os.path.join(work, "s3", "bench")
    os.makedirs(bucket_dir)
    s3, vigil, _base, lfv = start_servers(a.vigil, work)
    try:
        print(f"server: VmRSS {rss_mib(vigil.pid):.0f} MiB at start")
        print(f"{'data set':<22} {'train':>6} {'test':>5} {'import s':>9} {'train s':>8} {'status':<16} {'F1':>6} {'VmRSS MiB':>10}")
        first = None
        for n, d in enumerate(a.data):
            project = f"p{n}"
            lfv.create_project(ProjectName=project)
            split = os.path.isdir(os.path.join(d, "train")) and os.path.isdir(os.path.join(d, "test"))
            parts = [("train", os.path.join(d, "train")), ("test", os.path.join(d, "test"))] if split else [("train", d)]
            counts, t_import = {}, 0.0
            for kind, folder in parts:
                imgs = images_under(folder)
                counts[kind] = len(imgs)
                write_manifest(imgs, bucket_dir, "bench", f"{project}/{kind}", f"{project}-{kind}.manifest")
                _, secs = import_manifest(lfv, project, kind, "bench", f"{project}-{kind}.manifest")
                t_import += secs
            runs = 1 + (a.repeat if first is None else 0)
            first = first or project
            for _ in range(runs):
                desc, secs = train(lfv, project)
                f1 = desc.get("Performance", {}).get("F1Score")
                print(f"{os.path.basename(os.path.normpath(d)):<22} {counts.get('train', 0):>6} {counts.get('test', 0):>5} "
                      f"{t_import:>9.1f} {secs:>8.1f} {desc['Status']:<16} {f1 if f1 is None else round(f1, 3)!s:>6} "
                      f"{rss_mib(vigil.pid):>10.0f}", flush=True)
        time.sleep(3)
        print(f"server: VmRSS {rss_mib(vigil.pid):.0f} MiB at the end")
    finally:
        stop_servers(s3, vigil, work)


if __name__ == "__main__":
    main()
