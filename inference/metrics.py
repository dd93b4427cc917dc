"""Prometheus metrics of the inference workers (`sightline_inference_*`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_MS_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)

FRAMES_IN = Counter("sightline_inference_frames_total", "Frame records consumed", ["camera"])
DETECTIONS_OUT = Counter(
    "sightline_inference_detections_records_total", "Detections records acknowledged by Kafka", ["camera"]
)
DEAD_LETTERS = Counter(
    "sightline_inference_dead_letters_total", "Records sent to the dead-letter topic", ["reason"]
)
COMMIT_FAILURES = Counter(
    "sightline_inference_commit_failures_total",
    "Offset commits that failed (at-least-once: those frames may be read again)",
)
BATCH_SIZE = Histogram(
    "sightline_inference_batch_size", "Frames per micro-batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
QUEUE_SECONDS = Histogram(
    "sightline_inference_queue_seconds", "Wait from fetch to model run", buckets=_MS_BUCKETS
)
PREPROCESS_SECONDS = Histogram(
    "sightline_inference_preprocess_seconds", "Preprocess time per batch", buckets=_MS_BUCKETS
)
INFERENCE_SECONDS = Histogram(
    "sightline_inference_model_seconds", "Model run time per batch", buckets=_MS_BUCKETS
)
FRAME_AGE_SECONDS = Histogram(
    "sightline_inference_frame_age_seconds",
    "Capture time to detections acknowledged",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Where a frame's age goes, in the order it spends it; the ack follows the last. Children bound once:
# four observations per frame on the hot path.
FRAME_STAGES = ("capture_to_fetch", "batching", "pipeline", "to_produce")
FRAME_STAGE_SECONDS = Histogram(
    "sightline_inference_frame_stage_seconds",
    "A frame's age by stage: decoder, Kafka and poll (capture_to_fetch); waiting in the open batch "
    "(batching); prepare, engine and finish (pipeline); tracking and record building (to_produce)",
    ["stage"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2, 5),
)
FRAME_STAGE_CHILDREN = tuple(FRAME_STAGE_SECONDS.labels(stage) for stage in FRAME_STAGES)
SKIPPED = Counter(
    "sightline_inference_frames_skipped_total",
    "Frames of realtime cameras not run through the model because they were older than the "
    "camera's max age when the worker could take them (each still gets a detections record)",
    ["camera", "reason"],
)
CAMERA_FRAME_AGE = Gauge(
    "sightline_inference_camera_frame_age_seconds",
    "Age of the camera's newest frame when the worker took it (capture to fetch)",
    ["camera"],
)
MODEL_INFO = Gauge(
    "sightline_inference_model_info", "1 for the model version being served", ["model", "version"]
)
