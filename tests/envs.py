"""What the tests of a reader's paths share: fresh environments, copies of the
repository, and commands run in them with a bounded time."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT


def base_env() -> dict[str, str]:
    """Our environment, less what would leak our own installs into another one."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if "/.venv" not in p
    )
    return env


def run(cmd, *, cwd, env, what: str, timeout: float) -> str:
    """Run ``cmd``; fail the test with the end of its output if it fails."""
    try:
        result = subprocess.run(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        tail = ((err.stdout or b"")[-2000:]).decode(errors="replace")
        pytest.fail(f"{what} took more than {timeout:.0f} s:\n{tail}")
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        pytest.fail(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def repo_copy(dest: Path) -> Path:
    """The repository as a clone has it (tracked files and new unignored ones)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    shutil.rmtree(dest, ignore_errors=True)
    for name in filter(None, (f.decode() for f in files)):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def fresh_venv(path: Path, python: str | None = None, *, env=None) -> Path:
    """A new virtual environment at ``path`` (removed first), with this Python or
    ``python``; returns its ``bin`` folder."""
    shutil.rmtree(path, ignore_errors=True)
    python = python or shutil.which("python3", path=base_env()["PATH"])
    run(
        [python, "-m", "venv", path],
        cwd=ROOT,
        env=env or base_env(),
        what=f"creating a virtual environment in {path}",
        timeout=300,
    )
    return path / "bin"


def pip_env() -> dict[str, str]:
    """For installs: no retries of an index this machine cannot reach, no byte
    compilation up front (Python compiles what it imports anyway)."""
    return base_env() | {
        "PIP_RETRIES": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_COMPILE": "1",
    }


def run_notebooks(python, notebooks, *, cwd, env, report: Path, what: str) -> list:
    """Run ``notebooks`` with ``tests/run_notebooks.py`` under ``python`` (the
    environment under test); print each one's seconds; return the report's entries."""
    import json
    import time

    started = time.monotonic()
    run(
        [python, ROOT / "tests" / "run_notebooks.py", "--report", report, *notebooks],
        cwd=cwd,
        env=env,
        what=what,
        timeout=3600,
    )
    results = json.loads(report.read_text())
    print(f"\n{what}: {time.monotonic() - started:.0f} s")
    for r in results:
        print(f"  {r['seconds']:7.1f} s  {r['notebook']}")
    return results
