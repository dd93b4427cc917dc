"""Versions of the alert rules, as kept on the compacted rules topic.

Every saved version is its own record (key `v<version>`, so compaction keeps them all) with who
saved it, when and why, and the whole rules document. The highest version is the one in force; a
rollback saves the older document again as a new version. The document itself is validated by
the alert processors' rules model, which this layer does not know: here it is only a mapping.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.base import Contract


def version_key(version: int) -> bytes:
    """Record key of a version: distinct per version, so compaction never drops one."""
    return f"v{version}".encode()


class RulesVersionRecord(Contract):
    """Value of a rules-topic record; key = `v<version>`."""

    schema_version: Literal[1] = 1
    version: int = Field(ge=1)
    author: str = Field(min_length=1, max_length=200)
    created_ns: int = Field(ge=0)
    comment: str = Field("", max_length=2000)
    # The version this one copies (rollback, promote), or None for a new document.
    copied_from: int | None = Field(None, ge=0)
    # Writer-chosen random id: when two writers race for one number, the first record wins and
    # the loser sees that its id is not the one in force.
    write_id: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    rules: dict[str, Any] = Field(description="The rules document (`version`, `cameras`), as a rules file.")
