"""Saved rules versions, without I/O: validation, the catalog of versions, diffs.

Versions live on the compacted rules topic (`alerts/rules_store.py` reads and writes it); the
highest version is in force. Until the first version is saved, the deployment's rules file (or
inline `alerts.rules`) is in force as version 0, so a deployment that never saves a version
behaves as before. A rollback saves an older document again as a new, higher version, so the
version in force only ever grows and every processor agrees on it.
"""

from __future__ import annotations

import difflib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from alerts.engine import rule_digests
from alerts.settings import CameraRules, RulesSettings
from schemas.rules_version import RulesVersionRecord
from streams.config_files import valid_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldError:
    """One validator message, at the dotted path of the field it is about."""

    loc: tuple[str | int, ...]
    message: str

    @property
    def path(self) -> str:
        return ".".join(str(p) for p in self.loc) or "(root)"

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "path": self.path, "message": self.message}


class RulesInvalid(ValueError):
    """A rules document the rules model refuses; `errors` has one entry per field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("invalid rules:\n  " + "\n  ".join(f"{e.path}: {e.message}" for e in errors))


def field_errors(
    exc: ValidationError, root: type[Any], prefix: tuple[str | int, ...] = ()
) -> list[FieldError]:
    out = []
    for item in exc.errors():
        loc = prefix + tuple(item["loc"])
        if item["type"] == "extra_forbidden":
            keys = valid_keys(root, tuple(str(p) for p in item["loc"][:-1]))
            message = "unknown key" + (f"; valid keys: {', '.join(keys)}" if keys else "")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
        out.append(FieldError(loc, message))
    return out


def validate_document(document: Any) -> RulesSettings:
    """The rules model over a document; raises `RulesInvalid` with per-field messages."""
    if not isinstance(document, dict):
        raise RulesInvalid([FieldError((), "a rules document is a mapping with `version` and `cameras`")])
    try:
        return RulesSettings(**document)
    except ValidationError as exc:
        raise RulesInvalid(field_errors(exc, RulesSettings)) from None


def validate_camera(block: Any) -> CameraRules:
    """One camera's rules (the editor's unit); errors are located under `cameras.<camera>`."""
    if not isinstance(block, dict):
        raise RulesInvalid([FieldError((), "a camera's rules are a mapping with `camera` and its rules")])
    try:
        return CameraRules(**block)
    except ValidationError as exc:
        raise RulesInvalid(field_errors(exc, CameraRules)) from None


def document_of(rules: RulesSettings) -> dict[str, Any]:
    """The canonical document of validated rules: defaults written out, unset rules left out."""
    return rules.model_dump(mode="json", exclude_none=True)


def with_camera(current: RulesSettings, camera: CameraRules) -> RulesSettings:
    """`current` with one camera's rules replaced (or added); the whole is validated again
    (a POS register may not be mapped by two cameras)."""
    cameras = [c for c in current.cameras if c.camera != camera.camera] + [camera]
    cameras.sort(key=lambda c: c.camera)
    return validate_document({"version": 1, "cameras": [document_of_camera(c) for c in cameras]})


def document_of_camera(camera: CameraRules) -> dict[str, Any]:
    return camera.model_dump(mode="json", exclude_none=True)


@dataclass
class Catalog:
    """Every saved version; for one number the first record on the topic wins."""

    versions: dict[int, RulesVersionRecord] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[RulesVersionRecord]) -> Catalog:
        catalog = cls()
        for record in records:
            catalog.add(record)
        return catalog

    def add(self, record: RulesVersionRecord) -> bool:
        """Keep `record` unless its number is taken or its document is invalid (every reader
        then ignores it alike); True when kept."""
        if record.version in self.versions:
            return False
        try:
            validate_document(record.rules)
        except RulesInvalid as exc:
            log.error("rules version %d ignored: %s", record.version, exc)
            return False
        self.versions[record.version] = record
        return True

    @property
    def latest(self) -> int:
        """The version in force; 0 while none is saved (the rules file is in force)."""
        return max(self.versions, default=0)

    def get(self, version: int) -> RulesVersionRecord:
        if version not in self.versions:
            known = ", ".join(str(v) for v in sorted(self.versions)) or "none"
            raise KeyError(f"no rules version {version} (saved: {known})")
        return self.versions[version]

    def rules(self, version: int, fallback: RulesSettings) -> RulesSettings:
        """The validated rules of `version`; 0 is `fallback` (the rules file)."""
        if version == 0:
            return fallback
        return validate_document(self.get(version).rules)

    def in_force(self, fallback: RulesSettings) -> tuple[int, RulesSettings]:
        return self.latest, self.rules(self.latest, fallback)

    def history(self) -> list[RulesVersionRecord]:
        return [self.versions[v] for v in sorted(self.versions)]

    def previous(self) -> int:
        """The version a plain rollback returns to: the one before the latest (0: the file)."""
        older = [v for v in self.versions if v < self.latest]
        return max(older, default=0)


def new_record(
    catalog: Catalog,
    rules: RulesSettings,
    author: str,
    comment: str,
    created_ns: int,
    copied_from: int | None = None,
) -> RulesVersionRecord:
    """The next version (latest + 1) holding `rules`."""
    return RulesVersionRecord(
        version=catalog.latest + 1,
        author=author,
        created_ns=created_ns,
        comment=comment,
        copied_from=copied_from,
        write_id=secrets.token_hex(8),
        rules=document_of(rules),
    )


def to_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)


def unified_diff(old: dict[str, Any], new: dict[str, Any], old_name: str, new_name: str) -> str:
    """A unified diff of two documents as YAML (empty when equal)."""
    lines = difflib.unified_diff(
        to_yaml(old).splitlines(keepends=True),
        to_yaml(new).splitlines(keepends=True),
        old_name,
        new_name,
    )
    return "".join(lines)


def changed_rules(old: RulesSettings, new: RulesSettings) -> dict[str, dict[str, list[str]]]:
    """Per camera: rules added, removed, changed (their state starts fresh) and kept."""
    before = {c.camera: rule_digests(c) for c in old.cameras}
    after = {c.camera: rule_digests(c) for c in new.cameras}
    out: dict[str, dict[str, list[str]]] = {}
    for camera in sorted(set(before) | set(after)):
        a, b = before.get(camera, {}), after.get(camera, {})
        out[camera] = {
            "added": sorted(set(b) - set(a)),
            "removed": sorted(set(a) - set(b)),
            "changed": sorted(n for n in set(a) & set(b) if a[n] != b[n]),
            "kept": sorted(n for n in set(a) & set(b) if a[n] == b[n]),
        }
    return out
