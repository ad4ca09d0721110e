"""The layout holds what CONTRIBUTING.md says: torch only under kfold/nn, commands are leaves, no import cycles,
one owner of the run directory's file names, every command's flags documented."""
from __future__ import annotations

import ast
import functools
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kfold"
TORCH_PACKAGES = {"torch", "kornia", "albumentations", "safetensors.torch"}
RUN_DIR_NAMES = ["config.json", "folds.csv", "meta.json", "model.safetensors", "oof.npz", "summary.json",
                 "checkpoint.pt", "metrics.csv", "confusion.csv", "confusion.png", ".probs.npz"]
NAME_PARTS = {"fold", "-fold", "-mean", "-mean.", "-oof", "-oof.", "full"}  # pieces of f-string file names


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


@functools.lru_cache(maxsize=None)
def _package_nodes(path: Path) -> tuple[ast.Module, tuple[ast.AST, ...]]:
    """A module of the package parsed once per test process, with every node of its tree (``ast.walk``): the checks
    below only read them (parsing and walking the whole package took seconds in each check)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return tree, tuple(ast.walk(tree))


def parsed(path: Path) -> ast.Module:
    """The file's syntax tree: cached for the package's own modules, parsed afresh for any other (a planted copy)."""
    return _package_nodes(path)[0] if path in _PACKAGE_FILES else ast.parse(path.read_text(encoding="utf-8"))


def nodes(path: Path):
    """Every node of the file's tree, in ``ast.walk`` order."""
    return _package_nodes(path)[1] if path in _PACKAGE_FILES else tuple(ast.walk(parsed(path)))


_PACKAGE_FILES = frozenset(MODULES.values())


def imports(path: Path) -> set[str]:
    """Every module imported anywhere in the file (module level or inside functions)."""
    found = set()
    for node in nodes(path):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # "from kfold.nn import fold"
    return found


def kfold_imports(path: Path) -> set[str]:
    return {name for name in imports(path) if name in MODULES and name != module_name(path)}


def test_nothing_outside_the_torch_package_imports_torch():
    offenders = {name: sorted(i for i in imports(path) if i.split(".")[0] in {"torch", "kornia", "albumentations"}
                              or i.startswith("safetensors.torch"))
                 for name, path in MODULES.items() if not name.startswith("kfold.nn")}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_every_torch_free_module_imports_without_torch():
    """Import each module outside kfold/nn in turn in one fresh interpreter; the first to pull torch in fails."""
    names = [n for n in MODULES if not n.startswith("kfold.nn") and n != "kfold.__main__"]
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "    bad = [m for m in ('torch', 'kornia', 'albumentations') if m in sys.modules]\n"
            "    if bad: print(name, bad); break\n"
            "else: print('ok', len(sys.argv))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok 1", out.stdout
    assert len(names) > 30


def test_import_kfold_stays_light():
    code = "import sys, kfold; print(sorted(m for m in ('torch', 'pandas', 'numpy', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_no_command_module_imports_another_and_no_library_imports_a_command():
    commands = {n for n in MODULES if n.startswith("kfold.commands.")}
    shared = {"kfold.commands.args"}  # flag groups and validators, shared by every command
    bad = []
    for name, path in MODULES.items():
        if name in ("kfold.__main__", "kfold.commands.main"):  # the ``kfold`` dispatcher routes to every command
            continue
        for target in kfold_imports(path):
            if target in commands and target not in shared:
                bad.append(f"{name} -> {target}")
    assert bad == []


def test_no_import_cycles():
    graph = {name: kfold_imports(path) for name, path in MODULES.items()}
    # a package's __init__ importing its own submodule is a re-export, not a dependency of the submodule
    graph = {name: {t for t in targets if not (name == t.rsplit(".", 1)[0] and MODULES[name].name == "__init__.py")}
             for name, targets in graph.items()}
    parents = {}
    for name in graph:  # importing a.b.c runs a/__init__ and a/b/__init__ first
        parents[name] = {p for p in (name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)) if p in MODULES}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert cycles == []


# The floors of CONTRIBUTING.md's table, lowest first: a module may import modules of its own floor or of a floor
# below, never one above (a longest-prefix match names a module's floor; ``kfold`` itself is the package's
# ``__init__``, which re-exports the notebook API). Within a floor the cycle test above keeps the order.
FLOORS = [
    ("base", ["kfold.errors", "kfold.registry", "kfold.config", "kfold.identity", "kfold.metrics"]),  # no kfold imports but these
    ("files", ["kfold.files"]),                   # on-disk formats, no scoring
    ("data", ["kfold.data", "kfold.kaggle_api"]),  # loaders and downloads; the one boundary to the kaggle client
    ("figures", ["kfold.figures"]),                # every figure (matplotlib's backend chosen once)
    ("scoring", ["kfold.scoring"]),                # ensembles, leaderboards, reports (torch-free)
    ("nn", ["kfold.nn"]),                          # everything that imports torch
    ("flows", ["kfold.flows"]),                    # the typed functions under the commands
    ("api", ["kfold.api", "kfold.code_api", "kfold"]),               # the notebook API and the package that re-exports it
    ("commands", ["kfold.commands", "kfold.__main__"]),  # parse, call one library function, print
]


def floor_of(module: str) -> int:
    """The index in FLOORS of the longest prefix naming ``module`` (``kfold`` alone matches only itself)."""
    best, found = -1, None
    for level, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or (prefix != "kfold" and module.startswith(prefix + "."))) and len(prefix) > best:
                best, found = len(prefix), level
    if found is None:
        raise KeyError(f"{module} has no floor in FLOORS")
    return found


def import_targets(path: Path, own: str | None = None) -> set[str]:
    """The kfold modules the file ``path`` (module ``own``, default its own name) depends on, precisely:
    ``from kfold import registry`` is kfold.registry (the package ``kfold`` runs first anyway), ``from kfold
    import __version__`` is the package ``kfold``, ``from ..figures import pyplot`` is kfold.figures."""
    own = own or module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = set()
    for node in nodes(path):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..y import z
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {name for name in found if name in MODULES and name != own}


def upward_imports(modules: dict[str, Path]) -> list[str]:
    return sorted(f"{name} ({FLOORS[floor_of(name)][0]}) -> {target} ({FLOORS[floor_of(target)][0]})"
                  for name, path in modules.items() for target in import_targets(path, name)
                  if floor_of(target) > floor_of(name))


def test_every_module_has_a_floor():
    missing = []
    for name in MODULES:
        try:
            floor_of(name)
        except KeyError:
            missing.append(name)
    assert missing == []


def test_no_import_runs_from_a_lower_floor_to_a_higher_one():
    assert upward_imports(MODULES) == []


def test_the_floor_check_finds_upward_imports(tmp_path):
    """The check itself, on a copy posing as kfold/files/probs.py: plain, relative, in a function, and through
    the package; imports of its own floor and below pass."""
    copy = tmp_path / "probs.py"
    copy.write_text("from kfold.errors import DataError\nfrom kfold.files import atomic\nfrom . import csvtext\n"
                    "from ..figures import pyplot\n"
                    "def f():\n    from kfold.scoring.ensemble import combine\n    import kfold.flows.training\n"
                    "from kfold import __version__\n")
    assert import_targets(copy, "kfold.files.probs") == {
        "kfold.errors", "kfold.files.atomic", "kfold.files.csvtext", "kfold.figures", "kfold.scoring.ensemble",
        "kfold.flows.training", "kfold"}
    assert upward_imports({"kfold.files.probs": copy}) == [
        "kfold.files.probs (files) -> kfold (api)", "kfold.files.probs (files) -> kfold.figures (figures)",
        "kfold.files.probs (files) -> kfold.flows.training (flows)",
        "kfold.files.probs (files) -> kfold.scoring.ensemble (scoring)"]
    assert [floor_of(name) for name in ("kfold.errors", "kfold.files.probs", "kfold.nn.experiments.figures",
                                        "kfold.kaggle_api", "kfold", "kfold.commands")] == [0, 1, 5, 2, 7, 8]


def _string_constants(tree: ast.AST, walked: tuple[ast.AST, ...] | None = None):
    walked = tuple(ast.walk(tree)) if walked is None else walked  # ``walked``: the tree's nodes, already listed
    docstrings = {id(node.body[0].value) for node in walked
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in walked:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


@functools.lru_cache(maxsize=None)
def package_strings(path: Path) -> tuple[ast.Constant, ...]:
    """The string constants (docstrings left out) of one of the package's modules, found once per test process."""
    return tuple(_string_constants(*_package_nodes(path)))


def test_run_directory_file_names_are_spelled_only_in_the_run_directory_module():
    found = []
    for name, path in MODULES.items():
        if name == "kfold.files.rundir":
            continue
        for node in package_strings(path):
            for spelled in RUN_DIR_NAMES:
                if spelled in node.value:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}")
        for node in nodes(path):  # f"{run}-fold{i}.npz", f"fold{fold}"
            if isinstance(node, ast.JoinedStr):
                parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
                if any(part in NAME_PARTS for part in parts) and len(node.values) > 1:
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: f-string {parts!r}")
    assert found == []


COMPETITION_COLUMNS = {"Id", "Category", "Usage", "Id,Category", "Id,Category,Usage", "ImageId", "Label"}


def test_competition_column_names_are_spelled_only_in_the_schema_module():
    """A competition's columns come from its files through kfold.files.schema; no other module spells KMNIST's
    (or any other competition's) column names as a value: a literal 'Id' or 'Category' would tie that code
    to one competition."""
    found = []
    for name, path in MODULES.items():
        if name == "kfold.files.schema":
            continue
        for node in package_strings(path):
            value = node.value.decode() if isinstance(node.value, bytes) else node.value
            if value.strip() in COMPETITION_COLUMNS:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}")
    assert found == []


def test_the_column_name_check_finds_a_planted_literal(tmp_path):
    planted = ast.parse('HEADER = ["Id", "Category"]\nX = f"{1}"\n')
    assert {node.value for node in _string_constants(planted)} >= {"Id", "Category"}


COMMANDS = ["train", "predict", "ensemble", "run", "compare", "learning-curve", "mnist-mix"]


def _parser(command: str):
    module = importlib.import_module(f"kfold.commands.{command.replace('-', '_')}")
    return module.build_parser(prog=f"kfold {command}")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_has_help_and_prog_is_kfold_command(command):
    parser = _parser(command)
    assert parser.prog == f"kfold {command}"
    undocumented = [action.dest for action in parser._actions if not action.help and action.dest != "help"]
    assert undocumented == []


@pytest.mark.parametrize("command, argv", [("train", ["--k", "two"]), ("predict", ["--tta", "x"]),
                                           ("run", ["--seeds", "0,,1"]), ("compare", ["--k", "1"])])
def test_kfold_command_reports_itself_as_kfold_command(command, argv, tmp_path, capsys):
    from kfold.commands.main import main

    required = {"train": ["--data", "x", "--out", str(tmp_path / "o")], "predict": ["r", "--data", "x", "--out", "o"],
                "run": [], "compare": ["--data", "x", "--out", str(tmp_path / "o")]}[command]
    assert main([command, *required, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: kfold {command}: argument") and len(err.splitlines()) == 1, err


def test_the_version_is_written_in_one_place(monkeypatch, tmp_path):
    """pyproject.toml holds the version; kfold.__version__ and every result's identity read it from there."""
    import importlib.metadata
    import re as _re
    import tomllib

    import kfold
    from kfold import identity

    declared = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert kfold.__version__ == identity.version() == identity.code_identity()["kfold"] == declared
    spelled = [f"{name}:{node.lineno}" for name, path in MODULES.items()
               for node in package_strings(path) if node.value == declared]
    assert spelled == []
    assigned = [name for name, path in MODULES.items() for node in nodes(path)
                if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets)]
    assert assigned == []

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)  # a source tree that is not installed
    identity.version.cache_clear()
    try:
        assert identity.version() == declared
        monkeypatch.setitem(sys.modules, "tomllib", None)  # Python 3.10: read without tomllib
        assert identity.source_version() == declared
        other = tmp_path / "pyproject.toml"
        other.write_text('[project]\nname = "something-else"\nversion = "9.9"\n')
        assert identity.source_version(other) == identity.UNKNOWN_VERSION
        assert identity.source_version(tmp_path / "missing.toml") == identity.UNKNOWN_VERSION
        monkeypatch.delitem(sys.modules, "tomllib")
        other.write_text('[project]\nname = "kfold-kaggle"\nversion = "1.2.3"\n[tool.x]\nversion = "7"\n')
        assert identity.source_version(other) == "1.2.3"
        assert _re.fullmatch(r"[0-9]+(\.[0-9]+)*.*", identity.version())
    finally:
        identity.version.cache_clear()
