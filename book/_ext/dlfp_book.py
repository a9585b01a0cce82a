"""A Sphinx extension with two fixes, for the book's HTML pages and for its PDF; it also
loads the book's other extensions beside it: ``dlfp_inputs`` (rebuilds that are never
stale) and ``dlfp_colab`` (every chapter as a notebook, for Colab and for download).

Every inline script once on a page. Under Jupyter Book 1, sphinx-thebe (0.3.1) adds its
inline configuration script (``const THEBE_JS_URL = ...``) to each page twice, and the
browser rejects the second copy ("Identifier 'THEBE_JS_URL' has already been declared").
This keeps the first of any identical scripts, so that the live code button's scripts
load without an error.

References to an exercise in another chapter, in the PDF. sphinx-exercise (1.x) typesets
a reference to a numbered exercise of the same chapter as a link with the exercise's
number, but one to another chapter's exercise as ``Exercise \ref{chapter:label}``, a
LaTeX label it never defines, which prints "Exercise ??". This hands such references to
sphinx-exercise as if they were local: its labels are unique in the whole book.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform


def _key(script) -> tuple:
    """What a script tag shows: its file (None or "" when inline) and attributes."""
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", script) or ""
    return str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def _first_of_each_script(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


class _ExerciseReferencesAcrossChapters(SphinxPostTransform):
    default_priority = 21  # before sphinx-exercise's own (22), which does the rest
    formats = ("latex",)

    def run(self, **kwargs) -> None:
        registry = getattr(self.env, "sphinx_exercise_registry", None)
        if not registry:
            return
        for node in self.document.findall(nodes.reference):
            # another chapter's target: "%chapter#label" here, "chapter:label" later
            refuri, refid = node.get("refuri", ""), node.get("refid", "")
            if refuri.startswith("%") and "#" in refuri:
                label = refuri.rpartition("#")[2]
            elif ":" in refid:
                label = refid.rpartition(":")[2]
            else:
                continue
            if label in registry:
                node.attributes.pop("refuri", None)
                node["refid"] = label


def setup(app):
    app.setup_extension("dlfp_inputs")
    app.setup_extension("dlfp_colab")
    app.add_post_transform(_ExerciseReferencesAcrossChapters)
    # Last of the handlers: others add scripts to the page in this same event.
    app.connect("html-page-context", _first_of_each_script, priority=1000)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
