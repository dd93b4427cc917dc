"""Base for the JSON contracts: strict about unknown fields and the schema version."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.errors import ContractError


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def decode(cls, payload: bytes | str) -> Self:
        """Parse and validate a record value, turning every failure into a ContractError."""
        try:
            record = cls.model_validate_json(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(value)"
            raise ContractError(f"{cls.__name__} invalid at {where}: {first['msg']}") from None
        return record

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()
