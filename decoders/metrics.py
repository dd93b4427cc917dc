"""Prometheus metrics of the decoders (`sightline_decoder_*`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES_DECODED = Counter(
    "sightline_decoder_frames_decoded_total", "Frames decoded from the source", ["camera"]
)
FRAMES_PUBLISHED = Counter(
    "sightline_decoder_frames_published_total", "Frame records acknowledged by Kafka", ["camera"]
)
FRAMES_DROPPED = Counter(
    "sightline_decoder_frames_dropped_total",
    "Frames dropped before Kafka acknowledged them",
    ["camera", "reason"],
)
RECONNECTS = Counter("sightline_decoder_reconnects_total", "Reconnect attempts to a live source", ["camera"])
CLAIM_CHECKS = Counter(
    "sightline_decoder_claim_checks_total", "Frames stored in Redis (claim check)", ["camera"]
)
DECODE_SECONDS = Histogram(
    "sightline_decoder_decode_seconds",
    "Decode + resize + JPEG encode time per published frame",
    ["camera"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25),
)
PUBLISH_SECONDS = Histogram(
    "sightline_decoder_publish_seconds",
    "Time from produce() to Kafka's delivery report",
    ["camera"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CAMERA_ONLINE = Gauge("sightline_camera_online", "1 while the camera's source is connected", ["camera"])
