"""Question 1 in practice: the same MLP trained with and without batch normalisation.

Both networks start from the same linear maps (same seed), see the same mini-batches in the
same order and use the same optimizer; the only difference is a BatchNorm layer between each
linear map and its activation.  The data is scikit-learn's bundled 8x8 digits (no download).
Sigmoid activations are the default because that is where the document says batch norm helps:
without it the gradients reaching the first layers of a deep sigmoid network are small.

Run ``python examples/bn_digits.py OUT_DIR`` to write OUT_DIR/bn_digits_loss.png.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from fasthw6 import single_threaded  # every matrix here is small: one thread trains fastest
from fasthw6.nn import MLP, SGD, softmax_cross_entropy


def load_data(seed=0):
    """Digits scaled to [0, 1], split 75/25 stratified: (X_train, X_test, y_train, y_test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=seed, stratify=y)


def accuracy(net, X, y):
    net.eval()
    acc = float(np.mean(np.argmax(net.forward(X), axis=1) == y))
    net.train()
    return acc


def train(net, X, y, X_test, y_test, *, epochs, batch_size, lr, momentum, seed):
    """Mini-batch SGD with momentum; per-epoch mean training loss and test accuracy."""
    opt = SGD(net, lr=lr, momentum=momentum)
    order = np.random.default_rng(seed)
    losses, accs = [], []
    for _ in range(epochs):
        perm = order.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = perm[start:start + batch_size]
            if len(idx) < 2:  # batch norm needs two samples per batch
                continue
            loss, dlogits = softmax_cross_entropy(net.forward(X[idx]), y[idx])
            net.backward(dlogits)
            opt.step()
            total += loss * len(idx)
        losses.append(total / len(X))
        accs.append(accuracy(net, X_test, y_test))
    return losses, accs


def main(out_dir, epochs=30, hidden=(64, 64, 64), activation="sigmoid", lr=0.1,
         momentum=0.9, batch_size=32, seed=0, verbose=True):
    """Train both networks, save ``bn_digits_loss.png`` in ``out_dir``; return the results.

    Returns
    -------
    dict
        ``"png"`` (path), and for ``"plain"`` and ``"batchnorm"``: ``"loss"`` (per epoch),
        ``"test_accuracy"`` (per epoch), ``"seconds"``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    X, X_test, y, y_test = load_data(seed)
    sizes = [X.shape[1], *hidden, 10]
    results = {}
    for name, bn in (("plain", False), ("batchnorm", True)):
        net = MLP(sizes, batchnorm=bn, activation=activation, rng=seed)
        t0 = time.perf_counter()
        with single_threaded():
            loss, acc = train(net, X, y, X_test, y_test, epochs=epochs, batch_size=batch_size,
                              lr=lr, momentum=momentum, seed=seed)
        results[name] = {"loss": loss, "test_accuracy": acc, "seconds": time.perf_counter() - t0}
        if verbose:
            print(f"{name:>9}: final train loss {loss[-1]:.4f}, test accuracy {acc[-1]:.4f} "
                  f"({results[name]['seconds']:.1f} s)")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ep = np.arange(1, epochs + 1)
    for name, label in (("plain", "without batch norm"), ("batchnorm", "with batch norm")):
        ax1.plot(ep, results[name]["loss"], marker=".", label=label)
        ax2.plot(ep, results[name]["test_accuracy"], marker=".", label=label)
    ax1.set_yscale("log")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training cross-entropy (mean per epoch)")
    ax1.set_title("Training loss")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("test accuracy")
    ax2.set_ylim(0, 1)
    ax2.set_title("Test accuracy")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend()
    arch = " -> ".join(str(s) for s in sizes)
    fig.suptitle(f"MLP {arch} on digits, {activation}, SGD lr={lr} momentum={momentum}, "
                 f"batch {batch_size}, seed {seed}")
    fig.tight_layout()
    png = os.path.join(out_dir, "bn_digits_loss.png")
    fig.savefig(png, dpi=100)
    plt.close(fig)
    results["png"] = png
    if verbose:
        print(f"wrote {png}")
    return results


def _cli(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="folder for the PNG")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--activation", choices=("sigmoid", "relu"), default="sigmoid")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    main(a.out_dir, epochs=a.epochs, activation=a.activation, lr=a.lr, seed=a.seed)


if __name__ == "__main__":
    _cli()
