#!/usr/bin/env python3
"""Lays out public industrial data sets that the shared ones do not cover as folders `vigil bench` reads.

Nothing here is committed or downloaded at build, test or run time: point the script at checkouts you
obtained yourself (each data set's own licence applies; they are for measuring, not for shipping):

  --magnetic-tile DIR   Huang et al., "Surface defect saliency of magnetic tile" (2018): MT_Free/Imgs and
                        MT_<defect>/Imgs, each image a JPEG of its own size with a PNG mask of the same stem.
                        (github.com/abin24/Magnetic-tile-defect-datasets.)
  --casting DIR         "Casting product image data for quality inspection" (Dabhi, 2020): casting_data/
                        {train,test}/{ok_front,def_front}, 300x300 grayscale pump impellers.
  --kolektor DIR        KolektorSDD (Tabernik et al., 2019) as YOLOv8 segmentation labels: Datasets/images/
                        {train,val}/*.jpg, Datasets/labels/{train,val}/*.txt (an empty file: no defect).

It writes, under --out (seeded, so every run picks the same images):

  mt-texture/    MVTec layout, normal images only in training (textures without anomalies in training,
                 every tile its own size, small defects with ground-truth masks).
  mt-labelled/   train/ and test/ with normal/, anomaly/, masks/ (40 labelled, masked anomalies in training).
  casting/       train/ and test/ with normal/ and anomaly/ (40 labelled anomalies in training).
  kolektor/      train/ and test/ with normal/, anomaly/, masks/ (small cracks on 500x1250 images; 20
                 labelled anomalies in training).

Then: target/release/vigil bench --datasets OUT
Needs Pillow (pip install pillow).
"""
import argparse
import json
import random
import shutil
from pathlib import Path

from PIL import Image, ImageDraw

RED = (255, 0, 0)


def pick(items, n, rng):
    items = sorted(items)
    rng.shuffle(items)
    return items[:n]


def copy(src: Path, dst_dir: Path, name=None):
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst_dir / (name or src.name))


def red_mask(white_on_black: Path, dst: Path):
    """A binary mask (white on black) repainted as the label colour on black, for `labels.json`."""
    m = Image.open(white_on_black).convert("L")
    out = Image.new("RGB", m.size, (0, 0, 0))
    out.paste(Image.new("RGB", m.size, RED), mask=m.point(lambda v: 255 if v >= 128 else 0))
    dst.parent.mkdir(parents=True, exist_ok=True)
    out.save(dst)


def magnetic_tile(src: Path, out: Path, rng):
    free = [p for p in (src / "MT_Free/Imgs").glob("*.jpg")]
    kinds = sorted(d.name[3:] for d in src.glob("MT_*") if d.name != "MT_Free")
    defects = {k: [p for p in (src / f"MT_{k}/Imgs").glob("*.jpg")] for k in kinds}
    free = pick(free, 500, rng)
    # Textures: 300 normal tiles to train on, 100 normal and 30 of each defect to test.
    t = out / "mt-texture"
    shutil.rmtree(t, ignore_errors=True)
    for p in free[:300]:
        copy(p, t / "train/good")
    for p in free[300:400]:
        copy(p, t / "test/good")
    chosen = {k: pick(v, 50, rng) for k, v in defects.items()}
    for k, v in chosen.items():
        for p in v[:30]:
            copy(p, t / f"test/{k.lower()}")
            m = Image.open(p.with_suffix(".png")).convert("L").point(lambda x: 255 if x >= 128 else 0)
            (t / f"ground_truth/{k.lower()}").mkdir(parents=True, exist_ok=True)
            m.save(t / f"ground_truth/{k.lower()}/{p.stem}_mask.png")
    # Labelled: 8 of each defect in training, the other 20 chosen of each in testing (disjoint).
    l = out / "mt-labelled"
    shutil.rmtree(l, ignore_errors=True)
    for p in free[:200]:
        copy(p, l / "train/normal")
    for p in free[400:500]:
        copy(p, l / "test/normal")
    for k, v in chosen.items():
        for split, ps in (("train", v[30:38]), ("test", v[:20])):
            for p in ps:
                copy(p, l / f"{split}/anomaly")
                red_mask(p.with_suffix(".png"), l / f"{split}/masks/{p.stem}.png")
    for split in ("train", "test"):
        (l / split / "labels.json").write_text(json.dumps({"defect": "#FF0000"}))


def casting(src: Path, out: Path, rng):
    root = next(src.rglob("casting_data"))
    c = out / "casting"
    shutil.rmtree(c, ignore_errors=True)
    for split, n_ok, n_def in (("train", 200, 40), ("test", 150, 150)):
        for p in pick(list((root / split / "ok_front").glob("*.jpeg")), n_ok, rng):
            copy(p, c / f"{split}/normal")
        for p in pick(list((root / split / "def_front").glob("*.jpeg")), n_def, rng):
            copy(p, c / f"{split}/anomaly")


def kolektor(src: Path, out: Path, rng):
    root = src / "Datasets"
    images = []
    for split in ("train", "val"):
        for p in (root / f"images/{split}").glob("*.jpg"):
            lab = root / f"labels/{split}/{p.stem}.txt"
            polys = []
            if lab.exists():
                for line in lab.read_text().split("\n"):
                    v = line.split()
                    if len(v) >= 7:
                        xy = [float(x) for x in v[1:]]
                        polys.append(list(zip(xy[0::2], xy[1::2])))
            images.append((p, split, polys))
    normal = pick([i for i in images if not i[2]], 10**6, rng)
    anomal = pick([i for i in images if i[2]], 10**6, rng)
    k = out / "kolektor"
    shutil.rmtree(k, ignore_errors=True)
    for split, ns, ans in (("train", normal[:200], anomal[:20]), ("test", normal[200:], anomal[20:])):
        for p, s, _ in ns:
            copy(p, k / f"{split}/normal", f"{s}-{p.name}")
        for p, s, polys in ans:
            copy(p, k / f"{split}/anomaly", f"{s}-{p.name}")
            w, h = Image.open(p).size
            m = Image.new("RGB", (w, h), (0, 0, 0))
            d = ImageDraw.Draw(m)
            for poly in polys:
                d.polygon([(x * w, y * h) for x, y in poly], fill=RED)
            (k / f"{split}/masks").mkdir(parents=True, exist_ok=True)
            m.save(k / f"{split}/masks/{s}-{p.stem}.png")
        (k / split / "labels.json").write_text(json.dumps({"defect": "#FF0000"}))


def main():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--magnetic-tile", type=Path)
    a.add_argument("--casting", type=Path)
    a.add_argument("--kolektor", type=Path)
    a.add_argument("--seed", type=int, default=7)
    args = a.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fn in (("magnetic_tile", magnetic_tile), ("casting", casting), ("kolektor", kolektor)):
        src = getattr(args, name)
        if src:
            fn(src, args.out, random.Random(args.seed))
            print(f"{name}: done")


if __name__ == "__main__":
    main()
