"""Configuration: clear, line-numbered errors and environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from sightline.config import ConfigError, load_config

GOOD = """\
kafka:
  bootstrap_servers: 127.0.0.1:9092
cameras:
  - id: lane1
    url: rtsp://10.0.0.5/stream1
    fps: 10
    rtsp_transport: udp
  - id: dock
    url: /videos/dock.mp4
    loop: true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sightline.yaml"
    path.write_text(text)
    return path


def test_good_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert [c.id for c in config.cameras] == ["lane1", "dock"]
    assert config.camera("lane1").is_live and not config.camera("dock").is_live


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace("    fps: 10\n", "    fps: 10\n    colour: red\n"),
            ":7: cameras.0.colour: unknown key",
        ),
        (GOOD.replace("rtsp://10.0.0.5/stream1", "rtsp//10.0.0.5/x"), ":5: cameras.0.url"),
        (GOOD.replace("rtsp://10.0.0.5/stream1", "gopher://h/x"), "unsupported URL scheme"),
        (GOOD.replace("  - id: dock\n", "  - name: dock\n"), ":8: cameras.1.id: Field required"),
        (GOOD.replace("id: dock", "id: lane1"), ":8: cameras.1.id: duplicate camera id 'lane1'"),
        ("kafka: [1, 2]\n", ":1: kafka"),
        ("cameras: {\n", "not valid YAML"),
    ],
)
def test_bad_config_names_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGHTLINE_KAFKA__BOOTSTRAP_SERVERS", "broker:19092")
    monkeypatch.setenv("SIGHTLINE_INFERENCE__MAX_BATCH", "8")
    config = load_config(write(tmp_path, GOOD))
    assert config.kafka.bootstrap_servers == "broker:19092"
    assert config.inference.max_batch == 8
    assert config.cameras[0].id == "lane1"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_example_config_in_the_repo_is_valid() -> None:
    from streams.paths import repo_root

    config = load_config(repo_root() / "sightline.example.yaml")
    assert {c.id for c in config.cameras} == {"lane1", "dock"}


def _nested_model(annotation: object) -> type | None:
    """The settings model inside a field's type (`X`, `X | None`, `list[X]`), if any."""
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _nested_model(arg)) is not None:
            return found
    return None


def test_example_config_shows_every_settings_field() -> None:
    """Each settings model reachable from the config (the alert rules' own layout, documented in
    docs/alerts.md, aside) has each of its fields in the example, across all its uses there."""
    import yaml

    from alerts.settings import RulesSettings
    from sightline.config import SightlineConfig
    from streams.paths import repo_root

    shown: dict[type, set[str]] = {}

    def walk(model: type, data: object) -> None:
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item, dict):
                continue
            shown.setdefault(model, set()).update(item)
            for name, field in model.model_fields.items():
                inner = _nested_model(field.annotation)
                if inner is not None and inner is not RulesSettings and name in item:
                    walk(inner, item[name])

    walk(SightlineConfig, yaml.safe_load((repo_root() / "sightline.example.yaml").read_text()))
    missing, todo, done = [], [SightlineConfig], set()
    while todo:
        model = todo.pop()
        done.add(model)
        missing += [
            f"{model.__name__}.{name}" for name in model.model_fields if name not in shown.get(model, ())
        ]
        nested = (_nested_model(f.annotation) for f in model.model_fields.values())
        todo += [m for m in nested if m is not None and m is not RulesSettings and m not in done]
    assert not missing, f"settings missing from sightline.example.yaml: {missing}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("inference:\n  bach_size: 4\n", ":2: inference.bach_size: unknown key 'bach_size' in inference; "),
        ("dev:\n  port: 1\n", "unknown key 'port' in dev; valid keys: data_dir, kafka_controller_port, "),
        ("colour: red\n", "unknown key 'colour' in the top level; valid keys: alerts, api, cameras, dev, "),
        (GOOD.replace("    loop: true\n", "    lop: true\n"), "unknown key 'lop' in cameras.1; valid keys: "),
    ],
)
def test_unknown_key_lists_the_keys_of_its_section(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)
    if "inference" in text:
        assert "max_batch" in str(info.value).split("valid keys: ")[1]


def test_example_config_values_are_the_defaults() -> None:
    """The example says it shows the defaults; only its cameras, rules file and webhook (none by
    default) are examples of their own."""
    from sightline.config import SightlineConfig
    from streams.paths import repo_root

    example = load_config(repo_root() / "sightline.example.yaml").model_dump(mode="json")
    defaults = SightlineConfig().model_dump(mode="json")  # not $SIGHTLINE_CONFIG's file
    for data in (example, defaults):
        data.pop("cameras")
        data["alerts"].pop("rules_file")
        data["alerts"].pop("webhooks")
    differ = {
        f"{section}.{key}": (value, defaults[section][key])
        for section, values in example.items()
        for key, value in values.items()
        if value != defaults[section][key]
    }
    assert not differ, f"sightline.example.yaml differs from the defaults (example, default): {differ}"
