"""A Sphinx extension for the book's HTML pages: every inline script once.

Under Jupyter Book 1, sphinx-thebe (0.3.1) adds its inline configuration script
(``const THEBE_JS_URL = ...``) to each page twice, and the browser rejects the second copy
("Identifier 'THEBE_JS_URL' has already been declared"). This keeps the first of any
scripts that are identical, so that the live code button's scripts load without an error.
"""

from __future__ import annotations


def _key(script) -> tuple:
    """What a script tag shows: its file (None and "" alike for inline) and attributes."""
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


def setup(app):
    # Last of the handlers: others add scripts to the page in this same event.
    app.connect("html-page-context", _first_of_each_script, priority=1000)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
