"""The one rule for dlfp's cache folders: an environment variable, else a per-user
cache folder that depends on the platform."""

from __future__ import annotations

import sys

import pytest

from dlfp import artifacts, cache, data


@pytest.fixture
def home(monkeypatch, tmp_path):
    """A fake home folder, and no platform cache variable set."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_CACHE_HOME", "LOCALAPPDATA", "DLFP_TEST_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_environment_variable_wins(monkeypatch, home):
    monkeypatch.setenv("DLFP_TEST_DIR", str(home / "here" / ".." / "there"))
    assert cache.cache_dir("things", "DLFP_TEST_DIR") == (home / "there").resolve()
    monkeypatch.setenv("DLFP_TEST_DIR", "~/kept")
    assert cache.cache_dir("things", "DLFP_TEST_DIR") == (home / "kept").resolve()


def test_a_blank_variable_counts_as_unset(monkeypatch, home):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("DLFP_TEST_DIR", "  ")
    assert cache.cache_dir("things", "DLFP_TEST_DIR") == home / ".cache/dlfp/things"


@pytest.mark.parametrize(
    ("platform", "variable", "expected"),
    [
        ("linux", None, ".cache"),
        ("linux", "XDG_CACHE_HOME", "xdg"),
        ("darwin", None, "Library/Caches"),
        ("darwin", "XDG_CACHE_HOME", "Library/Caches"),  # macOS ignores XDG
        ("win32", None, "AppData/Local"),
        ("win32", "LOCALAPPDATA", "xdg"),
    ],
)
def test_the_per_user_cache_of_each_platform(
    monkeypatch, home, platform, variable, expected
):
    monkeypatch.setattr(sys, "platform", platform)
    if variable is not None:
        monkeypatch.setenv(variable, str(home / "xdg"))
    assert cache.user_cache_base() == home / expected
    assert cache.cache_dir("things", "DLFP_TEST_DIR") == home / expected / "dlfp/things"


def test_data_and_artifacts_follow_the_same_rule(monkeypatch, home):
    for platform in ("linux", "darwin", "win32"):
        monkeypatch.setattr(sys, "platform", platform)
        monkeypatch.delenv("DLFP_DATA_DIR", raising=False)
        monkeypatch.delenv("DLFP_ARTIFACTS", raising=False)
        base = cache.user_cache_base() / "dlfp"
        assert data.data_dir() == base / "mnist"
        assert artifacts.artifacts_dir() == base / "artifacts"
    monkeypatch.setenv("DLFP_DATA_DIR", str(home / "d"))
    monkeypatch.setenv("DLFP_ARTIFACTS", str(home / "a"))
    assert data.data_dir() == (home / "d").resolve()
    assert artifacts.artifacts_dir() == (home / "a").resolve()
