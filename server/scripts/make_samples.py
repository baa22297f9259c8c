#!/usr/bin/env python3
"""Writes the sample projects the console offers ("Try it with sample data") as LFV-style archives.

Each archive holds one Ground Truth manifest whose references are its own files (`images/…`, `masks/…`), which
is what the console's archive import reads. The images come from LFV's getting-started sets (CC BY-SA 4.0, see
server/samples/SOURCE.md), downscaled and re-encoded without their EXIF blocks (the cookie photos carry a phone's
GPS position). Run it from the repository root with the venv's Python (it needs Pillow):

    .venv/bin/python server/scripts/make_samples.py ../shared/datasets server/samples
"""
import io
import json
import re
import sys
import zipfile
from pathlib import Path

from PIL import Image

CREATED = "2026-12-07T00:00:00.000Z"


def number(path: Path) -> int:
    return int(re.findall(r"\d+", path.stem)[-1])


def jpeg(path: Path, scale: float) -> tuple[bytes, tuple[int, int]]:
    img = Image.open(path).convert("RGB")
    size = (round(img.width * scale), round(img.height * scale))
    img = img.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85, optimize=True)  # no exif= argument: the metadata is dropped
    return out.getvalue(), size


def mask_png(path: Path, size: tuple[int, int]) -> bytes:
    img = Image.open(path).convert("RGB").resize(size, Image.Resampling.NEAREST)
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()


def class_line(ref: str, anomalous: bool) -> dict:
    return {
        "source-ref": ref,
        "anomaly-label": 1 if anomalous else 0,
        "anomaly-label-metadata": {
            "class-name": "anomaly" if anomalous else "normal",
            "human-annotated": "yes",
            "creation-date": CREATED,
            "type": "groundtruth/image-classification",
            "job-name": "vigil-sample",
        },
    }


def write_archive(path: Path, manifest_name: str, files: dict[str, bytes], lines: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # JPEG and PNG are compressed already
        # Fixed timestamps: the same sources give the same archive bytes.
        entries = [(manifest_name, "".join(json.dumps(l) + "\n" for l in lines).encode())] + sorted(files.items())
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(2026, 12, 7, 0, 0, 0)), data)
    print(f"wrote {path}: {len(lines)} images, {path.stat().st_size / 1e6:.2f} MB")


def cookies(src: Path, out: Path, normal: int, anomalous: int, test_each: int, scale: float) -> None:
    base = src / "lfv-cookies/computer-vision-defect-detection"
    train_dir = base / "cookie-dataset/dataset-files/training-images"
    mask_dir = base / "cookie-dataset/dataset-files/mask-images"
    colours = {}
    for raw in (base / "train_segmentation.manifest").read_text().splitlines():
        line = json.loads(raw)
        name = line["source-ref"].rsplit("/", 1)[1]
        colours[name] = line["anomaly-mask-ref-metadata"]["internal-color-map"]

    files, lines = {}, []
    for path in sorted(train_dir.glob("normal-*.jpg"), key=number)[:normal]:
        files[f"images/{path.name}"], _ = jpeg(path, scale)
        lines.append(class_line(f"images/{path.name}", False))
    for path in sorted(train_dir.glob("anomaly-*.jpg"), key=number)[:anomalous]:
        data, size = jpeg(path, scale)
        files[f"images/{path.name}"] = data
        mask = f"masks/{path.stem}.png"
        files[mask] = mask_png(mask_dir / f"{path.stem}.png", size)
        line = class_line(f"images/{path.name}", True)
        line["anomaly-mask-ref"] = mask
        line["anomaly-mask-ref-metadata"] = {
            "internal-color-map": colours[path.name],
            "human-annotated": "yes",
            "creation-date": CREATED,
            "type": "groundtruth/semantic-segmentation",
            "job-name": "vigil-sample",
        }
        lines.append(line)
    write_archive(out / "cookies-train.zip", "train.manifest", files, lines)

    test_dir = base / "cookie-dataset/test-images"
    files, lines = {}, []
    for kind in ("normal", "anomaly"):
        for path in sorted(test_dir.glob(f"test-{kind}-*.jpg"), key=number)[:test_each]:
            files[f"images/{path.name}"], _ = jpeg(path, scale)
            lines.append(class_line(f"images/{path.name}", kind == "anomaly"))
    write_archive(out / "cookies-test.zip", "test.manifest", files, lines)


def circuitboard(src: Path, out: Path, counts: dict, scale: float) -> None:
    base = src / "lfv-circuitboard/circuitboard/extra_images/mini_data"
    for split in ("train", "test"):
        files, lines = {}, []
        for kind in ("normal", "anomaly"):
            paths = sorted((base / split / kind).glob("*.jpg"), key=number)[: counts[(split, kind)]]
            for path in paths:
                files[f"images/{path.name}"], _ = jpeg(path, scale)
                lines.append(class_line(f"images/{path.name}", kind == "anomaly"))
        write_archive(out / f"circuitboard-{split}.zip", f"{split}.manifest", files, lines)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    cookies(src, out, normal=20, anomalous=12, test_each=6, scale=0.5)
    circuitboard(
        src,
        out,
        {("train", "normal"): 20, ("train", "anomaly"): 10, ("test", "normal"): 8, ("test", "anomaly"): 8},
        scale=0.3,
    )


if __name__ == "__main__":
    main()
