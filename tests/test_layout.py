"""The import directions of the library, written once and checked (CONTRIBUTING.md,
"The layout"): the core never reaches up to recipes, kept models or frameworks; a recipe
never reaches the store of kept models or a framework; importing a configuration never
imports the verdict's experiment."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dlfp"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every dlfp module that ``path`` imports, at the top or inside a function."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dlfp")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("dlfp"):
                continue
            found.add(base)
            # `from . import optim` names a module; `from .x import f` names x.
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if _exists(m)}


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (
        PACKAGE / relative / "__init__.py"
    ).is_file()


def modules(*prefixes: str) -> dict[str, set[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module(path)
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            found[name] = imports(path)
    return found


def _under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


#: The floors above the core: recipes, kept models, frameworks and their mirrors.
UPPER = (
    "dlfp.recipes", "dlfp.artifacts", "dlfp.frameworks", "dlfp.cnn", "dlfp.mirror",
    "dlfp.cli",
)  # fmt: skip
#: The network and its data, which need nothing above them.
CORE = (
    "dlfp.layers", "dlfp.activations", "dlfp.conv", "dlfp.registry", "dlfp.model",
    "dlfp.train", "dlfp.optim", "dlfp.losses", "dlfp.init", "dlfp.io", "dlfp.gradcheck",
    "dlfp.data", "dlfp.parallel",
)  # fmt: skip


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [
        (CORE, UPPER),
        (("dlfp.recipes",), tuple(u for u in UPPER if u != "dlfp.recipes")),
        (("dlfp.artifacts",), ("dlfp.frameworks.compare", "dlfp.cli")),
    ],
    ids=["core", "recipes", "artifacts"],
)
def test_imports_run_one_way(room, forbidden):
    broken = {
        module: sorted(m for m in imported if _under(m, forbidden))
        for module, imported in modules(*room).items()
    }
    broken = {m: bad for m, bad in broken.items() if bad}
    assert not broken, f"imports that run back up the house: {broken}"


def test_the_checker_sees_relative_and_late_imports():
    """The walk above must find what it forbids, or it could never fail."""
    cnn = imports(PACKAGE / "cnn.py")
    assert {"dlfp.recipes", "dlfp.optim", "dlfp.conv"} <= cnn
    trainers = PACKAGE / "frameworks" / "compare" / "training.py"
    late = imports(trainers)  # relative imports, three dots up, inside functions
    assert "dlfp.cnn" in late and "dlfp.train" in late


def test_a_configuration_imports_no_experiment_and_no_framework():
    script = (
        "import sys\n"
        "from dlfp.recipes import CNNConfig, MLPConfig\n"
        "from dlfp.frameworks import Backend\n"
        "heavy = [m for m in ('dlfp.frameworks.compare', 'dlfp.artifacts', 'torch',"
        " 'tensorflow', 'keras') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_each_recipe_has_one_name_everywhere():
    """The seed runs, the kept models, the frameworks' backends and the claims all call
    a recipe by its name in dlfp.recipes.RECIPES."""
    import json

    from dlfp import artifacts, claims, recipes
    from dlfp.frameworks import backend

    names = set(recipes.RECIPES)
    assert names == {"mlp", "numpy-cnn", "torch-cnn", "keras-cnn"}
    runs = json.loads(claims.results_path().read_text())["runs"]
    assert {r["recipe"] for r in runs} == names
    assert set(artifacts.SOURCES) == set(artifacts.PACKAGES) == names
    assert set(backend.BACKENDS) <= names
    with pytest.raises(ValueError, match="unknown recipe 'torch'; use one of mlp, "):
        claims.load_runs("torch")
    with pytest.raises(ValueError, match="unknown recipe 'cnn'; use one of mlp, "):
        recipes.recipe("cnn")
    assert recipes.recipe("torch-cnn", seed=3).config == recipes.CNNConfig(seed=3)


@pytest.mark.parametrize("name", ["mlp", "numpy-cnn", "torch-cnn", "keras-cnn"])
def test_each_recipe_names_a_module_that_implements_it(name):
    """A recipe trains, tests, saves and loads through one module, which provides what
    dlfp.recipes.Implementation lists, under the recipe's name and suffix."""
    from dlfp import recipes
    from dlfp.frameworks import backend

    kind = recipes.RECIPES[name]
    if name in backend.BACKENDS:
        pytest.importorskip({"torch-cnn": "torch", "keras-cnn": "tensorflow"}[name])
    module = recipes.recipe(name).implementation
    assert module.__name__ == kind.module
    assert (module.NAME, module.SUFFIX) == (name, kind.suffix)
    backend.check(module, recipes.Implementation)


def _closure(module: str) -> set[str]:
    """Every dlfp module that ``module`` imports, and those they import, at the top or
    inside functions, except the package ``dlfp`` itself (whose __init__ re-exports)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or name == "dlfp":
            continue
        seen.add(name)
        relative = Path(*name.split(".")[1:])
        path = (PACKAGE / relative).with_suffix(".py")
        if not path.is_file():
            path = PACKAGE / relative / "__init__.py"
        todo += imports(path)
    return seen - {"dlfp"}


#: Modules a training path imports that do not change its numbers: where files are
#: kept, how threads are reported, how a history is printed.
NOT_NUMBERS = {
    "dlfp.cache", "dlfp.threads", "dlfp.artifacts", "dlfp.frameworks",
    "dlfp.frameworks.backend", "dlfp.report",
}  # fmt: skip


@pytest.mark.parametrize("name", ["mlp", "numpy-cnn", "torch-cnn", "keras-cnn"])
def test_a_kept_run_depends_on_every_module_that_trains_it(name):
    """dlfp.artifacts.SOURCES lists every module the recipe's implementation imports,
    so that editing any of them retrains the kept run."""
    from dlfp import artifacts, recipes

    listed = {
        "dlfp." + source.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for source in artifacts.SOURCES[name]
    }
    needed = _closure(recipes.RECIPES[name].module) - NOT_NUMBERS
    assert needed <= listed, f"add to SOURCES[{name!r}]: {sorted(needed - listed)}"


def test_thread_counts_are_set_in_one_place():
    """Only dlfp.threads changes how many threads a maths library uses."""
    setters = {
        "set_num_threads",
        "set_num_interop_threads",
        "set_intra_op_parallelism_threads",
        "set_inter_op_parallelism_threads",
        "threadpool_limits",
    }
    elsewhere = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "threads.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = {
            node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
        }
        if calls & setters:
            elsewhere[_module(path)] = sorted(calls & setters)
    assert not elsewhere, f"thread counts set outside dlfp.threads: {elsewhere}"
