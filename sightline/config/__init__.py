"""One YAML file describes the whole deployment; environment variables override it.

This is the command layer's root model: it composes the settings each stage owns
(`streams.settings`, `decoders.settings`, `inference.settings`, `alerts.settings`) and this
layer's own (`service`). Errors name the YAML line they come from (`streams.config_files`).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alerts.settings import AlertsSettings
from decoders.settings import CameraSettings
from inference.settings import InferenceSettings
from sightline.config.service import ApiSettings, DriftSettings
from sightline.evidence.settings import EvidenceSettings
from streams.config_files import (
    ConfigError,
    describe_validation_error,
    read_yaml_mapping,
    valid_keys,
    yaml_line_index,
)
from streams.settings import (
    DevSettings,
    FramesSettings,
    KafkaSettings,
    MetricsSettings,
    RedisSettings,
    TopicSettings,
    TopicsSettings,
    check_claim_check_ttl,
)

__all__ = [
    "ApiSettings",
    "AlertsSettings",
    "CameraSettings",
    "ConfigError",
    "DevSettings",
    "DriftSettings",
    "EvidenceSettings",
    "FramesSettings",
    "InferenceSettings",
    "KafkaSettings",
    "MetricsSettings",
    "RedisSettings",
    "SightlineConfig",
    "TopicSettings",
    "TopicsSettings",
    "describe_validation_error",
    "load_config",
    "read_yaml_mapping",
    "valid_keys",
    "yaml_line_index",
]

ENV_CONFIG_PATH = "SIGHTLINE_CONFIG"


class SightlineConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SIGHTLINE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        hide_input_in_errors=True,  # camera URLs and tokens carry credentials
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    topics: TopicsSettings = Field(default_factory=TopicsSettings)
    frames: FramesSettings = Field(default_factory=FramesSettings)
    dev: DevSettings = Field(default_factory=DevSettings)
    cameras: list[CameraSettings] = Field(default_factory=list)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML file (passed as init kwargs), as in twelve-factor apps.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _claim_check_outlives_frames(self) -> SightlineConfig:
        check_claim_check_ttl(self.frames, self.topics)
        return self

    def camera(self, camera_id: str) -> CameraSettings:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)


def _check_unique_cameras(config: SightlineConfig, lines: dict[tuple[str, ...], int], source: str) -> None:
    seen: dict[str, int] = {}
    for i, cam in enumerate(config.cameras):
        if cam.id in seen:
            line = lines.get(("cameras", str(i), "id"))
            where = f"{source}:{line}" if line else source
            raise ConfigError(
                f"invalid configuration:\n  {where}: cameras.{i}.id: duplicate camera id {cam.id!r}"
            )
        seen[cam.id] = i


def load_config(path: str | os.PathLike[str] | None = None) -> SightlineConfig:
    """Load YAML from `path` (or $SIGHTLINE_CONFIG), apply env overrides, validate."""
    path = path or os.environ.get(ENV_CONFIG_PATH)
    data: dict[str, Any] = {}
    text, source = "", "<defaults>"
    if path:
        data, text = read_yaml_mapping(path, "configuration file", "a mapping of sections")
        source = str(path)
    lines = yaml_line_index(text) if text else {}
    try:
        config = SightlineConfig(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, lines, source, SightlineConfig)) from None
    _check_unique_cameras(config, lines, source)
    return config
