"""Rebuilds that are never stale: a chapter executes again when what it computes from
changes, not only when its own code cells do.

Jupyter Book's execution cache (jupyter-cache) keys a chapter on its code cells and its
kernel, and Sphinx reads a chapter again only when its file changes. Neither sees the
library that the cells import, the pinned versions, or the data. So an edit to
``src/dlfp`` followed by ``make book`` would leave pages showing numbers that the
current code does not produce. This extension closes that gap:

* For every chapter it computes the *inputs* that its outputs depend on: the modules
  of the installed ``dlfp`` that its code cells import, followed through every import in
  the library (module-level and inside functions); the package's data files; the
  versions of the other packages in that closure (NumPy, PyTorch, TensorFlow, ...);
  ``requirements.lock``; and, for a chapter whose closure reads MNIST (``dlfp.data``),
  the four MNIST files (their SHA-256, or the pinned one while they are not downloaded).
* On ``source-read`` it appends to the chapter a hidden code cell (tagged
  ``remove-cell``) holding a digest of those inputs. The digest is part of the code that
  jupyter-cache hashes, so a changed input is a cache miss and the chapter executes;
  unchanged inputs are a hit and nothing executes. A restored cache from another version
  of the library (the publishing workflow's) can only miss.
* On ``env-get-outdated`` it tells Sphinx to read again every chapter whose digest
  differs from the one it was last read with, since Sphinx alone would not.

A chapter that imports nothing from ``dlfp`` depends on the lock and the versions of
what it imports only.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import re
from pathlib import Path

#: Where a chapter's cells start and end (MyST markdown notebooks).
_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
#: A cell's options (``:tags: [...]``) and IPython's magics and shell lines: not Python.
_NOT_PYTHON = re.compile(r"^\s*(?::[\w-]+:|[%!]).*$", re.M)

STAMP = "# Inputs of this page's outputs (book/_ext/dlfp_inputs.py): "


def library_root() -> Path:
    """The folder of the ``dlfp`` that the chapters' kernels import."""
    spec = importlib.util.find_spec("dlfp")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "dlfp is not importable here: install the project (make setup) first."
        )
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _module_file(root: Path, name: str) -> Path | None:
    """The file of module ``dlfp.<name>`` (``a.b`` for ``dlfp.a.b``), if any."""
    parts = [p for p in name.split(".") if p]
    for candidate in (
        root.joinpath(*parts, "__init__.py"),
        root.joinpath(*parts).with_suffix(".py") if parts else None,
    ):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _imports(code: str, package: tuple[str, ...] = ()) -> set[str]:
    """Every module that ``code`` imports, absolute names (relative ones resolved in
    ``package``, the dotted path of the importing module's package)."""
    try:
        tree = ast.parse(_NOT_PYTHON.sub("", code))
    except SyntaxError:
        return {m for m in re.findall(r"\b(dlfp(?:\.\w+)*)", code)}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ((node.module,) if node.module else ()))
            else:
                module = node.module or ""
            names.add(module)
            # ``from dlfp import cnn`` imports a submodule, as does ``from . import x``
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {n for n in names if n}


@functools.cache
def _library_graph(root: Path) -> dict[Path, set[str]]:
    """For each module file of the library, the modules it imports (absolute)."""
    graph = {}
    for path in root.rglob("*.py"):
        # the package a module's relative imports start from: dlfp.a for dlfp/a/b.py
        # and for dlfp/a/__init__.py alike
        package = path.relative_to(root.parent).parts[:-1]
        graph[path] = _imports(path.read_text(encoding="utf-8"), package)
    return graph


def closure(code: str, root: Path) -> tuple[set[Path], set[str]]:
    """The library files that ``code`` reaches through its imports, and the top-level
    names of the other packages imported on the way."""
    graph = _library_graph(root)
    files, others, todo = set(), set(), list(_imports(code))
    while todo:
        name = todo.pop()
        top, _, rest = name.partition(".")
        if top != root.name:
            others.add(top)
            continue
        # importing dlfp.a.b runs dlfp/__init__.py and dlfp/a/__init__.py first
        parts = rest.split(".") if rest else []
        for depth in range(len(parts) + 1):
            path = _module_file(root, ".".join(parts[:depth]))
            if path is not None and path not in files:
                files.add(path)
                todo.extend(graph.get(path, ()))
    return files, others


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _versions(modules: set[str]) -> list[str]:
    """``name==version`` of the distributions that provide ``modules``."""
    found = set()
    for module in modules:
        for dist in _distributions().get(module, ()):
            try:
                found.add(f"{dist}=={importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                pass
    return sorted(found)


@functools.cache
def _file_digest(path: Path, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest_of(path: Path) -> str:
    stat = path.stat()
    return _file_digest(path, stat.st_mtime_ns, stat.st_size)


def mnist_inputs() -> list[str]:
    """The MNIST files the chapters will read: each one's SHA-256 where it is on disk,
    else the pinned SHA-256 that a download is checked against."""
    from dlfp.data import MNIST_FILES, data_dir

    folder, found = data_dir(), []
    for stem, pinned in MNIST_FILES.items():
        on_disk = [folder / f"{stem}.gz", folder / stem]
        path = next((p for p in on_disk if p.is_file()), None)
        found.append(f"{stem}:{_digest_of(path) if path else 'pinned ' + pinned}")
    return found


def inputs(code: str, root: Path, lock: Path | None) -> list[str]:
    """What the outputs of a chapter with these code cells depend on, as lines."""
    files, others = closure(code, root)
    lines = [f"lock {_digest_of(lock) if lock and lock.is_file() else 'none'}"]
    lines += [f"package {v}" for v in _versions(others)]
    if files:
        data = [  # the package's data files (seeds.json)
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix not in (".py", ".pyc")
            and "__pycache__" not in p.parts
        ]
        for path in sorted(files | set(data)):
            lines.append(f"{path.relative_to(root).as_posix()} {_digest_of(path)}")
        if any(p.relative_to(root).parts[0] == "data" for p in files):
            lines += mnist_inputs()
    return lines


def digest(text: str, root: Path, lock: Path | None) -> str | None:
    """The digest of a chapter's inputs, or None for a page without code cells."""
    cells = _CELL.findall(text)
    if not cells:
        return None
    lines = inputs("\n".join(cells), root, lock)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


# --- Sphinx --------------------------------------------------------------------------


def _lock(app) -> Path:
    return Path(app.srcdir) / "requirements.lock"


def _stamp(app, docname: str, source: list[str]) -> None:
    value = digest(source[0], library_root(), _lock(app))
    if value is None:
        return
    if not hasattr(app.env, "dlfp_inputs"):
        app.env.dlfp_inputs = {}
    app.env.dlfp_inputs[docname] = value
    source[0] = (
        source[0].rstrip("\n")
        + "\n\n```{code-cell} ipython3\n:tags: [remove-cell]\n\n"
        + f"{STAMP}{value}\n```\n"
    )


def _outdated(app, env, added, changed, removed) -> list[str]:
    """Chapters whose inputs changed since they were read (their files did not)."""
    stamps = getattr(env, "dlfp_inputs", {})
    stale = []
    root, lock = library_root(), _lock(app)
    for docname, old in stamps.items():
        if docname in added or docname in changed or docname in removed:
            continue
        path = Path(env.doc2path(docname))
        if not path.is_file():
            continue
        if digest(path.read_text(encoding="utf-8"), root, lock) != old:
            stale.append(docname)
    return stale


def _purge(app, env, docname) -> None:
    getattr(env, "dlfp_inputs", {}).pop(docname, None)


def _merge(app, env, docnames, other) -> None:
    if not hasattr(env, "dlfp_inputs"):
        env.dlfp_inputs = {}
    for docname in docnames:
        if docname in getattr(other, "dlfp_inputs", {}):
            env.dlfp_inputs[docname] = other.dlfp_inputs[docname]


def setup(app):
    app.connect("source-read", _stamp)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
