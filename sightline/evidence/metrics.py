"""Prometheus metrics of `sightline evidence` (served on metrics.evidence_port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FINISHED = Counter(
    "sightline_evidence_alerts_total", "Alerts whose evidence was finished, by outcome", ["outcome"]
)
# The "never silently missing" counter: one per alert and part that lacks frames, by cause.
INCOMPLETE = Counter(
    "sightline_evidence_incomplete_total",
    "Alerts whose snapshot or clip is missing or partial, by part and cause",
    ["part", "cause"],
)
LATENCY = Histogram(
    "sightline_evidence_latency_seconds",
    "From the alert's created_ns to its snapshot or clip stored",
    ["part"],
    buckets=(0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300),
)
PENDING = Gauge("sightline_evidence_pending", "Alerts whose evidence is still being gathered")
DELETED = Counter("sightline_evidence_deleted_total", "Evidence objects deleted by the retention sweep")
READY = Counter(
    "sightline_evidence_ready_webhooks_total",
    "alert.evidence_ready events finished per endpoint: delivered, duplicate (acknowledged before), dead",
    ["endpoint", "outcome"],
)
