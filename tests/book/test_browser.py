"""The built book in a real browser (Debian's Chromium, driven by Playwright), offline.

Every request the pages make must stay on this machine: the maths renders from the
MathJax served with the book, and search works from the book's own index. Set
``DLFP_SCREENSHOTS`` to a folder to keep screenshots of the pages visited.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ..browser import chromium, chromium_missing, serve
from .test_html import CONFIG

pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def site(book_dir):
    """Serve the built book on 127.0.0.1; yield its base URL."""
    with serve(book_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    missing = chromium_missing()
    if missing:
        if os.environ.get("DLFP_REQUIRE_BROWSER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, site):
    """A fresh page that refuses, and records, every request leaving 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.external = []

    def guard(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            page.external.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    folder = os.environ.get("DLFP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=False)


def test_maths_renders_offline(page, site):
    page.goto(f"{site}/book/part2/1-meet-mnist.html")
    # MathJax replaces each TeX fragment with an <mjx-container>; wait until it has run.
    page.wait_for_function(
        "document.querySelectorAll('mjx-container').length >= 5", timeout=30_000
    )
    assert page.locator("mjx-container[display='true']").count() >= 3
    body = page.inner_text("article")
    assert "\\frac" not in body and "\\mathbf" not in body, (
        "raw TeX is visible on the page"
    )
    chapter = body.split(".", 1)[0]  # the heading reads "10. Meet MNIST"
    assert f"({chapter}.1)" in body, "equation numbers are not shown"
    page.locator(
        "#eq-mnist-scale, [id='equation-eq-mnist-scale']"
    ).first.scroll_into_view_if_needed()
    screenshot(page, "meet-mnist")
    assert page.external == [], f"the page asked the network for {page.external}"


def test_search_finds_a_chapter(page, site):
    page.goto(f"{site}/search.html?q=magic+number")
    results = page.locator("#search-results li")
    results.first.wait_for(timeout=30_000)
    links = " ".join(results.all_inner_texts())
    assert "Meet MNIST" in links
    screenshot(page, "search")
    assert page.external == [], f"the search page asked the network for {page.external}"


def test_live_code_is_set_up_and_its_scripts_load_cleanly(page, site):
    """Thebe (the live code button) starts the Binder environment of the launch
    buttons, and the page loads its scripts without an error in the console."""
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    loaded = []
    page.on("requestfinished", lambda r: loaded.append(r.url))
    page.goto(f"{site}/book/part1/neuron.html", wait_until="load")
    page.wait_for_timeout(1000)  # async scripts run after "load"
    config = page.locator("script[type='text/x-thebe-config']").inner_text()
    url = CONFIG["repository"]["url"].rstrip("/").removesuffix(".git")
    owner_repo = "/".join(url.split("/")[-2:])
    assert f'repo: "{owner_repo}"' in config, (
        f"Thebe starts another repository: {config}"
    )
    assert f'ref: "{CONFIG["repository"]["branch"]}"' in config
    assert 'path: "./book/part1"' in config, "Thebe's kernel starts in another folder"
    # Thebe itself starts mybinder.org, the launch buttons' BinderHub.
    assert (
        CONFIG["launch_buttons"]["binderhub_url"].rstrip("/") == "https://mybinder.org"
    )
    assert any("sphinx-thebe.js" in u for u in loaded), (
        "the Thebe script was not loaded"
    )
    button = page.locator("button[onclick*='initThebe'], .btn-launch-thebe")
    assert button.count() >= 1, "no live code button on a chapter page"
    assert page.evaluate("typeof initThebe") == "function"
    assert not problems, f"errors in the console: {problems}"
    assert page.external == [], f"the page asked the network for {page.external}"


def _luminance(rgb):
    """Relative luminance (WCAG 2) of an (..., 3) array of 8-bit sRGB colours."""
    import numpy as np

    c = np.asarray(rgb, dtype=float) / 255
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return c @ np.array([0.2126, 0.7152, 0.0722])


def _contrast(a, b):
    """WCAG contrast ratio between two luminances (1 to 21)."""
    import numpy as np

    return (np.maximum(a, b) + 0.05) / (np.minimum(a, b) + 0.05)


def _shot(locator):
    """The element as the reader sees it: an (H, W, 3) array of its pixels."""
    import io

    import numpy as np
    from PIL import Image

    locator.scroll_into_view_if_needed()
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_figure_and_equation_are_visible_in_light_and_dark_mode(browser, site, mode):
    """A reader whose system asks for ``mode`` gets the page in that mode, and both a
    figure and a displayed equation stand out from the page's background."""
    import numpy as np

    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, color_scheme=mode
    )
    page = context.new_page()
    try:
        page.goto(f"{site}/book/part1/gradient-descent.html")
        page.wait_for_function(
            "document.querySelectorAll('mjx-container').length >= 5", timeout=30_000
        )
        assert page.evaluate("document.documentElement.dataset.theme") == mode, (
            f"the page did not follow the system's {mode} mode"
        )
        background = page.evaluate(
            "getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number)"
        )
        paper = _luminance(background[:3])
        assert (paper > 0.5) == (mode == "light"), (
            f"the {mode} page has a background of luminance {paper:.2f}"
        )

        equation = page.locator("article mjx-container[display='true']").first
        pixels = _luminance(_shot(equation))
        # The glyphs: pixels that a reader tells from the background (WCAG's 4.5:1 for
        # text); an equation is thin strokes, so a few percent of its box is ink.
        ink = (_contrast(pixels, paper) >= 4.5).mean()
        assert ink >= 0.02, (
            f"the equation is invisible in {mode} mode: {ink:.1%} of its box is ink"
        )

        figure = page.locator("article img[src*='_images/']").first
        pixels = _luminance(_shot(figure))
        low, high = np.percentile(pixels, [0.5, 99.5])
        assert _contrast(low, high) >= 4.5, (
            f"the figure is washed out in {mode} mode: its darkest and lightest "
            f"pixels have a contrast of {_contrast(low, high):.1f}:1"
        )
        figure.scroll_into_view_if_needed()
        screenshot(page, f"gradient-descent-{mode}")
    finally:
        context.close()
