"""Wire contracts shared by every stage; stages only meet through these and Kafka topics."""

from schemas.alert import AlertRecord, alert_id
from schemas.camera_event import CameraEvent
from schemas.camera_health import CameraHealth
from schemas.dead_letter import DeadLetter, dead_letter_headers, original_headers, parse_dead_letter
from schemas.detections import (
    DetectionColumns,
    DetectionsContract,
    DetectionsRecord,
    FrameRef,
    ModelRef,
    Skipped,
    Timing,
)
from schemas.errors import ContractError
from schemas.frame import FrameMeta, parse_frame_headers

__all__ = [
    "AlertRecord",
    "CameraEvent",
    "CameraHealth",
    "ContractError",
    "DeadLetter",
    "DetectionColumns",
    "DetectionsContract",
    "DetectionsRecord",
    "FrameMeta",
    "FrameRef",
    "ModelRef",
    "Skipped",
    "Timing",
    "alert_id",
    "dead_letter_headers",
    "original_headers",
    "parse_dead_letter",
    "parse_frame_headers",
]
