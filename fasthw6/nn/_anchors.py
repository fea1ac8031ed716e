"""PyTorch as the anchor for batch normalisation (used by tests and benchmarks)."""
from __future__ import annotations

from .._backend import register_anchor


@register_anchor("batchnorm_forward_backward", "torch")
def _bn_loader():
    import torch  # noqa: PLC0415  (optional dependency, imported only when asked for)

    F = torch.nn.functional

    def batchnorm_forward_backward(x, gamma, beta, dy, eps=1e-5):
        tx = torch.from_numpy(x).requires_grad_(True)
        tg = torch.from_numpy(gamma).requires_grad_(True)
        tb = torch.from_numpy(beta).requires_grad_(True)
        y = F.batch_norm(tx, None, None, tg, tb, training=True, eps=eps)
        y.backward(torch.from_numpy(dy))
        return y.detach().numpy(), tx.grad.numpy(), tg.grad.numpy(), tb.grad.numpy()

    return batchnorm_forward_backward
