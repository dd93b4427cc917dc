"""The commit-msg hook `make setup` installs keeps commit subjects to 72 characters."""

from __future__ import annotations

import subprocess
from pathlib import Path

HOOK = Path(__file__).resolve().parents[1] / ".githooks" / "commit-msg"


def _run(tmp_path: Path, message: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "COMMIT_EDITMSG"
    path.write_text(message)
    return subprocess.run([str(HOOK), str(path)], capture_output=True, text=True)


def test_a_subject_of_72_characters_with_a_long_body_passes(tmp_path: Path) -> None:
    body = "detail " * 40
    assert (
        _run(
            tmp_path, f"# a template comment line that is long {'x' * 80}\n{'s' * 72}\n\n{body}\n"
        ).returncode
        == 0
    )


def test_a_subject_over_72_characters_is_refused_with_its_length(tmp_path: Path) -> None:
    result = _run(tmp_path, "s" * 73 + "\n")
    assert result.returncode == 1
    assert "73 characters" in result.stderr
