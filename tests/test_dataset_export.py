"""`sightline dataset export` against the real broker and Redis: alerts, frames, detections and
verdicts in; YOLO and COCO datasets out, read back box by box, with the verdict splits."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import simplejpeg
import yaml
from confluent_kafka import TopicPartition

from schemas.alert import AlertRecord, TimeWindow, alert_id
from schemas.detections import DetectionColumns, DetectionsRecord, FrameRef, ModelRef, Timing
from schemas.frame import FrameMeta
from sightline.config import SightlineConfig
from sightline.dataset.cli import parse_time
from sightline.review.feedback import publish, verdict_for
from streams.claimcheck import ClaimCheckStore
from streams.kafka import make_admin, make_producer
from tests.conftest import Stack, write_config

FPS, NS = 10, 1_000_000_000
W, H = 640, 480
PERSON = (100.0, 80.0, 300.0, 400.0)
CAR = (350.5, 200.25, 600.0, 330.0)


def _image(seq: int) -> np.ndarray:
    image = np.full((H, W, 3), 40 + seq % 200, np.uint8)
    cv2.putText(image, str(seq), (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    return image


def _publish_frames(config: SightlineConfig, n: int, start_ns: int, claimed: set[int]) -> dict[int, FrameRef]:
    """Frames 0..n-1 of camera `dock` and their detections: a person (tracked) and a car."""
    producer = make_producer(config.kafka)
    claims = ClaimCheckStore(config.redis.url, 3600)
    refs: dict[int, FrameRef] = {}
    for seq in range(n):
        capture = start_ns + seq * NS // FPS
        jpeg = simplejpeg.encode_jpeg(_image(seq), 90, colorspace="BGR")
        key = claims.put(ClaimCheckStore.key_for("dock", seq, capture), jpeg) if seq in claimed else None

        def on_delivery(err: object, msg: object, seq: int = seq, key: str | None = key) -> None:
            assert err is None, err
            refs[seq] = FrameRef(topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),  # type: ignore[attr-defined]
                                 claim_check=key)  # fmt: skip

        meta = FrameMeta("dock", seq, capture, W, H, claim_check=key)
        producer.produce(config.topics.frames.name, key=b"dock", value=b"" if key else jpeg,
                         headers=meta.headers(), on_delivery=on_delivery)  # fmt: skip
    assert producer.flush(30) == 0
    for seq in range(n):
        boxes = DetectionColumns.build([PERSON, CAR], [0.9, 0.6], [0, 2], ["person", "car"], [7, 8])
        record = DetectionsRecord(
            camera_id="dock", seq=seq, capture_ns=start_ns + seq * NS // FPS, width=W, height=H,
            frame=refs[seq], model=ModelRef(name="nanodet-m", version="1"),
            timing=Timing(queue_ms=1, preprocess_ms=1, inference_ms=1, batch_size=1),
            produced_ns=time.time_ns(), detections=boxes,
        )  # fmt: skip
        producer.produce(config.topics.detections.name, key=b"dock", value=record.encode())
    assert producer.flush(30) == 0
    claims.close()
    return refs


def _defect(config: SightlineConfig, start_ns: int, best: int) -> AlertRecord:
    capture = start_ns + best * NS // FPS
    alert = AlertRecord(
        alert_id=alert_id("dataset", uuid.uuid4().hex), type="defect", severity="warning", camera_id="dock",
        rule="dent", window=TimeWindow(start_ns=capture - NS, end_ns=capture), capture_ns=capture,
        created_ns=time.time_ns(), summary=f"dent on track 7 at seq {best}",
        evidence={"kind": "defect", "track_id": 7, "class_name": "person",
                  "best_frame": {"seq": best, "capture_ns": capture, "box": list(PERSON)}},
    )  # fmt: skip
    producer = make_producer(config.kafka)
    producer.produce(config.topics.alerts.name, key=b"dock", value=alert.encode())
    assert producer.flush(30) == 0
    return alert


def _threshold(config: SightlineConfig, start_ns: int, seq: int) -> AlertRecord:
    """An alert about the frame at its capture time: 50 ms after frame `seq` was captured."""
    capture = start_ns + seq * NS // FPS + 50_000_000
    alert = AlertRecord(
        alert_id=alert_id("dataset", uuid.uuid4().hex), type="threshold", severity="info", camera_id="dock",
        rule="crowd", window=TimeWindow(start_ns=capture - NS, end_ns=capture), capture_ns=capture,
        created_ns=time.time_ns(), summary="two objects at the dock", evidence={"classes": ["car"]},
    )  # fmt: skip
    producer = make_producer(config.kafka)
    producer.produce(config.topics.alerts.name, key=b"dock", value=alert.encode())
    assert producer.flush(30) == 0
    return alert


def _export(config_file: Path, out: Path, fmt: str, since: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sightline.cli", "-c", str(config_file), "dataset", "export",
           "--since", since, "--out", str(out), "--format", fmt]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return done


def _yolo_boxes(label: Path) -> list[tuple[int, tuple[float, ...]]]:
    """Class id and pixel xyxy of each line of a YOLO label file."""
    out = []
    for line in label.read_text().splitlines():
        cls, cx, cy, w, h = line.split()
        x, y, bw, bh = float(cx) * W, float(cy) * H, float(w) * W, float(h) * H
        out.append((int(cls), (x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2)))
    return sorted(out)


def _close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return bool(np.allclose(a, b, atol=0.5))


def test_export_writes_key_frames_with_labels_and_verdict_splits(stack: Stack, tmp_path: Path) -> None:
    config = stack.fresh_config("dataset", partitions=1)
    start_ns = time.time_ns() - 120 * NS
    refs = _publish_frames(config, 40, start_ns, claimed={20})
    confirmed, wrong, open_, expired = (_defect(config, start_ns, best) for best in (20, 25, 30, 5))
    by_time = _threshold(config, start_ns, 35)  # its key frame: the last one captured before it
    # Retention took frames 0-9 off the frames topic: the last alert's key frame is gone.
    gone = TopicPartition(refs[10].topic, refs[10].partition, refs[10].offset)
    admin = make_admin(config.kafka)
    for future in admin.delete_records([gone]).values():
        future.result(30)
    producer = make_producer(config.kafka)
    topic = config.topics.feedback.name
    publish(producer, topic, verdict_for(confirmed.model_dump(), "false_positive", "alice"))
    publish(producer, topic, verdict_for(confirmed.model_dump(), "confirmed", "bob"))  # the latest wins
    publish(producer, topic, verdict_for(wrong.model_dump(), "false_positive", "alice"))
    config_file = write_config(config, tmp_path / "sightline.yaml")

    out = tmp_path / "yolo"
    done = _export(config_file, out, "yolo", "1h")
    assert "confirmed=1 false_positive=1 unreviewed=2 left_out=1" in done.stdout, done.stdout
    assert f"left out alert {expired.alert_id}" in done.stderr and "expired from Kafka" in done.stderr

    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "person", 1: "class_1", 2: "car"} and data["train"] == "confirmed/images"
    for split, alert, seq in [
        ("confirmed", confirmed, 20),
        ("false_positive", wrong, 25),
        ("unreviewed", open_, 30),
        ("unreviewed", by_time, 35),
    ]:
        image = out / split / "images" / f"{alert.alert_id}.jpg"
        pixels = cv2.imread(str(image))
        assert pixels.shape == (H, W, 3)
        assert np.abs(pixels.astype(int) - _image(seq)).mean() < 3, "the key frame, not a neighbour"
        boxes = _yolo_boxes(out / split / "labels" / f"{alert.alert_id}.txt")
        assert [c for c, _ in boxes] == [0, 2]
        assert _close(boxes[0][1], PERSON) and _close(boxes[1][1], CAR), boxes
    claimed = (out / "confirmed" / "images" / f"{confirmed.alert_id}.jpg").read_bytes()
    assert claimed == ClaimCheckStore(config.redis.url, 3600).get(refs[20].claim_check or ""), (
        "bytes as stored"
    )

    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    by_alert = {m["alert_id"]: m for m in manifest}
    assert set(by_alert) == {confirmed.alert_id, wrong.alert_id, open_.alert_id, by_time.alert_id}
    assert by_alert[by_time.alert_id]["seq"] == 35 and by_alert[by_time.alert_id]["about"]["classes"] == [
        "car"
    ]
    assert (by_alert[confirmed.alert_id]["verdict"], by_alert[confirmed.alert_id]["by"]) == (
        "confirmed",
        "bob",
    )
    assert by_alert[wrong.alert_id]["split"] == "false_positive" and by_alert[wrong.alert_id]["by"] == "alice"
    assert by_alert[open_.alert_id]["verdict"] is None and by_alert[open_.alert_id]["seq"] == 30
    assert by_alert[wrong.alert_id]["about"]["track_ids"] == [7]
    report = json.loads((out / "export.json").read_text())
    assert report["left_out"][0]["alert_id"] == expired.alert_id

    # COCO: one annotations file per split, category ids = class id + 1, boxes as x, y, w, h.
    coco_out = tmp_path / "coco"
    _export(config_file, coco_out, "coco", str(int(start_ns / NS)))
    coco = json.loads((coco_out / "false_positive" / "annotations.json").read_text())
    [image] = coco["images"]
    assert image["file_name"] == f"{wrong.alert_id}.jpg" and (image["width"], image["height"]) == (W, H)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    found = sorted((names[a["category_id"]], tuple(a["bbox"])) for a in coco["annotations"])
    assert [n for n, _ in found] == ["car", "person"]
    x, y, w, h = found[1][1]
    assert _close((x, y, x + w, y + h), PERSON)
    assert (coco_out / "confirmed" / "images" / f"{confirmed.alert_id}.jpg").exists()

    # Nothing since a later time; an export never mixes into an old one.
    empty = tmp_path / "none"
    assert (
        "confirmed=0 false_positive=0 unreviewed=0 left_out=0"
        in _export(config_file, empty, "yolo", str(time.time() + 60)).stdout
    )
    cmd = [sys.executable, "-m", "sightline.cli", "-c", str(config_file), "dataset", "export"]
    again = subprocess.run(
        [*cmd, "--since", "1h", "--out", str(out)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode != 0 and "not empty" in again.stderr


@pytest.mark.parametrize(
    ("text", "expected_s"),
    [("2h", 1_000_000 - 7200), ("30m", 1_000_000 - 1800), ("1765000000", 1_765_000_000),
     ("2026-12-07T10:00:00", 1_796_637_600), ("2026-12-07T10:00:00+01:00", 1_796_634_000)],
)  # fmt: skip
def test_since_forms(text: str, expected_s: int) -> None:
    assert parse_time(text, now=1_000_000) == expected_s * NS
