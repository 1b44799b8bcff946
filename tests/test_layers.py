"""The layers of src/prunesearch, enforced: a module imports only from its own layer and the
layers below it, and optuna, mlflow and click are imported only where their layer's
__init__.py says. (docs/architecture.md draws the picture; this test is the rule.)"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "prunesearch"

# Bottom to top. `errors` is below everything (every layer raises its errors); `cli` and
# `__main__` are the top.
LAYERS = ("errors", "foundation", "training", "pruning", "config", "stores", "views", "search",
          "testing", "cli", "__main__")

# Who may import each library that ties prunesearch to a service or an interface.
ALLOWED = {
    "optuna": {"config.space", "stores.storage", "views", "search", "cli"},
    "mlflow": {"stores.tracking"},
    "click": {"cli"},
    "torch_pruning": {"pruning.graph"},  # the dependency graph lives there, nowhere else
}


def modules() -> dict[str, Path]:
    """Every module by its dotted name below prunesearch ("pruning.methods.base")."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function, as dotted names; a
    relative import (`from .channels import x`, `from . import tracing`) as the absolute name
    it stands for."""
    package = ["prunesearch", *path.relative_to(PACKAGE).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            if module.startswith("prunesearch"):  # a name may be a module: from . import x
                names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def layer(module: str) -> str:
    return module.split(".")[0]


def layer_index(module: str) -> int:
    """Where `module` (below prunesearch) sits; an unknown one fails the test that asks."""
    assert layer(module) in LAYERS, f"{module} is in no layer of {LAYERS}"
    return LAYERS.index(layer(module))


def allowed_by(rule: set[str], module: str) -> bool:
    return any(module == who or module.startswith(f"{who}.") for who in rule)


MODULES = modules()


def test_every_module_belongs_to_a_layer():
    assert {layer(module) for module in MODULES} <= set(LAYERS)


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_down_the_layers(module):
    own = layer_index(module)
    upward = sorted(name for name in imports(MODULES[module])
                    if name.startswith("prunesearch.")
                    and layer_index(name.removeprefix("prunesearch.")) > own)
    assert not upward, f"{module} ({layer(module)}) imports from a layer above it: {upward}"


@pytest.mark.parametrize("library", ALLOWED)
def test_services_and_interfaces_are_imported_where_allowed(library):
    offenders = sorted(module for module, path in MODULES.items()
                       if any(name == library or name.startswith(f"{library}.")
                              for name in imports(path))
                       and not allowed_by(ALLOWED[library], module))
    assert not offenders, f"{library} imported outside {sorted(ALLOWED[library])}: {offenders}"


def test_the_rules_see_imports_inside_functions():
    """cli imports its layers lazily inside commands: the walk must see those too, or the
    test above could pass on a module that breaks the rules."""
    assert "prunesearch.search.optimize" in imports(MODULES["cli.running"])
    assert "mlflow.tracking" in imports(MODULES["stores.tracking"])


def test_the_rules_see_relative_imports(tmp_path, monkeypatch):
    monkeypatch.setattr(__import__(__name__), "PACKAGE", tmp_path)
    module = tmp_path / "pruning" / "graph" / "x.py"
    module.parent.mkdir(parents=True)
    module.write_text("from . import tracing\nfrom ..methods import base\n"
                      "from ...search.optimize import optimize\n")
    assert {"prunesearch.pruning.graph.tracing", "prunesearch.pruning.methods",
            "prunesearch.search.optimize"} <= imports(module)


def test_a_module_in_no_layer_fails_as_an_assertion():
    with pytest.raises(AssertionError, match="in no layer"):
        layer_index("gadgets.widget")
