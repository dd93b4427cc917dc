"""The live view's camera state tells skipped frames and real lag apart (fast tier: no broker)."""

from __future__ import annotations

import time

from alerts.synthetic import box_at, record
from schemas.detections import DetectionColumns, Skipped
from sightline.api.tail import TailState
from sightline.config import load_config


def test_skipped_records_are_counted_not_shown_and_the_lag_is_the_detected_frames() -> None:
    state = TailState(load_config(None))
    now_ns = time.time_ns()
    seen = record("cam-a", 0, now_ns - 3 * 10**9, [(box_at(100, 200), 0.9, "person", 1)])
    state.on_detections(seen, time.time())
    for seq in (1, 2):
        skipped = record("cam-a", seq, now_ns - 10**9 + seq * 10**8, []).replace(
            timing=None,
            detections=DetectionColumns.empty(),
            skipped=Skipped(reason="stale", age_ms=1500.0, max_age_ms=800.0),
        )
        state.on_detections(skipped, time.time())
    latest, _ = state.latest("cam-a")
    assert latest is not None and latest.seq == 0, "a skipped frame has no boxes to draw"
    [view] = [c for c in state.cameras_view() if c["camera_id"] == "cam-a"]
    assert view["skipped"] == 2 and view["skipped_per_s"] > 0
    # Behind by the newest frame the model ran on, not by the newest record.
    assert view["detections_age_s"] >= 3.0
    assert view["last_seq"] == 0
