"""The claim-check recipe of docs/wire-format.md, run as written (only the addresses, topic and
image path swapped for the test's), and the kcat pitfall it warns about: an empty file sends nothing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from inference.frames import accept_frame_record, frame_payload
from streams.claimcheck import KEY_PREFIX, ClaimCheckStore
from streams.paths import repo_root
from tests.conftest import Stack
from tests.helpers import read_topic


def _recipe() -> str:
    """The first sh block after the claim-check heading of the wire-format doc."""
    doc = (repo_root() / "docs" / "wire-format.md").read_text()
    section = doc.split("### Publishing a claim-checked frame with kcat", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found is not None, "no sh block in the claim-check section"
    return found[1]


def test_the_documented_kcat_recipe_publishes_a_claim_checked_frame(stack: Stack, bus_jpg: Path) -> None:
    config = stack.fresh_config("kcat-claim", partitions=1)
    topic = config.topics.frames.name
    script = (
        _recipe()
        .replace("127.0.0.1:9092", config.kafka.bootstrap_servers)
        .replace("redis://127.0.0.1:6379/0", config.redis.url)
        .replace("sightline.frames", topic)
        .replace("bus.jpg", str(bus_jpg))
    )
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True, timeout=60)
    [record] = read_topic(config, topic, expected=1)
    assert not record.value(), "a claim-checked frame's value is empty"
    # What a worker runs on it: the checks on arrival, then the image from Redis, checked against them.
    meta = accept_frame_record(
        record.key(), record.value(), record.headers(), max_bytes=config.frames.max_frame_bytes
    )
    assert meta.camera_id == "cam1" and meta.claim_check is not None
    assert meta.claim_check.startswith(KEY_PREFIX)
    store = ClaimCheckStore(config.redis.url, config.frames.claim_check_ttl_s)
    try:
        assert 0 < store.client.ttl(meta.claim_check) <= 7200, "the image has a TTL"
        payload = frame_payload(record, meta, store, config.frames.max_frame_bytes, config.frames.max_pixels)
    finally:
        store.close()
    assert payload == bus_jpg.read_bytes()


def test_kcat_sends_nothing_for_an_empty_file(stack: Stack, tmp_path: Path) -> None:
    config = stack.fresh_config("kcat-empty", partitions=1)
    topic = config.topics.frames.name
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    command = ["kcat", "-P", "-b", config.kafka.bootstrap_servers, "-t", topic, "-k", "cam1", str(empty)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr  # silent success ...
    assert read_topic(config, topic) == [], "... yet no record"
