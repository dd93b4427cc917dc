"""Writes the JSON Schema files for the JSON contracts from their Python types.

The Python types are the single source; `tests/test_contracts.py` fails when a file is stale.
Run: python -m schemas.generate
"""

from __future__ import annotations

import json
from pathlib import Path

from schemas.alert import AlertRecord
from schemas.base import Contract
from schemas.camera_event import CameraEvent
from schemas.camera_health import CameraHealth
from schemas.detections import DetectionsContract
from schemas.feedback import FeedbackRecord
from schemas.rules_version import RulesVersionRecord

HERE = Path(__file__).parent
JSON_CONTRACTS: dict[str, type[Contract]] = {
    "detections.schema.json": DetectionsContract,
    "alert.schema.json": AlertRecord,
    "camera_event.schema.json": CameraEvent,
    "camera_health.schema.json": CameraHealth,
    "feedback.schema.json": FeedbackRecord,
    "rules_version.schema.json": RulesVersionRecord,
}


def render(model: type[Contract], filename: str) -> str:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://sightline.dev/schemas/{filename}",
        **model.model_json_schema(),
    }
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def main() -> None:
    for filename, model in JSON_CONTRACTS.items():
        (HERE / filename).write_text(render(model, filename))
        print(f"wrote schemas/{filename}")


if __name__ == "__main__":
    main()
