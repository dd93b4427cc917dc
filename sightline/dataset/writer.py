"""Writing key frames as a YOLO or COCO dataset, one split per review verdict.

supervision's dataset writers (`DetectionDataset.as_yolo` / `as_coco`) write the labels; the
images are written first, byte for byte as the camera's JPEG (supervision then leaves a file that
is already in place alone), so exporting never re-encodes a frame. Layout:

    DIR/confirmed/      frames of alerts a reviewer confirmed: the labels are right
    DIR/false_positive/ frames of alerts marked false positive: the model's labels as they were
    DIR/unreviewed/     frames of alerts nobody judged yet: the model's labels (pseudo-labels)
    DIR/manifest.jsonl  one line per image: alert, verdict, who, the key frame, the box it was about
    DIR/data.yaml       (yolo) class names and the splits
    DIR/export.json     what was exported, and each alert left out and why
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import supervision as sv
import yaml

from schemas.detections import DetectionsRecord
from schemas.feedback import FeedbackRecord
from sightline.dataset.keyframes import KeyFrame

Format = Literal["yolo", "coco"]
SPLITS = ("confirmed", "false_positive", "unreviewed")


@dataclass
class ExportReport:
    images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    left_out: list[dict[str, Any]] = field(default_factory=list)


def split_of(verdict: FeedbackRecord | None) -> str:
    return verdict.verdict if verdict is not None else "unreviewed"


def class_names(records: Iterable[DetectionsRecord]) -> list[str]:
    """Names indexed by the model's class ids (YOLO and COCO want one list); ids no exported frame
    shows get a placeholder `class_<id>`, so ids stay the model's own."""
    names: dict[int, str] = {}
    for record in records:
        d = record.detections
        for class_id, name in zip(d.class_id.tolist(), d.class_name.tolist(), strict=True):
            names.setdefault(int(class_id), str(name))
    return [names.get(i, f"class_{i}") for i in range(max(names, default=-1) + 1)]


def _detections(record: DetectionsRecord) -> sv.Detections:
    d = record.detections
    if not len(d):
        return sv.Detections.empty()
    return sv.Detections(
        xyxy=d.xyxy.astype(np.float32),
        confidence=d.confidence.astype(np.float32),
        class_id=d.class_id.astype(int),
    )


def _manifest_line(frame: KeyFrame, split: str, image: str, verdict: FeedbackRecord | None) -> dict[str, Any]:
    record, highlight = frame.record, frame.plan.highlight
    assert record is not None
    return {
        "image": image,
        "split": split,
        "alert_id": frame.alert.alert_id,
        "alert_type": frame.alert.type,
        "camera_id": frame.alert.camera_id,
        "rule": frame.alert.rule,
        "verdict": verdict.verdict if verdict else None,
        "by": verdict.by if verdict else None,
        "at_ns": verdict.at_ns if verdict else None,
        "seq": record.seq,
        "capture_ns": record.capture_ns,
        "model": record.model.model_dump(),
        # What the alert was about: its track(s), class(es) or box(es); the label to fix first.
        "about": {
            "track_ids": sorted(highlight.track_ids),
            "classes": sorted(highlight.classes),
            "boxes": [list(b) for b in highlight.boxes],
        },
    }


def write_dataset(
    out: Path, frames: Iterable[KeyFrame], verdicts: dict[str, FeedbackRecord], fmt: Format
) -> ExportReport:
    report = ExportReport()
    by_split: dict[str, list[tuple[Path, KeyFrame]]] = defaultdict(list)
    manifest: list[dict[str, Any]] = []
    for frame in frames:
        if frame.record is None or frame.image is None:
            report.left_out.append({"alert_id": frame.alert.alert_id, "reason": frame.missing or "no image"})
            continue
        verdict = verdicts.get(frame.alert.alert_id)
        split = split_of(verdict)
        images = out / split / "images"
        images.mkdir(parents=True, exist_ok=True)
        path = images / f"{frame.alert.alert_id}.jpg"
        path.write_bytes(frame.image)
        by_split[split].append((path, frame))
        manifest.append(_manifest_line(frame, split, str(path.relative_to(out)), verdict))
        report.images[split] += 1
    classes = class_names(f.record for items in by_split.values() for _p, f in items if f.record is not None)
    for split, items in by_split.items():
        dataset = sv.DetectionDataset(
            classes=classes,
            images=[str(p) for p, _f in items],
            annotations={str(p): _detections(f.record) for p, f in items if f.record is not None},
        )
        if fmt == "yolo":
            dataset.as_yolo(images_directory_path=str(out / split / "images"),
                            annotations_directory_path=str(out / split / "labels"))  # fmt: skip
        else:
            dataset.as_coco(images_directory_path=str(out / split / "images"),
                            annotations_path=str(out / split / "annotations.json"))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with (out / "manifest.jsonl").open("w") as f:
        for line in manifest:
            f.write(json.dumps(line) + "\n")
    if fmt == "yolo":
        _data_yaml(out, classes)
    summary = {"format": fmt, "classes": classes, "images": report.images, "left_out": report.left_out}
    (out / "export.json").write_text(json.dumps(summary, indent=1) + "\n")
    return report


def _data_yaml(out: Path, classes: list[str]) -> None:
    """Ultralytics' data file: train on what reviewers confirmed. There is no held-out split yet:
    `val` points at the same images until you set one aside."""
    data = {
        "path": str(out.resolve()),
        "train": "confirmed/images",
        "val": "confirmed/images",
        "names": dict(enumerate(classes)),
        "nc": len(classes),
        "sightline_splits": {s: f"{s}/images" for s in SPLITS},
    }
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
