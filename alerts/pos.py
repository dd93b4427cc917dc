"""Point-of-sale events: JSON values on the POS topic, produced by checkout systems.

They are an input from outside Sightline rather than a contract between its stages, so the
model lives here; lanes name the `register` whose events they take.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PosEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    type: Literal["scan", "session_open", "session_close"]
    register_id: str = Field(alias="register", min_length=1)
    at_ns: int = Field(ge=0, description="Event time at the register, ns since the epoch.")
    event_id: str | None = Field(None, description="Unique id; duplicates of one id count once.")
    class_name: str | None = Field(None, description="What the scanned item looks like, if known.")
    sku: str | None = None
    quantity: int = Field(1, ge=1)

    def key(self) -> str:
        """Stable identity for de-duplication when the producer gave no event_id."""
        if self.event_id:
            return self.event_id
        text = f"{self.type}|{self.register_id}|{self.at_ns}|{self.sku}|{self.class_name}|{self.quantity}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]
