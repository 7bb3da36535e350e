"""Every third-party module `bot/` imports comes from a distribution `pyproject.toml` declares.

An undeclared import works on the machine where it happens to be installed and breaks a user's clean
install (or silently changes version under them): it must be declared, not inherited.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[\s<>=!~\[;]", spec, maxsplit=1)[0] for spec in project["dependencies"]}
    return {name.lower().replace("_", "-") for name in names}


def _imported_top_levels() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in (REPO / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_every_third_party_import_is_declared() -> None:
    declared = _declared()
    providers = packages_distributions()
    missing = []
    for module, where in sorted(_imported_top_levels().items()):
        if module in sys.stdlib_module_names or module in {"bot", "__future__"}:
            continue
        distributions = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not distributions:
            missing.append(f"{module} ({where}): not installed at all")
        elif not distributions & declared:
            missing.append(f"{module} ({where}): from {sorted(distributions)}, not in [project.dependencies]")
    assert not missing
