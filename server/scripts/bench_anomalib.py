#!/usr/bin/env python3
"""Vigil beside anomalib's PatchCore on the same backbone, the same images and the same box.

Each data set is laid out once as a common split (symlinks; masks rewritten white on black):
  train/normal, train/anomaly, train/masks, test/normal, test/anomaly, test/masks
A set without a test split (normal/ + anomaly/ only) is split with a fixed seed: two thirds of the normals train,
the rest and every anomaly test. Then, on that split:

  vigil (normal-only)  `vigil bench --accuracy-only` trained on train/normal alone, as anomalib is
  vigil (labelled)     trained on train/ as a user would import it (labelled anomalies and masks included), where
                       the set has labelled training anomalies
  anomalib 256         anomalib's `PatchcoreModel` as its `Patchcore` configures it by default (inputs resized to
                       256×256, 9 neighbours, anomaly maps blurred with σ 4), but with every training patch in its
                       memory bank rather than a 10 % coreset (--coreset 0.1 for that): the coreset approximates the
                       full bank (at best equal accuracy), and anomalib's k-center-greedy selection is slow on CPU
                       (216 s for 38 aliens images at 256×256 on 2 cores, hours for 200 images)
  anomalib vigil-size  the same at the input size Vigil chose for the set (aspect ratio kept), where the nearest-
                       neighbour work (test patches × bank rows) fits --max-nn-work

anomalib's feature extractor is swapped for Vigil's own frozen backbone (EfficientNet-Lite0, stride 8 and 16 taps,
`.venv/share/vigil/efficientnet-lite0-s8s16.pt`, its own normalisation), so both read the same features; everything
after the backbone (locally aware pooling, upsampling, coreset, nearest-neighbour scoring with re-weighting, anomaly
map) is anomalib's code. Image AUROC from each image's score; pixel AUROC over the masked test anomalies and the
normal test images (as `vigil bench` counts it), each at its own model's input size.

Needs a separate venv with anomalib (it brings its own PyTorch): python3 -m venv /tmp/anovenv &&
/tmp/anovenv/bin/pip install anomalib. Run it with that venv's python:

  /tmp/anovenv/bin/python server/scripts/bench_anomalib.py --sets DIR [--only NAME,...] [--threads 2] [--json OUT]
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import run_bench  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
IMAGE = {".jpg", ".jpeg", ".png", ".bmp"}


def images(d):
    d = Path(d)
    return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE) if d.is_dir() else []


def by_stem(d):
    return {p.stem: p for p in images(d)}


# ---------------------------------------------------------------- the common split


def read_set(d, seed=0):
    """{'train': [(path, anomalous, mask)], 'test': [...]} for the layouts `vigil bench` reads."""
    d = Path(d)
    cookies = d / "computer-vision-defect-detection/cookie-dataset"
    if cookies.is_dir():
        tr_dir, masks = cookies / "dataset-files/training-images", by_stem(cookies / "dataset-files/mask-images")
        train = [(p, "anomaly" in p.name, masks.get(p.stem) if "anomaly" in p.name else None) for p in images(tr_dir)]
        test = [(p, "anomaly" in p.name, None) for p in images(cookies / "test-images")]
        return {"train": train, "test": test}
    for root, dirs, _ in os.walk(d):
        dirs.sort()
        r = Path(root)
        if (r / "train/good").is_dir():
            test = [(p, False, None) for p in images(r / "test/good")]
            for t in sorted((r / "test").iterdir()):
                if t.is_dir() and t.name != "good":
                    gt = by_stem(r / "ground_truth" / t.name)
                    test += [(p, True, gt.get(p.stem + "_mask") or gt.get(p.stem)) for p in images(t)]
            return {"train": [(p, False, None) for p in images(r / "train/good")], "test": test}
        if (r / "train").is_dir() and (r / "test").is_dir():
            return {part: folder(r / part) for part in ("train", "test")}
        if (r / "normal").is_dir() and (r / "anomaly").is_dir():
            rows = folder(r)
            normals = [x for x in rows if not x[1]]
            rng = random.Random(seed)
            rng.shuffle(normals)
            k = (2 * len(normals)) // 3
            return {"train": normals[:k], "test": normals[k:] + [x for x in rows if x[1]]}
    raise SystemExit(f"{d}: no layout found")


def folder(d):
    masks = by_stem(d / "masks")
    return [(p, False, None) for p in images(d / "normal")] + [(p, True, masks.get(p.stem)) for p in images(d / "anomaly")]


def mask_on(img):
    """A mask image's defect pixels: white on black, or LFV's label colours on black (any channel lit)."""
    return np.asarray(img.convert("RGB")).max(axis=2) >= 64


def binary_mask(src, dst):
    Image.fromarray((mask_on(Image.open(src)) * 255).astype(np.uint8)).save(dst)


def lay_out(split, out, labelled):
    """The split as folders `vigil bench` reads; `labelled` keeps the training anomalies."""
    for part, rows in split.items():
        for sub in ("normal", "anomaly", "masks"):
            (out / part / sub).mkdir(parents=True, exist_ok=True)
        for i, (p, anomalous, mask) in enumerate(rows):
            if part == "train" and anomalous and not labelled:
                continue
            name = f"{i:05d}"
            os.symlink(p.resolve(), out / part / ("anomaly" if anomalous else "normal") / f"{name}{p.suffix.lower()}")
            if mask is not None and anomalous:
                binary_mask(mask, out / part / "masks" / f"{name}.png")


# ---------------------------------------------------------------- Vigil


def vigil_bench(vigil, sets, name, threads, extra=()):
    """`vigil bench --accuracy-only` on one set (bench_engine's runner), its row."""
    rows, _ = run_bench(vigil, sets, name, list(extra), threads)
    return [r for r in rows if r["dataset"] == name][0]


# ---------------------------------------------------------------- anomalib


class VigilBackbone(torch.nn.Module):
    """Vigil's frozen TorchScript backbone as anomalib's feature extractor: {layer: feature map}."""

    def __init__(self, path, layers):
        super().__init__()
        self.net = torch.jit.load(str(path)).eval()
        self.layers = layers

    def forward(self, x):
        s8, s16 = self.net((x - 0.5) / 0.5)
        return dict(zip(self.layers, (s8, s16)))


def load(p, size):
    w, h = size
    im = Image.open(p).convert("RGB").resize((w, h), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)


def load_mask(p, size):
    w, h = size
    return mask_on(Image.open(p).convert("RGB").resize((w, h), Image.NEAREST))


def auroc(scores, labels):
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    s = scores[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def anomalib_patchcore(split, backbone_path, size, coreset, batch=8):
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    layers = ["blocks.2", "blocks.4"]  # timm's names for EfficientNet-Lite0's stride 8 and 16 stage outputs
    model = PatchcoreModel(layers=layers, backbone="efficientnet_lite0", pre_trained=False, num_neighbors=9)
    model.feature_extractor = VigilBackbone(backbone_path, layers)
    train = [p for p, anomalous, _ in split["train"] if not anomalous]
    t0 = time.time()
    model.train()
    with torch.no_grad():
        for i in range(0, len(train), batch):
            model(torch.stack([load(p, size) for p in train[i : i + batch]]))
    if coreset < 1.0:
        model.subsample_embedding(coreset)  # anomalib's k-center-greedy: minutes to hours on 2 cores
    else:
        model.memory_bank = torch.vstack(model.embedding_store)  # every patch: the coreset's upper bound
        model.embedding_store.clear()
    fit = time.time() - t0
    model.eval()
    scores, labels, heat, truth = [], [], [], []
    any_mask = any(m is not None for _, a, m in split["test"] if a)
    w, h = size
    stride = max(1, len(split["test"]) * w * h // (16 << 20))
    t1 = time.time()
    with torch.no_grad():
        for p, anomalous, mask in split["test"]:
            out = model(load(p, size).unsqueeze(0))
            scores.append(float(out.pred_score.reshape(-1)[0]))
            labels.append(anomalous)
            if any_mask and (mask is not None or not anomalous):
                amap = out.anomaly_map.reshape(h, w).numpy().reshape(-1)
                m = load_mask(mask, size).reshape(-1) if mask is not None else np.zeros(w * h, dtype=bool)
                heat.append(amap[::stride])
                truth.append(m[::stride])
    per_image = (time.time() - t1) / max(1, len(split["test"]))
    pixel = auroc(np.concatenate(heat), np.concatenate(truth)) if heat else None
    return {"image_auroc": auroc(scores, labels), "pixel_auroc": pixel, "fit_seconds": fit, "detect_ms": per_image * 1000,
            "bank": int(model.memory_bank.shape[0]), "input": [w, h]}


def cached(cache, key, compute):
    """anomalib's figures for (set, size, coreset), kept in --cache so a rerun of the Vigil side skips them."""
    if cache is None:
        return compute()
    f = Path(cache) / f"{key}.json"
    if f.is_file():
        return json.loads(f.read_text())
    r = compute()
    if r is None:
        return None
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps(r))
    return r


def fmt(x, d=3):
    return "–" if x is None else f"{x:.{d}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=str(ROOT.parent / "shared/datasets"))
    ap.add_argument("--only", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vigil", default=str(ROOT / "target/release/vigil"))
    ap.add_argument("--backbone", default=str(ROOT / ".venv/share/vigil/efficientnet-lite0-s8s16.pt"))
    ap.add_argument("--coreset", type=float, default=1.0, help="anomalib's coreset ratio (1: the full memory bank)")
    ap.add_argument("--max-nn-work", type=float, default=4e10,
                    help="skip anomalib at Vigil's input size when test patches × bank rows exceed this (CPU minutes)")
    ap.add_argument("--no-vigil-size", action="store_true", help="only anomalib's default 256×256")
    ap.add_argument("--cache", default=None, help="a folder keeping anomalib's figures per set and input size")
    ap.add_argument("--anomalib-only", action="store_true", help="only anomalib at 256×256 (fills --cache)")
    ap.add_argument("--vigil-only", action="store_true", help="Vigil's side; anomalib's figures only from --cache")
    ap.add_argument("--set", action="append", default=[], help="a Vigil training option KEY=VALUE (repeatable)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sets = Path(a.sets)
    names = sorted(p.name for p in sets.iterdir() if p.is_dir())
    if a.only:
        names = [n for n in names if any(o == n for o in a.only.split(","))]
    work = Path(tempfile.mkdtemp(prefix="vigil-vs-anomalib-"))
    report = []
    print("| data set | train normal / anomaly | test normal / anomaly | Vigil normal-only: image / pixel AUROC (input, fit s) "
          "| Vigil labelled: image / pixel | anomalib 256×256: image / pixel (fit s) | anomalib at Vigil's size: image / pixel (fit s) |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        split = read_set(sets / n)
        tr_a = sum(1 for _, x, _ in split["train"] if x)
        counts = (len(split["train"]) - tr_a, tr_a, sum(1 for _, x, _ in split["test"] if not x), sum(1 for _, x, _ in split["test"] if x))
        row = {"dataset": n, "counts": counts}
        a256 = lambda: anomalib_patchcore(split, a.backbone, (256, 256), a.coreset)
        if a.anomalib_only:
            r = cached(a.cache, f"{n}-256x256-{a.coreset}", a256)
            print(n, r, flush=True)
            continue
        lay_out(split, work / "normal-only" / n, labelled=False)
        v = vigil_bench(a.vigil, work / "normal-only", n, a.threads, a.set)
        row["vigil"] = {k: v.get(k) for k in ("image_auroc", "test_pixel_auroc", "fit_seconds", "input", "f1", "best_f1")}
        if tr_a:
            lay_out(split, work / "labelled" / n, labelled=True)
            v2 = vigil_bench(a.vigil, work / "labelled", n, a.threads, a.set)
            row["vigil_labelled"] = {k: v2.get(k) for k in ("image_auroc", "test_pixel_auroc", "fit_seconds", "input", "f1", "best_f1")}
        skip = lambda: None
        row["anomalib_256"] = cached(a.cache, f"{n}-256x256-{a.coreset}", skip if a.vigil_only else a256)
        vw, vh = v["input"]
        per_image = (vw // 8) * (vh // 8)
        nn_work = (counts[2] + counts[3]) * per_image * counts[0] * per_image * min(1.0, a.coreset)
        if not a.no_vigil_size and (vw, vh) != (256, 256) and nn_work <= a.max_nn_work:
            row["anomalib_vigil_size"] = cached(a.cache, f"{n}-{vw}x{vh}-{a.coreset}", skip if a.vigil_only else
                                                lambda: anomalib_patchcore(split, a.backbone, (vw, vh), a.coreset))
        report.append(row)
        vl = row.get("vigil_labelled")
        an, av = row["anomalib_256"] or {"image_auroc": None, "pixel_auroc": None, "fit_seconds": float("nan")}, row.get("anomalib_vigil_size")
        print(f"| {n} | {counts[0]} / {counts[1]} | {counts[2]} / {counts[3]} | "
              f"{fmt(row['vigil']['image_auroc'])} / {fmt(row['vigil']['test_pixel_auroc'])} ({vw}×{vh}, {row['vigil']['fit_seconds']:.1f}) | "
              f"{fmt(vl and vl['image_auroc'])} / {fmt(vl and vl['test_pixel_auroc'])} | "
              f"{fmt(an['image_auroc'])} / {fmt(an['pixel_auroc'])} ({an['fit_seconds']:.1f}) | "
              + (f"{fmt(av['image_auroc'])} / {fmt(av['pixel_auroc'])} ({av['fit_seconds']:.1f})" if av else "skipped (NN work)") + " |",
              flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
