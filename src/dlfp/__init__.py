"""dlfp: the NumPy library of *Deep Learning, From First Principles*.

``import dlfp`` needs only NumPy. Plotting helpers (:mod:`dlfp.plotting`) need
matplotlib, and the framework code lives in its own modules, imported only where used.

The layer contract
------------------
Every layer (:class:`dlfp.layers.Layer`) keeps the same three promises.

``forward(X, training=False) -> out``
    ``X`` is a batch whose first axis indexes examples: rows of features
    (B, n), or feature maps (B, C, H, W). The layer computes its output and, when
    ``training`` is true, caches on itself exactly what ``backward`` will need (its
    input, a mask, its output). With ``training=False`` nothing is cached (an earlier
    cache is dropped), dropout is switched off and batch normalisation uses its running
    averages: that is inference.

``backward(dout, input_grad=True) -> dX``
    ``dout`` is the gradient of the loss with respect to the layer's output, with the
    output's shape. The layer writes the gradient of every parameter into ``grads`` and
    returns the gradient with respect to its input, with the input's shape; with
    ``input_grad=False`` it returns None and skips that work (a network's first layer:
    its input is the data). It must follow a ``forward(..., training=True)`` on the same
    batch; without one, every layer raises a ``RuntimeError`` that says so. Gradients
    are *overwritten*, not accumulated, so no zeroing step is needed.

``params`` and ``grads``
    Two dicts of arrays: ``params`` holds everything the model saves (``"W"``,
    ``"b"``, filters ``"K"``, and batch normalisation's running averages) and ``grads``
    the gradient of each *trained* one, under the same key and with its shape and dtype.
    The arrays are created once and then updated in place (optimizers write into
    ``params``, ``backward`` into ``grads``), so an optimizer can hold on to them.

Losses (:mod:`dlfp.losses`) return the loss and its gradient together; the gradient of a
loss that is a mean over the batch already carries the factor ``1/B``. Optimizers
(:mod:`dlfp.optim`) take the list of ``(param, grad)`` pairs of a model and update the
parameters in place at each ``step()``.

Arrays are float32 by default; pass ``dtype=np.float64`` to a layer or model for
gradient checks. Randomness always comes from an explicit ``numpy.random.Generator``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dlfp")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
