"""The code base's shape, read from the source: stage packages import each other without a cycle,
the npm toolchain is a leaf, and every third-party package imported is declared with an exact pin."""

from __future__ import annotations

import ast
import itertools
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = ROOT / "sentinel"


def imported_modules(path: Path, root: Path = ROOT) -> Iterator[str]:
    """Every module ``path`` imports, at module level or inside a function, relative imports resolved."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)  # ``from sentinel import zk``


def unit_of(module: str, src: Path) -> str | None:
    """The stage package (or top-level module) of a ``sentinel.*`` module; None outside sentinel."""
    parts = module.split(".")
    if parts[0] != "sentinel" or len(parts) < 2:
        return None
    if (src / parts[1]).is_dir() or (src / f"{parts[1]}.py").is_file():
        return parts[1]
    return None  # a name imported from sentinel/__init__.py (e.g. __version__)


def package_graph(src: Path = SENTINEL) -> dict[str, dict[str, set[str]]]:
    """``{unit: {imported unit: [files that import it]}}`` over every file under ``src`` (the sentinel package)."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        unit = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        edges = graph.setdefault(unit, {})
        for module in imported_modules(path, src.parent):
            target = unit_of(module, src)
            if target is not None and target != unit:
                edges.setdefault(target, set()).add(str(path.relative_to(src.parent)))
    return graph


def find_cycle(graph: dict[str, dict[str, set[str]]]) -> list[str] | None:
    """One cycle of the graph as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_check_sees_function_level_and_relative_imports(tmp_path: Path):
    src = tmp_path / "sentinel"
    for package in ("a", "b"):
        (src / package).mkdir(parents=True)
        (src / package / "__init__.py").write_text("")
    (src / "errors.py").write_text("")
    (src / "a" / "m.py").write_text(
        "from . import n\nfrom sentinel import errors\n\n\ndef f():\n    from sentinel.b.x import y\n")
    (src / "b" / "x.py").write_text("from ..a import m\n")
    graph = package_graph(src)
    assert graph["a"] == {"errors": {"sentinel/a/m.py"}, "b": {"sentinel/a/m.py"}}
    assert graph["b"] == {"a": {"sentinel/b/x.py"}}
    assert find_cycle(graph) == ["a", "b", "a"]
    (src / "b" / "x.py").write_text("from sentinel.errors import SentinelError\n")
    assert find_cycle(package_graph(src)) is None


def test_stage_packages_import_each_other_without_a_cycle():
    graph = package_graph()
    assert {"data", "model", "zk", "chain", "relay", "audit", "toolchain"} <= set(graph)
    assert "chain" in graph["relay"] and "zk" in graph["chain"]  # the graph sees real imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between sentinel packages: " + " -> ".join(cycle) + "; via " + "; ".join(
        f"{a} -> {b}: {', '.join(sorted(graph[a][b]))}" for a, b in itertools.pairwise(cycle))


def test_the_npm_toolchain_is_a_leaf():
    assert set(package_graph()["toolchain"]) <= {"errors", "config"}


def test_tensorflow_and_keras_are_imported_only_through_the_model_backend():
    """Both read their environment (log level, Keras backend) at first import; sentinel.model.backend sets it."""
    direct = sorted(
        path.relative_to(ROOT).as_posix()
        for folder in ("sentinel", "scripts", "tests")
        for path in (ROOT / folder).rglob("*.py")
        if any(module.split(".")[0] in {"tensorflow", "keras"} for module in imported_modules(path))
    )
    assert direct == ["sentinel/model/backend.py"]


# --- declared dependencies ---------------------------------------------------------------------


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def third_party_imports() -> dict[str, set[str]]:
    """``{top-level module: {sentinel|scripts|tests}}`` of every import that is neither stdlib nor ours."""
    found: dict[str, set[str]] = {}
    for folder in ("sentinel", "scripts", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for module in imported_modules(path):
                top = module.split(".")[0]
                if top and top not in sys.stdlib_module_names and top not in {"sentinel", "scripts", "tests"}:
                    found.setdefault(top, set()).add(folder)
    return found


def declared() -> tuple[dict[str, str], dict[str, str]]:
    """(runtime, test) requirements of pyproject.toml as ``{normalised name: requirement}``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def by_name(reqs: list[str]) -> dict[str, str]:
        return {_normal(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]): r for r in reqs}

    return by_name(project["dependencies"]), by_name(project.get("optional-dependencies", {}).get("test", []))


def test_every_imported_package_is_declared_with_the_installed_exact_pin():
    runtime, test_only = declared()
    distributions = packages_distributions()
    imports = third_party_imports()
    assert {"numpy", "web3", "pytest"} <= set(imports)  # the scan sees real imports
    problems = []
    for module, where in sorted(imports.items()):
        dists = distributions.get(module)
        if not dists:
            problems.append(f"{module}: imported by {sorted(where)} but not installed")
            continue
        name = _normal(dists[0])
        allowed = runtime if where & {"sentinel", "scripts"} else {**runtime, **test_only}
        requirement = allowed.get(name)
        if requirement is None:
            problems.append(f"{module} ({name}): imported by {sorted(where)} but not declared in pyproject.toml")
        elif requirement != f"{requirement.split('==')[0]}=={version(dists[0])}":
            problems.append(f"{module}: pyproject says {requirement!r}, installed is {version(dists[0])}")
    assert not problems, "\n".join(problems)


def test_the_relay_never_loads_an_attester_key_or_signs_an_attestation():
    """Issue #19: the relay asks the attester services; nothing under sentinel/relay/ (or its CLI) can reach the
    functions that load attester keys or sign attestations."""
    forbidden = {"sentinel.chain.keys.attester_keys", "sentinel.chain.keys.attester_key",
                 "sentinel.chain.breaker.sign_attestation", "sentinel.chain.breaker.sign_message",
                 "sentinel.chain.breaker.attest_bundle", "sentinel.chain.eip712.sign"}
    files = [*sorted((SENTINEL / "relay").rglob("*.py")), SENTINEL / "cli" / "relay_cli.py"]
    found = {f"{path.relative_to(ROOT)}: {module}" for path in files for module in imported_modules(path)
             if module in forbidden}
    calls = {f"{path.relative_to(ROOT)}: eip712.{node.attr}" for path in files
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "eip712"
             and node.attr not in {"recover", "digest", "typed_data"}}
    assert not found | calls, sorted(found | calls)
    # the check reads what it should: the relay does import eip712 (to recover signatures)
    assert "sentinel.chain.eip712" in set(imported_modules(SENTINEL / "relay" / "attesters.py"))
