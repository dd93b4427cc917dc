"""`sightline evidence` against the real broker and Redis: frames, detections and an alert in,
a snapshot and an H.264 clip out, checked by decoding them back; and the missing-frames path."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import av
import cv2
import numpy as np
import simplejpeg
from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from schemas.alert import AlertRecord, TimeWindow, alert_id
from schemas.detections import DetectionColumns, DetectionsRecord, FrameRef, ModelRef, Timing
from schemas.frame import FrameMeta
from sightline.config import SightlineConfig
from sightline.drawing import HIGHLIGHT_COLOR, box_color
from sightline.evidence.record import load_record, part_key
from sightline.evidence.service import EvidenceService
from sightline.evidence.store import LocalDirStore
from streams.claimcheck import ClaimCheckStore
from streams.kafka import make_admin, make_producer
from tests.conftest import Stack

FPS, FRAMES, TRACK = 10, 40, 7
BOX = (200.0, 150.0, 400.0, 350.0)
NS = 1_000_000_000


def _config(stack: Stack, tmp_path: Path) -> SightlineConfig:
    config = stack.fresh_config("evidence", partitions=2)
    ev = config.evidence
    ev.dir, ev.group_id = tmp_path / "evidence", f"evidence-{uuid.uuid4().hex[:8]}"
    ev.pre_roll_s, ev.post_roll_s, ev.post_roll_wait_s = 1.0, 1.0, 3.0
    return config


def _vtest(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = [cap.read()[1] for _ in range(n)]
    cap.release()
    return frames


def _publish(
    config: SightlineConfig, images: list[np.ndarray], start_ns: int, claimed: set[int], first: int = 0
) -> tuple[list[int], dict[int, FrameRef]]:
    """Frames from seq `first` on (those in `claimed` through the Redis claim check) and one
    detections record each, with one tracked person at BOX; the capture times of all `images`
    and where each frame published landed."""
    producer = make_producer(config.kafka)
    claims = ClaimCheckStore(config.redis.url, 3600)
    refs: dict[int, FrameRef] = {}
    captures = [start_ns + seq * NS // FPS for seq in range(len(images))]

    def delivered(seq: int, key: str | None):  # noqa: ANN202
        def on_delivery(err: object, msg: object) -> None:
            assert err is None, err
            refs[seq] = FrameRef(
                topic=msg.topic(), partition=msg.partition(), offset=msg.offset(), claim_check=key
            )  # type: ignore[attr-defined]

        return on_delivery

    for seq, image in list(enumerate(images))[first:]:
        h, w = image.shape[:2]
        jpeg = simplejpeg.encode_jpeg(image, 85, colorspace="BGR")
        key = claims.put(ClaimCheckStore.key_for("cam", seq, captures[seq]), jpeg) if seq in claimed else None
        meta = FrameMeta("cam", seq, captures[seq], w, h, claim_check=key)
        producer.produce(config.topics.frames.name, key=b"cam", value=b"" if key else jpeg,
                         headers=meta.headers(), on_delivery=delivered(seq, key))  # fmt: skip
    assert producer.flush(30) == 0
    for seq, image in list(enumerate(images))[first:]:
        h, w = image.shape[:2]
        boxes = DetectionColumns.build([BOX], [0.9], [0], ["person"], [TRACK])
        record = DetectionsRecord(
            camera_id="cam", seq=seq, capture_ns=captures[seq], width=w, height=h, frame=refs[seq],
            model=ModelRef(name="test", version="1"), timing=Timing(queue_ms=1, preprocess_ms=1,
            inference_ms=1, batch_size=1), produced_ns=time.time_ns(), detections=boxes,
        )  # fmt: skip
        producer.produce(config.topics.detections.name, key=b"cam", value=record.encode())
    assert producer.flush(30) == 0
    claims.close()
    return captures, refs


def _defect(config: SightlineConfig, captures: list[int], first: int, last: int, best: int) -> AlertRecord:
    alert = AlertRecord(
        alert_id=alert_id("defect", uuid.uuid4().hex), type="defect", severity="warning", camera_id="cam",
        rule="scratch", window=TimeWindow(start_ns=captures[first], end_ns=captures[last]),
        capture_ns=captures[last], created_ns=captures[last], summary="scratch on track 7",
        evidence={"kind": "defect", "track_id": TRACK, "class_name": "person",
                  "best_frame": {"seq": best, "capture_ns": captures[best], "box": list(BOX)}},
    )  # fmt: skip
    producer = make_producer(config.kafka)
    producer.produce(config.topics.alerts.name, key=b"cam", value=alert.encode())
    assert producer.flush(30) == 0
    return alert


def _incomplete(cause: str) -> float:
    return (
        REGISTRY.get_sample_value("sightline_evidence_incomplete_total", {"part": "clip", "cause": cause})
        or 0
    )


def test_snapshot_and_clip_are_rebuilt_from_the_topics(
    stack: Stack, tmp_path: Path, vtest_path: Path
) -> None:
    config = _config(stack, tmp_path)
    start_ns = time.time_ns() - 60 * NS  # in the past: every post-roll frame is already there
    captures, _ = _publish(config, _vtest(vtest_path, FRAMES), start_ns, claimed={12, 20})
    alert = _defect(config, captures, first=12, last=25, best=20)

    stats = EvidenceService(config, threading.Event()).run(max_idle_s=2)
    assert (stats.alerts, stats.complete) == (1, 1), stats
    store = LocalDirStore(config.evidence.dir)
    record = load_record(store, alert.alert_id)
    assert record is not None and record.status == "complete", record

    # Snapshot: the best frame (claim-checked) at full size, the track's box in its colour, the
    # highlight just outside it.
    snapshot = simplejpeg.decode_jpeg(
        store.get(part_key(alert.alert_id, "snapshot")) or b"", colorspace="BGR"
    )
    assert snapshot.shape == (576, 768, 3) and record.parts["snapshot"].seq == 20
    x1, y1, x2, y2 = (int(v) for v in BOX)
    edge = snapshot[(y1 + y2) // 2, x1 - 1 : x1 + 2].astype(int)
    assert np.abs(edge - box_color(0, TRACK)).max(axis=1).min() < 40, edge
    outside = snapshot[(y1 + y2) // 2, x1 - 10 : x1 - 4].astype(int)
    assert np.abs(outside - HIGHLIGHT_COLOR).max(axis=1).min() < 60, outside

    # Clip: 1 s before the window to 1 s after it, at the camera's rate, every frame once.
    first, last = 12 - FPS, 25 + FPS
    clip = record.parts["clip"]
    assert (clip.frames, clip.expected_frames) == (last - first + 1, last - first + 1)
    assert (clip.first_capture_ns, clip.last_capture_ns) == (captures[first], captures[last])
    path = store.path(part_key(alert.alert_id, "clip"))
    assert path.read_bytes().find(b"moov") < path.read_bytes().find(b"mdat"), "faststart: index first"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert round(float(stream.average_rate)) == FPS
        times = [frame.time for frame in container.decode(stream)]
        duration = container.duration / 1e6
    assert len(times) == last - first + 1
    assert times[0] == 0 and abs(times[-1] - (captures[last] - captures[first]) / NS) < 0.002
    assert abs(duration - (last - first + 1) / FPS) < 0.15

    # Idempotent by alert id: a second run (a new group, so it reads the alert again) renders nothing.
    before = path.stat().st_mtime_ns
    config.evidence.group_id += "-again"
    again = EvidenceService(config, threading.Event()).run(max_idle_s=2)
    assert (again.alerts, again.already) == (0, 1) and path.stat().st_mtime_ns == before


def test_expired_frames_are_named_in_the_record_and_counted(
    stack: Stack, tmp_path: Path, vtest_path: Path
) -> None:
    config = _config(stack, tmp_path)
    start_ns = time.time_ns() - 60 * NS
    captures, refs = _publish(config, _vtest(vtest_path, 30), start_ns, claimed={18})
    # Retention takes frames 0-14 off the frames topic; Redis loses frame 18's image.
    expired = TopicPartition(refs[15].topic, refs[15].partition, refs[15].offset)
    admin = make_admin(config.kafka)  # kept referenced until its futures are done
    for future in admin.delete_records([expired]).values():
        future.result(30)
    ClaimCheckStore(config.redis.url, 3600).client.delete(ClaimCheckStore.key_for("cam", 18, captures[18]))
    alert = _defect(config, captures, first=10, last=15, best=12)
    kafka_before, redis_before = _incomplete("kafka_expired"), _incomplete("redis_expired")

    stats = EvidenceService(config, threading.Event()).run(max_idle_s=2)
    assert stats.partial == 1, stats
    record = load_record(LocalDirStore(config.evidence.dir), alert.alert_id)
    assert record is not None and record.status == "partial"
    snapshot = record.parts["snapshot"]
    assert snapshot.status == "missing" and "expired from Kafka" in snapshot.missing[0].reason
    clip = record.parts["clip"]
    assert clip.status == "partial" and clip.frames == 10  # 0..25 less 0..14 and 18
    gaps = {g.cause: g for g in clip.missing}
    assert (gaps["kafka_expired"].first_seq, gaps["kafka_expired"].last_seq) == (0, 14)
    assert gaps["redis_expired"].first_seq == 18 and "Redis" in gaps["redis_expired"].reason
    assert _incomplete("kafka_expired") == kafka_before + 1
    assert _incomplete("redis_expired") == redis_before + 1


def test_the_clip_waits_for_its_post_roll_frames(stack: Stack, tmp_path: Path, vtest_path: Path) -> None:
    config = _config(stack, tmp_path)
    config.evidence.post_roll_wait_s = 8
    images = _vtest(vtest_path, FRAMES)
    start_ns = time.time_ns() - 60 * NS
    captures, _ = _publish(config, images[:30], start_ns, claimed=set())
    captures = [start_ns + seq * NS // FPS for seq in range(FRAMES)]
    waits = _defect(config, captures, first=10, last=25, best=20)  # its clip ends at seq 35
    never = _defect(config, captures, first=28, last=39, best=28)  # frames after 39 never come
    store = LocalDirStore(config.evidence.dir)
    stats = []
    service = threading.Thread(target=lambda: stats.append(EvidenceService(config).run(max_idle_s=1)))
    service.start()
    deadline = time.monotonic() + 30
    while (record := load_record(store, waits.alert_id)) is None or record.parts[
        "snapshot"
    ].status == "pending":
        assert time.monotonic() < deadline, "no snapshot within 30 s"
        time.sleep(0.2)
    assert record.parts["clip"].status == "pending", "the clip waits for the post-roll frames"
    _publish(config, images, start_ns, claimed=set(), first=30)
    service.join(60)
    assert stats and (stats[0].complete, stats[0].partial) == (1, 1), stats

    record = load_record(store, waits.alert_id)
    assert record is not None and record.status == "complete"
    assert record.parts["clip"].frames == 36 and record.parts["clip"].last_capture_ns == captures[35]
    short = load_record(store, never.alert_id)
    assert short is not None and short.parts["clip"].status == "partial"
    [gap] = short.parts["clip"].missing
    assert gap.cause == "post_roll" and "did not arrive within 8 s" in gap.reason
