"""Alert processor settings: rules per camera and webhook endpoints.

Rules live inline under `alerts.rules` or in a separate file (`alerts.rules_file`) with the
same layout, so a rules file can be tested with `sightline alerts test-rules` before it is
deployed. Every model forbids unknown keys: a typo in a hand-written rule must fail loudly.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Annotated, Literal, Protocol, Self

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from schemas.alert import AlertType, Severity
from streams.evidence_urls import EvidenceUrlSettings
from streams.settings import Section, StreamsConfig

Point = tuple[float, float]
Anchor = Literal["center", "bottom_center", "top_center"]
Comparison = Literal[">", ">=", "<", "<=", "=="]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
WHSEC = "whsec_"


def _check_polygon(value: list[Point]) -> list[Point]:
    if len(value) < 3:
        raise ValueError("a polygon needs at least 3 points")
    return value


Polygon = Annotated[list[Point], AfterValidator(_check_polygon)]
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class LineSettings(Section):
    """A counting line from `start` to `end` in pixels.

    "in" means crossing to the right-hand side of start->end as drawn on the image.
    """

    start: Point
    end: Point
    direction: Literal["any", "in", "out"] = "any"
    # Hysteresis: a point within band_px of the line keeps its previous side (anti-jitter).
    band_px: float = Field(4.0, ge=0)

    @model_validator(mode="after")
    def _not_degenerate(self) -> Self:
        if self.start == self.end:
            raise ValueError("line start and end must differ")
        return self


class SessionSettings(Section):
    """Checkout sessions: opened/closed by POS events, or closed after an idle gap."""

    idle_gap_s: float = Field(30.0, gt=0)
    # Open a session at the first counted item when no POS event opened one.
    auto_open: bool = True


class ScanGapSettings(Section):
    """Counted items with no POS scan within +-tolerance_s raise a scan_gap alert."""

    tolerance_s: float = Field(5.0, gt=0)
    # Extra event time to wait for late POS events before deciding.
    grace_s: float = Field(2.0, ge=0)
    classes: list[str] | None = Field(None, description="Counted classes that need a scan; None = all.")
    match_class: bool = Field(False, description="A scan carrying class_name only matches that class.")
    severity: Severity = "warning"


class LaneSettings(Section):
    """A checkout lane (or any counting site): a counting line and/or a zone."""

    name: str = Field(pattern=NAME)
    line: LineSettings | None = None
    zone: Polygon | None = None
    classes: list[str] = Field(default_factory=list, description="Classes to count; empty = all.")
    min_confidence: float = Field(0.0, ge=0, le=1)
    pos_register: str | None = Field(None, description="POS register id whose events belong to this lane.")
    window_s: float = Field(60.0, gt=0, description="Tumbling tally window on capture time.")
    emit_windows: bool = Field(True, description="Publish a tally alert for each closed non-empty window.")
    session: SessionSettings | None = None
    scan_gap: ScanGapSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.line is None and self.zone is None:
            raise ValueError(f"lane {self.name!r} needs a line, a zone, or both")
        if self.scan_gap is not None and self.pos_register is None:
            raise ValueError(f"lane {self.name!r}: scan_gap needs the `pos_register` of the lane")
        return self


class DefectRule(Section):
    """Defect classes in a region of interest, in K of the last N frames of one track."""

    name: str = Field(pattern=NAME)
    classes: list[str] = Field(min_length=1)
    roi: Polygon | None = Field(None, description="Region of interest; None = whole frame.")
    min_confidence: float = Field(0.5, ge=0, le=1)
    k: int = Field(3, ge=1)
    n: int = Field(5, ge=1)
    severity: Severity = "warning"
    critical_confidence: float | None = Field(None, ge=0, le=1, description="Escalate to critical at/above.")

    @model_validator(mode="after")
    def _k_le_n(self) -> Self:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
        return self


class AnomalyRule(Section):
    """Rolling EWMA + z-score of the mean per-frame count, per class, in event-time buckets."""

    name: str = Field(pattern=NAME)
    classes: list[str] = Field(min_length=1)
    zone: Polygon | None = None
    min_confidence: float = Field(0.0, ge=0, le=1)
    bucket_s: float = Field(10.0, gt=0)
    alpha: float = Field(0.3, gt=0, le=1, description="EWMA smoothing factor.")
    z_threshold: float = Field(3.0, gt=0)
    warmup_buckets: int = Field(5, ge=1)
    min_std: float = Field(0.5, gt=0, description="Floor for the standard deviation (quiet scenes).")
    alerts: list[Literal["spike", "drop"]] = Field(default_factory=lambda: ["spike", "drop"], min_length=1)
    severity: Severity = "warning"


class ActiveWindow(Section):
    """A daily time-of-day window (local time in the rule's timezone); may wrap midnight."""

    start: str
    end: str
    days: list[Day] | None = None

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError(f"{value!r} is not a HH:MM time")
        return value


class ThresholdRule(Section):
    """Declarative rules without code: count, rate or dwell compared to a value."""

    name: str = Field(pattern=NAME)
    metric: Literal["count", "rate", "dwell"]
    classes: list[str] = Field(default_factory=list, description="Empty = all classes.")
    zone: Polygon | None = None
    min_confidence: float = Field(0.0, ge=0, le=1)
    op: Comparison = ">"
    value: float = Field(description="count: objects; rate: new objects per minute; dwell: seconds.")
    for_s: float = Field(0.0, ge=0, description="The condition must hold this long (event time).")
    window_s: float = Field(60.0, gt=0, description="Sliding window for `rate`.")
    cooldown_s: float = Field(0.0, ge=0, description="Minimum gap between two episodes' alerts.")
    active: list[ActiveWindow] = Field(default_factory=list, description="Empty = always active.")
    timezone: str = "UTC"
    severity: Severity = "warning"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _dwell(self) -> Self:
        if self.metric == "dwell":
            if self.zone is None:
                raise ValueError(f"threshold {self.name!r}: dwell needs a zone")
            if self.op not in (">", ">="):
                raise ValueError(f"threshold {self.name!r}: dwell only supports '>' and '>='")
        return self


class CoveredCheck(Section):
    """Covered, blacked out or washed out: a nearly uniform or extreme picture."""

    # Any one of these makes the picture "covered"; None turns that one off.
    contrast_below: float | None = Field(8.0, ge=0, description="Grey-level std under this.")
    brightness_below: float | None = Field(12.0, ge=0, le=255, description="Mean grey under this.")
    brightness_above: float | None = Field(245.0, ge=0, le=255, description="Mean grey over this.")
    for_s: float = Field(10.0, ge=0, description="The condition must hold this long (event time).")
    severity: Severity = "warning"


class FocusCheck(Section):
    """Out of focus (or fogged): the variance of the Laplacian drops."""

    sharpness_below: float = Field(100.0, gt=0, description="Scene-dependent; see docs/alerts.md.")
    for_s: float = Field(30.0, ge=0)
    severity: Severity = "warning"


class MovedCheck(Section):
    """Moved: the picture no longer correlates with the reference frame."""

    similarity_below: float = Field(0.75, gt=-1, le=1)
    for_s: float = Field(30.0, ge=0)
    severity: Severity = "warning"


class CameraHealthRule(Section):
    """Camera health from the decoder's image statistics and connection state.

    Fed by the camera-health topic, not by detections; each check raises one alert per episode
    (the condition held for `for_s`); `None` turns a check off.
    """

    name: str = Field(pattern=NAME)
    offline_s: float | None = Field(
        60.0, gt=0, description="No frame for this long (decoder away, or its source)."
    )
    offline_severity: Severity = "critical"
    covered: CoveredCheck | None = Field(default_factory=CoveredCheck)
    out_of_focus: FocusCheck | None = Field(default_factory=FocusCheck)
    moved: MovedCheck | None = Field(default_factory=MovedCheck)


class CameraRules(Section):
    camera: str = Field(pattern=NAME)
    anchor: Anchor = Field("bottom_center", description="Box point used for lines and zones.")
    # Records up to this much older than the newest one still land in their window.
    lateness_s: float = Field(2.0, ge=0)
    track_ttl_s: float = Field(10.0, gt=0, description="Forget a track unseen for this long.")
    lanes: list[LaneSettings] = Field(default_factory=list)
    defects: list[DefectRule] = Field(default_factory=list)
    anomalies: list[AnomalyRule] = Field(default_factory=list)
    thresholds: list[ThresholdRule] = Field(default_factory=list)
    camera_health: list[CameraHealthRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        seen: set[str] = set()
        for rule in [*self.lanes, *self.defects, *self.anomalies, *self.thresholds, *self.camera_health]:
            if rule.name in seen:
                raise ValueError(f"camera {self.camera!r}: rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self


class RulesSettings(Section):
    """The rules file: `version: 1` and a list of cameras with their rules."""

    version: Literal[1] = 1
    cameras: list[CameraRules] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        cameras: set[str] = set()
        registers: dict[str, str] = {}
        for cam in self.cameras:
            if cam.camera in cameras:
                raise ValueError(f"camera {cam.camera!r} has two rule blocks; merge them")
            cameras.add(cam.camera)
            for lane in cam.lanes:
                reg = lane.pos_register
                if reg is None:
                    continue
                where = f"{cam.camera}/{lane.name}"
                if reg in registers:
                    raise ValueError(f"POS register {reg!r} is mapped twice ({registers[reg]}, {where})")
                registers[reg] = where
        return self


def secret_key(secret: str) -> bytes:
    """A webhook secret's HMAC key: `whsec_<base64>` per Standard Webhooks, else legacy raw UTF-8."""
    if not secret.startswith(WHSEC):
        raw = secret.encode()
    else:
        body = secret[len(WHSEC) :]
        try:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except binascii.Error:
            raise ValueError("a `whsec_` secret must be base64 after the prefix") from None
    if not raw:
        raise ValueError("a webhook secret may not be empty")
    return raw


class WebhookSettings(Section):
    """One receiver of alerts; each endpoint retries, backs off and trips independently.

    Requests are signed per the Standard Webhooks spec (alerts/webhooks/signing.py). Secrets are
    `whsec_<base64>`; during a rotation list the new and the old one and every request carries a
    signature for each. A secret without the prefix is a legacy raw key (its UTF-8 bytes).
    """

    name: str = Field(pattern=NAME)
    url: str = Field(pattern=r"^https?://[^\s/]+")
    secret: SecretStr | list[SecretStr] | None = Field(
        None, description="`whsec_` signing secret, or a list of them during a rotation; or use secret_env."
    )
    secret_env: str | None = Field(
        None, description="Environment variable holding the secret(s), space-separated during a rotation."
    )
    timeout_s: float = Field(5.0, gt=0)
    max_attempts: int = Field(
        6,
        ge=1,
        description="Failed HTTP requests per alert before it is dead-lettered (429 waits and failed "
        "breaker probes excluded; max_age_s bounds those).",
    )
    # 429 + Retry-After waits use no attempt (the receiver asked us to wait, it did not fail);
    # they are bounded by their own total instead, so a throttling receiver cannot hold an alert forever.
    max_retry_after_total_s: float = Field(600.0, ge=0, description="Total 429 Retry-After wait per alert.")
    # Also dead-letter an alert still undelivered this long after its first try (breaker open).
    max_age_s: float = Field(3600.0, gt=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    backoff_multiplier: float = Field(2.0, ge=1)
    jitter: float = Field(0.5, ge=0, le=1, description="Fraction of each backoff that is randomised.")
    types: list[AlertType] = Field(default_factory=list, description="Alert types to receive; empty = all.")
    cameras: list[str] = Field(default_factory=list, description="Cameras to receive; empty = all.")
    min_severity: Severity = "info"
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight to this endpoint.")
    breaker_failures: int = Field(5, ge=1, description="Consecutive failures that open the breaker.")
    breaker_reset_s: float = Field(10.0, gt=0, description="Open breaker lets a probe through after this.")
    max_pending: int = Field(10_000, ge=1, description="Backlog beyond this is dead-lettered at once.")
    evidence_ready: bool = Field(
        False,
        description="Also send `alert.evidence_ready` once an alert's snapshot and clip are stored "
        "(sent by `sightline evidence`; docs/evidence.md).",
    )

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError(f"webhook {self.name!r}: give exactly one of `secret` and `secret_env`")
        if self.secret is not None:
            self._check(self._inline())
        return self

    def _inline(self) -> list[SecretStr]:
        if self.secret is None:
            return []
        return self.secret if isinstance(self.secret, list) else [self.secret]

    def _check(self, secrets: list[SecretStr]) -> list[SecretStr]:
        if not secrets:
            raise ValueError(f"webhook {self.name!r}: no secret given")
        for i, secret in enumerate(secrets):
            try:
                secret_key(secret.get_secret_value())
            except ValueError as exc:  # the message never contains the secret
                raise ValueError(f"webhook {self.name!r}: secret #{i + 1}: {exc}") from None
        return secrets

    def secret_values(self) -> list[SecretStr]:
        """Every active signing secret; read from the environment at use so secrets stay out of files."""
        import os

        if self.secret is not None:
            return self._inline()
        assert self.secret_env is not None
        value = os.environ.get(self.secret_env, "").split()
        if not value:
            raise ValueError(f"webhook {self.name!r}: environment variable {self.secret_env} is not set")
        return self._check([SecretStr(v) for v in value])

    def secret_value(self) -> str:
        """The first secret; kept for callers that only check a secret is there and valid."""
        return self.secret_values()[0].get_secret_value()


class AlertsSettings(Section):
    app_id: str = Field("sightline-alerts", pattern=r"^[A-Za-z0-9._-]{1,100}$")
    # faust's local state folder (it keeps no tables here; faust's default is `<app_id>-data` in
    # the working directory, which left one folder per test run beside the code).
    data_dir: Path = Path(".sightline/alerts")
    rules_file: str | None = Field(None, description="YAML rules file; rules may also be inline.")
    rules: RulesSettings | None = None
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    # Redis keys (checkpoints, delivery dedup) start with this; one prefix per deployment.
    redis_prefix: str = "sightline:alerts"
    dedup_ttl_s: int = Field(7 * 86400, ge=60, description="How long a delivered alert id is remembered.")
    batch_max: int = Field(500, ge=1, description="Detections processed per checkpoint at most.")
    batch_wait_ms: float = Field(10.0, ge=0, description="How long a batch waits to fill.")
    # Alerts are published per batch; state + offsets are checkpointed (and offsets acked) at most
    # this often. A crash re-applies at most this much input, re-raising the same alert ids.
    checkpoint_interval_ms: float = Field(250.0, ge=0)
    # Static group membership: a restarted processor takes its partitions back at once instead of
    # waiting for the crashed one's session to expire. Give each concurrent instance its own id.
    instance_id: str | None = Field(None, description="Consumer group.instance.id; default: the hostname.")
    run_rules: bool = Field(True, description="Run the rules agent (detections -> alerts).")
    run_webhooks: bool = Field(True, description="Run the delivery agent (alerts -> webhooks).")
    # Ticks on the camera-health topic (wall clock) so `camera_health.offline_s` is noticed even
    # when a camera's decoder is gone and writes nothing (docs/alerts.md, "Camera health").
    health_tick_s: float = Field(5.0, ge=0, description="Seconds between two ticks; 0: no ticks.")

    @model_validator(mode="after")
    def _rules_once(self) -> Self:
        if self.rules_file is not None and self.rules is not None:
            raise ValueError("give either `rules_file` or inline `rules`, not both")
        names = [w.name for w in self.webhooks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"webhook names must be unique: {', '.join(dupes)}")
        return self


class EvidenceLinks(Protocol):
    """Of the evidence section, what the webhooks need: how to sign the evidence URLs."""

    @property
    def urls(self) -> EvidenceUrlSettings: ...


class AlertsConfig(StreamsConfig, Protocol):
    """The sections the alert processors read."""

    @property
    def alerts(self) -> AlertsSettings: ...
    @property
    def evidence(self) -> EvidenceLinks: ...
