"""The package's folders follow the data's flow, and imports point one way (README, "Files")."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cad2program"
# The order data flows in: a module may import from its own layer and the layers before it.
LAYERS = ["errors", "outfile", "contract", "synth", "dxf", "model", "refine", "reading", "evaluation", "outputs",
          "training", "server", "integrations", "commands", "cli"]


def _layer(dotted: str) -> int | None:
    parts = dotted.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names] if node.module == "cad2program" \
                else [node.module]
            for name in names:
                yield node.lineno, name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def test_every_top_level_name_of_the_package_has_a_layer():
    names = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert names - {"__init__"} <= set(LAYERS), sorted(names - {"__init__"} - set(LAYERS))


def test_imports_point_only_to_earlier_layers():
    backwards = []
    for path in PACKAGE.rglob("*.py"):
        here = _layer(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for line, name in _imports(path):
            there = _layer(name) if name.startswith("cad2program.") else None
            if here is not None and there is not None and there > here:
                backwards.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not backwards, "\n".join(backwards)


def test_no_relative_imports():
    relative = [f"{p.relative_to(PACKAGE.parent)}:{n.lineno}" for p in PACKAGE.rglob("*.py")
                for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ImportFrom) and n.level]
    assert not relative, relative
