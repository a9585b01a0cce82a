"""Run notebooks top to bottom, one fresh kernel each, as a reader does; report as JSON.

Run by the tests of the launch paths with the Python of the environment under test
(Binder's, or the one standing in for Colab), which needs nbclient and nbformat (and
jupytext for a chapter's ``.md``):

    python tests/run_notebooks.py --report out.json book/part1/neuron.md ...

Each notebook runs in its own folder, with the kernel ``python3`` of that environment.
After each markdown cell that shows glued values through inline expressions
(``{eval}`...```, Binder's rewrite), a probe cell evaluates them at that point, as
JupyterLab does when the reader runs the cell: a value that the cells above have not
computed yet is reported. The report lists, per notebook: seconds, the error of the
first failing cell (or null), the probes that found no value, and the glued values
that are NumPy scalars (which the Colab pages cannot format).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from pathlib import Path

PROBE = "DLFP-PROBE "
#: What ``_dlfp_glue`` (book/_ext/dlfp_glue_startup.py) shows for a value not yet glued.
MISSING = re.compile(r"^\[\w+: run the cells above\]$")


def _read(path: Path):
    if path.suffix == ".md":
        import jupytext

        return jupytext.read(path)
    import nbformat

    return nbformat.read(path, as_version=4)


def _with_probes(nb):
    import nbformat

    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type != "markdown":
            continue
        expressions = re.findall(r"\{eval\}`([^`]*)`", cell.source)
        if expressions:
            listing = ", ".join(f"str({e})" for e in expressions)
            probe = nbformat.v4.new_code_cell(
                f"print({PROBE!r} + __import__('json').dumps([{listing}]))"
            )
            probe.metadata["dlfp_probe"] = expressions
            cells.append(probe)
    nb.cells = cells
    return nb


def run(path: Path, timeout: int) -> dict:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = _with_probes(_read(path))
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    started, error = time.monotonic(), None
    try:
        client.execute()
    except CellExecutionError as err:
        error = re.sub(r"\x1b\[[0-9;]*m", "", str(err))[-3000:]
    except Exception:  # a dead kernel, a time-out: reported, the next one runs
        error = traceback.format_exc()[-3000:]
    missing = []
    for cell in nb.cells:
        expressions = cell.metadata.get("dlfp_probe")
        if not expressions:
            continue
        text = "".join(o.get("text", "") for o in cell.get("outputs", []))
        if PROBE not in text:
            continue  # not reached (an earlier cell failed) or itself failed
        values = json.loads(text.split(PROBE, 1)[1].splitlines()[0])
        missing += [
            e for e, v in zip(expressions, values, strict=True) if MISSING.match(v)
        ]
    return {
        "notebook": str(path),
        "seconds": round(time.monotonic() - started, 1),
        "error": error,
        "missing": missing,
        "numpy_glues": numpy_glues(nb),
    }


#: How a NumPy scalar shows as text (NumPy 2): ``np.float64(0.5)``, ``np.int64(3)``.
NUMPY_SCALAR = re.compile(r"^np\.\w+\(")


def numpy_glues(nb) -> list[str]:
    """The names of glued values that are NumPy scalars: Binder's prose formats them,
    but the Colab pages read a glued value from its text, which for a NumPy scalar is
    ``np.float64(...)``, not a number. Glue ``float(x)`` or ``int(x)``."""
    names = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get(
                "application/papermill.record/text/plain", ""
            )
            if NUMPY_SCALAR.match(text):
                record = output.get("metadata", {}).get("scrapbook", {})
                names.append(record.get("name"))
    return names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    args = parser.parse_args(argv)
    results = []
    for path in args.notebooks:
        results.append(run(path.resolve(), args.timeout))
        print(json.dumps(results[-1])[:500], flush=True)
        args.report.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
