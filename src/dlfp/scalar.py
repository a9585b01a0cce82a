"""Backpropagation on a graph of scalar operations (reverse-mode differentiation).

A :class:`Scalar` is a number that remembers which operation made it from which inputs,
and the *local* derivative of that operation with respect to each input, computed right
beside the forward value. :meth:`Scalar.backward` then applies the chain rule from the
output back to every input, visiting each node once, after all the nodes that use it:

    dL/d(input) = sum over the uses of the input of  dL/d(use) * d(use)/d(input).

This is backpropagation in its smallest form; the matrix version of the later chapters
does the same with whole layers as the nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

__all__ = ["Scalar"]


class Scalar:
    """A scalar value in a computational graph.

    Attributes
    ----------
    value : float
        The result of the forward computation.
    grad : float
        dL/d(this node) after ``L.backward()`` has run on an output L; 0 before.
    parents : tuple of Scalar
        The inputs of the operation that produced this node.
    local_grads : tuple of float
        d(this node)/d(parent) for each parent, evaluated at the forward values.
    op : str
        The operation's name, for drawing the graph.
    label : str
        An optional name for the node (``"w1"``, ``"z"``).
    """

    __slots__ = ("value", "grad", "parents", "local_grads", "op", "label")

    def __init__(
        self, value: float, parents=(), local_grads=(), op: str = "", label: str = ""
    ):
        self.value = float(value)
        self.grad = 0.0
        self.parents: tuple[Scalar, ...] = tuple(parents)
        self.local_grads: tuple[float, ...] = tuple(local_grads)
        self.op = op
        self.label = label

    # --- operations: the value and the local derivative side by side -----------------

    def __add__(self, other) -> Scalar:
        other = _lift(other)
        return Scalar(self.value + other.value, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other) -> Scalar:
        other = _lift(other)
        # d(xy)/dx = y and d(xy)/dy = x
        return Scalar(
            self.value * other.value, (self, other), (other.value, self.value), "*"
        )

    def __pow__(self, k: float) -> Scalar:
        return Scalar(self.value**k, (self,), (k * self.value ** (k - 1),), f"^{k:g}")

    def __neg__(self) -> Scalar:
        return Scalar(-self.value, (self,), (-1.0,), "neg")

    def __sub__(self, other) -> Scalar:
        return self + (-_lift(other))

    def __truediv__(self, other) -> Scalar:
        return self * _lift(other) ** -1

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other) -> Scalar:
        return _lift(other) - self

    def __rtruediv__(self, other) -> Scalar:
        return _lift(other) / self

    def exp(self) -> Scalar:
        e = math.exp(self.value)
        return Scalar(e, (self,), (e,), "exp")

    def log(self) -> Scalar:
        return Scalar(math.log(self.value), (self,), (1.0 / self.value,), "log")

    def tanh(self) -> Scalar:
        t = math.tanh(self.value)
        return Scalar(t, (self,), (1.0 - t * t,), "tanh")

    def sigmoid(self) -> Scalar:
        s = 1.0 / (1.0 + math.exp(-self.value))
        return Scalar(s, (self,), (s * (1.0 - s),), "σ")

    def relu(self) -> Scalar:
        return Scalar(max(self.value, 0.0), (self,), (float(self.value > 0),), "relu")

    # --- the backward pass -----------------------------------------------------------

    def topological_order(self) -> list[Scalar]:
        """Every node this one depends on, each after all of its parents."""
        order: list[Scalar] = []
        seen: set[int] = set()
        stack: list[tuple[Scalar, Iterator[Scalar]]] = [(self, iter(self.parents))]
        seen.add(id(self))
        while stack:  # depth-first, without recursion, so deep graphs are fine
            node, parents = stack[-1]
            for parent in parents:
                if id(parent) not in seen:
                    seen.add(id(parent))
                    stack.append((parent, iter(parent.parents)))
                    break
            else:
                stack.pop()
                order.append(node)
        return order

    def backward(self) -> None:
        """Set ``grad`` of every node of the graph to d(self)/d(node)."""
        order = self.topological_order()
        for node in order:
            node.grad = 0.0
        self.grad = 1.0  # dL/dL
        for node in reversed(order):  # every node after all the nodes that use it
            for parent, local in zip(node.parents, node.local_grads, strict=True):
                parent.grad += node.grad * local  # the chain rule, summed over uses

    def __repr__(self) -> str:
        name = f"{self.label}=" if self.label else ""
        return f"Scalar({name}{self.value:.4g}, grad={self.grad:.4g})"


def _lift(x) -> Scalar:
    return x if isinstance(x, Scalar) else Scalar(x)
