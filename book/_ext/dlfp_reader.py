"""The chapters as a reader opens them in JupyterLab (the launch buttons, on Binder).

Book tooling, like the Sphinx extensions beside it, not part of the library: Binder's
``binder/postBuild`` runs it by path, ``python book/_ext/dlfp_reader.py book``, and
``dlfp_colab.py`` imports it while the book builds.

Jupyter Book renders the chapters' MyST markdown with Sphinx: numbers glued from the
cells (``{glue:text}``), code shown from ``src/`` (``{literalinclude}``), citations,
references between chapters, exercises. In JupyterLab the chapter opens as a notebook
through jupytext, and its markdown is rendered by jupyterlab-myst, which knows none of
those Sphinx parts and would show them as raw text. :func:`rewrite_book` turns every
chapter into MyST that it does render, reading as the book does:

* a glued number becomes an inline expression, ``{eval}`_dlfp_glue("name", ".2f")```,
  which jupyterlab-myst evaluates in the kernel when the markdown cell is run; the
  kernel defines ``_dlfp_glue`` and remembers what the chapter glues through an IPython
  start-up file, ``dlfp_glue_startup.py`` beside this one, which :func:`rewrite_book`
  copies into place (it stands on its own: the kernel imports nothing from here);
* a glued figure becomes the same expression, followed by its caption;
* code shown from ``src/`` becomes a code block with that code, cut out by Sphinx's own
  ``literalinclude`` reader (the same ``:pyobject:``, ``:start-at:``, ``:dedent:``);
* citations become "Author (year)" or "(Author, year)" from ``book/references.bib``,
  and the bibliography page a list of the references;
* references to other chapters, sections, figures and exercises become their titles;
* exercises and solutions become headed paragraphs.

It rewrites the chapter files in place, so it is not for a working copy of the book:
the sources stay the ones Jupyter Book builds. It needs only the standard library to
import; rewriting uses Sphinx, installed by ``binder/requirements.txt``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Protocol

__all__ = ["STARTUP", "Glued", "book_sources", "rewrite", "rewrite_book"]

#: The kernel's start-up file, copied by :func:`rewrite_book`.
STARTUP = Path(__file__).with_name("dlfp_glue_startup.py")


# --- On the sources: MyST that jupyterlab-myst renders -------------------------------

_ROLE = re.compile(r"\{(?P<name>[a-z:-]+)\}`(?P<body>[^`]*)`")
_FENCE = re.compile(
    r"^(?P<ticks>`{3,}|:{3,})\{(?P<name>[a-z:-]+)\}(?P<arg>[^\n]*)\n"
    r"(?P<body>.*?)^(?P=ticks)[ \t]*$",
    re.M | re.S,
)
_OPTION = re.compile(r"^:(?P<key>[a-z-]+):[ \t]*(?P<value>.*)$")
_TARGET = re.compile(r"^\((?P<label>[\w-]+)\)=[ \t]*\n+(?P<heading>#+[ \t].*)$", re.M)


def _options(body: str) -> tuple[dict[str, str], str]:
    """Split a directive body into its ``:key: value`` options and its content."""
    options, lines = {}, body.splitlines()
    while lines and (match := _OPTION.match(lines[0])):
        value = match["value"].strip()
        if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        options[match["key"]] = value
        lines.pop(0)
    return options, "\n".join(lines).strip()


def _plain(markdown: str) -> str:
    """A heading or a caption as plain text: roles reduced to their text, no marks."""
    text = re.sub(r"^#+\s*", "", markdown.strip())
    text = _ROLE.sub(lambda m: m["body"], text)
    return re.sub(r"[*_`]", "", text).strip()


def read_bib(path: Path) -> dict[str, dict[str, str]]:
    """The entries of a BibTeX file: key to fields (braces and TeX accents removed)."""
    entries = {}
    for match in re.finditer(
        r"@\w+\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", path.read_text(), re.S
    ):
        fields = {}
        for field in re.finditer(
            r"(\w+)\s*=\s*(\{(?:[^{}]|\{[^{}]*\})*\}|\"[^\"]*\"|\d+)", match[2]
        ):
            value = re.sub(r"\\[`'^\"~=.]|[{}]", "", field[2].strip('"'))
            fields[field[1].lower()] = re.sub(r"\s+", " ", value).strip()
        entries[match[1]] = fields
    return entries


def _authors(fields: dict[str, str]) -> str:
    names = [
        a.strip()
        for a in fields.get("author", fields.get("editor", "?")).split(" and ")
    ]
    last = [n.split(",")[0].strip() if "," in n else n.split()[-1] for n in names if n]
    if len(last) > 2:
        return f"{last[0]} et al."
    return " and ".join(last)


def _cite(kind: str, keys: str, bib: dict[str, dict[str, str]]) -> str:
    cited = []
    for key in (k.strip() for k in keys.split(",")):
        fields = bib.get(key, {"author": key, "year": "?"})
        cited.append((_authors(fields), fields.get("year", "?")))
    if kind.endswith(":t"):
        return "; ".join(f"{who} ({year})" for who, year in cited)
    return "(" + "; ".join(f"{who}, {year}" for who, year in cited) + ")"


def book_labels(book: Path) -> dict[str, str]:
    """Every label the chapters define, with the text a reference to it shows."""
    labels = {}
    for source in sorted(book.rglob("*.md")):
        text = source.read_text(encoding="utf-8")
        for match in _TARGET.finditer(text):
            labels[match["label"]] = _plain(match["heading"])
        for match in _FENCE.finditer(text):
            options, _ = _options(match["body"])
            if match["name"] in ("glue:figure", "figure") and "name" in options:
                labels[options["name"]] = "the figure"
            elif match["name"].startswith("exercise") and "label" in options:
                labels[options["label"]] = "the exercise"
        for match in re.finditer(r"^\((?P<label>[\w-]+)\)=", text, re.M):
            labels.setdefault(match["label"], match["label"].replace("-", " "))
    return labels


def book_sources(book: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """What a rewrite of the chapters under ``book`` reads: their labels
    (:func:`book_labels`) and the entries of every ``.bib`` file there."""
    bib = {k: v for path in book.glob("*.bib") for k, v in read_bib(path).items()}
    return book_labels(book), bib


def _reference(name: str, body: str, labels: dict[str, str]) -> str:
    explicit = re.fullmatch(r"(?P<text>.*?)\s*<(?P<label>[^>]+)>", body, re.S)
    if explicit:
        return explicit["text"].replace("%s", "").strip()
    label = body.strip()
    if name == "doc":
        return labels.get(Path(label).name, Path(label).name.replace("-", " ").title())
    title = labels.get(label, label.replace("-", " "))
    return f"**{title}**" if name in ("ref", "numref") else title


def _literalinclude(arg: str, body: str, source: Path) -> str:
    from sphinx.directives.code import LiteralIncludeReader

    class _Config:
        source_encoding = "utf-8-sig"
        highlight_language = "python"

    options, _ = _options(body)
    language = options.pop("language", "python")
    options = {k: (int(v) if k == "dedent" and v else v) for k, v in options.items()}
    path = (source.parent / arg.strip()).resolve()
    code, _ = LiteralIncludeReader(str(path), options, _Config()).read()
    return f"```{language}\n{code.rstrip()}\n```"


class Glued(Protocol):
    """Values that a build glued, for a copy of a chapter that shows them as text (the
    Colab notebooks) instead of evaluating them in the kernel (Binder)."""

    def text(self, name: str, spec: str) -> str:
        """The value glued as ``name``, as ``{glue:text}`name:spec``` shows it."""

    def figure(self, name: str, caption: str, alt: str) -> str:
        """Markdown that shows the figure (or table) glued as ``name``."""


def rewrite(
    text: str,
    source: Path,
    labels: dict[str, str],
    bib: dict,
    glued: Glued | None = None,
) -> str:
    """One chapter's MyST, rewritten for jupyterlab-myst to render as the book reads.

    With ``glued``, glued values become the text a build computed (for a notebook
    viewer that evaluates nothing in the prose, such as Colab's) instead of inline
    expressions that the kernel evaluates."""
    parts = re.split(r"(^```\{code-cell\}.*?^```[ \t]*$)", text, flags=re.M | re.S)
    for i in range(0, len(parts), 2):  # the markdown between the code cells
        parts[i] = _rewrite_markdown(parts[i], source, labels, bib, glued)
    return "".join(parts)


def _rewrite_markdown(
    text: str, source: Path, labels: dict[str, str], bib, glued: Glued | None = None
) -> str:
    def directive(match: re.Match) -> str:
        name, arg, body = match["name"], match["arg"].strip(), match["body"]
        options, content = _options(body)
        if name == "literalinclude":
            return _literalinclude(arg, body, source)
        if name == "glue:figure" and glued is not None:
            return glued.figure(arg, content, options.get("alt", content))
        if name == "glue:figure":
            return f'{{eval}}`_dlfp_glue("{arg}")`\n\n*{content}*'
        if name in ("exercise-start", "solution-start"):
            heading = "Exercise" if name == "exercise-start" else "Solution"
            return f"**{heading}.**"
        if name in ("exercise-end", "solution-end"):
            return ""
        if name == "bibliography":
            return "\n".join(
                f"* {_authors(f)} ({f.get('year', '?')}). *{f.get('title', key)}*."
                for key, f in sorted(bib.items(), key=lambda kv: _authors(kv[1]))
            )
        # another directive (a note, a tab set): its content may hold what is rewritten
        inner = _rewrite_markdown(body, source, labels, bib, glued)
        return f"{match['ticks']}{{{name}}}{match['arg']}\n{inner}{match['ticks']}"

    def role(match: re.Match) -> str:
        name, body = match["name"], match["body"]
        if name.startswith("glue"):
            key, _, spec = body.partition(":")
            if glued is not None:
                return glued.text(key, spec)
            return f'{{eval}}`_dlfp_glue("{key}", "{spec}")`'
        if name.startswith("cite"):
            return _cite(name, body, bib)
        if name in ("ref", "numref", "doc", "term"):
            return _reference(name, body, labels)
        if name == "fa":
            return ""
        return match[0]

    text = _FENCE.sub(directive, text)
    return _ROLE.sub(role, text)


def rewrite_book(book: Path, startup: Path | None = None) -> int:
    """Rewrite the chapters under ``book``, write the kernel's start-up file; count."""
    labels, bib = book_sources(book)
    count = 0
    for source in sorted(book.rglob("*.md")):
        text = source.read_text(encoding="utf-8")
        new = rewrite(text, source, labels, bib)
        if new != text:
            source.write_text(new, encoding="utf-8")
            count += 1
    if startup is not None:
        startup.parent.mkdir(parents=True, exist_ok=True)
        startup.write_text(STARTUP.read_text(encoding="utf-8"), encoding="utf-8")
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python book/_ext/dlfp_reader.py",
        description="Rewrite the chapters under BOOK (in place) to read in JupyterLab.",
    )
    parser.add_argument("book", type=Path, help="the folder of the chapters")
    parser.add_argument(
        "--startup",
        type=Path,
        default=Path.home() / ".ipython/profile_default/startup/00-dlfp-glue.py",
        help="where to write the IPython start-up file (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.book.is_dir():
        parser.error(f"{args.book} is not a folder of chapters.")
    count = rewrite_book(args.book, args.startup)
    print(f"{count} chapters rewritten for JupyterLab; kernel start-up: {args.startup}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
