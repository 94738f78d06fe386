"""The library's layers, enforced: every import of every coursekit module points down or sideways, never up,
and no chain of imports comes back to where it started.

Layers, from the ground up (README, "Layout"): runtime (config, files, checks); signal (audio,
features, synth: no model, no dataset); data (coursekit.data: no model); objectives (losses,
metrics: tensors in, numbers out); models (coursekit.models: no data loading, no display);
training (train, checkpoints, recipes); show (plot, widgets); command line (doctor, __main__).
Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {  # module (or package) prefix -> (layer number, layer name)
    "coursekit.config": (0, "runtime"),
    "coursekit.files": (0, "runtime"),
    "coursekit.checks": (0, "runtime"),
    "coursekit.audio": (1, "signal"),
    "coursekit.features": (1, "signal"),
    "coursekit.synth": (1, "signal"),
    "coursekit.descriptors": (1, "signal"),
    "coursekit.data": (2, "data"),
    "coursekit.losses": (3, "objectives"),
    "coursekit.metrics": (3, "objectives"),
    "coursekit.evaluation": (3, "objectives"),
    "coursekit.models": (4, "models"),
    "coursekit.train": (5, "training"),
    "coursekit.nonfinite": (5, "training"),
    "coursekit.history": (5, "training"),
    "coursekit.checkpoints": (5, "training"),
    "coursekit.recipes": (5, "training"),
    "coursekit.plot": (6, "show"),
    "coursekit.widgets": (6, "show"),
    "coursekit.interpolation": (6, "show"),
    "coursekit.doctor": (7, "command line"),
    "coursekit.__main__": (7, "command line"),
    "coursekit": (0, "runtime"),  # the package's own __init__
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> tuple[int, str]:
    """The layer of a coursekit module: the longest prefix of it in LAYERS."""
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    raise KeyError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py and to the README's Layout.")


def import_edges(root: Path) -> list[tuple[str, str, str, int]]:
    """Every import of a coursekit module by a coursekit module: ``(importer, imported, file, line)``."""
    modules = {module_name(p, root): p for p in (root / "coursekit").rglob("*.py")}
    edges = []
    for importer, path in sorted(modules.items()):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from coursekit.recipes import mnist_vae` imports the submodule when there is one
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]  # fmt: skip
            for target in targets:
                if target == "coursekit" or target.startswith("coursekit."):
                    edges.append((importer, target, str(path.relative_to(root)), node.lineno))
    return edges


def layer_violations(edges: list[tuple[str, str, str, int]]) -> list[str]:
    """One line per import that points up a layer, naming the file, the line and the import."""
    problems = []
    for importer, imported, file, line in edges:
        (low, low_name), (high, high_name) = layer_of(importer), layer_of(imported)
        if high > low:
            problems.append(f"{file}:{line} imports {imported} ({high_name}) from the {low_name} layer below it")
    return problems


def import_cycles(edges: list[tuple[str, str, str, int]]) -> list[str]:
    """Each loop of imports between coursekit modules, as ``a -> b -> a`` with the file and line of each step."""
    graph: dict[str, list[tuple[str, str]]] = {}
    for importer, imported, file, line in edges:
        if importer != imported:
            graph.setdefault(importer, []).append((imported, f"{file}:{line}"))
    cycles, seen, state = [], set(), {}

    def visit(node: str, trail: list[tuple[str, str]]) -> None:
        state[node] = "open"
        for nxt, where in graph.get(node, []):
            if state.get(nxt) == "open":
                start = next(i for i, (n, _) in enumerate(trail) if n == nxt)
                steps = trail[start:] + [(nxt, where)]
                if frozenset(n for n, _ in steps) in seen:
                    continue
                seen.add(frozenset(n for n, _ in steps))
                cycles.append(" -> ".join(f"{n}" for n, _ in steps) + f" ({', '.join(w for _, w in steps[1:])})")
            elif nxt not in state:
                visit(nxt, trail + [(nxt, where)])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [(node, "")])
    return cycles


def test_every_module_has_a_layer():
    modules = {module_name(p, ROOT) for p in (ROOT / "coursekit").rglob("*.py")}
    assert len(modules) > 30
    for module in modules:
        layer_of(module)  # raises, naming the module, when it has none


def test_no_import_points_up_a_layer():
    edges = import_edges(ROOT)
    assert len(edges) > 50, "the parser found too few imports: it is not reading the modules"
    problems = layer_violations(edges)
    assert not problems, "imports that break the layers:\n" + "\n".join(problems)


def test_no_import_loop():
    cycles = import_cycles(import_edges(ROOT))
    assert not cycles, "import loops:\n" + "\n".join(cycles)


def test_the_library_imports_no_lesson():
    for path in (ROOT / "coursekit").rglob("*.py"):
        text = path.read_text()
        for word in ("lessons", "solutions", "assignments"):
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                    assert not any(n.split(".")[0] == word for n in names), f"{path} imports from {word}/"


@pytest.fixture
def library_copy(tmp_path: Path) -> Path:
    """A copy of coursekit/ (sources only) in which an import can be planted."""
    shutil.copytree(ROOT / "coursekit", tmp_path / "coursekit", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_planted_upward_import_is_named(library_copy: Path):
    audio = library_copy / "coursekit" / "audio" / "ops.py"
    lines = audio.read_text().count("\n")
    audio.write_text(audio.read_text() + "\n\ndef _planted():\n    from coursekit.models.vae import VAEConfig\n")
    problems = layer_violations(import_edges(library_copy))
    assert problems == [
        f"coursekit/audio/ops.py:{lines + 4} imports coursekit.models.vae (models) from the signal layer below it"
    ]


def test_a_planted_loop_is_named(library_copy: Path):
    soundfont = library_copy / "coursekit" / "data" / "soundfont.py"
    soundfont.write_text(soundfont.read_text() + "\nfrom coursekit.data import loops  # noqa\n")
    cycles = import_cycles(import_edges(library_copy))
    assert len(cycles) == 1
    assert set(cycles[0].split(" (")[0].split(" -> ")) == {"coursekit.data.loops", "coursekit.data.soundfont"}
    assert "coursekit/data/soundfont.py:" in cycles[0]
    assert not layer_violations(import_edges(library_copy))  # the same layer: only the loop is wrong


def test_no_module_is_long():
    lengths = {str(p.relative_to(ROOT)): p.read_text().count("\n") for p in (ROOT / "coursekit").rglob("*.py")}
    long = {path: n for path, n in lengths.items() if n > 420}
    assert not long, f"modules over 420 lines (split them by job): {long}"
