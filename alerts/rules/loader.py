"""Loading a rules file with the same line-numbered errors as the main configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from sightline.config import (
    ConfigError,
    SightlineConfig,
    describe_validation_error,
    read_yaml_mapping,
    yaml_line_index,
)
from sightline.config.alerts import RulesSettings


def load_rules(path: str | Path) -> RulesSettings:
    """Parse and validate a rules YAML file; errors name the file and line."""
    data, text = read_yaml_mapping(path, "rules file", "a mapping with `version` and `cameras`")
    try:
        return RulesSettings(**data)
    except ValidationError as exc:
        raise ConfigError(
            describe_validation_error(exc, yaml_line_index(text), str(path)).replace("configuration", "rules")
        ) from None


def rules_for(config: SightlineConfig) -> RulesSettings:
    """The deployment's rules: inline `alerts.rules`, else `alerts.rules_file`, else none."""
    if config.alerts.rules is not None:
        return config.alerts.rules
    if config.alerts.rules_file:
        return load_rules(config.alerts.rules_file)
    return RulesSettings()
