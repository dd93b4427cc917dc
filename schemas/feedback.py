"""Feedback records: a reviewer's verdict on an alert, from the review page to the dataset export."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Contract

Verdict = Literal["confirmed", "false_positive"]


class FeedbackRecord(Contract):
    """Value of a feedback record; key = alert id. The latest record of an alert is its verdict."""

    schema_version: Literal[1] = 1
    alert_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    verdict: Verdict
    # Who gave it: "admin", or the reviewer's name from `api.review_tokens`.
    by: str = Field(min_length=1, max_length=64)
    at_ns: int = Field(ge=0)
    # Copied from the alert, so a consumer can filter without joining the alerts topic.
    camera_id: str
    alert_type: str
