"""A scene for rules switches: people crossing a line (tallies) and scratches (K-of-N defects)."""

from __future__ import annotations

import random
from typing import Any

from alerts.synthetic import Walker, scene
from schemas.detections import DetectionsRecord

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def camera_rules(camera: str, k: int = 2, window_s: float = 4, band_px: float = 4) -> dict[str, Any]:
    return {
        "camera": camera,
        "lateness_s": 0.5,
        "lanes": [
            {
                "name": "door",
                "line": {"start": [0, 288], "end": [768, 288], "band_px": band_px},
                "window_s": window_s,
            }
        ],
        "defects": [{"name": "scratch", "classes": ["scratch"], "k": k, "n": 4}],
    }


def rules_v1(cameras: int = 2) -> dict[str, Any]:
    return {"version": 1, "cameras": [camera_rules(f"cam-{c}") for c in range(cameras)]}


def rules_v2(cameras: int = 2) -> dict[str, Any]:
    """cam-0's defect rule changes (fresh state), its lane does not (kept); cam-1 is unchanged."""
    cams = [camera_rules("cam-0", k=3)] + [camera_rules(f"cam-{c}") for c in range(1, cameras)]
    return {"version": 1, "cameras": cams}


def records(cameras: int = 2, frames: int = 300) -> list[DetectionsRecord]:
    out: list[DetectionsRecord] = []
    for c in range(cameras):
        rng = random.Random(c)
        walkers = [
            Walker(i, "person", (x := rng.uniform(50, 700), 100), (x, 500), rng.randrange(0, frames - 30), 20)
            for i in range(1, 40)
        ]
        walkers += [
            Walker(1000 + i, "scratch", (600, 300), (610, 300), 15 * i + c, 2 + i % 3)
            for i in range(frames // 15)
        ]
        out += list(scene(f"cam-{c}", walkers, frames, start_ns=T0))
    out.sort(key=lambda r: (r.capture_ns, r.camera_id))
    return out
