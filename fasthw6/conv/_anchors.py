"""PyTorch as the anchor for the convolution functions (used by tests and benchmarks)."""
from __future__ import annotations

import numpy as np

from .._backend import register_anchor


def _torch():
    import torch  # noqa: PLC0415  (optional dependency, imported only when asked for)

    return torch


def _to_numpy(t, plain):
    out = t.numpy()
    return out[0, 0] if plain else out


def _lift(x, weight, bias):
    torch = _torch()
    x, weight = np.asarray(x), np.asarray(weight)
    plain = x.ndim == 2
    if plain:
        x, weight = x[None, None], weight[None, None]
    tb = None if bias is None else torch.from_numpy(np.ascontiguousarray(bias))
    return torch, torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(weight)), tb, plain


@register_anchor("conv2d", "torch")
def _conv2d_loader():
    torch, F = _torch(), _torch().nn.functional

    def conv2d(x, weight, bias=None, stride=1, padding=0, *, activation=None):
        _, tx, tw, tb, plain = _lift(x, weight, bias)
        with torch.no_grad():
            y = F.conv2d(tx, tw, tb, stride=stride, padding=padding)
            if activation == "relu":
                y = torch.relu_(y)
        return _to_numpy(y, plain)

    return conv2d


@register_anchor("conv_transpose2d", "torch")
def _conv_transpose2d_loader():
    torch, F = _torch(), _torch().nn.functional

    def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, *,
                         activation=None):
        _, tx, tw, tb, plain = _lift(x, weight, bias)
        with torch.no_grad():
            y = F.conv_transpose2d(tx, tw, tb, stride=stride, padding=padding,
                                   output_padding=output_padding)
            if activation == "relu":
                y = torch.relu_(y)
        return _to_numpy(y, plain)

    return conv_transpose2d
