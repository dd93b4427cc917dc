"""Sightline's inference stage. The package exports its model side, which needs no Kafka: frames
in, ``sv.Detections`` out (the worker itself is ``inference.worker.InferenceWorker``).

Typical use::

    registry = ModelRegistry(".sightline/models")
    manifest, path = registry.promoted("nanodet-m")
    detector = Detector(make_engine("cpu", path), manifest)
    detections, timings = detector.detect(frames)            # list[np.ndarray] BGR -> list[sv.Detections]
    tracked = trackers.update(camera_id, detections[i])      # CameraTrackers
    columns = to_columns(tracked)                            # schemas.detections.DetectionColumns
"""

from __future__ import annotations

from inference.detector import Detector, Timings, model_input_shape
from inference.engines import Engine, OrtEngine, TensorRTEngine, TensorRTUnavailable, make_engine
from inference.hotswap import PromotedDetector
from inference.manifest import ModelManifest, Preprocessing, infer_manifest
from inference.registry import IntegrityError, ModelRegistry, RegistryError
from inference.tracking import CameraTrackers
from inference.wire import from_columns, to_columns

__all__ = [
    "CameraTrackers",
    "Detector",
    "Engine",
    "IntegrityError",
    "ModelManifest",
    "ModelRegistry",
    "OrtEngine",
    "Preprocessing",
    "PromotedDetector",
    "RegistryError",
    "TensorRTEngine",
    "TensorRTUnavailable",
    "Timings",
    "from_columns",
    "infer_manifest",
    "make_engine",
    "model_input_shape",
    "to_columns",
]
