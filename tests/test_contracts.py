"""Wire contracts: JSON Schema files, the kcat interoperability path, claim checks."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from inference.frames import validate_frame_record
from schemas import generate
from schemas.alert import AlertRecord, alert_id
from schemas.dead_letter import dead_letter_headers, original_headers, parse_dead_letter
from schemas.detections import DetectionsRecord
from schemas.errors import ContractError
from schemas.frame import FrameMeta
from streams.claimcheck import ClaimCheckStore
from tests.conftest import Stack
from tests.helpers import read_topic

SCHEMAS = Path(generate.__file__).parent


@pytest.mark.parametrize("filename", sorted(generate.JSON_CONTRACTS))
def test_published_json_schemas_match_the_python_types(filename: str) -> None:
    published = (SCHEMAS / filename).read_text()
    assert published == generate.render(generate.JSON_CONTRACTS[filename], filename), (
        f"schemas/{filename} is stale: run `python -m schemas.generate`"
    )
    Draft202012Validator.check_schema(json.loads(published))


def test_header_schemas_are_valid_json_schema() -> None:
    for path in SCHEMAS.glob("*.headers.schema.json"):
        Draft202012Validator.check_schema(json.loads(path.read_text()))


def _meta(**overrides: object) -> FrameMeta:
    fields = {
        "camera_id": "cam1",
        "seq": 7,
        "capture_ns": 1_700_000_000_000_000_000,
        "width": 810,
        "height": 1080,
    }
    return FrameMeta(**{**fields, **overrides})  # type: ignore[arg-type]


def test_frame_validator_accepts_good_and_names_the_reason_for_bad(bus_jpg: Path) -> None:
    jpeg = bus_jpg.read_bytes()
    meta = _meta()
    assert validate_frame_record(b"cam1", jpeg, meta.headers()) == meta
    cases = {
        "missing header 'schema-version'": (
            b"cam1",
            jpeg,
            [h for h in meta.headers() if h[0] != "schema-version"],
        ),
        "unsupported frame schema-version '2'": (
            b"cam1",
            jpeg,
            [(k, b"2" if k == "schema-version" else v) for k, v in meta.headers()],
        ),
        "header 'seq'": (b"cam1", jpeg, [(k, b"-1" if k == "seq" else v) for k, v in meta.headers()]),
        "does not match camera-id": (b"cam2", jpeg, meta.headers()),
        "not a jpeg image": (b"cam1", b"GIF89a....", meta.headers()),
        "oversized frame": (b"cam1", jpeg + b"\0" * (1 << 20), meta.headers()),
        "'width' is a required property": (b"cam1", jpeg, [h for h in meta.headers() if h[0] != "width"]),
    }
    for reason, (key, value, headers) in cases.items():
        with pytest.raises(ContractError, match=reason.replace("(", r"\(")):
            validate_frame_record(key, value, headers, max_bytes=1 << 20)


def test_detections_and_alert_contracts_reject_wrong_versions_and_shapes() -> None:
    record = {
        "schema_version": 1,
        "camera_id": "cam1",
        "seq": 1,
        "capture_ns": 5,
        "width": 640,
        "height": 480,
        "frame": {"topic": "f", "partition": 0, "offset": 1},
        "model": {"name": "m", "version": "1"},
        "timing": {"queue_ms": 1, "preprocess_ms": 1, "inference_ms": 1, "batch_size": 1},
        "produced_ns": 9,
        "detections": {
            "xyxy": [[1, 2, 3, 4]],
            "confidence": [0.5],
            "class_id": [0],
            "class_name": ["person"],
            "tracker_id": [None],
        },
    }
    assert DetectionsRecord.decode(json.dumps(record)).detections.class_name.tolist() == ["person"]
    with pytest.raises(ContractError, match="schema_version"):
        DetectionsRecord.decode(json.dumps({**record, "schema_version": 2}))
    bad = {**record, "detections": {**record["detections"], "confidence": []}}
    with pytest.raises(ContractError, match="equal lengths"):
        DetectionsRecord.decode(json.dumps(bad))
    assert alert_id("rule", "cam1", 1) == alert_id("rule", "cam1", 1) != alert_id("rule", "cam1", 2)
    with pytest.raises(ContractError):
        AlertRecord.decode(b'{"schema_version": 1}')


def test_dead_letter_headers_keep_the_original() -> None:
    original = [("camera-id", b"cam1"), ("seq", b"3")]
    headers = dead_letter_headers(original, "bad magic", "inference", "frames", 2, 41)
    letter = parse_dead_letter(headers)
    assert (letter.reason, letter.stage, letter.source_partition, letter.source_offset) == (
        "bad magic",
        "inference",
        2,
        41,
    )
    assert original_headers(headers) == original


def test_claim_check_round_trip_and_expiry(stack: Stack) -> None:
    store = ClaimCheckStore(stack.config.redis.url, ttl_s=1)
    key = store.put(ClaimCheckStore.key_for("cam1", 1, 123), b"\xff\xd8\xffpayload")
    assert store.get(key) == b"\xff\xd8\xffpayload"
    time.sleep(1.6)
    with pytest.raises(ContractError, match="expired"):
        store.get(key)
    with pytest.raises(ContractError, match="outside"):
        store.get("some:other:key")


def test_kcat_published_frame_is_accepted_and_malformed_one_rejected(stack: Stack, bus_jpg: Path) -> None:
    """Exactly the commands shown in docs/wire-format.md."""
    config = stack.fresh_config("kcat")
    topic, broker = config.topics.frames.name, config.kafka.bootstrap_servers
    good = [
        "kcat",
        "-P",
        "-b",
        broker,
        "-t",
        topic,
        "-k",
        "cam1",
        "-H",
        "schema-version=1",
        "-H",
        "camera-id=cam1",
        "-H",
        "seq=0",
        "-H",
        f"capture-ns={time.time_ns()}",
        "-H",
        "width=810",
        "-H",
        "height=1080",
        "-H",
        "encoding=jpeg",
        str(bus_jpg),
    ]
    subprocess.run(good, check=True, timeout=30)
    bad = [arg if arg != "width=810" else "width=wide" for arg in good]
    subprocess.run(bad, check=True, timeout=30)
    records = read_topic(config, topic, expected=2)
    assert len(records) == 2
    meta = validate_frame_record(records[0].key(), records[0].value(), records[0].headers())
    assert (meta.camera_id, meta.width, meta.height) == ("cam1", 810, 1080)
    assert records[0].value() == bus_jpg.read_bytes()
    with pytest.raises(ContractError, match="header 'width'"):
        validate_frame_record(records[1].key(), records[1].value(), records[1].headers())


def test_kcat_reads_detections_as_json(stack: Stack) -> None:
    config = stack.fresh_config("kcatread")
    from streams.kafka import make_producer

    producer = make_producer(config.kafka)
    producer.produce(config.topics.detections.name, key=b"cam1", value=b'{"camera_id": "cam1"}')
    producer.flush(10)
    out = subprocess.run(
        [
            "kcat",
            "-C",
            "-b",
            config.kafka.bootstrap_servers,
            "-t",
            config.topics.detections.name,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k %s\n",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.strip() == 'cam1 {"camera_id": "cam1"}'


@pytest.mark.parametrize("stage", ["decoder", "inference", "alerts", "webhook", "api"])
def test_dead_letter_headers_follow_the_published_schema(stage: str) -> None:
    from alerts.app import RULES_STAGE
    from alerts.webhooks.dead_letters import STAGE as WEBHOOK_STAGE
    from schemas.headers import headers_to_dict

    schema = json.loads((SCHEMAS / "dead_letter.headers.schema.json").read_text())
    validator = Draft202012Validator(schema)
    headers = headers_to_dict(dead_letter_headers([("camera-id", b"cam1")], "why", stage, "t", 0, 5))
    assert not list(validator.iter_errors(headers))
    assert {RULES_STAGE, WEBHOOK_STAGE} <= set(schema["properties"]["dlq-stage"]["enum"])
