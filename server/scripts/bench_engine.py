#!/usr/bin/env python3
"""Engine figures per data set, each in its own `vigil bench` process (so peak memory is that set's own).

  bench_engine.py [--sets DIR] [--only NAME,...] [--set KEY=VALUE ...] [--threads N] [--json OUT]
      fit time, seconds per training stage, image AUROC, AP, F1 at the trained threshold beside the best F1 any
      threshold reaches on the test images (the gap is what the threshold misses), peak RSS.
  bench_engine.py --few 5,10,20 [--seeds 3] ...
      the few-image curve: each set trained on N of its normal training images alone (seeded picks, no
      anomalies), tested on its test images (or, without a test split, on every image not picked); mean and
      range of image AUROC and F1 over the seeds.

DIR holds data set folders in any layout `vigil bench` reads (default ../shared/datasets); the synthetic sets are
added unless --only leaves them out. Nothing is downloaded.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGE = {".jpg", ".jpeg", ".png", ".bmp"}
SYNTHETIC = ["synthetic-texture", "synthetic-labelled"]


def images(d):
    return sorted(p for p in Path(d).iterdir() if p.suffix.lower() in IMAGE) if Path(d).is_dir() else []


def run_bench(vigil, sets, name, extra, threads):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [vigil, "bench", "--datasets", str(sets), "--only", name, "--accuracy-only", "--json", out, "--torch-threads", str(threads)]
    for kv in extra:
        cmd += ["--set", kv]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout[-2000:], p.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"vigil bench failed on {name}")
    text = p.stdout
    rows = json.loads(Path(out).read_text())
    os.unlink(out)
    return rows, text


def fmt(x, d=3):
    return "–" if x is None else f"{x:.{d}f}"


def figures(a):
    sets = Path(a.sets)
    names = sorted(p.name for p in sets.iterdir() if p.is_dir()) + SYNTHETIC
    if a.only:
        names = [n for n in names if any(o in n for o in a.only.split(","))]
    report = []
    print("| data set | input | fit s | stages (s) | image AUROC | AP | F1 at threshold | best F1 | gap | precision / recall | confidence ≥ 0.9: right (n) | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in names:
        rows, _ = run_bench(a.vigil, sets, n, a.set, a.threads)
        for r in rows:
            if r["dataset"] != n:
                continue
            stages = ", ".join(f"{s} {t:.1f}" for s, t in r.get("stage_seconds", []))
            best = r.get("best_f1")
            gap = None if best is None else best - r["f1"]
            print(
                f"| {n} | {r['input'][0]}×{r['input'][1]} | {r['fit_seconds']:.1f} | {stages} | {fmt(r['image_auroc'])} | "
                f"{fmt(r['average_precision'])} | {fmt(r['f1'])} | {fmt(best)} | {fmt(gap)} | {fmt(r.get('precision'), 2)} / "
                f"{fmt(r.get('recall'), 2)} | {fmt(r.get('confident_right'), 2)} ({r.get('confident_n', '–')}, {r.get('confidence') or '–'}) | "
                f"{fmt(r.get('peak_rss_mib'), 0)} |",
                flush=True,
            )
            report.append(r)
    return report


def splits(d):
    """(train normals, test normals, test anomalies) of a data set folder; test lists empty without a test split."""
    d = Path(d)
    cookies = d / "computer-vision-defect-detection/cookie-dataset"
    if cookies.is_dir():
        tr = [p for p in images(cookies / "dataset-files/training-images") if "normal" in p.name and "anomaly" not in p.name]
        te = images(cookies / "test-images")
        return tr, [p for p in te if "anomaly" not in p.name], [p for p in te if "anomaly" in p.name]
    for root, dirs, _ in os.walk(d):
        r = Path(root)
        if (r / "train/good").is_dir():
            tests = [p for p in sorted((r / "test").iterdir()) if p.is_dir()]
            return images(r / "train/good"), images(r / "test/good"), [i for t in tests if t.name != "good" for i in images(t)]
        if (r / "train/normal").is_dir() and (r / "test").is_dir():
            return images(r / "train/normal"), images(r / "test/normal"), images(r / "test/anomaly")
        if (r / "normal").is_dir() and (r / "anomaly").is_dir():
            return images(r / "normal"), [], images(r / "anomaly")
        dirs.sort()
    raise SystemExit(f"{d}: no layout found")


def few(a):
    sets = Path(a.sets)
    counts = [int(x) for x in a.few.split(",")]
    synth_root = Path(tempfile.gettempdir()) / "vigil-bench-synthetic"
    names = sorted(p.name for p in sets.iterdir() if p.is_dir())
    if a.only:
        names = [n for n in names if any(o in n for o in a.only.split(","))]
    dirs = [sets / n for n in names]
    if not a.only or any(o in s for o in a.only.split(",") for s in SYNTHETIC):
        # Generated by the first `vigil bench` that includes them (the figures mode does).
        dirs += [synth_root / s for s in SYNTHETIC if (synth_root / s).is_dir() and (not a.only or any(o in s for o in a.only.split(",")))]
    work = Path(tempfile.mkdtemp(prefix="vigil-few-"))
    results = {}
    print("| data set | " + " | ".join(f"{n} images: AUROC / F1" for n in counts) + " |")
    print("|---|" + "---|" * len(counts))
    for d in dirs:
        tr, te_n, te_a = splits(d)
        line = []
        for n in counts:
            au, f1 = [], []
            for seed in range(a.seeds):
                rng = random.Random(1000 * n + seed)
                pick = rng.sample(tr, min(n, len(tr)))
                tn = te_n if te_n else [p for p in tr if p not in pick]
                case = work / f"{d.name}-{n}-{seed}"
                layout = {"train/normal": pick, "test/normal": tn, "test/anomaly": te_a}
                for sub, files in layout.items():
                    (case / "x" / sub).mkdir(parents=True, exist_ok=True)
                    for i, f in enumerate(files):
                        os.symlink(f.resolve(), case / "x" / sub / f"{i:05d}{f.suffix.lower()}")
                rows, _ = run_bench(a.vigil, case, "x", a.set, a.threads)
                r = [r for r in rows if r["dataset"] == "x"][0]
                au.append(r["image_auroc"])
                f1.append(r["f1"])
                shutil.rmtree(case)
            results.setdefault(d.name, {})[n] = {"auroc": au, "f1": f1}
            m = lambda v: sum(v) / len(v)
            line.append(f"{m(au):.3f} ({min(au):.3f}–{max(au):.3f}) / {m(f1):.3f}")
        print(f"| {d.name} | " + " | ".join(line) + " |", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vigil", default=str(ROOT / "target/release/vigil"))
    p.add_argument("--sets", default=str(ROOT.parent / "shared/datasets"))
    p.add_argument("--only", help="comma-separated parts of data set names")
    p.add_argument("--set", action="append", default=[], help="a training option KEY=VALUE (as vigil train --set)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--few", help="comma-separated numbers of normal training images: the few-image curve")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json")
    a = p.parse_args()
    out = few(a) if a.few else figures(a)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
