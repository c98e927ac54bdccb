"""The package boundaries of llm_line (docs/architecture.md): imports run one way between the packages, analysis
stays light, and no module is part of an import cycle."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "llm_line"
HEAVY = ("torch", "transformers", "lm_eval")


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def test_the_analysis_package_never_imports_torch_transformers_or_lm_eval():
    modules = sorted(module_name(p) for p in (PACKAGE / "analysis").glob("*.py"))
    assert len(modules) >= 14 and "llm_line.analysis.fit" in modules
    code = (
        f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_hub_module_is_a_leaf_the_sweeper_imports_without_lm_eval():
    code = "import sys, llm_line.evaluation.hub; print(sorted(m for m in ('torch', 'lm_eval') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def imports() -> dict[str, set[str]]:
    """Module -> the llm_line modules it imports, at its top or inside a function."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py") if "tasks" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("llm_line"):
                found |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in paths else node.module for a in node.names
                }
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("llm_line")}
        graph[name] = {m for m in found if m in paths and m != name and paths[m].name != "__init__.py"}
    return graph


# package -> the packages its modules may import: a cell (evaluation) knows nothing of sweeps or analysis; sweeps run
# cells; analysis and the lingua tools read what a cell writes. The shared modules (errors, arguments, files) import
# no package; only `cli` imports them all.
MAY_IMPORT = {
    "evaluation": {"evaluation"},
    "sweeps": {"sweeps", "evaluation"},
    "analysis": {"analysis", "evaluation"},
    "lingua": {"lingua", "evaluation"},
    "shared": set(),
}
SHARED = {"llm_line.errors", "llm_line.arguments", "llm_line.files"}


def package_of(module: str) -> str:
    if module in SHARED:
        return "shared"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else module


def test_imports_between_the_packages_run_one_way():
    graph = imports()
    assert {package_of(m) for m in graph} >= set(MAY_IMPORT) | {"llm_line.cli"}
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        if package_of(name) in MAY_IMPORT
        for target in targets
        if package_of(target) != "shared" and package_of(target) not in MAY_IMPORT[package_of(name)]
    )
    assert wrong == []


def test_no_module_of_llm_line_is_part_of_an_import_cycle():
    graph = imports()
    assert "llm_line.evaluation.harness" in graph["llm_line.sweeps.prefetch"]
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            assert state.get(target) != "open", " -> ".join([*path, target])
            if target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
