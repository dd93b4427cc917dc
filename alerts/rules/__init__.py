"""Rule evaluators: pure functions of (state, input) -> alerts, with JSON-only state.

State is plain JSON (dicts, lists, numbers, strings) so a checkpoint is one `json.dumps`,
readable in Redis, and independent of Python class layouts across upgrades.
"""

from alerts.rules.anomaly import AnomalyEvaluator
from alerts.rules.base import CameraContext, Evaluator
from alerts.rules.camera_health import CameraHealthEvaluator
from alerts.rules.defects import DefectEvaluator
from alerts.rules.lanes import LaneEvaluator
from alerts.rules.thresholds import ThresholdEvaluator

__all__ = [
    "AnomalyEvaluator",
    "CameraContext",
    "CameraHealthEvaluator",
    "DefectEvaluator",
    "Evaluator",
    "LaneEvaluator",
    "ThresholdEvaluator",
]
