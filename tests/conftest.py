"""Session fixtures: a real Kafka broker and Redis, started through `streams.devinfra`."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sightline.assets import media_path
from sightline.config import DevSettings, SightlineConfig
from streams.devinfra import DevStack, free_port
from streams.topics import ensure_topics


@dataclass
class Stack:
    dev: DevStack
    config: SightlineConfig

    def fresh_config(self, prefix: str = "t", partitions: int | None = None) -> SightlineConfig:
        """A config whose topics are new and unique, so tests never see each other's records."""
        tag = f"{prefix}-{uuid.uuid4().hex[:8]}"
        topics = {}
        for name, topic in self.config.topics:
            topics[name] = topic.model_copy(
                update={"name": f"{tag}.{name}", "partitions": partitions or topic.partitions}
            )
        config = self.config.model_copy(
            update={"topics": self.config.topics.model_copy(update=topics)}, deep=True
        )
        ensure_topics(config)
        return config


@contextmanager
def _running_stack(data_dir: Path) -> Iterator[Stack]:
    """Kafka and Redis on free ports under `data_dir`, with the configured topics, stopped after."""
    dev_settings = DevSettings(
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        redis_port=free_port(),
        data_dir=data_dir,
    )
    dev = DevStack(dev_settings)
    dev.up()
    config = SightlineConfig(
        kafka={"bootstrap_servers": dev.bootstrap_servers},
        redis={"url": dev.redis_url},
        dev=dev_settings.model_dump(),
    )
    ensure_topics(config)
    try:
        yield Stack(dev=dev, config=config)
    finally:
        dev.down()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = Path(os.environ.get("SIGHTLINE_TEST_DATA", tmp_path_factory.mktemp("devstack")))
    with _running_stack(data_dir) as running:
        yield running


@pytest.fixture(scope="session")
def vtest_path() -> Path:
    return media_path("vtest.avi")


@pytest.fixture(scope="session")
def bus_jpg() -> Path:
    return media_path("bus.jpg")


@pytest.fixture(scope="session")
def model_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with NanoDet-m registered and promoted, through the project's fetch command path."""
    from inference.fetch import fetch_model
    from inference.registry import ModelRegistry
    from streams.paths import cache_dir, shared_dir

    root = tmp_path_factory.mktemp("registry")
    shared = shared_dir()
    fetch_model(
        "nanodet-m",
        cache_dir(),
        registry=ModelRegistry(root),
        seed_dir=shared / "models" if shared else None,
    )
    return root


@pytest.fixture
def own_registry(model_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the session's registry for a test that adds or promotes versions, so the session's
    stays as built; commands run by the test find it through SIGHTLINE_INFERENCE__REGISTRY_DIR."""
    root = tmp_path / "models"
    shutil.copytree(model_registry, root)
    monkeypatch.setenv("SIGHTLINE_INFERENCE__REGISTRY_DIR", str(root))
    return root


def write_config(config: SightlineConfig, path: Path) -> Path:
    """Dump a config as the YAML a subprocess (`sightline -c FILE ...`) reads."""
    import yaml

    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A Kafka broker and Redis of this test module alone, which its tests may kill and restart.

    Fault tests crash the infrastructure (`own_stack.dev.kill("kafka")`, `.dev.start("kafka")`),
    so they never share the session's broker with the rest of the suite.
    """
    with _running_stack(tmp_path_factory.mktemp("own-stack")) as running:
        yield running


def outage(dev: DevStack, service: str, seconds: float) -> threading.Thread:
    """Kill -9 `service` now and start it again after `seconds`, in the background."""

    def crash_and_restart() -> None:
        dev.kill(service)
        time.sleep(seconds)
        dev.start(service)

    thread = threading.Thread(target=crash_and_restart, name=f"outage-{service}", daemon=True)
    thread.start()
    return thread


# Tests using these need a broker, Redis or a model run: they are marked `infra` and left out of
# `make test-fast` (tests that start such things themselves are marked in their module).
INFRA_FIXTURES = frozenset(
    {"stack", "own_stack", "model_registry", "own_registry", "nanodet_path", "ssd_path", "yolo11n_path",
     "vtest_frames", "detector"}
)  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INFRA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.infra)
