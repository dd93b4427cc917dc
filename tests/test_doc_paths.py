"""Every file a docstring, comment or document names exists (fast tier).

A path is a word like `inference/worker.py` or `docs/alerts.md`: one of the repo's folders, then
a file name with one of the extensions below. Globs and placeholders (`*`, `<...>`, `NAME`) are
left alone.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("schemas", "streams", "decoders", "inference", "alerts", "sightline", "tests", "compose", "docs",
           "scripts")  # fmt: skip
PATH = re.compile(
    r"(?<![\w./-])((?:"
    + "|".join(FOLDERS)
    + r")/[\w./-]*?\w\.(?:py|md|yaml|yml|json|sh|toml|txt))(?![\w/*<])"
)
SKIP_DIRS = {".venv", ".git", ".sightline", "node_modules", "__pycache__"}


def sources() -> list[Path]:
    files = [*ROOT.glob("*.md"), *ROOT.glob("*.yaml")]
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in {".py", ".md", ".yaml", ".yml", ".sh"} and not SKIP_DIRS & set(path.parts):
                files.append(path)
    return files


def test_every_named_file_exists() -> None:
    missing = []
    for source in sources():
        for n, line in enumerate(source.read_text(errors="replace").splitlines(), 1):
            for name in PATH.findall(line):
                if not (ROOT / name).exists() and not (source.parent / name).exists():
                    missing.append(f"{source.relative_to(ROOT)}:{n}: {name}")
    assert not missing, "files named but not there:\n" + "\n".join(missing)
