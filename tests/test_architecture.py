"""The package's layers: imports go one way, from the platforms down to the stages.

docs/architecture.md draws them. A module of a lower layer never imports one of a
higher layer, so there is no cycle and each package can be read on its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

INTEGRATION = Path(__file__).parents[1] / "custom_components" / "ha_ingestor"

# Each package and the packages (or top-level modules) it may import.
ALLOWED: dict[str, set[str]] = {
    "influxdb": {"const"},
    "storage": {"const"},
    "registry": {"compat", "const"},
    "line_protocol": {"const", "registry", "utf8"},
    "mirror": {"compat", "const", "registry", "storage", "shutdown", "utf8"},
    "pipeline": {
        "const",
        "influxdb",
        "line_protocol",
        "registry",
        "shutdown",
        "storage",
    },
}


def _imported_parts(module: Path) -> set[str]:
    """The integration's packages and modules `module` imports (first name of each)."""
    package = module.parent.relative_to(INTEGRATION).parts
    imported: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - (node.level - 1)])
            parts = [*base, *(node.module or "").split(".")] if node.module else base
            if parts:
                imported.add(parts[0])
            else:  # from . import x, at the top
                imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "custom_components.ha_ingestor"
        ):
            imported.add((node.module or "").split(".")[2])
    return imported


def test_every_package_imports_only_what_is_below_it() -> None:
    """Stages never import platforms, the coordinator, the flows or each other upward."""
    for package, allowed in ALLOWED.items():
        for module in (INTEGRATION / package).glob("*.py"):
            outside = _imported_parts(module) - allowed - {package}
            assert not outside, f"{package}/{module.name} imports {sorted(outside)}"


def test_every_package_is_in_the_layers() -> None:
    """A new package must say where it stands."""
    packages = {path.parent.name for path in INTEGRATION.glob("*/__init__.py")}
    assert packages == set(ALLOWED)
