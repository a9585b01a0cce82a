"""Plotting helpers for the book's figures (matplotlib).

Each helper draws on a matplotlib ``Axes`` or ``Figure`` that it creates or is given,
and returns it, so a chapter can add titles and annotations. Colours follow one palette
(:data:`CLASS_COLORS`) so that a class has the same colour in every figure of the book.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "CLASS_COLORS",
    "book_style",
    "show_digits",
    "decision_boundary",
    "learning_curves",
    "draw_graph",
    "confusion",
]

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


def decision_boundary(
    predict,
    X: np.ndarray,
    y: np.ndarray,
    *,
    ax=None,
    resolution: int = 250,
    padding: float = 0.3,
    title: str | None = None,
    proba: bool = False,
):
    """Colour the plane by a classifier's prediction and draw the labelled points.

    Parameters
    ----------
    predict : callable or model
        ``predict(points) -> classes`` for points of shape (m, 2); a model with a
        ``predict`` method (a :class:`dlfp.model.Sequential`) works too. With
        ``proba=True`` it must return the probability of class 1 instead, drawn as a
        continuous shade with the 0.5 contour.
    X : ndarray, shape (n, 2)
    y : ndarray, shape (n,)
    resolution : int
        Grid points along each axis.
    padding : float
        Margin around the data, in data units.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if hasattr(predict, "predict"):
        predict = predict.predict
    ax = plt.gca() if ax is None else ax
    lo, hi = X.min(axis=0) - padding, X.max(axis=0) + padding
    xs, ys = (
        np.linspace(lo[0], hi[0], resolution),
        np.linspace(lo[1], hi[1], resolution),
    )
    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    colors = [CLASS_COLORS[k] for k in range(int(y.max()) + 1)]
    from matplotlib.colors import LinearSegmentedColormap, ListedColormap

    if proba:
        p = np.asarray(predict(grid)).reshape(gx.shape)
        cmap = LinearSegmentedColormap.from_list("two", [colors[0], "white", colors[1]])
        ax.contourf(gx, gy, p, levels=np.linspace(0, 1, 11), cmap=cmap, alpha=0.5)
        ax.contour(gx, gy, p, levels=[0.5], colors="k", linewidths=1.2)
    else:
        pred = np.asarray(predict(grid)).reshape(gx.shape)
        ax.contourf(
            gx,
            gy,
            pred,
            levels=np.arange(len(colors) + 1) - 0.5,
            cmap=ListedColormap(colors),
            alpha=0.25,
        )
        ax.contour(
            gx,
            gy,
            pred,
            levels=np.arange(len(colors)) + 0.5,
            colors="k",
            linewidths=0.6,
            alpha=0.6,
        )
    for k, color in enumerate(colors):
        ax.scatter(
            *X[y == k].T,
            s=9,
            color=color,
            edgecolor="k",
            linewidth=0.2,
            label=f"class {k}",
        )
    ax.set(
        xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), aspect="equal", xticks=[], yticks=[]
    )
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def learning_curves(
    histories,
    *,
    metrics: Sequence[str] = ("loss", "accuracy"),
    fig=None,
    logy: bool = False,
):
    """Training (solid) and validation (dashed) curves per epoch, one panel per metric.

    Parameters
    ----------
    histories : History or dict of str to History
        One run, or several runs to compare, keyed by their label.
    metrics : sequence of str
        Attributes of the history to draw (``loss``, ``accuracy``); the validation curve
        ``val_<metric>`` is drawn when recorded.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(histories, dict):
        histories = {"": histories}
    if fig is None:
        fig = plt.figure(figsize=(4.2 * len(metrics), 3.4))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (label, h) in enumerate(histories.items()):
            color = CLASS_COLORS[i % len(CLASS_COLORS)]
            name = f"{label} " if label else ""
            ax.plot(h.epoch, getattr(h, metric), color=color, label=f"{name}training")
            val = getattr(h, f"val_{metric}", [])
            if len(val):
                ax.plot(h.epoch, val, color=color, ls="--", label=f"{name}validation")
        ax.set(xlabel="epoch", ylabel=metric)
        if logy:
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def draw_graph(output, *, ax=None, show_grad: bool = True):
    """Draw the computational graph behind a :class:`dlfp.scalar.Scalar`.

    Inputs are the leaves that carry a label (``Scalar(0.3, label="w1")``). Parts of the
    graph that depend on no input are constants: they are not drawn as nodes but written
    into the operation that uses them (``* 0.7``). Nodes are placed in columns by their
    distance from the inputs; each shows its label or operation, its value and, after
    ``backward``, its gradient. Without ``ax``, a figure sized to the graph is made.
    """
    order = output.topological_order()
    variable: dict[int, bool] = {}
    for node in order:  # parents come first
        variable[id(node)] = (not node.parents and bool(node.label)) or any(
            variable[id(p)] for p in node.parents
        )
    nodes = [n for n in order if variable[id(n)]]
    depth: dict[int, int] = {}
    for node in nodes:
        parents = [p for p in node.parents if variable[id(p)]]
        depth[id(node)] = 1 + max((depth[id(p)] for p in parents), default=-1)
    # An input sits one column before its first use, so that parameters of later layers
    # do not send long edges across the whole graph.
    for node in reversed(nodes):
        if not node.parents:
            uses = [depth[id(n)] for n in nodes if any(p is node for p in n.parents)]
            if uses:
                depth[id(node)] = min(uses) - 1
    columns: dict[int, list] = {}
    for node in nodes:
        columns.setdefault(depth[id(node)], []).append(node)
    height = max(len(c) for c in columns.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(1.45 * len(columns), 0.95 * height + 0.4))
    pos = {}
    for d, column in columns.items():
        for i, node in enumerate(column):
            pos[id(node)] = (d, (len(column) - 1) / 2 - i)
    for node in nodes:
        for parent in node.parents:
            if variable[id(parent)]:
                (x0, y0), (x1, y1) = pos[id(parent)], pos[id(node)]
                ax.annotate(
                    "",
                    xy=(x1 - 0.33, y1),
                    xytext=(x0 + 0.33, y0),
                    arrowprops={"arrowstyle": "->", "color": "0.45", "lw": 0.8},
                )
    for node in nodes:
        x, y = pos[id(node)]
        constants = [f"{p.value:g}" for p in node.parents if not variable[id(p)]]
        name = node.label or " ".join([node.op, *constants])
        text = f"{name}\n{node.value:.3g}"
        if show_grad:
            text += f"\ngrad {node.grad:.3g}"
        leaf = not node.parents
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=7.5,
            bbox={
                "boxstyle": "round,pad=0.3",
                "fc": "#e8f1fa" if leaf else "#fdf1e3",
                "ec": "0.5",
                "lw": 0.6,
            },
        )
    ax.set_xlim(-0.5, max(columns) + 0.5)
    ax.set_ylim(-(height - 1) / 2 - 0.6, (height - 1) / 2 + 0.6)
    ax.set_axis_off()
    return ax


def confusion(
    C: np.ndarray,
    *,
    ax=None,
    normalize: bool = True,
    title: str | None = None,
    labels: Sequence[str] | None = None,
):
    """Draw a confusion matrix: rows are true classes, columns predicted classes.

    With ``normalize``, each row is divided by its total, so the diagonal shows recall
    and the colour scale is comparable between classes of different sizes; the counts
    are written in the cells either way.
    """
    ax = plt.gca() if ax is None else ax
    C = np.asarray(C)
    K = len(C)
    shown = C / C.sum(axis=1, keepdims=True) if normalize else C
    # A logarithmic-looking scale: errors are a few per cent of the diagonal.
    ax.imshow(np.sqrt(shown), cmap="Blues")
    for i in range(K):
        for j in range(K):
            ax.text(
                j,
                i,
                f"{C[i, j]}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shown[i, j] > 0.5 * shown.max() else "black",
            )
    ticks = labels if labels is not None else [str(k) for k in range(K)]
    ax.set(
        xticks=range(K),
        yticks=range(K),
        xticklabels=ticks,
        yticklabels=ticks,
        xlabel="predicted",
        ylabel="true",
    )
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax
