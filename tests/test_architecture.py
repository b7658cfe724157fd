"""Imports run one way: read every module's imports (ast) and hold the package to its layering.

A unit is a subpackage (``carelens.calibrate``) or a top-level module (``carelens.labels``). Each unit sits on
a layer; an import may only reach a unit on a lower layer (or stay inside its own unit). A new unit must be
placed here on purpose. The README's architecture section draws the same picture.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import carelens

SRC = Path(carelens.__file__).resolve().parent

# lowest first; an import may only go to an earlier line
LAYERS: list[set[str]] = [
    {"errors"},
    {"__init__", "validation", "hashing", "signing", "settings", "console", "labels", "preprocess"},  # shared vocabulary
    {"config", "metrics", "tasks"},
    {"policy", "data", "calibrate", "models", "plots"},
    {"fusion", "explain", "ecg"},
    {"bundle", "symptoms"},
    {"steps", "predict"},
    {"train", "report"},
    {"serve", "scenarios"},
    {"cli"},  # the edges
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}
# Verbs import what they need when they run (a light `carelens --help`, no torch for serving verbs); the CLI
# is on top of everything, so its late imports cannot dodge a cycle. Nowhere else.
LATE_IMPORTS_ALLOWED = {"carelens.cli"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _imports() -> list[tuple[str, str, list[str], bool]]:
    """(importing module, imported module, imported names, inside a function) for every carelens import."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        mod = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        late_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                      for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [(node.module, [a.name for a in node.names])]
            elif isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{mod}: relative import; write carelens imports in full")
            elif isinstance(node, ast.Import):
                targets = [(a.name, []) for a in node.names]
            else:
                continue
            for target, names in targets:
                if target == "carelens" or target.startswith("carelens."):
                    out.append((mod, target, names, id(node) in late_nodes))
    return out


def test_every_unit_has_a_layer() -> None:
    units = {_unit(_module_name(p)) for p in SRC.rglob("*.py")}
    assert not units - set(LAYER), f"place these in LAYERS: {sorted(units - set(LAYER))}"


def _upward(edges: list[tuple[str, str]]) -> list[str]:
    return sorted({f"{src} -> {dst} (layer {LAYER[_unit(src)]} -> {LAYER[_unit(dst)]})" for src, dst in edges
                   if _unit(src) != _unit(dst) and LAYER[_unit(dst)] >= LAYER[_unit(src)]})


def _cycle(edges: list[tuple[str, str]]) -> list[str] | None:
    """One import cycle between units, or None."""
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in edges:
        if _unit(src) != _unit(dst):
            graph[_unit(src)].add(_unit(dst))
    done: set[str] = set()
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        if u in stack:
            return [*stack[stack.index(u):], u]
        if u in done:
            return None
        stack.append(u)
        for v in sorted(graph[u]):
            found = visit(v)
            if found:
                return found
        stack.pop()
        done.add(u)
        return None

    for u in sorted(graph):
        found = visit(u)
        if found:
            return found
    return None


def _edges() -> list[tuple[str, str]]:
    return [(src, dst) for src, dst, _, _ in _imports()]


def test_imports_run_downward() -> None:
    upward = _upward(_edges())
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_no_cycle_between_units() -> None:
    cycle = _cycle(_edges())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_private_module_used_from_another_unit() -> None:
    def private(parts: list[str]) -> bool:
        return any(p.startswith("_") and not p.startswith("__") for p in parts)

    bad = [f"{src} imports {dst} {names}" for src, dst, names, _ in _imports()
           if _unit(src) != _unit(dst) and (private(dst.split(".")) or private(names))]
    assert not bad, "private modules or names used across packages:\n" + "\n".join(bad)


def test_no_late_import_outside_the_cli() -> None:
    late = [f"{src}: import {dst} inside a function" for src, dst, _, is_late in _imports()
            if is_late and src not in LATE_IMPORTS_ALLOWED]
    assert not late, "late imports (move the code to the package it belongs in):\n" + "\n".join(late)


def test_the_checks_see_a_violation() -> None:
    """Not vacuous: the real import edges are read, and an upward edge or a cycle is refused."""
    edges = {(_unit(s), _unit(d)) for s, d in _edges()}
    assert {("predict", "bundle"), ("steps", "calibrate"), ("train", "steps"), ("cli", "serve")} <= edges
    backwards = [("carelens.calibrate._ood", "carelens.predict"), ("carelens.predict.engine", "carelens.calibrate")]
    assert _upward(backwards) == ["carelens.calibrate._ood -> carelens.predict (layer 3 -> 6)"]
    assert _cycle(backwards) == ["calibrate", "predict", "calibrate"]
