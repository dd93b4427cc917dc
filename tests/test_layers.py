"""Dependencies point one way: schemas <- streams <- stages <- the command layer (`sightline`).

A stage that imported the command layer, or another stage, would make its folder unusable on its
own and hide which package is the foundation; this test keeps the direction a fact.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = {"schemas", "streams", "decoders", "inference", "alerts", "sightline"}
ALLOWED = {
    "schemas": {"schemas"},
    "streams": {"schemas", "streams"},
    "decoders": {"schemas", "streams", "decoders"},
    "inference": {"schemas", "streams", "inference"},
    "alerts": {"schemas", "streams", "alerts"},
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """Our top-level packages that `path` imports (anywhere in the file, lazily or not)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in OURS}
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_stands_on(package: str) -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {imported}"
        for path in sorted((REPO / package).rglob("*.py"))
        for imported, line in sorted(imported_packages(path))
        if imported not in ALLOWED[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_every_layer_has_a_readme() -> None:
    missing = [name for name in sorted(OURS) if not (REPO / name / "README.md").is_file()]
    assert not missing, f"folders without a README.md: {missing}"
