"""Filesystem registry: add, list, promote, roll back, integrity checks and the poll token."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.registry import IntegrityError, ModelRegistry, RegistryError


@pytest.fixture
def models(const_model):
    """Two different small yolo_nms models."""
    a = np.zeros((1, 10, 6), np.float32)
    b = a.copy()
    b[0, 0] = [1, 2, 3, 4, 0.9, 1]
    return const_model({"out": a}), const_model({"out": b})


def test_add_infers_manifest_and_numbers_versions(tmp_path, models) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    m1 = reg.add(models[0], "det")
    m2 = reg.add(models[1], "det", score_threshold=0.6)
    assert (m1.version, m2.version) == ("1", "2")
    assert m1.format == "yolo_nms" and m2.score_threshold == 0.6
    assert reg.add(models[0], "det") == m1  # same bytes: no duplicate version
    assert reg.versions("det") == ["1", "2"] and reg.names() == ["det"]
    assert [m.version for m in reg.list()] == ["1", "2"]
    stored = json.loads((tmp_path / "reg/det/2/manifest.json").read_text())
    assert stored["sha256"] == m2.sha256 and (tmp_path / "reg/det/2/model.onnx").is_file()
    with pytest.raises(RegistryError, match="already exists"):
        reg.add(models[1], "det", version="1")


def test_promote_rollback_and_state_token(tmp_path, models) -> None:
    reg = ModelRegistry(tmp_path)
    reg.add(models[0], "det", version="2024-01")
    reg.add(models[1], "det", version="2024-02")
    assert reg.state_token("det") is None
    with pytest.raises(RegistryError, match="no promoted"):
        reg.promoted("det")

    reg.promote("det", "2024-01")
    token1 = reg.state_token("det")
    reg.promote("det", "2024-02")
    token2 = reg.state_token("det")
    manifest, path = reg.promoted("det")
    assert manifest.version == "2024-02" and path.name == "model.onnx"
    assert token1 != token2

    assert reg.rollback("det") == "2024-01"
    assert reg.promoted("det")[0].version == "2024-01"
    assert reg.state_token("det") not in (token1, token2)  # a rollback is a change pollers must see
    with pytest.raises(RegistryError, match="roll back"):
        reg.rollback("det")
    with pytest.raises(RegistryError, match="no version"):
        reg.promote("det", "missing")
    state = json.loads((tmp_path / "det/state.json").read_text())
    assert state["history"] == ["2024-01"] and state["promoted"] == "2024-01"
    assert not [p for p in (tmp_path / "det").iterdir() if p.name.startswith(".state")]  # no temp leftovers


def test_tampered_model_fails_sha_check(tmp_path, models) -> None:
    reg = ModelRegistry(tmp_path)
    m = reg.add(models[0], "det")
    reg.promote("det", m.version)
    model_file = tmp_path / "det" / m.version / "model.onnx"
    model_file.chmod(0o644)
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="sha256"):
        reg.promoted("det")
    assert reg.promoted("det", verify=False)[0] == m


def test_rejects_unsafe_names(tmp_path, models) -> None:
    reg = ModelRegistry(tmp_path)
    for bad in ("../x", "a/b", ""):
        with pytest.raises(ValueError):
            reg.add(models[0], bad)


def test_promoted_detector_hot_swaps(tmp_path, models) -> None:
    from inference.hotswap import PromotedDetector

    reg = ModelRegistry(tmp_path)
    reg.add(models[0], "det")
    reg.add(models[1], "det")
    reg.promote("det", "1")
    now = [0.0]
    served = PromotedDetector(reg, "det", poll_s=5, clock=lambda: now[0])
    frame = np.zeros((64, 64, 3), np.uint8)
    assert served.version == "1" and len(served.current().detect([frame])[0][0]) == 0
    reg.promote("det", "2")
    assert served.current().manifest.version == "1"  # not polled yet
    now[0] = 6.0
    assert served.current().manifest.version == "2"
    assert len(served.current().detect([frame])[0][0]) == 1
    reg.rollback("det")
    now[0] = 12.0
    assert served.version == "2" and served.current().manifest.version == "1"


def test_a_background_build_never_holds_up_the_model_in_service(tmp_path, models, monkeypatch) -> None:
    """A promoted version builds on its own thread (a TensorRT build takes minutes): until it is
    ready the old version keeps serving at once; then the next call swaps it in."""
    import threading
    import time

    from inference.detector import Detector
    from inference.hotswap import PromotedDetector

    reg = ModelRegistry(tmp_path)
    reg.add(models[0], "det")
    reg.add(models[1], "det")
    reg.promote("det", "1")
    now, replaced = [0.0], []
    served = PromotedDetector(
        reg, "det", poll_s=5, clock=lambda: now[0], on_replaced=replaced.append, build_in_background=True
    )
    release = threading.Event()
    real_from_registry = Detector.from_registry

    def slow_build(*args, **kwargs):  # the real build, held until the test lets it finish
        assert release.wait(30)
        return real_from_registry(*args, **kwargs)

    monkeypatch.setattr(Detector, "from_registry", slow_build)
    reg.promote("det", "2")
    now[0] = 6.0
    started = time.monotonic()
    assert served.current().manifest.version == "1" and served.building
    now[0] = 12.0  # polling again while it builds starts no second build
    assert served.current().manifest.version == "1"
    assert time.monotonic() - started < 1.0, "current() waited for the build"
    release.set()
    deadline = time.monotonic() + 30
    while served.building:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    frame = np.zeros((64, 64, 3), np.uint8)
    assert served.current().manifest.version == "2" and len(served.current().detect([frame])[0][0]) == 1
    assert [d.manifest.version for d in replaced] == ["1"]
    for old in replaced:
        old.close()
    served.close()
