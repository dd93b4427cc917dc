"""Settings every stage shares: Kafka, Redis, topics, frame limits, metrics ports and the dev stack.

The stages own their settings models (`decoders.settings`, `inference.settings`,
`alerts.settings`); the command layer's `sightline.config.SightlineConfig` composes them into the
one YAML file. Stages never see that root model: they read the sections they declare in a
Protocol (`StreamsConfig` and its extensions), so dependencies point one way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, not silently ignored."""

    # Inputs stay out of validation errors: camera URLs and tokens carry credentials.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "sightline"
    # Kafka's default broker limit is ~1 MB; producers stay under it and frames above
    # `frames.inline_max_bytes` go through the Redis claim check instead.
    message_max_bytes: int = Field(1_000_000, ge=1024)
    # Extra librdkafka properties passed through verbatim (e.g. security settings).
    extra: dict[str, str | int | bool] = Field(default_factory=dict)


class RedisSettings(Section):
    url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^rediss?://")


class TopicSettings(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    partitions: int = Field(6, ge=1)
    retention_ms: int = Field(24 * 3600 * 1000, ge=-1)
    # Extra topic configs applied at creation, e.g. {"cleanup.policy": "compact"}.
    configs: dict[str, str] = Field(default_factory=dict)


def _topic(name: str, partitions: int, retention_ms: int) -> TopicSettings:
    return TopicSettings(name=name, partitions=partitions, retention_ms=retention_ms)


class TopicsSettings(Section):
    frames: TopicSettings = Field(default_factory=lambda: _topic("sightline.frames", 6, 3600 * 1000))
    detections: TopicSettings = Field(
        default_factory=lambda: _topic("sightline.detections", 6, 7 * 86400_000)
    )
    alerts: TopicSettings = Field(default_factory=lambda: _topic("sightline.alerts", 3, 30 * 86400_000))
    camera_events: TopicSettings = Field(
        default_factory=lambda: _topic("sightline.camera-events", 1, 30 * 86400_000)
    )
    # Image statistics and offline state per camera (schemas/camera_health.py), keyed by camera
    # from the decoder's producer like frames: keep its partitions equal to the frames topic's so
    # a camera's health records reach the processor that owns its detections.
    camera_health: TopicSettings = Field(
        default_factory=lambda: _topic("sightline.camera-health", 6, 7 * 86400_000)
    )
    dead_letter: TopicSettings = Field(
        default_factory=lambda: _topic("sightline.dead-letter", 1, 30 * 86400_000)
    )
    pos_events: TopicSettings = Field(
        default_factory=lambda: _topic("sightline.pos-events", 3, 7 * 86400_000)
    )
    # Latest ByteTrack state per camera (key), so tracks survive worker restarts and
    # rebalances; partition i holds the cameras of frames partition i, so keep the counts equal.
    tracker_state: TopicSettings = Field(
        default_factory=lambda: TopicSettings(
            name="sightline.tracker-state",
            partitions=6,
            retention_ms=-1,
            configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
        )
    )

    # Review verdicts (schemas/feedback.py), keyed by alert id; compacted, so the latest verdict
    # of every alert is kept as long as the dataset export may want it.
    feedback: TopicSettings = Field(
        default_factory=lambda: TopicSettings(
            name="sightline.feedback",
            partitions=1,
            retention_ms=-1,
            configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "86400000"},
        )
    )
    # Saved versions of the alert rules (schemas/rules_version.py), one key per version, so
    # compaction keeps every one; every processor and the API read all of it.
    rules: TopicSettings = Field(
        default_factory=lambda: TopicSettings(
            name="sightline.rules",
            partitions=1,
            retention_ms=-1,
            configs={"cleanup.policy": "compact"},
        )
    )

    def all(self) -> list[TopicSettings]:
        return [getattr(self, name) for name in type(self).model_fields]


class FramesSettings(Section):
    """How frame records are carried on Kafka."""

    # Well under Kafka's 1 MB default so a record with headers always fits.
    inline_max_bytes: int = Field(512 * 1024, ge=1024)
    # At least the frames topic's retention (checked at start-up): a backlog must never outlive
    # its images, or a long worker outage turns it into dead letters whose image is gone.
    claim_check_ttl_s: int = Field(2 * 3600, ge=1)
    # A consumer rejects (dead-letters) frames bigger than this, inline or claimed.
    max_frame_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # ... and images whose header declares more pixels than this, before decoding them.
    max_pixels: int = Field(50_000_000, ge=1)


class DevSettings(Section):
    """The single-node Kafka and Redis that `sightline dev up` runs on loopback."""

    kafka_port: int = Field(9092, ge=1, le=65535)
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    redis_port: int = Field(6379, ge=1, le=65535)
    data_dir: Path = Path(".sightline/dev")
    kafka_version: str = "4.1.1"
    log4j_version: str = "2.24.3"
    kafka_heap: str = "512m"


class MetricsSettings(Section):
    # 0.0.0.0 in containers so Prometheus can scrape across the network.
    host: str = "127.0.0.1"
    # Each long-running command serves /metrics here; 0 disables it.
    decoder_port: int = Field(9101, ge=0, le=65535)
    inference_port: int = Field(9102, ge=0, le=65535)
    alerts_port: int = Field(9103, ge=0, le=65535)
    evidence_port: int = Field(9105, ge=0, le=65535)
    # On those ports /healthz turns 503 once a main loop was silent this long (the process is
    # hung): longer than any single wait for Kafka/Redis, which beats while it retries anyway.
    liveness_timeout_s: float = Field(60.0, gt=0)


def check_claim_check_ttl(frames: FramesSettings, topics: TopicsSettings) -> None:
    """A claim-checked image must live at least as long as the frame record that points to it."""
    retention_ms = topics.frames.retention_ms
    if retention_ms >= 0 and frames.claim_check_ttl_s * 1000 < retention_ms:
        raise ValueError(
            f"frames.claim_check_ttl_s ({frames.claim_check_ttl_s}) is shorter than "
            f"topics.frames.retention_ms ({retention_ms} ms): claim-checked frames would lose their image"
        )


class StreamsConfig(Protocol):
    """The shared sections a stage reads; `sightline.config.SightlineConfig` satisfies it."""

    @property
    def kafka(self) -> KafkaSettings: ...
    @property
    def redis(self) -> RedisSettings: ...
    @property
    def topics(self) -> TopicsSettings: ...
    @property
    def frames(self) -> FramesSettings: ...
    @property
    def metrics(self) -> MetricsSettings: ...
