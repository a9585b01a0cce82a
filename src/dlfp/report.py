"""Small helpers that turn computed results into tables on the page, and count code.

A :class:`Table` renders as a Markdown table in Jupyter and in the built book (MyST-NB
turns ``text/markdown`` outputs into real tables), and as aligned text in a terminal.
:func:`count_lines` counts the lines of code of functions and classes, for the verdict's
comparison of the two frameworks' code.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

__all__ = ["Table", "fmt", "count_lines"]


def fmt(value, digits: int = 4) -> str:
    """Format one cell: integers with thousands separators, floats with ``digits``
    significant digits, everything else with ``str``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Integral):
        return f"{value:,}"
    if isinstance(value, Real):
        return f"{value:.{digits}g}"
    return str(value)


class Table:
    """A table of computed values.

    Parameters
    ----------
    headers : sequence of str
        Column titles (Markdown allowed, e.g. ``"$\\eta$"``).
    rows : sequence of sequences
        One row per entry; cells are formatted with :func:`fmt` unless already strings.
    digits : int
        Significant digits for floats.
    align : str, optional
        One character per column, ``"l"`` or ``"r"``; numbers are right-aligned by
        default.
    """

    def __init__(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence],
        *,
        digits: int = 4,
        align: str | None = None,
    ):
        self.headers = [str(h) for h in headers]
        self.cells = [
            [c if isinstance(c, str) else fmt(c, digits) for c in row] for row in rows
        ]
        if any(len(row) != len(self.headers) for row in self.cells):
            raise ValueError(
                f"every row needs {len(self.headers)} cells, one per header; "
                "check the rows passed to Table."
            )
        if align is None:
            first = rows[0] if rows else []
            align = "".join(
                "r" if isinstance(c, Real) and not isinstance(c, bool) else "l"
                for c in first
            ) or "l" * len(self.headers)
        self.align = align

    def _repr_markdown_(self) -> str:
        rule = ["---:" if a == "r" else ":---" for a in self.align]
        lines = ["| " + " | ".join(self.headers) + " |", "| " + " | ".join(rule) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in self.cells]
        return "\n".join(lines)

    def __str__(self) -> str:
        columns = list(zip(self.headers, *self.cells, strict=True))
        widths = [max(len(c) for c in col) for col in columns]

        def line(cells):
            return "  ".join(
                c.rjust(w) if a == "r" else c.ljust(w)
                for c, w, a in zip(cells, widths, self.align, strict=True)
            )

        return "\n".join(
            [line(self.headers), line(["-" * w for w in widths])]
            + [line(row) for row in self.cells]
        )

    __repr__ = __str__


def count_lines(*objects) -> int:
    """Lines of code of functions or classes: no blank lines, comments, docstrings."""
    import ast
    import inspect
    import textwrap

    total = 0
    for obj in objects:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
        docstrings = set()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                value = body[0].value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
        for number, line in enumerate(source.splitlines(), start=1):
            stripped = line.strip()
            if stripped and not stripped.startswith("#") and number not in docstrings:
                total += 1
    return total
