"""Loading a rules file with the same line-numbered errors as the main configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sightline.config import ConfigError, SightlineConfig, _describe, _line_index
from sightline.config.alerts import RulesSettings


def load_rules(path: str | Path) -> RulesSettings:
    """Parse and validate a rules YAML file; errors name the file and line."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"rules file {file} does not exist")
    text = file.read_text()
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a rules file is a mapping with `version` and `cameras`")
    try:
        return RulesSettings(**data)
    except ValidationError as exc:
        raise ConfigError(
            _describe(exc, _line_index(text), str(file)).replace("configuration", "rules")
        ) from None


def rules_for(config: SightlineConfig) -> RulesSettings:
    """The deployment's rules: inline `alerts.rules`, else `alerts.rules_file`, else none."""
    if config.alerts.rules is not None:
        return config.alerts.rules
    if config.alerts.rules_file:
        return load_rules(config.alerts.rules_file)
    return RulesSettings()
