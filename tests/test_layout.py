"""The package reads in the order of its flow: every import runs from a stage to the same or an earlier one, and
no modules import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "dish"
STAGES = ("core", "data", "hosts", "motifs", "store", "ground_truth", "predictors", "report", "compare", "search",
          "cli")
"""Earliest first. `report` draws the figures the comparison and the search write, so it comes before them."""


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The dish modules `path` imports anywhere in it (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dish"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("dish")}
    return found


def stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


GRAPH = {module_name(path): imports(path) for path in SOURCE.rglob("*.py")}


def test_every_module_belongs_to_a_stage():
    loose = sorted(m for m in GRAPH if stage(m) is None and m not in ("dish", "dish.bench", "dish.conf"))
    assert loose == []


def test_imports_run_from_later_stages_to_earlier_ones():
    upward = [(module, target) for module, targets in GRAPH.items() for target in targets
              if stage(module) is not None and stage(target) is not None and stage(target) > stage(module)]
    assert upward == []
    assert not any(stage(target) == STAGES.index("cli") for target in GRAPH["dish.bench"])


def test_no_import_cycles():
    def known(target: str) -> str:  # `from dish.data import X` imports the package dish.data
        return target if target in GRAPH else target.rpartition(".")[0]

    edges = {module: {known(t) for t in targets if known(t) != module} for module, targets in GRAPH.items()}
    finished: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path[path.index(module):], module))
        if module in finished:
            return
        for target in edges.get(module, ()):
            visit(target, (*path, module))
        finished.add(module)

    for module in edges:
        visit(module, ())


def test_reports_do_not_import_the_dish_model():
    report = {t for m, targets in GRAPH.items() if m.startswith("dish.report") for t in targets}
    assert not {t for t in report if t.startswith("dish.predictors.petri_dish.") and not t.endswith(".options")}
