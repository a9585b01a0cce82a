"""Plotting helpers for the book's figures (matplotlib).

Each helper draws on a matplotlib ``Axes`` or ``Figure`` that it creates or is given,
and returns it, so a chapter can add titles and annotations. Colours follow one palette
(:data:`CLASS_COLORS`) so that a class has the same colour in every figure of the book.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["CLASS_COLORS", "book_style", "show_digits"]

#: One colour per class (matplotlib's "tab10"), for the digits 0-9 and the toy classes.
CLASS_COLORS = plt.get_cmap("tab10").colors


def book_style() -> None:
    """Set the figure style shared by every chapter (size, fonts, grid, resolution)."""
    plt.rcParams.update(
        {
            "figure.figsize": (7.0, 4.0),
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 10,
            "axes.titlesize": 11,
            "legend.frameon": False,
            "image.cmap": "gray_r",
        }
    )


def show_digits(
    images: np.ndarray,
    labels: Sequence | None = None,
    *,
    ncols: int = 10,
    titles: Sequence[str] | None = None,
    size: float = 0.8,
    cmap: str = "gray_r",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    fig=None,
):
    """Draw images in a grid.

    Parameters
    ----------
    images : ndarray, shape (n, 28, 28) or (n, 784)
        The images; flat rows are reshaped to squares.
    labels : sequence, optional
        Shown above each image (ignored when ``titles`` is given).
    ncols : int
        Images per row.
    titles : sequence of str, optional
        A title for each image.
    size : float
        Width and height of one image in inches.
    cmap, vmin, vmax
        Colour map and range; ``vmin=vmax=None`` scales each image to its own range.

    Returns
    -------
    matplotlib.figure.Figure
    """
    images = np.asarray(images)
    if images.ndim == 2:
        side = int(round(np.sqrt(images.shape[1])))
        images = images.reshape(len(images), side, side)
    n = len(images)
    nrows = -(-n // ncols)
    if fig is None:
        fig = plt.figure(
            figsize=(
                size * ncols,
                size * nrows * (1.25 if (labels is not None or titles) else 1.0),
            )
        )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(images[i], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
        elif labels is not None:
            ax.set_title(str(labels[i]), fontsize=9)
    fig.subplots_adjust(
        wspace=0.05, hspace=0.35 if (labels is not None or titles) else 0.05
    )
    return fig
