"""Loading a rules file with the same line-numbered errors as the main configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from alerts.settings import AlertsSettings, RulesSettings
from streams.config_files import ConfigError, describe_validation_error, read_yaml_mapping, yaml_line_index


def load_rules(path: str | Path) -> RulesSettings:
    """Parse and validate a rules YAML file; errors name the file and line."""
    data, text = read_yaml_mapping(path, "rules file", "a mapping with `version` and `cameras`")
    try:
        return RulesSettings(**data)
    except ValidationError as exc:
        raise ConfigError(
            describe_validation_error(exc, yaml_line_index(text), str(path), RulesSettings).replace(
                "configuration", "rules"
            )
        ) from None


def rules_for(settings: AlertsSettings) -> RulesSettings:
    """The deployment's rules: inline `alerts.rules`, else `alerts.rules_file`, else none."""
    if settings.rules is not None:
        return settings.rules
    if settings.rules_file:
        return load_rules(settings.rules_file)
    return RulesSettings()
