"""Every chapter as a notebook (``.ipynb``) that reads like the book, for Colab and for
download.

Colab opens notebooks only, and every chapter here is MyST markdown. When the HTML book
is built, this writes ``_notebooks/<page>.ipynb`` beside the pages for every chapter
with code, and gives each page an "Open in Colab" button and a ``.ipynb`` download of
that notebook. The notebook is the chapter rewritten as Binder's copy is
(``dlfp_reader.rewrite``, beside this file: code shown from ``src/``, citations and
references as text), except that a glued value is the text this build computed
(Colab evaluates nothing in the prose) and a glued figure is an image attached to its
cell. Each code cell carries the outputs of this build, so the notebook reads like the
page before it runs. Two cells come first: a note, and one that installs ``dlfp`` at
the commit the book was built from when ``import dlfp`` fails (Colab has NumPy,
Matplotlib, PyTorch and TensorFlow, not ``dlfp``).

Where Colab finds them: the publishing workflow pushes ``_notebooks`` to the branch
``notebooks`` of the repository named in ``_config.yml`` (``repository: url``), and the
button opens ``https://colab.research.google.com/github/<owner>/<repo>/blob/notebooks/
<page>.ipynb``; a fork that changes those lines gets buttons to its own branch and an
install cell for its own repository. ``dlfp_notebooks_branch`` and
``dlfp_install_commit`` (default: ``$GITHUB_SHA``, else ``git rev-parse HEAD``, else
the repository's branch) are Sphinx settings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from dlfp_reader import book_sources, rewrite  # beside this file (book/_ext)
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
FOLDER = "_notebooks"
COLAB = "https://colab.research.google.com/github"

HEADER = """\
This notebook is a chapter of [*Deep Learning, From First Principles*]({book_url}), \
made from the book's source at commit `{commit}`. The text shows the numbers that the \
book's build computed, and each cell keeps the output it printed then; run the cells \
(Runtime > Run all) to compute them again on this machine. The first cell installs \
`dlfp`, the book's library, where it is missing; MNIST downloads on first use."""

INSTALL = """\
# dlfp, the book's library, at the commit this notebook was made from, where it is
# missing (Colab has NumPy, Matplotlib, PyTorch and TensorFlow, but not dlfp); the
# "colab" extra adds what the chapters use besides (MyST-NB's glue, threadpoolctl).
try:
    import dlfp
except ImportError:
    %pip install --quiet "dlfp[colab] @ {spec}"
"""


class BuildGlue:
    """The values one executed chapter glued (``dlfp_reader.Glued``): MyST-NB keeps
    them beside the executed notebook, in ``<page>.glue.json``."""

    def __init__(self, glued: dict) -> None:
        from myst_nb.core.variables import format_plain_text

        self._format = format_plain_text
        self.values = {name: output.get("data", {}) for name, output in glued.items()}
        self.attachments: dict[str, dict[str, str]] = {}

    def text(self, name: str, spec: str) -> str:
        data = self.values.get(name, {})
        if "text/plain" not in data:
            raise KeyError(f"the build glued no text as {name!r}")
        return self._format(data["text/plain"], spec)

    def figure(self, name: str, caption: str, alt: str) -> str:
        data = self.values.get(name, {})
        for mime in ("image/png", "image/jpeg", "image/svg+xml"):
            if mime in data:
                key = f"{name}.{mime.split('/')[1].split('+')[0]}"
                self.attachments[key] = {mime: data[mime]}
                alt = re.sub(r"[\[\]\n]", " ", alt).strip()
                return f"![{alt}](attachment:{key})\n\n*{caption}*"
        if "text/markdown" in data:
            return f"{data['text/markdown']}\n\n*{caption}*"
        if "text/plain" in data:
            return f"```\n{data['text/plain']}\n```\n\n*{caption}*"
        raise KeyError(f"the build glued no figure as {name!r}")


def equation_numbers(env) -> dict[str, str]:
    """Every equation label of the book and its number as the pages show it ("3.2"),
    as Sphinx's math domain resolves ``{eq}`` references."""
    from docutils.nodes import make_id

    numbers = {}
    for label, (docname, number) in env.get_domain("math").equations.items():
        if env.config.math_numfig and env.config.numfig:
            found = env.toc_fignumbers.get(docname, {}).get("displaymath", {})
            parts = found.get(make_id(f"equation-{label}"), ())
            eqno = ".".join(map(str, parts))
            numbers[label] = env.config.math_numsep.join(eqno.rsplit(".", 1))
        else:
            numbers[label] = str(number)
    return numbers


_LABELLED = re.compile(
    r"\$\$(?P<math>(?:(?!\$\$).)*)\$\$[ \t]*\((?P<label>[\w-]+)\)", re.S
)
_TARGET = re.compile(r"^\([\w-]+\)=[ \t]*\n", re.M)
_TAB_SET = re.compile(r"^:{3,}\{tab-set\}[ \t]*\n|^:{3,}[ \t]*$\n?", re.M)
_TAB_ITEM = re.compile(r"^:{3,}\{tab-item\}[ \t]*(?P<title>.*)$", re.M)


def plain_markdown(text: str, equations: dict[str, str]) -> str:
    """What MyST adds to Markdown, as Colab's Markdown shows it: numbered equations
    tagged with the book's numbers, equation references as "(3.2)", labels gone, tabs
    as headed paragraphs."""

    def number(label: str) -> str:
        return equations.get(label) or label.removeprefix("eq-").replace("-", " ")

    text = _LABELLED.sub(
        lambda m: f"$${m['math'].rstrip()} \\tag{{{number(m['label'])}}}$$", text
    )
    text = re.sub(r"\{eq\}`([^`]+)`", lambda m: f"({number(m[1].strip())})", text)
    text = _TARGET.sub("", text)
    text = _TAB_ITEM.sub(lambda m: f"**{m['title'].strip()}**\n", text)
    return _TAB_SET.sub("", text)


def notebook(
    source: Path,
    executed: dict,
    glued: dict,
    labels: dict,
    bib: dict,
    equations: dict[str, str],
    *,
    install: str,
    book_url: str,
    commit: str,
) -> dict:
    """The Colab notebook of one chapter (an nbformat 4 dict)."""
    import jupytext
    import nbformat

    glue = BuildGlue(glued)
    text = rewrite(source.read_text(encoding="utf-8"), source, labels, bib, glue)
    nb = jupytext.reads(text, fmt="md:myst")
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = plain_markdown(cell.source, equations)
    # sources and outputs as strings, whatever the file had
    executed = nbformat.reads(json.dumps(executed), as_version=4)
    done = [c for c in executed.cells if c.cell_type == "code"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell, ran in zip(code, done, strict=False):
        if cell.source.strip() != ran.source.strip():
            break  # the build ran other code: leave the rest without outputs
        cell.outputs = [
            o
            for o in ran.get("outputs", [])
            if "scrapbook" not in o.get("metadata", {})  # glued values: the prose's
        ]
        cell.execution_count = ran.get("execution_count")
    for cell in nb.cells:
        keys = re.findall(r"\(attachment:([^)\s]+)\)", cell.source)
        if cell.cell_type == "markdown" and keys:
            cell.attachments = {k: glue.attachments[k] for k in keys}
    nb.cells[:0] = [
        nbformat.v4.new_markdown_cell(HEADER.format(book_url=book_url, commit=commit)),
        nbformat.v4.new_code_cell(INSTALL.format(spec=install)),
    ]
    nb.metadata = {
        "kernelspec": {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        },
        "language_info": {"name": "python"},
        "colab": {"provenance": []},
    }
    nb.nbformat, nb.nbformat_minor = 4, 4  # cells without ids, as Colab writes them
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


# --- Sphinx --------------------------------------------------------------------------


def _repository(app) -> tuple[str, str, str] | None:
    """(url, owner, name) of the repository in ``_config.yml``, if on GitHub."""
    url = (app.config.html_theme_options or {}).get("repository_url", "")
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", url)
    return (url, match[1], match[2]) if match else None


def _commit(app) -> str:
    if app.config.dlfp_install_commit:
        return app.config.dlfp_install_commit
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=app.srcdir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return (app.config.html_theme_options or {}).get("repository_branch", "main")


def _book_sources(app):
    """Labels and bibliography for the rewrite, read once per build."""
    if not hasattr(app, "_dlfp_book_sources"):
        app._dlfp_book_sources = book_sources(Path(app.srcdir) / "book")
    return app._dlfp_book_sources


def _page(app, pagename, templatename, context, doctree) -> None:
    if app.builder.format != "html" or doctree is None:
        return
    executed_path = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    source = Path(app.env.doc2path(pagename))
    if not executed_path.is_file() or source.suffix != ".md":
        return
    repository = _repository(app)
    if repository is None:
        return
    url, owner, name = repository
    commit = _commit(app)
    import nbformat

    labels, bib = _book_sources(app)
    if not hasattr(app, "_dlfp_equations"):
        app._dlfp_equations = equation_numbers(app.env)
    equations = app._dlfp_equations
    glue_path = executed_path.with_suffix(".glue.json")
    try:
        nb = notebook(
            source,
            json.loads(executed_path.read_text(encoding="utf-8")),
            json.loads(glue_path.read_text(encoding="utf-8"))
            if glue_path.is_file()
            else {},
            labels,
            bib,
            equations,
            install=f"git+{url}@{commit}",
            book_url=app.config.html_baseurl or f"https://{owner}.github.io/{name}/",
            commit=commit,
        )
    except KeyError as err:  # a value the page shows that the build did not glue
        LOGGER.warning(
            f"{pagename}: no notebook for Colab, {err.args[0]}", location=pagename
        )
        return
    target = Path(app.outdir) / FOLDER / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)

    branch = app.config.dlfp_notebooks_branch
    colab = {
        "type": "link",
        "text": "Colab",
        "tooltip": "Open this chapter as a notebook in Colab",
        "icon": "_static/images/logo_colab.png",
        "url": f"{COLAB}/{owner}/{name}/blob/{branch}/{pagename}.ipynb",
        "label": "colab-button",
    }
    download = {
        "type": "link",
        "text": ".ipynb",
        "tooltip": "Download this chapter as a notebook",
        "icon": "fas fa-code",
        "url": context["pathto"](f"{FOLDER}/{pagename}.ipynb", 1),
        "label": "download-notebook-button",
    }
    for group in context.get("header_buttons", []):
        if group.get("label") == "launch-buttons":
            group["buttons"].insert(1, colab)
        elif group.get("label") == "download-buttons":
            group["buttons"][:] = [
                b
                for b in group["buttons"]
                if b.get("label") != "download-notebook-button"
            ]
            group["buttons"].insert(0, download)


def setup(app):
    app.add_config_value("dlfp_notebooks_branch", "notebooks", "html")
    app.add_config_value("dlfp_install_commit", "", "html")
    # after sphinx-book-theme's own header buttons (priority 501)
    app.connect("html-page-context", _page, priority=510)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
