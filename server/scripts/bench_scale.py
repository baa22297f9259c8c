#!/usr/bin/env python3
"""Scale-out benchmark: Vigil as several processes on PostgreSQL and an S3 blob store, with figures printed.

Starts a private s3s-fs (S3-compatible server) and, on the test PostgreSQL, fresh databases; then measures:
  1. the import of N generated images (256x256 JPEG) from an S3 manifest into the local blob store
     (one `vigil serve`) and into the S3 blob store (an API replica `serve --no-worker` and a `vigil worker`):
     seconds, images per second, PostgreSQL rows and bytes, and blob bytes per 1,000 images;
  2. DetectAnomalies throughput (C client threads for D seconds) on a model trained on LFV's cookies: one
     replica with one inference unit, one replica with two, two replicas with one each;
  3. how long a cold API replica takes to answer its first detection of the hosted model.

    server/scripts/bench_scale.py [--vigil target/release/vigil] [--images 10000] [--seconds 20] [--clients 4]

Needs the set-up's .venv with boto3 and Pillow (the test command installs both), s3s-fs on PATH (the test command
installs it) and a PostgreSQL (VIGIL_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres).
"""
import argparse, io, json, os, random, shutil, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_import import free_port, import_manifest, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG = os.environ.get("VIGIL_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
KEY, SECRET = "AKIDBENCH", "bench-secret"


def psql(url, sql):
    return subprocess.run(["psql", url, "-Atqc", sql], check=True, capture_output=True, text=True).stdout.strip()


def db_url(name):
    return PG.rsplit("/", 1)[0] + "/" + name


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    return total


class Deployment:
    """Vigil processes sharing one database, one s3s-fs, and (with `s3_blobs`) one blob bucket."""

    def __init__(self, vigil, work, s3_port, name, s3_blobs):
        self.vigil, self.work, self.s3_port, self.s3_blobs = vigil, work, s3_port, s3_blobs
        self.db = db_url(name)
        psql(PG, f"create database {name}")
        self.name = name
        self.procs = []

    def env(self, data):
        e = dict(os.environ, DATABASE_URL=self.db, VIGIL_DATA_DIR=data, RUST_LOG="warn",
                 VIGIL_S3_ENDPOINT=f"http://127.0.0.1:{self.s3_port}", VIGIL_S3_ACCESS_KEY_ID="benchkey",
                 VIGIL_S3_SECRET_ACCESS_KEY="benchsecret", VIGIL_S3_REGION="us-east-1",
                 VIGIL_ACCESS_KEY_ID=KEY, VIGIL_SECRET_ACCESS_KEY=SECRET, VIGIL_ADMIN_PASSWORD="bench-admin",
                 VIGIL_SECRET_KEY="ab" * 32, VIGIL_TORCH_THREADS="1")
        if self.s3_blobs:
            e.update(VIGIL_BLOB_STORE="s3://blobs/vigil/", VIGIL_BLOB_S3_ENDPOINT=f"http://127.0.0.1:{self.s3_port}",
                     VIGIL_BLOB_S3_ACCESS_KEY_ID="benchkey", VIGIL_BLOB_S3_SECRET_ACCESS_KEY="benchsecret",
                     VIGIL_BLOB_S3_REGION="us-east-1")
        return e

    def start(self, *args):
        """Starts a process; returns (process, base URL or None, seconds until it answered)."""
        port = free_port()
        data = os.path.join(self.work, f"data-{len(self.procs)}")
        env = dict(self.env(data), VIGIL_ADDR=f"127.0.0.1:{port}")
        t = time.perf_counter()
        p = subprocess.Popen([self.vigil, *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        if args[0] != "serve":
            time.sleep(3)
            return p, None, None
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/signin", p, "vigil")
        return p, base, time.perf_counter() - t

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait()
        self.procs = []

    def drop(self):
        psql(PG, f"drop database if exists {self.name} with (force)")


def client(base):
    import boto3, botocore.config
    return boto3.client("lookoutvision", endpoint_url=base, region_name="us-east-1", aws_access_key_id=KEY,
                        aws_secret_access_key=SECRET, config=botocore.config.Config(retries={"max_attempts": 1}))


def generate(n, bucket_dir):
    """N distinct 256x256 JPEGs (smooth gradients with noise, 90% quality) and their Ground Truth manifest."""
    from PIL import Image
    rnd = random.Random(7)
    lines = []
    os.makedirs(os.path.join(bucket_dir, "images"), exist_ok=True)
    base = Image.linear_gradient("L").resize((256, 256)).convert("RGB")
    for i in range(n):
        img = base.copy()
        px = img.load()
        for _ in range(40):
            x, y = rnd.randrange(256), rnd.randrange(256)
            px[x, y] = (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        key = f"images/{i:05d}.jpg"
        with open(os.path.join(bucket_dir, key), "wb") as f:
            f.write(buf.getvalue())
        lines.append(json.dumps({"source-ref": f"s3://bench/{key}", "anomaly-label": 0, "anomaly-label-metadata": {
            "class-name": "normal", "human-annotated": "yes", "type": "groundtruth/image-classification", "job-name": "bench"}}))
    with open(os.path.join(bucket_dir, "train.manifest"), "w") as f:
        f.write("\n".join(lines) + "\n")


def import_run(d, base, n):
    lfv = client(base)
    lfv.create_project(ProjectName="bench")
    desc, secs = import_manifest(lfv, "bench", "train", "bench", "train.manifest")
    assert desc["Status"] == "CREATE_COMPLETE" and desc["ImageStats"]["Total"] == n, desc
    rows = {t: int(psql(d.db, f"select count(*) from {t}")) for t in ("dataset_entry", "blob", "job", "import_report")
            if psql(d.db, f"select count(*) from information_schema.tables where table_name = '{t}'") == "1"}
    db_bytes = int(psql(d.db, "select sum(pg_total_relation_size(c.oid)) from pg_class c join pg_namespace s on s.oid = c.relnamespace "
                               "where s.nspname = 'public' and c.relkind = 'r'"))
    return secs, rows, db_bytes


def stage_cookies(bucket_dir):
    fx = os.path.join(ROOT, "server", "tests", "fixtures", "cookies-small")
    lines = {"train": [], "test": []}
    for kind, lo, hi, split in (("normal", 2, 9, "train"), ("normal", 10, 13, "test"), ("anomaly", 2, 5, "train"), ("anomaly", 6, 9, "test")):
        for i in range(lo, hi + 1):
            key = f"cookies/{kind}-{i}.jpg"
            os.makedirs(os.path.join(bucket_dir, "cookies"), exist_ok=True)
            shutil.copyfile(os.path.join(fx, kind, f"{kind}-{i}.jpg"), os.path.join(bucket_dir, key))
            lines[split].append(json.dumps({"source-ref": f"s3://bench/{key}", "anomaly-label": int(kind == "anomaly"),
                                            "anomaly-label-metadata": {"class-name": kind, "human-annotated": "yes",
                                                                       "type": "groundtruth/image-classification", "job-name": "b"}}))
    for split, ls in lines.items():
        with open(os.path.join(bucket_dir, f"cookies-{split}.manifest"), "w") as f:
            f.write("\n".join(ls) + "\n")
    return open(os.path.join(fx, "anomaly", "anomaly-6.jpg"), "rb").read()


def wait_model(lfv, status_from):
    while True:
        s = lfv.describe_model(ProjectName="cookies", ModelVersion="1")["ModelDescription"]["Status"]
        if s not in status_from:
            return s
        time.sleep(0.2)


def throughput(bases, image, seconds, clients):
    """Images per second answered by `clients` threads spread over `bases` for `seconds`, and p50 latency (ms)."""
    stop = time.perf_counter() + seconds
    lat, errors = [], [0]
    lock = threading.Lock()

    def run(base):
        lfv = client(base)
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                lfv.detect_anomalies(ProjectName="cookies", ModelVersion="1", ContentType="image/jpeg", Body=image)
                with lock:
                    lat.append(time.perf_counter() - t)
            except Exception:
                with lock:
                    errors[0] += 1
    threads = [threading.Thread(target=run, args=(bases[i % len(bases)],)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lat.sort()
    return len(lat) / seconds, (lat[len(lat) // 2] * 1000 if lat else 0), errors[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vigil-bench-scale-")
    s3_root = os.path.join(work, "s3")
    os.makedirs(os.path.join(s3_root, "blobs"))
    s3_port = free_port()
    s3 = subprocess.Popen(["s3s-fs", "--host", "127.0.0.1", "--port", str(s3_port), "--access-key", "benchkey",
                           "--secret-key", "benchsecret", s3_root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tag = "".join(random.choice("abcdef0123456789") for _ in range(6))
    deployments = []
    try:
        wait_for(f"http://127.0.0.1:{s3_port}/", s3, "s3s-fs")
        t = time.perf_counter()
        generate(args.images, os.path.join(s3_root, "bench"))
        image_bytes = du(os.path.join(s3_root, "bench", "images"))
        print(f"generated {args.images} images ({image_bytes / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s; vigil: {args.vigil}")

        print(f"\n{'import into':<36} {'images':>7} {'seconds':>8} {'img/s':>7} {'PG rows/1k':>11} {'PG MB/1k':>9} {'blob MB/1k':>10}")
        per_k = args.images / 1000
        for label, s3_blobs in (("local blob store (one vigil serve)", False), ("S3 blob store (replica + worker)", True)):
            d = Deployment(args.vigil, work, s3_port, f"vigil_bench_{tag}_{int(s3_blobs)}", s3_blobs)
            deployments.append(d)
            if s3_blobs:
                _, base, _ = d.start("serve", "--no-worker")
                d.start("worker")
            else:
                _, base, _ = d.start("serve")
            secs, rows, db_bytes = import_run(d, base, args.images)
            blob_bytes = du(os.path.join(s3_root, "blobs")) if s3_blobs else du(os.path.join(work, "data-0", "blobs"))
            total_rows = sum(rows.values())
            print(f"{label:<36} {args.images:>7} {secs:>8.1f} {args.images / secs:>7.1f} {total_rows / per_k:>11.0f} "
                  f"{db_bytes / 1e6 / per_k:>9.2f} {blob_bytes / 1e6 / per_k:>10.2f}   rows: {rows}")
            if not s3_blobs:
                d.stop()

        # Detection on the S3 deployment: a model trained on LFV's cookies, hosted.
        d = deployments[-1]
        image = stage_cookies(os.path.join(s3_root, "bench"))
        # A replica of its own for the measurements (the import's replica stays up, idle).
        _, base_a, _ = d.start("serve", "--no-worker")
        lfv = client(base_a)
        lfv.create_project(ProjectName="cookies")
        for split in ("train", "test"):
            import_manifest(lfv, "cookies", split, "bench", f"cookies-{split}.manifest")
        os.makedirs(os.path.join(s3_root, "out"), exist_ok=True)
        t = time.perf_counter()
        lfv.create_model(ProjectName="cookies", OutputConfig={"S3Location": {"Bucket": "out", "Prefix": "e/"}})
        assert wait_model(lfv, ("TRAINING",)) == "TRAINED"
        print(f"\ntrained the cookies model through the worker in {time.perf_counter() - t:.1f} s")

        print(f"\n{'DetectAnomalies':<40} {'img/s':>7} {'p50 ms':>7} {'errors':>7}   ({args.clients} clients, {args.seconds:.0f} s)")
        for units in (1, 2):
            lfv.start_model(ProjectName="cookies", ModelVersion="1", MinInferenceUnits=units)
            assert wait_model(lfv, ("STARTING_HOSTING",)) == "HOSTED"
            time.sleep(2)
            rate, p50, errs = throughput([base_a], image, args.seconds, args.clients)
            print(f"{f'one replica, {units} inference unit(s)':<40} {rate:>7.1f} {p50:>7.1f} {errs:>7}")
            if units == 1:
                lfv.stop_model(ProjectName="cookies", ModelVersion="1")
                wait_model(lfv, ("STOPPING_HOSTING", "HOSTED"))
        lfv.stop_model(ProjectName="cookies", ModelVersion="1")
        wait_model(lfv, ("STOPPING_HOSTING", "HOSTED"))
        lfv.start_model(ProjectName="cookies", ModelVersion="1", MinInferenceUnits=1)
        assert wait_model(lfv, ("STARTING_HOSTING",)) == "HOSTED"

        # A cold replica: from its start to its first answered detection.
        t0 = time.perf_counter()
        _, base_b, up = d.start("serve", "--no-worker")
        t1 = time.perf_counter()
        client(base_b).detect_anomalies(ProjectName="cookies", ModelVersion="1", ContentType="image/jpeg", Body=image)
        first = time.perf_counter() - t1
        print(f"\ncold replica: answered HTTP {up:.2f} s after its start; first detection {first * 1000:.0f} ms later "
              f"({time.perf_counter() - t0:.2f} s from the start)")
        time.sleep(2)
        rate, p50, errs = throughput([base_a, base_b], image, args.seconds, args.clients)
        print(f"\n{'two replicas, 1 inference unit each':<40} {rate:>7.1f} {p50:>7.1f} {errs:>7}")
    finally:
        for d in deployments:
            d.stop()
            d.drop()
        s3.terminate()
        s3.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
