"""The IPython start-up file of a Binder kernel, copied there by ``dlfp_reader.py``:
the chapters' prose shows what their cells glue.

Binder's rewritten chapters show a glued value as an inline expression,
``{eval}`_dlfp_glue("name", ".2f")```, which jupyterlab-myst evaluates in the kernel
when the markdown cell is run. This file defines ``_dlfp_glue`` (the one name it leaves
in the kernel) and makes ``myst_nb.glue`` also keep each glued value for it. It stands
on its own (the standard library, and MyST-NB when it is installed): the kernel needs
nothing of the book's tools and nothing of ``dlfp``.
"""


def _dlfp_glue_in_the_prose():
    """``myst_nb.glue`` made to remember what it glues; returns what shows it."""
    glued: dict[str, object] = {}

    class Text(str):
        """A string that displays without quotes (as text in the prose)."""

        def __repr__(self) -> str:
            return str(self)

    def show(name: str, spec: str = ""):
        """The value glued as ``name``, formatted with ``spec`` as ``{glue:text}``
        does."""
        if name not in glued:
            return Text(f"[{name}: run the cells above]")
        value = glued[name]
        if spec:
            return Text(format(value, spec))
        if isinstance(value, str | int | float):
            return Text(str(value))
        return value  # a figure or a table: displayed as the cell would display it

    try:
        import myst_nb
    except ImportError:  # nothing is glued, so every value shows as not yet computed
        return show
    original = myst_nb.glue
    remembered = getattr(original, "_dlfp_remembers", None)
    if remembered is not None:  # run twice in one kernel: one record, kept
        return remembered

    def glue(name, variable, display=True):
        glued[name] = variable
        return original(name, variable, display)

    glue.__doc__ = original.__doc__
    glue._dlfp_remembers = show
    myst_nb.glue = glue
    return show


_dlfp_glue = _dlfp_glue_in_the_prose()
del _dlfp_glue_in_the_prose
