"""Hand-written YAML files (the configuration, rules files) read with line-numbered errors.

Errors name the YAML line they come from, because a config file is written by hand and
"cameras.2.url: invalid" is much less helpful than "line 14".
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A configuration problem, phrased for the person editing the file."""


def yaml_line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map every YAML path (keys and list indexes as strings) to its 1-based line."""
    index: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        index.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                index[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return index


def _step(node: Any, part: str) -> Any:
    """The type found under key or index `part` of `node` (a model or a type annotation)."""
    origin = typing.get_origin(node)
    if origin is typing.Annotated:
        return _step(typing.get_args(node)[0], part)
    if origin in (typing.Union, types.UnionType):
        steps = (_step(arg, part) for arg in typing.get_args(node) if arg is not type(None))
        return next((found for found in steps if found is not None), None)
    if origin in (list, tuple, set, frozenset):
        return typing.get_args(node)[0] if part.isdigit() else None
    if origin is dict:
        return typing.get_args(node)[1]
    if isinstance(node, type) and issubclass(node, BaseModel):
        field = node.model_fields.get(part)
        return field.annotation if field is not None else None
    return None


def _model_of(node: Any) -> type[BaseModel] | None:
    """The model a (possibly optional) annotation stands for: the one whose keys a mapping may use."""
    if isinstance(node, type) and issubclass(node, BaseModel):
        return node
    if typing.get_origin(node) in (typing.Union, types.UnionType, typing.Annotated):
        models = [m for m in map(_model_of, typing.get_args(node)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def valid_keys(root: type[BaseModel], loc: tuple[str, ...]) -> list[str] | None:
    """The keys the mapping at `loc` accepts, or None where no single model describes it.

    Hand-written rather than read from the JSON schema: pydantic's error locations are paths of
    field names and list indexes, which map directly onto the models' fields.
    """
    node: Any = root
    for part in loc:
        node = _step(node, part)
        if node is None:
            return None
    model = _model_of(node)
    return sorted(model.model_fields) if model is not None else None


def _unknown_key(loc: tuple[str, ...], root: type[BaseModel] | None) -> str:
    """'unknown key', and where a model is known, the section and the keys it does accept."""
    keys = valid_keys(root, loc[:-1]) if root is not None and loc else None
    if keys is None:
        return "unknown key"
    where = ".".join(loc[:-1]) or "the top level"
    return f"unknown key {loc[-1]!r} in {where}; valid keys: {', '.join(keys)}"


def describe_validation_error(
    error: ValidationError,
    lines: dict[tuple[str, ...], int],
    source: str,
    root: type[BaseModel] | None = None,
) -> str:
    """One line per problem, with its YAML line; `root` (the validated model) lets an unknown
    key's message list the keys its section accepts."""
    messages = []
    for item in error.errors():
        loc = tuple(str(part) for part in item["loc"])
        line = None
        for depth in range(len(loc), -1, -1):
            if loc[:depth] in lines:
                line = lines[loc[:depth]]
                break
        where = f"{source}:{line}" if line else source
        dotted = ".".join(loc) or "(root)"
        reason = _unknown_key(loc, root) if item["type"] == "extra_forbidden" else item["msg"]
        messages.append(f"{where}: {dotted}: {reason}")
    return "invalid configuration:\n  " + "\n  ".join(messages)


def read_yaml_mapping(path: str | os.PathLike[str], what: str, expected: str) -> tuple[dict[str, Any], str]:
    """A hand-written YAML file whose top level must be a mapping; returns (data, text)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{what} {file} does not exist")
    text = file.read_text()
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be {expected}")
    return data, text
