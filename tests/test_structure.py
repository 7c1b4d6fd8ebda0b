"""The module layout: who may import whom, and one definition per shared helper (parsed, not imported)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every module a file imports (top level and inside functions), resolved to absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


SOURCES = sorted(SRC.rglob("*.py"))
GRAPH = {_module(p): _imports(p) for p in SOURCES}


def _project_imports(module: str) -> set[str]:
    return {name for name in GRAPH[module] if name == "src" or name.startswith("src.")}


def test_the_import_parser_sees_imports() -> None:
    """Guards the tests below: the parser finds known edges (including imports inside functions)."""
    assert "src.errors" in _project_imports("src.train_task")
    assert "src.evaluation.evaluate_model" in _project_imports("src.train_task")  # imported inside a function


def test_utils_depend_on_nothing_else_in_src() -> None:
    bad = {
        module: sorted(name for name in _project_imports(module) if not name.startswith("src.utils"))
        for module in GRAPH
        if module.startswith("src.utils")
    }
    assert {m: names for m, names in bad.items() if names} == {}


def test_errors_module_imports_nothing_from_the_project_nor_torch() -> None:
    assert _project_imports("src.errors") == set()
    assert not any(name.split(".")[0] in ("torch", "lightning", "numpy") for name in GRAPH["src.errors"])


def test_no_task_module_imports_another() -> None:
    tasks = {m for m in GRAPH if m.endswith("_task")}
    assert tasks == {"src.train_task", "src.predict_task", "src.evaluate_task", "src.interpret_task"}
    edges = {(m, name) for m in tasks for name in _project_imports(m) if name in tasks and name != m}
    edges |= {(m, name) for m in tasks for name in _project_imports(m) if name.rpartition(".")[0] in tasks}
    assert edges == set()


def test_only_the_entry_points_import_task_modules() -> None:
    """Library code never reaches back into the Hydra glue."""
    users = {m for m in GRAPH if not m.endswith("_task") and any("_task" in n for n in _project_imports(m))}
    assert users == set()


# shared helpers and types that must be defined exactly once in src/
SINGLE_HOMES = {
    "ConfigError": "src/errors.py",
    "DataError": "src/errors.py",
    "CompositionError": "src/errors.py",
    "DivergedError": "src/errors.py",
    "LengthPolicyError": "src/errors.py",
    "LedgerCorruptError": "src/errors.py",
    "LedgerError": "src/errors.py",
    "first_line": "src/errors.py",
    "exit_code": "src/errors.py",
    "json_safe": "src/utils/io.py",
    "atomic_write_bytes": "src/utils/io.py",
    "atomic_write_text": "src/utils/io.py",
    "start_run": "src/utils/wandb_offline.py",
    "finish_run": "src/utils/wandb_offline.py",
    "combination_name": "src/utils/naming.py",
    "safe_dirname": "src/utils/naming.py",
    "checkpoint_file": "src/checkpoint.py",
    "load_module": "src/checkpoint.py",
    "resolve_ckpt_path": "src/checkpoint.py",
    "init_from_checkpoint": "src/checkpoint.py",
    "predict_sequences": "src/inference.py",
    "resolve_device": "src/inference.py",
    "read_prediction_file": "src/evaluation/prediction_file.py",
    "build_metrics": "src/lit_modules/metrics.py",
    "higher_is_better": "src/lit_modules/metrics.py",
    "monitor_of": "src/lit_modules/metrics.py",
    "in_multirun": "src/sweep/identity.py",
    "check_launch": "src/sweep/launch.py",
    "run_ledgered": "src/sweep/job.py",
    "SummarizeCallback": "src/sweep/callback.py",
}


def _definitions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found[node.name].append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("name", sorted(SINGLE_HOMES))
def test_shared_helper_is_defined_once(name: str) -> None:
    assert _definitions()[name] == [SINGLE_HOMES[name]]


def test_no_private_copies_of_the_shared_helpers() -> None:
    """The old private copies (``_first_line``, ``_finite``, ``_jsonable``, ...) are gone."""
    copies = {"_first_line", "_finite", "_jsonable", "_json_safe", "_atomic_write_bytes", "_finish_wandb"}
    found = _definitions()
    assert {name: found[name] for name in copies if found.get(name)} == {}


def test_tests_share_helpers_only_through_tests_helpers() -> None:
    """No test file imports from ``conftest.py`` or from another test file."""
    bad = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        names = {n for n in _imports(path) if n.startswith("tests.") and not n.startswith("tests.helpers")}
        if names:
            bad[path.name] = sorted(names)
    assert bad == {}


# groups whose configs carry a `name:` (read as cfg.<group>.name: run folders, ledger, hyperparameters)
NAMED_GROUPS = ("first", "core", "final", "processing", "recipe", "data")


@pytest.mark.parametrize("group", NAMED_GROUPS)
def test_config_name_keys_match_their_file_names(group: str) -> None:
    """``conf/<group>/<file>.yaml`` says ``name: <file>``, so the name a run reports is the option chosen."""
    paths = sorted((ROOT / "conf" / group).glob("*.yaml"))
    assert paths
    names = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")).get("name") for p in paths}
    assert {stem: name for stem, name in names.items() if name != stem} == {}
