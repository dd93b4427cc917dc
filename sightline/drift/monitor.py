"""The drift state machine, free of Kafka so it is easy to reason about and replay.

Each (camera, feature) keeps its first `baseline_size` samples as the baseline and a rolling
window of the latest `window_size`. Every `evaluate_every` samples the window is compared with
the baseline; a feature drifts when the score crosses its threshold *and* the shift is material.
One alert per episode: the feature re-arms once its score falls below half the threshold.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from sightline.config import DriftSettings
from sightline.drift.compare import ks_score, psi, relative_shift
from sightline.drift.features import CLASS_MIX, INPUT_FEATURES


@dataclass(frozen=True)
class DriftEvent:
    """A feature of a camera crossed into drift; `window_start_ns` makes the alert id deterministic."""

    camera_id: str
    feature: str
    score: float
    shift: float
    threshold: float
    window_start_ns: int
    window_end_ns: int
    baseline_start_ns: int
    baseline_end_ns: int
    baseline_mean: float | None = None
    recent_mean: float | None = None


@dataclass
class _Feature:
    baseline: list[Any] = field(default_factory=list)
    baseline_ns: list[int] = field(default_factory=list)
    recent: deque[tuple[int, Any]] = field(default_factory=deque)
    since_eval: int = 0
    alerted: bool = False
    score: float | None = None


class DriftMonitor:
    """Feed samples with `add`; it returns the drift events they trigger and keeps the scores."""

    def __init__(self, settings: DriftSettings) -> None:
        self.s = settings
        self.features: dict[tuple[str, str], _Feature] = {}

    def add(self, camera_id: str, capture_ns: int, values: dict[str, Any]) -> list[DriftEvent]:
        events = []
        for name, value in values.items():
            event = self._add_one(camera_id, name, capture_ns, value)
            if event is not None:
                events.append(event)
        return events

    def scores(self) -> dict[tuple[str, str], float]:
        return {key: f.score for key, f in self.features.items() if f.score is not None}

    def _add_one(self, camera_id: str, name: str, capture_ns: int, value: Any) -> DriftEvent | None:
        f = self.features.setdefault((camera_id, name), _Feature(recent=deque(maxlen=self.s.window_size)))
        if len(f.baseline) < self.s.baseline_size:
            f.baseline.append(value)
            f.baseline_ns.append(capture_ns)
            return None
        f.recent.append((capture_ns, value))
        f.since_eval += 1
        if len(f.recent) < self.s.window_size or f.since_eval < self.s.evaluate_every:
            return None
        f.since_eval = 0
        recent = [v for _, v in f.recent]
        base_mean = recent_mean = None
        if name == CLASS_MIX:
            score, shift = psi(sum(f.baseline, Counter()), sum(recent, Counter()))
            threshold, min_shift = self.s.psi_threshold, self.s.output_min_relative_shift
        else:
            score, shift = ks_score(f.baseline, recent), relative_shift(f.baseline, recent)
            base_mean, recent_mean = sum(f.baseline) / len(f.baseline), sum(recent) / len(recent)
            threshold = self.s.ks_threshold
            min_shift = (
                self.s.min_relative_shift if name in INPUT_FEATURES else self.s.output_min_relative_shift
            )
        f.score = score
        drifted = score >= threshold and shift >= min_shift
        if f.alerted and score < threshold / 2:
            f.alerted = False  # the episode is over: the next crossing raises a new alert
        if not drifted or f.alerted:
            return None
        f.alerted = True
        return DriftEvent(
            camera_id=camera_id,
            feature=name,
            score=round(score, 4),
            shift=round(shift, 4),
            threshold=threshold,
            window_start_ns=f.recent[0][0],
            window_end_ns=f.recent[-1][0],
            baseline_start_ns=f.baseline_ns[0],
            baseline_end_ns=f.baseline_ns[-1],
            baseline_mean=base_mean,
            recent_mean=recent_mean,
        )
