"""The import-linter contracts in pyproject.toml: the tree keeps them, a back edge breaks them,
and every module of signaling/, media/ and recordings/ sits in a layer (docs/architecture.md)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("signaling", "media", "recordings")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
SERVICES_WITHOUT_RECORDINGS = "signalling-services-without-recordings"


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert sorted(config["root_packages"]) == sorted(PACKAGES)
    found: list[dict[str, Any]] = config["contracts"]
    return found


def contract(contract_id: str) -> dict[str, Any]:
    return next(c for c in contracts() if c["id"] == contract_id)


def layers() -> list[set[str]]:
    """Each layer's modules, top to bottom; an optional module's parentheses dropped."""
    found = []
    for layer in contract("layers")["layers"]:
        delimiter = "|" if "|" in layer else ":"
        found.append({tail.strip().strip("()") for tail in layer.split(delimiter)})
    return found


def modules(root: Path) -> list[str]:
    names = []
    for path in sorted(root.glob("*/**/*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[0] in PACKAGES and "__pycache__" not in parts:
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def covered(module: str, layer: set[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in layer)


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("source", "back_edge", "contract_id", "reported"),
    [
        ("signaling/core/model.py", "import signaling.app", "layers", "signaling.app"),
        ("media/ice.py", "import signaling.ws", "layers", "signaling.ws"),
        (
            "recordings/ledger.py",
            "import signaling.config",
            "media-recordings-on-core",
            "recordings.ledger -> signaling.config",
        ),
        (
            "signaling/store.py",
            "import recordings.ledger",
            SERVICES_WITHOUT_RECORDINGS,
            "signaling.store -> recordings.ledger",
        ),
    ],
)
def test_a_back_edge_breaks_its_contract(
    tmp_path: Path, source: str, back_edge: str, contract_id: str, reported: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / source).open("a") as f:
        f.write(f"\n{back_edge}  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    name = contract(contract_id)["name"]
    assert f"{name} BROKEN" in result.stdout, result.stdout
    assert reported in result.stdout, result.stdout


def test_every_module_is_in_a_layer() -> None:
    every_layer = set().union(*layers())
    for module in modules(REPO):
        if module in ("signaling", "recordings"):
            # The two packages' own __init__ modules hold a docstring and import nothing,
            # so no import can hide outside the layers there.
            tree = ast.parse((REPO / module / "__init__.py").read_text())
            assert not any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree))
            continue
        assert covered(module, every_layer), f"{module} is in no layer of pyproject.toml"


def test_every_signalling_service_is_kept_from_recordings() -> None:
    services = layers()[2]
    existing = set(modules(REPO))
    signalling = {m for m in services if m.startswith("signaling.") and m in existing}
    assert signalling <= set(contract(SERVICES_WITHOUT_RECORDINGS)["source_modules"])
