"""The reference frame follows saved rules versions: a version that changes a camera's rules
clears its reference (the decoder takes the next good frame); other saves leave it alone; a
decoder that was down while rules were saved retakes it at start. Real broker and Redis."""

from __future__ import annotations

import uuid

import numpy as np

from alerts.rules_store import RulesStore
from alerts.settings import RulesSettings
from decoders.reference import ReferenceStore
from decoders.rules_follow import RulesFollower, camera_digest
from tests.conftest import Stack


def _rules(cameras: dict[str, float]) -> RulesSettings:
    """One camera_health rule per camera, its offline_s as given (a change of the rules)."""
    return RulesSettings(
        cameras=[
            {"camera": c, "camera_health": [{"name": "health", "offline_s": s}]} for c, s in cameras.items()
        ]
    )


def test_saving_a_cameras_rules_retakes_its_reference(stack: Stack) -> None:
    config = stack.fresh_config("reference", partitions=1)
    cam, other = f"ref-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    store = ReferenceStore.connect(config.redis.url)
    rules = RulesStore(config.kafka, config.topics.rules.name, RulesSettings())
    image = np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))
    try:
        store.put(cam, image)
        follower = RulesFollower(config, [cam], store)
        assert follower.poll_once() == [], "the first look records the rules; keeps the reference"
        assert store.get(cam) is not None
        rules.save(_rules({cam: 30, other: 30}), "test", "draw the lines")
        assert follower.poll_once() == [cam]
        assert store.get(cam) is None, "cleared: the decoder takes the next good frame"
        store.put(cam, image)
        rules.save(_rules({cam: 30, other: 60}), "test", "another camera only")
        assert follower.poll_once() == [] and store.get(cam) is not None
        follower.close()
        # A decoder that was down while the camera's rules were saved retakes it at start.
        rules.save(_rules({cam: 45, other: 60}), "test", "while the decoder was down")
        restarted = RulesFollower(config, [cam], store)
        assert restarted.poll_once() == [cam]
        restarted.close()
    finally:
        store.clear(cam)
        store.client.delete(f"{store.key(cam)}:rules")
        store.close()


def test_camera_digest_is_per_camera_block() -> None:
    doc = _rules({"a": 30, "b": 30}).model_dump(mode="json")
    changed = _rules({"a": 30, "b": 60}).model_dump(mode="json")
    assert camera_digest(doc, "a") == camera_digest(changed, "a")
    assert camera_digest(doc, "b") != camera_digest(changed, "b")
    assert camera_digest(doc, "c") == camera_digest(None, "c") == "-"
