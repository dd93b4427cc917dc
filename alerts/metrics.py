"""Prometheus metrics of the alert processors (served on metrics.alerts_port by `run`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from streams.health import Health

# Kafka and Redis as this process sees them: degraded while retrying, logged once per change.
HEALTH = Health("alerts")

DETECTIONS = Counter("sightline_alerts_detections_total", "Detections records evaluated by the rules")
SKIPPED = Counter("sightline_alerts_records_skipped_total", "Records skipped", ["reason"])
RAISED = Counter("sightline_alerts_raised_total", "Alerts raised by the rules", ["type"])
CHECKPOINT = Histogram("sightline_alerts_checkpoint_seconds", "Redis checkpoint write time")
DELIVERED = Counter(
    "sightline_alerts_webhook_delivered_total", "Alerts acknowledged by endpoints", ["endpoint"]
)
DUPLICATES = Counter(
    "sightline_alerts_webhook_deduplicated_total", "Deliveries skipped as duplicates", ["endpoint"]
)
ATTEMPT_FAILURES = Counter(
    "sightline_alerts_webhook_attempt_failures_total", "Failed delivery attempts", ["endpoint", "reason"]
)
DEAD = Counter(
    "sightline_alerts_webhook_dead_lettered_total", "Alerts sent to the dead-letter topic", ["endpoint"]
)
LATENCY = Histogram(
    "sightline_alerts_capture_to_ack_seconds",
    "Capture time of the newest contributing frame to webhook acknowledgement",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
BREAKER_OPEN = Gauge(
    "sightline_alerts_webhook_breaker_open", "1 while the endpoint's breaker is open", ["endpoint"]
)
PENDING = Gauge("sightline_alerts_webhook_pending", "Deliveries queued or in flight", ["endpoint"])
