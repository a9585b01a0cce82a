"""Convolutional layers: 2-D convolution, batch normalisation, max pooling, reshaping.

Feature maps are arrays of shape (B, C, H, W): examples, channels, rows, columns, in
the index order of the book's equations (and of PyTorch). Everything here comes twice.

* **Reference functions** written from the equations with plain loops and no tricks
  (:func:`conv2d_loop`, :func:`conv2d_backward_loop`, :func:`maxpool`,
  :func:`maxpool_backward`, :func:`batch_norm_loop`, :func:`batch_norm_backward_loop`):
  slow, readable, and checked against PyTorch by the tests.
* **Layers** (:class:`Conv2D`, :class:`BatchNorm2D`, :class:`MaxPool2D`,
  :class:`Flatten`, :class:`Reshape`) that keep the layer contract of :mod:`dlfp` and
  compute the same numbers fast: a convolution becomes one matrix product by copying
  every window of the input into a row (:func:`im2col`), and its input gradient is
  scattered back by :func:`col2im`. While :data:`FAST` is true (the default) they take
  shorter routes to the same numbers, which move memory in longer runs:
  :func:`im2col_strided`, :func:`col2im_by_tap`, batch normalisation on one row
  per example (:meth:`BatchNorm2D._rows`), and 2 x 2 max-pooling on the windows' entries
  sorted into rows (:func:`_pool_2x2`); inside ``with straightforward():`` they take the
  routes above, which is what the chapter's profile "before" measures. Their large
  copies and element-wise passes are cut along the batch into parts that run at once
  on every core the library may use (:func:`dlfp.threads.split`; one core inside
  ``with dlfp.threads.limit_elementwise(1):``), each part by the same operations in
  the same order: the same numbers on any number of threads.

The layers keep their results in *channels-last* memory: an output of shape
(B, C, H, W) is a view of an array stored as (B, H, W, C), whose rows of C channels
are what the matrix products read and write. (PyTorch's CNN in this book stores its
maps the same way, ``torch.channels_last``.) NumPy handles such views like any array;
only the order of the bytes differs, never the index order.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from . import init as initializers
from .layers import Layer
from .threads import split

__all__ = [
    "output_size",
    "xcorr_single",
    "conv2d_loop",
    "conv2d_backward_loop",
    "windows",
    "conv2d",
    "conv2d_backward",
    "maxpool",
    "maxpool_backward",
    "batch_norm_loop",
    "batch_norm_backward_loop",
    "im2col",
    "col2im",
    "im2col_strided",
    "col2im_by_tap",
    "straightforward",
    "Conv2D",
    "BatchNorm2D",
    "MaxPool2D",
    "Flatten",
    "Reshape",
]


# --- Reference implementations: the equations, with loops ---------------------------


def output_size(n: int, k: int, s: int = 1, p: int = 0) -> int:
    """Eq. (16.3): rows (or columns) of the output of a k x k window
    moved with stride s over n rows padded with p zeros on each side."""
    return (n + 2 * p - k) // s + 1


def xcorr_single(A: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Eq. (16.1): one channel, no padding, stride 1."""
    k = K.shape[0]
    n_H, n_W = A.shape
    Z = np.zeros((n_H - k + 1, n_W - k + 1))
    for i in range(n_H - k + 1):
        for j in range(n_W - k + 1):
            Z[i, j] = np.sum(K * A[i : i + k, j : j + k])
    return Z


def conv2d_loop(A, K, b=None, stride=1, padding=0):
    """Eq. (16.2). A: (B, C_in, H, W), K: (C_out, C_in, k, k), b: (C_out,)."""
    B, _, n_H, n_W = A.shape
    C_out, _, k, _ = K.shape
    s, p = stride, padding
    A_pad = np.pad(A, ((0, 0), (0, 0), (p, p), (p, p)))  # p zeros on each side
    H_out, W_out = output_size(n_H, k, s, p), output_size(n_W, k, s, p)
    Z = np.zeros((B, C_out, H_out, W_out), dtype=A.dtype)
    for i in range(H_out):
        for j in range(W_out):
            # the window of output (i, j), all examples and channels: (B, C_in, k, k)
            window = A_pad[:, :, s * i : s * i + k, s * j : s * j + k]
            Z[:, :, i, j] = np.tensordot(window, K, axes=([1, 2, 3], [1, 2, 3]))
    return Z if b is None else Z + b[None, :, None, None]


def conv2d_backward_loop(A, K, Delta, stride=1, padding=0):
    """The gradients of :func:`conv2d_loop`, one output position at a time.

    ``Delta`` = dL/dZ, shape (B, C_out, H_out, W_out). Output (i, j) was computed from
    one window of the padded input; in the backward pass that window *receives*
    ``Delta[:, :, i, j]`` through the filters (eq. (18.2)), and the filters
    receive the window weighted by ``Delta[:, :, i, j]`` (eq. (18.1)).

    Returns
    -------
    dK : (C_out, C_in, k, k)
    db : (C_out,)
    dA : (B, C_in, H, W), the interior of the padded input's gradient
    """
    _, _, n_H, n_W = A.shape
    k, s, p = K.shape[-1], stride, padding
    A_pad = np.pad(A, ((0, 0), (0, 0), (p, p), (p, p)))
    dA_pad = np.zeros_like(A_pad)
    dK = np.zeros_like(K)
    for i in range(Delta.shape[2]):
        for j in range(Delta.shape[3]):
            rows, cols = slice(s * i, s * i + k), slice(s * j, s * j + k)
            D = Delta[:, :, i, j]  # (B, C_out)
            dK += np.tensordot(D, A_pad[:, :, rows, cols], axes=([0], [0]))
            dA_pad[:, :, rows, cols] += np.tensordot(D, K, axes=([1], [0]))
    db = Delta.sum(axis=(0, 2, 3))
    return dK, db, dA_pad[:, :, p : p + n_H, p : p + n_W]


def windows(A, k, stride=1, padding=0):
    """All k x k windows of the padded input: (B, C, H_out, W_out, k, k), a view."""
    p = padding
    A_pad = np.pad(A, ((0, 0), (0, 0), (p, p), (p, p)))
    return sliding_window_view(A_pad, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]


def conv2d(A, K, b=None, stride=1, padding=0):
    """Eq. (16.2), vectorised."""
    Z = np.einsum("ecijuv,dcuv->edij", windows(A, K.shape[-1], stride, padding), K)
    return Z if b is None else Z + b[None, :, None, None]


def conv2d_backward(A, K, Delta, stride=1, padding=0):
    """Eqs. (18.1) and (18.2), vectorised: dK, db, dA.

    The input gradient is a *full* convolution: ``Delta``, with ``stride - 1`` zeros
    put between its entries and ``k - 1`` zeros around it, cross-correlated with the
    filters rotated by 180 degrees and with their two channel axes swapped.
    """
    B, C_in, n_H, n_W = A.shape
    k, s, p = K.shape[-1], stride, padding
    dK = np.einsum("edij,ecijuv->dcuv", Delta, windows(A, k, s, p))
    db = Delta.sum(axis=(0, 2, 3))
    H_out, W_out = Delta.shape[2:]
    dilated = np.zeros(Delta.shape[:2] + (s * (H_out - 1) + 1, s * (W_out - 1) + 1))
    dilated[:, :, ::s, ::s] = Delta
    K_flip = K[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C_in, C_out, k, k)
    covered = conv2d(dilated.astype(A.dtype), K_flip, padding=k - 1)
    # Rows and columns of the padded input that no window reached get no gradient.
    dA_pad = np.zeros((B, C_in, n_H + 2 * p, n_W + 2 * p), dtype=A.dtype)
    dA_pad[:, :, : covered.shape[2], : covered.shape[3]] = covered
    return dK, db, dA_pad[:, :, p : p + n_H, p : p + n_W]


def maxpool(A, k=2, stride=None):
    """Eq. (16.7): the largest entry of every k x k window (stride k)."""
    s = k if stride is None else stride
    B, C, n_H, n_W = A.shape
    H_out, W_out = output_size(n_H, k, s), output_size(n_W, k, s)
    out = np.empty((B, C, H_out, W_out), dtype=A.dtype)
    for i in range(H_out):
        for j in range(W_out):
            out[:, :, i, j] = A[:, :, s * i : s * i + k, s * j : s * j + k].max(
                axis=(2, 3)
            )
    return out


def maxpool_backward(A, dout, k=2, stride=None):
    """Eq. (18.3): send each gradient to the maximum of its window.

    Where several entries of a window tie for the maximum, the first in reading order
    (row by row) takes the gradient, as in PyTorch.
    """
    s = k if stride is None else stride
    B, C = A.shape[:2]
    dA = np.zeros_like(A)
    e, c = np.arange(B)[:, None], np.arange(C)[None, :]
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = A[:, :, s * i : s * i + k, s * j : s * j + k].reshape(B, C, -1)
            u, v = np.divmod(window.argmax(axis=2), k)  # argmax: the first maximum
            dA[e, c, s * i + u, s * j + v] += dout[:, :, i, j]
    return dA


def batch_norm_loop(Z, gamma, beta, eps=1e-5):
    """Eq. (17.3) in training mode, one channel at a time.

    Returns the output and the batch statistics (mean, biased variance) per channel.
    """
    out = np.empty_like(Z)
    C = Z.shape[1]
    mean, var = np.empty(C, Z.dtype), np.empty(C, Z.dtype)
    for c in range(C):
        z = Z[:, c]  # the n_BN = B H W values of channel c
        mean[c] = z.mean()
        var[c] = ((z - mean[c]) ** 2).mean()
        out[:, c] = gamma[c] * (z - mean[c]) / np.sqrt(var[c] + eps) + beta[c]
    return out, mean, var


def batch_norm_backward_loop(dout, Z, gamma, eps=1e-5):
    """The gradients of :func:`batch_norm_loop`, the three paths of eq.
    (18.5) followed one at a time, one channel at a time.

    Returns
    -------
    dZ : shape of Z
    dgamma, dbeta : (C,)
    """
    dZ = np.empty_like(Z)
    C = Z.shape[1]
    dgamma, dbeta = np.empty(C, Z.dtype), np.empty(C, Z.dtype)
    for c in range(C):
        z, dy = Z[:, c], dout[:, c]  # the channel's values and dL/dy
        n_bn = z.size
        mean = z.mean()
        var = ((z - mean) ** 2).mean()
        sigma_hat = np.sqrt(var + eps)
        z_hat = (z - mean) / sigma_hat
        dbeta[c], dgamma[c] = dy.sum(), (dy * z_hat).sum()  # eq. (18.4)
        d_hat = dy * gamma[c]  # dL/dz_hat
        d_var = np.sum(d_hat * (z - mean)) * -0.5 * sigma_hat**-3  # through sigma^2
        d_mean = -np.sum(d_hat) / sigma_hat + d_var * np.mean(-2 * (z - mean))
        # eq. (18.5): directly, through the variance, through the mean
        dZ[:, c] = d_hat / sigma_hat + d_var * 2 * (z - mean) / n_bn + d_mean / n_bn
    return dZ, dgamma, dbeta


# --- The fast path: windows as rows ---------------------------------------------------


def im2col(A_pad: np.ndarray, k: int, stride: int, out: np.ndarray | None = None):
    """Every k x k window of a channels-last padded input, as one row of a matrix.

    Parameters
    ----------
    A_pad : ndarray, shape (B, H_pad, W_pad, C)
        The padded input, channels last.
    k, stride : int
        Window side and stride.
    out : ndarray, optional
        Where to write, shape (B, H_out, W_out, k, k, C).

    Returns
    -------
    ndarray, shape (B H_out W_out, k k C)
        Row (e, i, j) holds the window of output pixel (i, j) of example e, read in the
        order (u, v, c'): the order in which :class:`Conv2D` lays out its filters.
    """
    B, H_pad, W_pad, C = A_pad.shape
    H_out, W_out = (H_pad - k) // stride + 1, (W_pad - k) // stride + 1
    if out is None:
        out = np.empty((B, H_out, W_out, k, k, C), dtype=A_pad.dtype)

    def copy_windows(start: int, stop: int) -> None:  # examples start to stop
        for u in range(k):  # k^2 copies of the whole input, each shifted by (u, v)
            for v in range(k):
                rows = slice(u, u + stride * (H_out - 1) + 1, stride)
                cols = slice(v, v + stride * (W_out - 1) + 1, stride)
                out[start:stop, :, :, u, v, :] = A_pad[start:stop, rows, cols, :]

    split(copy_windows, B, out.size)  # on every core the library may use
    return out.reshape(B * H_out * W_out, k * k * C)


def col2im(dcols: np.ndarray, pad_shape: tuple[int, ...], k: int, stride: int):
    """The adjoint of :func:`im2col`: add every row back onto the window it came from.

    ``dcols`` has the shape :func:`im2col` returns; the result has ``pad_shape``
    (B, H_pad, W_pad, C). An input pixel that lies in several windows receives the
    sum of their gradients: the sum of eq. (18.2).
    """
    B, H_pad, W_pad, C = pad_shape
    H_out, W_out = (H_pad - k) // stride + 1, (W_pad - k) // stride + 1
    D = dcols.reshape(B, H_out, W_out, k, k, C)
    dA_pad = np.zeros(pad_shape, dtype=dcols.dtype)
    for u in range(k):
        for v in range(k):
            rows = slice(u, u + stride * (H_out - 1) + 1, stride)
            cols = slice(v, v + stride * (W_out - 1) + 1, stride)
            dA_pad[:, rows, cols, :] += D[:, :, :, u, v, :]
    return dA_pad


#: Whether the layers take the fast routes below (True) or the straightforward ones
#: above: :func:`im2col`, :func:`col2im`, batch normalisation broadcast over rows of
#: n_C channels, and 2 x 2 max-pooling on strided views of the windows' entries. Both
#: compute the same numbers; :func:`straightforward` switches.
FAST = True


@contextmanager
def straightforward():
    """Inside this block the layers take the straightforward routes (``FAST = False``):
    what :func:`dlfp.profile.profile_steps` measures as "before"."""
    global FAST
    before, FAST = FAST, False
    try:
        yield
    finally:
        FAST = before


def im2col_strided(A_pad: np.ndarray, k: int, stride: int) -> np.ndarray:
    """:func:`im2col` in one copy instead of k^2: the same matrix, faster.

    In a channels-last row of pixels, the k pixels (v, c') of one window row u lie next
    to each other in memory: k n_C numbers in a row. A strided view (no copy) makes
    every window of every example an array (k, k n_C); copying that view copies runs
    of k n_C numbers, where :func:`im2col` copies runs of n_C (16 in the book's second
    convolution), and NumPy pays a fixed cost per run.
    """
    A_pad = np.ascontiguousarray(A_pad)  # the view below needs rows of W_pad n_C
    B, H_pad, W_pad, C = A_pad.shape
    H_out, W_out = (H_pad - k) // stride + 1, (W_pad - k) // stride + 1
    s_C = A_pad.itemsize  # the strides of a contiguous array (NumPy may report
    s_W, s_H = C * s_C, W_pad * C * s_C  # another stride for an axis of length 1)
    s_B = H_pad * s_H
    view = as_strided(  # view[e, i, j, u] = the k n_C numbers of window row u
        A_pad,
        shape=(B, H_out, W_out, k, k * C),
        strides=(s_B, stride * s_H, stride * s_W, s_H, s_C),
        writeable=False,
    )
    cols = np.empty(view.shape, dtype=A_pad.dtype)

    def copy_windows(start: int, stop: int) -> None:  # examples start to stop
        cols[start:stop] = view[start:stop]  # one copy

    split(copy_windows, B, cols.size)  # on every core the library may use
    return cols.reshape(B * H_out * W_out, k * k * C)


def col2im_by_tap(
    dtaps: np.ndarray, pad_shape: tuple[int, ...], k: int, stride: int
) -> np.ndarray:
    """:func:`col2im` for window gradients computed tap by tap: the same sum, faster.

    ``dtaps`` has shape (k^2, B H_out W_out, C): entry n holds the gradient that tap
    n = (u, v) of every window sends back, ``Delta_mat @ K_mat[(u, v)].T``. Each is
    one contiguous map (B, H_out, W_out, C), added onto the input shifted by (u, v):
    rows of W_out n_C numbers at a time, where :func:`col2im` adds runs of n_C.
    """
    B, H_pad, W_pad, C = pad_shape
    H_out, W_out = (H_pad - k) // stride + 1, (W_pad - k) // stride + 1
    dA_pad = np.zeros(pad_shape, dtype=dtaps.dtype)
    taps = dtaps.reshape(k * k, B, H_out, W_out, C)

    def add_taps(start: int, stop: int) -> None:  # examples start to stop
        for n, (u, v) in enumerate(np.ndindex(k, k)):  # the order of col2im's adds
            rows = slice(u, u + stride * (H_out - 1) + 1, stride)
            cols = slice(v, v + stride * (W_out - 1) + 1, stride)
            dA_pad[start:stop, rows, cols, :] += taps[n, start:stop]

    split(add_taps, B, dtaps.size)  # on every core the library may use
    return dA_pad


def _channels_last(X: np.ndarray) -> np.ndarray:
    """(B, C, H, W) -> the same numbers as (B, H, W, C); free for channels-last maps."""
    return X.transpose(0, 2, 3, 1)


def _channels_first(X: np.ndarray) -> np.ndarray:
    return X.transpose(0, 3, 1, 2)


def _check_maps(layer: str, X: np.ndarray, channels: int | None = None) -> None:
    if X.ndim != 4:
        raise ValueError(
            f"{layer} takes feature maps of shape (batch, channels, height, width) but "
            f"got shape {X.shape}; add the missing axes (X[:, None] for one channel)."
        )
    if channels is not None and X.shape[1] != channels:
        raise ValueError(
            f"this {layer} layer expects {channels} input channels but got "
            f"{X.shape[1]} (input shape {X.shape}); pass maps as (batch, channels, "
            "height, width) or change the layer's channels."
        )


class Conv2D(Layer):
    """A 2-D convolutional layer (cross-correlation, as every library computes it).

    Parameters
    ----------
    c_in, c_out : int
        Input channels and filters.
    kernel_size : int
        Side k of the square filters.
    stride, padding : int
        The window's step, and the zeros added on each side of the input.
    bias : bool
        Whether to add a bias per filter (not needed before batch normalisation).
    init : str or callable
        Initialiser of the filters, drawn as a (k^2 c_in, c_out) matrix: fan-in
        k^2 c_in, as for a dense layer that reads one window.
    rng : numpy.random.Generator
    dtype : numpy dtype

    Attributes
    ----------
    params : dict
        ``"K"``, shape (c_out, c_in, k, k), and ``"b"``, shape (c_out,), if ``bias``.
    grads : dict
        dL/dK and dL/db after :meth:`backward`.
    """

    decayed = ("K",)

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        init="he",
        rng=None,
        dtype=np.float32,
    ):
        super().__init__()
        self.c_in, self.c_out, self.k = int(c_in), int(c_out), int(kernel_size)
        self.stride, self.padding, self.bias = int(stride), int(padding), bool(bias)
        if min(self.c_in, self.c_out, self.k, self.stride) < 1 or self.padding < 0:
            raise ValueError(
                "channels, kernel size and stride must be at least 1 and padding at "
                f"least 0, got c_in={c_in}, c_out={c_out}, kernel_size={kernel_size}, "
                f"stride={stride}, padding={padding}."
            )
        self.init, self.dtype = init, np.dtype(dtype)
        rng = np.random.default_rng() if rng is None else rng
        n_in = self.k * self.k * self.c_in
        W = np.asarray(initializers.get(init)(n_in, self.c_out, rng, dtype), dtype)
        self.params = {"K": np.ascontiguousarray(W.T.reshape(self.kernel_shape))}
        if self.bias:
            self.params["b"] = np.zeros(self.c_out, dtype=dtype)
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self._cache = None
        self._pad_buffer: np.ndarray | None = None

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        return (self.c_out, self.c_in, self.k, self.k)

    @property
    def input_shape(self) -> tuple[int, None, None]:
        return (self.c_in, None, None)

    def _padded(self, A: np.ndarray) -> np.ndarray:
        """A (B, H, W, C) copied into a zero-bordered buffer kept between calls."""
        B, n_H, n_W, C = A.shape
        p = self.padding
        shape = (B, n_H + 2 * p, n_W + 2 * p, C)
        if p == 0:
            return A
        if (
            self._pad_buffer is None
            or self._pad_buffer.shape != shape
            or self._pad_buffer.dtype != A.dtype
        ):
            self._pad_buffer = np.zeros(shape, dtype=A.dtype)  # the border stays 0
        buffer = self._pad_buffer

        def pad(start: int, stop: int) -> None:  # examples start to stop
            buffer[start:stop, p : p + n_H, p : p + n_W, :] = A[start:stop]

        split(pad, B, A.size)
        return buffer

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        _check_maps("Conv2D", X, self.c_in)
        k, s, p = self.k, self.stride, self.padding
        B, _, n_H, n_W = X.shape
        if min(n_H, n_W) + 2 * p < k:
            raise ValueError(
                f"the input maps are {n_H} x {n_W} pixels ({n_H + 2 * p} x "
                f"{n_W + 2 * p} with padding {p}), smaller than the {k} x {k} kernel; "
                "pad them more or use a smaller kernel."
            )
        A_pad = self._padded(_channels_last(X))
        # One input channel: im2col's k^2 copies already run along rows of W_out
        # pixels, longer than the k numbers of im2col_strided's runs.
        windows_to_rows = im2col_strided if FAST and self.c_in > 1 else im2col
        cols = windows_to_rows(A_pad, k, s)  # X_col: (B H_out W_out, k^2 C_in)
        # K_mat: column c holds the filter K[c], read in the (u, v, c') order of the
        # rows of X_col. Then eq. (16.2) is one product, eq. (18.7).
        K_mat = self.params["K"].transpose(2, 3, 1, 0).reshape(-1, self.c_out)
        Z = cols @ K_mat  # Z_mat
        if self.bias:
            Z += self.params["b"]
        self._cache = (cols, K_mat, A_pad.shape, X.shape) if training else None
        H_out, W_out = output_size(n_H, k, s, p), output_size(n_W, k, s, p)
        return _channels_first(Z.reshape(B, H_out, W_out, self.c_out))

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        cols, K_mat, pad_shape, in_shape = self._cached(self._cache)
        D = _channels_last(dout).reshape(len(cols), self.c_out)  # Delta_mat
        dK_mat = cols.T @ D  # eq. (18.8), left: eq. (18.1) for all filters at once
        dK = dK_mat.reshape(self.k, self.k, self.c_in, self.c_out)
        self.grads["K"][...] = dK.transpose(3, 2, 0, 1)  # back to (c, c', u, v)
        if self.bias:
            D.sum(axis=0, out=self.grads["b"])
        if not input_grad:
            return None
        # eq. (18.8), middle and right: the gradient of every window, then each added
        # back onto the pixels it was copied from (col2im); together, eq. (18.2).
        if FAST:  # the same products, one per tap (u, v): K_taps[n] = K_mat[(u, v)].T
            K_taps = K_mat.reshape(self.k * self.k, self.c_in, self.c_out)
            dtaps = np.matmul(D, K_taps.transpose(0, 2, 1))  # (k^2, B H W, c_in)
            dA_pad = col2im_by_tap(dtaps, pad_shape, self.k, self.stride)
        else:
            dA_pad = col2im(D @ K_mat.T, pad_shape, self.k, self.stride)
        p, (_, _, n_H, n_W) = self.padding, in_shape
        return _channels_first(dA_pad[:, p : p + n_H, p : p + n_W, :])

    def config(self) -> dict[str, Any]:
        init = self.init if isinstance(self.init, str) else "custom"
        return {
            "c_in": self.c_in,
            "c_out": self.c_out,
            "kernel_size": self.k,
            "stride": self.stride,
            "padding": self.padding,
            "bias": self.bias,
            "init": init,
            "dtype": str(self.dtype),
        }


class BatchNorm2D(Layer):
    """Batch normalisation of feature maps, per channel, exactly as PyTorch defines it.

    In training, every channel is standardised with the mean and (biased) variance of
    its n_BN = B H W values in the batch, then scaled by ``gamma`` and shifted by
    ``beta`` (eq. (17.3)); the running averages are updated with the rate
    ``momentum`` and the *unbiased* variance (eq. (17.4)). At inference
    the running averages replace the batch statistics.

    Parameters
    ----------
    channels : int
    momentum : float
        PyTorch's ``momentum``, the weight of the new batch in the running averages.
    eps : float
        Added to the variance before the square root.
    dtype : numpy dtype

    Attributes
    ----------
    params : dict
        ``"gamma"`` and ``"beta"``, trained, and ``"running_mean"`` and
        ``"running_var"``, statistics saved with the model but without a gradient.
    grads : dict
        ``"gamma"`` and ``"beta"`` only.
    """

    def __init__(
        self,
        channels: int,
        *,
        momentum: float = 0.1,
        eps: float = 1e-5,
        dtype=np.float32,
    ):
        super().__init__()
        if not 0.0 <= momentum <= 1.0 or eps <= 0:
            raise ValueError(
                f"momentum must be in [0, 1] and eps positive, got {momentum}, {eps}."
            )
        self.channels, self.momentum, self.eps = int(channels), float(momentum), eps
        self.dtype = np.dtype(dtype)
        C = self.channels
        self.params = {
            "gamma": np.ones(C, dtype),
            "beta": np.zeros(C, dtype),
            "running_mean": np.zeros(C, dtype),
            "running_var": np.ones(C, dtype),
        }
        self.grads = {key: np.zeros(C, dtype) for key in ("gamma", "beta")}
        self._cache = None
        self._ones: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, None, None]:
        return (self.channels, None, None)

    def _column_sums(self, M: np.ndarray) -> np.ndarray:
        """1^T M for an (n_BN, C) matrix: one matrix-vector product, which BLAS runs on
        every core (NumPy's own M.sum(axis=0) uses one)."""
        if self._ones is None or len(self._ones) != len(M):
            self._ones = np.ones(len(M), dtype=M.dtype)
        return self._ones.astype(M.dtype, copy=False) @ M

    def _rows(self, M: np.ndarray, pixels: int) -> tuple[np.ndarray, int]:
        """The (n_BN, C) matrix M as the matrix that the element-wise passes run on,
        and how many times a per-channel vector must be repeated to fit its rows.

        Fast route: one row per example, its ``pixels`` = n_H n_W pixels, n_H n_W C
        numbers, with each per-channel vector tiled n_H n_W times. NumPy's loops then
        run over rows of n_H n_W C numbers instead of C (16 in the first block), and
        it pays a fixed cost per row. Same numbers.
        """
        if FAST:
            return M.reshape(-1, pixels * self.channels), pixels
        return M, 1

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        _check_maps("BatchNorm2D", X, self.channels)
        B, C, n_H, n_W = X.shape
        Z = _channels_last(X).reshape(-1, C)  # (n_BN, C): a view for channels-last maps
        Z_rows, reps = self._rows(Z, n_H * n_W)
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not training:
            self._cache = None
            mean, var = self.params["running_mean"], self.params["running_var"]
            scale = gamma / np.sqrt(var + self.eps)
            mean, scale, beta = (np.tile(v, reps) for v in (mean, scale, beta))
            centred = np.result_type(Z_rows, mean)  # the dtypes of (Z - mean) scale
            out = np.empty(Z_rows.shape, np.result_type(centred, scale))

            def standardise(rows: slice) -> None:
                np.subtract(Z_rows[rows], mean, out=out[rows])
                out[rows] *= scale
                out[rows] += beta

            _by_rows(standardise, Z_rows)
            return _channels_first(out.reshape(B, n_H, n_W, C))
        if B < 2:
            raise ValueError(
                "batch normalisation in training mode needs at least two examples per "
                "batch to estimate its statistics, but got one; use a larger batch (or "
                "drop a last batch of one), or call forward with training=False."
            )
        n_bn = len(Z)
        mean = self._column_sums(Z) / n_bn
        mean_rows = np.tile(mean, reps)
        Z_hat_rows = np.empty(Z_rows.shape, np.result_type(Z_rows, mean_rows))
        squares = np.empty_like(Z_hat_rows)

        def centre(rows: slice) -> None:
            np.subtract(Z_rows[rows], mean_rows, out=Z_hat_rows[rows])
            np.multiply(Z_hat_rows[rows], Z_hat_rows[rows], out=squares[rows])

        _by_rows(centre, Z_rows)
        var = self._column_sums(squares.reshape(-1, C)) / n_bn  # biased variance
        inv_std = 1 / np.sqrt(var + self.eps)
        rho = self.momentum  # eq. (17.4), unbiased variance
        self.params["running_mean"] *= 1 - rho
        self.params["running_mean"] += rho * mean
        self.params["running_var"] *= 1 - rho
        self.params["running_var"] += rho * var * (n_bn / (n_bn - 1))
        self._cache = (Z_hat_rows.reshape(-1, C), inv_std)
        out = squares  # the squares' memory, no longer needed
        inv_std_rows, gamma, beta = (np.tile(v, reps) for v in (inv_std, gamma, beta))

        def scale_and_shift(rows: slice) -> None:
            Z_hat_rows[rows] *= inv_std_rows  # standardised: eq. (17.3)
            np.multiply(Z_hat_rows[rows], gamma, out=out[rows])
            out[rows] += beta

        _by_rows(scale_and_shift, Z_rows)
        return _channels_first(out.reshape(B, n_H, n_W, C))

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        Z_hat, inv_std = self._cached(self._cache)
        B, C, n_H, n_W = dout.shape
        D = _channels_last(dout).reshape(-1, C)  # dL/dy, one column per channel
        n_bn = len(D)
        dbeta = self._column_sums(D)  # eq. (18.4)
        pixels = n_H * n_W
        (D_rows, reps), Z_hat_rows = self._rows(D, pixels), self._rows(Z_hat, pixels)[0]
        D_Z_hat = np.empty(D_rows.shape, np.result_type(D_rows, Z_hat_rows))

        def d_times_z_hat(rows: slice) -> None:
            np.multiply(D_rows[rows], Z_hat_rows[rows], out=D_Z_hat[rows])

        _by_rows(d_times_z_hat, D_rows)
        dgamma = self._column_sums(D_Z_hat.reshape(-1, C))
        self.grads["beta"][...] = dbeta
        self.grads["gamma"][...] = dgamma
        if not input_grad:
            return None
        # eq. (18.6): dZ = (gamma / sigma_hat) (D - mean(D) - Z_hat mean(D Z_hat))
        dZ = D_Z_hat  # D Z_hat's memory, no longer needed
        along_z_hat, mean_D, scale = (
            np.tile(v, reps)
            for v in (dgamma / n_bn, dbeta / n_bn, self.params["gamma"] * inv_std)
        )

        def input_gradient(rows: slice) -> None:
            np.multiply(Z_hat_rows[rows], along_z_hat, out=dZ[rows])
            dZ[rows] += mean_D
            np.subtract(D_rows[rows], dZ[rows], out=dZ[rows])
            dZ[rows] *= scale

        _by_rows(input_gradient, D_rows)
        return _channels_first(dZ.reshape(B, n_H, n_W, C))

    def config(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "momentum": self.momentum,
            "eps": self.eps,
            "dtype": str(self.dtype),
        }


def _by_rows(work, M: np.ndarray) -> None:
    """``work(rows)`` on slices of rows that cover the 2-D matrix M, at once on every
    core the library may use (:func:`dlfp.threads.split`); ``work`` must compute each
    row alone."""
    split(lambda start, stop: work(slice(start, stop)), len(M), M.size)


class MaxPool2D(Layer):
    """Max pooling: the largest entry of every ``pool_size`` x ``pool_size`` window.

    The window moves by ``stride`` (by default its own size, so windows do not overlap)
    and the output size is eq. (16.3) without padding: a last row or
    column that no window covers whole is dropped (7 -> 3 for 2 x 2 windows).
    """

    def __init__(self, pool_size: int = 2, stride: int | None = None):
        super().__init__()
        self.k = int(pool_size)
        self.stride = self.k if stride is None else int(stride)
        if self.k < 1 or self.stride < 1:
            raise ValueError(
                f"pool_size and stride must be at least 1, got {pool_size}, {stride}."
            )
        self._cache = None

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        _check_maps("MaxPool2D", X)
        B, C, n_H, n_W = X.shape
        k, s = self.k, self.stride
        if min(n_H, n_W) < k:
            raise ValueError(
                f"the input maps are {n_H} x {n_W} pixels, smaller than the {k} x {k} "
                "pooling window; use larger inputs or fewer pooling layers."
            )
        A = _channels_last(X)
        if k == s == 2:  # the book's pooling: a shorter route, the same numbers
            out, winner = _pool_2x2(A, training)
        else:
            out, winner = _pool_windows(A, k, s, training)
        self._cache = (winner, X.shape) if training else None
        return _channels_first(out)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        winner, in_shape = self._cached(self._cache)
        if not input_grad:
            return None
        B, C, n_H, n_W = in_shape
        D = _channels_last(dout)
        if self.k == self.stride == 2:  # writes every entry of dA
            dA = np.empty((B, n_H, n_W, C), dtype=dout.dtype)
            _route_2x2(D, winner, dA)
        else:
            dA = np.zeros((B, n_H, n_W, C), dtype=dout.dtype)
            _route_windows(D, winner, dA, self.k, self.stride)
        return _channels_first(dA)

    def config(self) -> dict[str, Any]:
        return {"pool_size": self.k, "stride": self.stride}


def _pool_windows(A: np.ndarray, k: int, s: int, training: bool):
    """Max-pooling of channels-last maps A (B, H, W, C), any window and stride.

    One pass per position (u, v) of the window, in reading order, keeps the running
    maximum and (in training) the number of the position that holds it: a later
    position takes over only if strictly larger, so ties go to the first, as in PyTorch.
    """
    H_out, W_out = (A.shape[1] - k) // s + 1, (A.shape[2] - k) // s + 1
    out, winner = None, None
    for n, (u, v) in enumerate(np.ndindex(k, k)):
        rows = slice(u, u + s * (H_out - 1) + 1, s)
        cols = slice(v, v + s * (W_out - 1) + 1, s)
        candidate = A[:, rows, cols]
        if out is None:
            out = candidate.copy()
            winner = np.zeros(out.shape, np.uint8) if training else None
            continue
        if training:
            np.copyto(winner, n, where=candidate > out)
        np.maximum(out, candidate, out=out)
    return out, winner


def _route_windows(D, winner, dA, k: int, s: int) -> None:
    """Eq. (18.3): add each gradient of D onto the winner of its window, in dA."""
    H_out, W_out = winner.shape[1:3]
    for n, (u, v) in enumerate(np.ndindex(k, k)):
        rows = slice(u, u + s * (H_out - 1) + 1, s)
        cols = slice(v, v + s * (W_out - 1) + 1, s)
        if s >= k:  # windows do not overlap: each input pixel is written once
            np.multiply(D, winner == n, out=dA[:, rows, cols, :])
        else:
            dA[:, rows, cols, :] += D * (winner == n)


def _window_entries(A: np.ndarray) -> np.ndarray:
    """The entries a b / c d of every 2 x 2 window (stride 2) of channels-last maps
    A (B, H, W, C), as a view (2, 2, B, H // 2, W // 2, C): ``[0, 0]`` holds every a,
    ``[0, 1]`` every b, ``[1, 0]`` every c, ``[1, 1]`` every d. A last row or column
    that no window covers is left out."""
    B, H, W, C = A.shape
    h, w = H // 2, W // 2
    return A[:, : 2 * h, : 2 * w].reshape(B, h, 2, w, 2, C).transpose(2, 4, 0, 1, 3, 5)


def _runs_as_elements(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays, each run along its last axis viewed as one element of that many
    bytes (a NumPy ``void`` dtype), where every array stores its last axis as adjacent
    numbers; else the arrays unchanged.

    A copy between such views (``np.copyto``) moves whole runs as single elements and
    loops over them along the other axes; a copy of the numbers would pay NumPy's
    fixed cost for every run. Channels-last maps (B, H, W, C) store each pixel's C
    numbers next to each other: their runs are pixels. The same bytes are copied
    either way.
    """
    first = arrays[0]
    if any(
        A.dtype != first.dtype
        or A.shape[-1] != first.shape[-1]
        or A.strides[-1] != A.itemsize
        for A in arrays
    ):
        return arrays
    run = np.dtype((np.void, first.shape[-1] * first.itemsize))
    return tuple(A.view(run) for A in arrays)


def _pool_2x2(A: np.ndarray, training: bool):
    """:func:`_pool_windows` for 2 x 2 windows and stride 2, in fewer passes.

    The four entries a b / c d of a window are compared in pairs; the winner is
    described by three comparisons, each keeping the first of two equal entries:
    top row or bottom (max(a, b) >= max(c, d)), and left or right in each row.

    The entries of a window lie in two rows of the map, n_C numbers apart, so the
    arrays of every a, every b, every c and every d are views whose runs of adjacent
    numbers hold n_C numbers (16 in the book's first block): NumPy's element-wise
    loops pay a fixed cost per run. While :data:`FAST` is true, one copy of whole
    pixels (:func:`_runs_as_elements`) first sorts the entries into four contiguous
    arrays, on which every comparison runs in one stretch; otherwise the comparisons
    run on the views. The same comparisons of the same numbers, in the same order.
    """
    entries = _window_entries(A)
    quarters = np.empty(entries.shape, A.dtype) if FAST else None  # a b / c d
    out = np.empty(entries.shape[2:], A.dtype)
    winner = tuple(np.empty(out.shape, bool) for _ in range(3)) if training else None

    def pool_2x2(start: int, stop: int) -> None:  # examples start to stop
        e = slice(start, stop)
        if quarters is not None:  # one copy of whole pixels
            np.copyto(*_runs_as_elements(quarters[:, :, e], entries[:, :, e]))
        (a, b), (c, d) = entries[:, :, e] if quarters is None else quarters[:, :, e]
        if winner is not None:
            np.greater_equal(a, b, out=winner[1][e])
            np.greater_equal(c, d, out=winner[2][e])
        # Sorted, the maxima of the rows take the places of a and c.
        top = np.maximum(a, b, out=None if quarters is None else a)
        bottom = np.maximum(c, d, out=None if quarters is None else c)
        np.maximum(top, bottom, out=out[e])
        if winner is not None:
            np.greater_equal(top, bottom, out=winner[0][e])

    split(pool_2x2, len(A), A.size)  # on every core the library may use
    return out, winner


def _route_2x2(D, winner, dA) -> None:
    """Eq. (18.3) for :func:`_pool_2x2`: each gradient of D goes to one of a b / c d.

    While :data:`FAST` is true the gradients of every a, b, c and d are computed as
    four contiguous arrays and then copied onto their pixels of dA
    (:func:`_runs_as_elements`); otherwise they are written through the views of dA's
    entries. A last row or column of dA that no window covers is set to zero.
    """
    in_top, left_in_top, left_in_bottom = winner
    B, H, W, C = dA.shape
    entries = _window_entries(dA)
    quarters = np.empty(entries.shape, dA.dtype) if FAST else None

    def route_2x2(start: int, stop: int) -> None:  # examples start to stop
        e = slice(start, stop)
        (a, b), (c, d) = entries[:, :, e] if quarters is None else quarters[:, :, e]
        D_top = np.multiply(D[e], in_top[e], out=b)  # b and d hold D_top and D_bottom
        D_bottom = np.subtract(D[e], D_top, out=d)  # until a and c are computed
        np.multiply(D_top, left_in_top[e], out=a)
        np.subtract(D_top, a, out=b)
        np.multiply(D_bottom, left_in_bottom[e], out=c)
        np.subtract(D_bottom, c, out=d)
        if quarters is not None:  # one copy of whole pixels
            np.copyto(*_runs_as_elements(entries[:, :, e], quarters[:, :, e]))
        dA[e, 2 * (H // 2) :] = 0  # the row and column that no window covers
        dA[e, :, 2 * (W // 2) :] = 0

    split(route_2x2, len(D), dA.size)  # on every core the library may use


class Flatten(Layer):
    """(B, C, H, W) -> (B, C H W), in the index order (c, i, j), as PyTorch's."""

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        self._shape = X.shape if training else None
        return X.reshape(len(X), -1)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        shape = self._cached(self._shape)
        return dout.reshape(shape) if input_grad else None


class Reshape(Layer):
    """Give every example the shape ``shape``: ``X.reshape(len(X), *shape)``.

    A network for images that starts with ``Reshape((1, 28, 28))`` takes rows of 784
    pixels, as the perceptrons of Part II do, and sees one-channel 28 x 28 images.
    """

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(n) for n in shape)

    @property
    def input_shape(self) -> tuple[int]:
        return (int(np.prod(self.shape)),)

    def forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        size = int(np.prod(X.shape[1:]))
        if size != self.input_shape[0]:
            raise ValueError(
                f"Reshape({self.shape}) needs {self.input_shape[0]} values per "
                f"example but got {size} (input shape {X.shape}); check the input."
            )
        self._shape = X.shape if training else None
        return X.reshape(len(X), *self.shape)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        shape = self._cached(self._shape)
        return dout.reshape(shape) if input_grad else None

    def config(self) -> dict[str, Any]:
        return {"shape": list(self.shape)}
