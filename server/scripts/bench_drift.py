#!/usr/bin/env python3
"""Drift benchmark: how often the drift test cries wolf on normal traffic, and how soon it notices a change.

For each data set (LFV's aliens and circuit boards from ../shared/datasets): trains a model through the LFV API
on half the normal and anomalous images, evaluates it on a quarter of the normal images (its drift reference)
and the other anomalous ones, hosts it, then
  1. normal traffic: WINDOWS windows of N detections each, drawn from the last quarter of the normal images
     (never seen by training or the reference); the window's histogram is cleared before each, so each window is
     one independent run of the test; prints how many windows were flagged (false alarms);
  2. shifts of those same unseen normal images — brighter (x1.25), blurred (Gaussian, radius 2), mirrored (a
     part variant) — streamed one at a time from a cleared window; prints after how many detections the test
     flagged the shift, and how many of those detections the model had already called anomalous (the false
     alarms drift monitoring is meant to come before).

    server/scripts/bench_drift.py [--vigil target/release/vigil] [--windows 40] [--n 60]

Needs the set-up's .venv (boto3, Pillow; the test command installs both) and s3s-fs on PATH.
"""
import argparse, io, os, random, sqlite3, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_import import import_manifest, start_servers, stop_servers, write_manifest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "..", "shared", "datasets")
TOKEN = "bench-drift-metrics-token"


def images(folder):
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith((".jpg", ".jpeg", ".png")))


def sets():
    aliens = os.path.join(DATA, "lfv-aliens", "aliens-dataset")
    cb = os.path.join(DATA, "lfv-circuitboard", "circuitboard", "extra_images", "mini_data")
    out = []
    if os.path.isdir(aliens):
        n, a = images(os.path.join(aliens, "normal")), images(os.path.join(aliens, "anomaly"))
        out.append(("aliens", n[0::2] + a[0::2], n[1::4] + a[1::2], n[3::4]))
    if os.path.isdir(cb):
        tn = images(os.path.join(cb, "test", "normal"))
        out.append(("circuitboard", images(os.path.join(cb, "train", "normal")) + images(os.path.join(cb, "train", "anomaly")),
                    tn[0::2] + images(os.path.join(cb, "test", "anomaly")), tn[1::2]))
    return out


def encode(img):
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=95)
    return buf.getvalue()


def shifted(path, kind):
    from PIL import Image, ImageEnhance, ImageFilter, ImageOps
    img = Image.open(path).convert("RGB")
    if kind == "brighter x1.25":
        img = ImageEnhance.Brightness(img).enhance(1.25)
    elif kind == "blurred (radius 2)":
        img = img.filter(ImageFilter.GaussianBlur(2))
    elif kind == "mirrored (variant)":
        img = ImageOps.mirror(img)
    return encode(img)


def drift(base):
    req = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    text = urllib.request.urlopen(req).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("vigil_drift_") and 'ProjectName="bench"' in line:
            out[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", default=os.path.join(ROOT, "target", "release", "vigil"))
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--n", type=int, default=60)
    args = ap.parse_args()
    rnd = random.Random(11)
    print(f"drift test: |median shift| >= 0.5 spreads and >= 4 standard errors, with >= 30 detections; "
          f"{args.windows} windows of {args.n} normal detections per set")
    for name, train, test, live in sets():
        work = tempfile.mkdtemp(prefix="vigil-bench-drift-")
        bucket_dir = os.path.join(work, "s3", "bench")
        os.makedirs(bucket_dir)
        write_manifest(train, bucket_dir, "bench", "train", "train.manifest")
        write_manifest(test, bucket_dir, "bench", "test", "test.manifest")
        s3, vigil, base, lfv = start_servers(args.vigil, work, {"VIGIL_METRICS_TOKEN": TOKEN})
        try:
            lfv.create_project(ProjectName="bench")
            for t in ("train", "test"):
                import_manifest(lfv, "bench", t, "bench", f"{t}.manifest")
            lfv.create_model(ProjectName="bench", OutputConfig={"S3Location": {"Bucket": "bench", "Prefix": "out/"}})
            while (s := lfv.describe_model(ProjectName="bench", ModelVersion="1")["ModelDescription"]["Status"]) == "TRAINING":
                time.sleep(0.5)
            assert s == "TRAINED", s
            lfv.start_model(ProjectName="bench", ModelVersion="1", MinInferenceUnits=1)
            while lfv.describe_model(ProjectName="bench", ModelVersion="1")["ModelDescription"]["Status"] == "STARTING_HOSTING":
                time.sleep(0.2)
            db = sqlite3.connect(os.path.join(work, "vigil.db"), timeout=30)

            def clear():
                drift(base)  # flush what is pending first
                db.execute("delete from drift_bin")
                db.commit()

            def detect(body):
                r = lfv.detect_anomalies(ProjectName="bench", ModelVersion="1", ContentType="image/jpeg", Body=body)
                return r["DetectAnomalyResult"]["IsAnomalous"]

            from PIL import Image
            raw = {p: encode(Image.open(p)) for p in live}
            alarms, shifts, fp = 0, [], 0
            for _ in range(args.windows):
                clear()
                for _ in range(args.n):
                    fp += detect(raw[rnd.choice(live)])
                d = drift(base)
                alarms += int(d.get("vigil_drift_shifted", 0))
                shifts.append(d.get("vigil_drift_median_shift", 0.0))
            mean = sum(shifts) / len(shifts)
            sd = (sum((x - mean) ** 2 for x in shifts) / max(1, len(shifts) - 1)) ** 0.5
            ref = db.execute("select normal_scores from drift_reference").fetchone()
            print(f"\n{name}: trained on {len(train)}, {len([p for p in test if 'normal' in p.lower()])} normal test images, "
                  f"reference {ref[0] if ref else '?'} scores (with the training's leave-one-out ones), unseen normal pool {len(live)}")
            print(f"  normal traffic: {alarms} of {args.windows} windows flagged ({alarms / args.windows:.1%}); median shift "
                  f"{mean:+.2f} ± {sd:.2f} spreads; the model called {fp / (args.windows * args.n):.1%} of these normal images anomalous")
            for kind in ("brighter x1.25", "blurred (radius 2)", "mirrored (variant)"):
                clear()
                bodies = {p: shifted(p, kind) for p in live}
                called, flagged_at = 0, None
                for i in range(1, 301):
                    called += detect(bodies[rnd.choice(live)])
                    if i >= 30 and i % 5 == 0 and drift(base).get("vigil_drift_shifted") == 1.0:
                        flagged_at = i
                        break
                d = drift(base)
                n = flagged_at or 300
                when = f"flagged after {flagged_at} detections" if flagged_at else "not flagged in 300 detections"
                print(f"  {kind:<20} {when}; median shift {d.get('vigil_drift_median_shift', 0):+.2f}; "
                      f"the model had called {called} of {n} ({called / n:.0%}) anomalous")
        finally:
            stop_servers(s3, vigil, work)


if __name__ == "__main__":
    main()
