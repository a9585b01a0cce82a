"""MyST that a notebook viewer would show as raw text."""

from __future__ import annotations

import re

#: What jupyterlab-myst renders; any other role or directive would show as raw text.
_ROLES = {"eval", "eq", "math", "sub", "sup", "abbr", "u", "strike"}
_DIRECTIVES = {
    "note", "tip", "hint", "important", "warning", "caution", "attention", "danger",
    "error", "seealso", "admonition", "dropdown", "math", "code", "code-block",
    "figure", "image", "table", "list-table", "margin", "aside", "tab-set", "tab-item",
    "card", "grid", "grid-item", "grid-item-card",
}  # fmt: skip


#: (roles, directives) that jupyterlab-myst renders (Binder's JupyterLab).
JUPYTERLAB_MYST = (_ROLES, _DIRECTIVES)


def raw_myst(markdown: str, roles=frozenset(), directives=frozenset()) -> list[str]:
    """The MyST roles and directives in ``markdown`` other than ``roles`` and
    ``directives`` (those a viewer renders), which it would show as raw text, and
    leftovers of Sphinx's (``:pyobject:``, glue, citations, labels)."""
    found = [
        f"{{{name}}}"
        for name in re.findall(r"\{([a-z][\w:-]*)\}`", markdown)
        if name not in roles
    ]
    found += [
        f"```{{{name}}}"
        for name in re.findall(r"^(?:`{3,}|:{3,})\{([\w:-]+)\}", markdown, re.M)
        if name not in directives
    ]
    found += [raw for raw in (":pyobject:", "{glue", "{cite") if raw in markdown]
    if not roles:  # a viewer of plain Markdown: no labels either
        found += re.findall(r"^\([\w-]+\)=", markdown, re.M)
        found += re.findall(r"\$\$[ \t]*\([\w-]+\)", markdown)
    return found
