"""Rendering one alert's evidence: its snapshot as soon as the key frame is in, its clip once the
post-roll frames are (or the wait for them is over), each stored once under the alert's id."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import simplejpeg
from confluent_kafka import Consumer

from alerts.settings import CameraRules
from schemas.alert import AlertRecord
from schemas.detections import DetectionsRecord
from sightline.drawing import decode_frame, draw, overlays
from sightline.evidence.clip import encode_clip, frame_rate
from sightline.evidence.metrics import INCOMPLETE, LATENCY
from sightline.evidence.plan import NS, Plan
from sightline.evidence.record import EvidenceRecord, Gap, PartState, part_key, record_key
from sightline.evidence.settings import EvidenceSettings
from sightline.evidence.source import DetectionsScan, FrameResult, read_frames
from sightline.evidence.store import EvidenceStore
from streams.claimcheck import ClaimCheckStore
from streams.evidence_urls import Part


@dataclass
class Job:
    alert: AlertRecord
    plan: Plan
    record: EvidenceRecord
    scan: DetectionsScan
    deadline: float  # monotonic: render with what came by then
    next_try: float = 0.0
    offsets: set[tuple[int, int]] = field(default_factory=set)  # (partition, offset) of the alert
    # alert.evidence_ready, once the record is finished (sightline/evidence/notify.py)
    notify: Future[Any] | None = None
    resumed: bool = False  # finished before (a restart): only its event may be left to send

    @property
    def done(self) -> bool:
        return self.record.status != "pending"


def _cause(reason: str) -> str:
    if "Redis" in reason:
        return "redis_expired"
    return "kafka_expired" if "expired from Kafka" in reason else "no_frame_record"


def _gaps(missing: list[tuple[int, str]]) -> list[Gap]:
    """Missing frames grouped by reason: how many, first and last seq."""
    by_reason: dict[str, list[int]] = defaultdict(list)
    for seq, reason in missing:
        by_reason[reason].append(seq)
    return [
        Gap(cause=_cause(r), reason=r, frames=len(s), first_seq=min(s), last_seq=max(s))
        for r, s in by_reason.items()
    ]


def _count(part: Part, gaps: list[Gap]) -> None:
    """One count per alert, part and cause (however many frames the cause took)."""
    for cause in {gap.cause for gap in gaps}:
        INCOMPLETE.labels(part, cause).inc()


class Renderer:
    """Renders and stores the parts of a job; `rules` give each camera's zones and lines."""

    def __init__(
        self,
        settings: EvidenceSettings,
        store: EvidenceStore,
        reader: Consumer,
        claims: ClaimCheckStore,
        rules: dict[str, CameraRules],
    ) -> None:
        self.settings, self.store, self.reader, self.claims = settings, store, reader, claims
        self.shapes = {camera: overlays(r) for camera, r in rules.items()}

    def work(self, job: Job, now: float) -> None:
        """One step: read what arrived, render the parts that can be, save the record on change."""
        job.scan.advance(self.reader)
        records = job.scan.ordered()
        overdue = now >= job.deadline
        parts = job.record.parts
        changed = False
        if parts["snapshot"].status == "pending":
            key = job.plan.key_record(records)
            past_key = job.scan.reached_end or any(r.capture_ns > job.plan.key_ns for r in records)
            if key is not None and (job.plan.key_seq is not None or past_key):
                parts["snapshot"] = self._snapshot(job, key)
                changed = True
            elif overdue:
                parts["snapshot"] = self._missing("snapshot", self._no_key(job))
                changed = True
        if parts["clip"].status == "pending" and (job.scan.reached_end or overdue):
            parts["clip"] = self._clip(job, records)
            changed = True
        if changed:
            self.save(job.record)

    def save(self, record: EvidenceRecord) -> None:
        record.updated_ns = time.time_ns()
        data = record.model_dump_json(indent=1, exclude_none=True).encode()
        self.store.put(record_key(record.alert_id), data)

    # -- parts -------------------------------------------------------------------------------
    def _stored(self, job: Job, part: Part, data: bytes, gaps: list[Gap], **fields: object) -> PartState:
        key = part_key(job.alert.alert_id, part)
        self.store.put(key, data)
        stored_ns = time.time_ns()
        LATENCY.labels(part).observe(max(0.0, (stored_ns - job.alert.created_ns) / NS))
        _count(part, gaps)
        state = PartState(
            status="partial" if gaps else "stored", key=key, bytes=len(data), stored_ns=stored_ns
        )
        return state.model_copy(update={"missing": gaps, **fields})

    def _missing(self, part: Part, gaps: list[Gap]) -> PartState:
        _count(part, gaps)
        return PartState(status="missing", missing=gaps)

    def _no_key(self, job: Job) -> list[Gap]:
        plan, topic = job.plan, job.scan.topic
        which = f"seq {plan.key_seq}" if plan.key_seq is not None else f"captured at or before {plan.key_ns}"
        reason = (
            f"no detections record of camera {job.alert.camera_id!r} {which} on {topic} "
            f"(expired from the topic, or never produced) within {self.settings.post_roll_wait_s:g} s"
        )
        return [Gap(cause="no_detections", reason=reason)]

    def _snapshot(self, job: Job, key: DetectionsRecord) -> PartState:
        frame = read_frames(self.reader, self.claims, [key])[key.seq]
        if frame.payload is None:
            gap = Gap(cause=_cause(frame.missing or ""), reason=frame.missing or "", frames=1)
            gap.first_seq = gap.last_seq = key.seq
            return self._missing("snapshot", [gap])
        try:
            image = decode_frame(frame.payload)
        except ValueError as exc:
            return self._missing("snapshot", [Gap(cause="undecodable", reason=str(exc), frames=1)])
        drawn = draw(image, key, self._shapes(job), job.plan.highlight)
        jpeg = simplejpeg.encode_jpeg(drawn, self.settings.jpeg_quality, colorspace="BGR")
        return self._stored(
            job, "snapshot", jpeg, [], frames=1, seq=key.seq,
            first_capture_ns=key.capture_ns, last_capture_ns=key.capture_ns,
        )  # fmt: skip

    def _shapes(self, job: Job) -> list[dict[str, Any]]:
        return self.shapes.get(job.alert.camera_id, [])

    def _clip(self, job: Job, records: list[DetectionsRecord]) -> PartState:
        plan, cam, settings = job.plan, job.alert.camera_id, self.settings
        gaps: list[Gap] = []
        if not records:
            reason = (
                f"no detections records of camera {cam!r} captured between {plan.clip_start_ns} and "
                f"{plan.clip_end_ns} on {job.scan.topic} (expired from the topic, or nothing was running)"
            )
            return self._missing("clip", [Gap(cause="no_detections", reason=reason)])
        frames = read_frames(self.reader, self.claims, records)
        have = [r for r in records if frames[r.seq].payload is not None]
        gaps += _gaps(
            [(r.seq, frames[r.seq].missing or "") for r in records if frames[r.seq].payload is None]
        )
        seqs = {r.seq for r in records}
        holes = [s for s in range(records[0].seq, records[-1].seq + 1) if s not in seqs]
        if holes:
            reason = "no detections record for these frames (dead-lettered by the worker)"
            gaps.append(Gap(cause="no_frame_record", reason=reason, frames=len(holes),
                            first_seq=holes[0], last_seq=holes[-1]))  # fmt: skip
        rate = frame_rate([r.capture_ns for r in records])
        interval = int(NS / rate)
        if records[0].capture_ns - plan.clip_start_ns > 2 * interval:
            late = (records[0].capture_ns - plan.clip_start_ns) / NS
            reason = f"pre-roll: the first frame found was captured {late:.1f} s after the clip's start"
            gaps.append(Gap(cause="pre_roll", reason=reason))
        if not job.scan.reached_end:
            short = (plan.clip_end_ns - records[-1].capture_ns) / NS
            reason = (
                f"post-roll: frames of the last {short:.1f} s did not arrive within "
                f"{settings.post_roll_wait_s:g} s (camera offline, or inference behind)"
            )
            gaps.append(Gap(cause="post_roll", reason=reason))
        if not have:
            return self._missing("clip", gaps)
        first = decode_frame(frames[have[0].seq].payload or b"")
        size = (first.shape[1], first.shape[0])
        data = encode_clip(
            self._drawn(job, have, frames, size), size, rate, settings.clip_crf, settings.clip_preset
        )
        return self._stored(
            job, "clip", data, gaps, frames=len(have), expected_frames=len(records) + len(holes),
            first_capture_ns=have[0].capture_ns, last_capture_ns=have[-1].capture_ns,
            fps=round(float(rate), 3),
            duration_s=round((have[-1].capture_ns - have[0].capture_ns) / NS + 1 / float(rate), 3),
        )  # fmt: skip

    def _drawn(
        self, job: Job, have: list[DetectionsRecord], frames: dict[int, FrameResult], size: tuple[int, int]
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Frames decoded and drawn one at a time: a clip is never held in memory as pixels."""
        shapes = self._shapes(job)
        for record in have:
            image = decode_frame(frames[record.seq].payload or b"")
            if (image.shape[1], image.shape[0]) != size:  # the camera changed resolution mid-clip
                image = cv2.resize(image, size)
            yield record.capture_ns, draw(image, record, shapes, job.plan.clip_highlight)
