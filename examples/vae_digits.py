"""Question 2 in practice: a VAE with a 2-D latent space trained on the 8x8 digits.

The document argues that a VAE's latent space is continuous: nearby codes decode to similar
images and every region decodes to something digit-like.  The pictures show it:

- ``vae_reconstructions.png``: test digits (top row of each pair) and their reconstructions
  decoded from the posterior mean;
- ``vae_samples.png``: digits decoded from z ~ N(0, I);
- ``vae_latent_walk.png``: a grid walk across the latent space, at the standard normal's
  quantiles, so each cell covers equal prior mass;
- ``vae_latent_space.png``: the posterior means of the test digits, coloured by class.

Run ``python examples/vae_digits.py OUT_DIR`` (a few hundred epochs take seconds).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from fasthw6 import single_threaded  # every matrix here is small: one thread trains fastest
from fasthw6.vae import VAE


def load_data(seed=0):
    """Digits scaled to [0, 1], split 80/20 stratified: (X_train, X_test, y_train, y_test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.2, random_state=seed, stratify=y)


def _tiles(ax, images, rows, cols, title):
    """Draw (rows * cols, 64) images as one mosaic with 1-pixel gaps."""
    canvas = np.ones((rows * 9 - 1, cols * 9 - 1))
    for k, img in enumerate(images[:rows * cols]):
        r, c = divmod(k, cols)
        canvas[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = img.reshape(8, 8)
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


def main(out_dir, epochs=300, latent_dim=2, hidden=(128,), batch_size=64, lr=1e-3, grid=15,
         seed=0, verbose=True):
    """Train the VAE and write the PNGs into ``out_dir``; return the results.

    Returns
    -------
    dict
        ``"pngs"`` (paths), ``"history"`` (per-epoch losses), ``"test_loss"`` (loss, reconstruction,
        KL on the test digits), ``"seconds"`` (training time).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    if latent_dim != 2:
        raise ValueError("the latent walk and scatter need latent_dim=2")
    os.makedirs(out_dir, exist_ok=True)
    X, X_test, y, y_test = load_data(seed)
    vae = VAE(X.shape[1], latent_dim, hidden, rng=seed)
    with single_threaded():
        t0 = time.perf_counter()
        vae.fit(X, epochs=epochs, batch_size=batch_size, lr=lr, verbose=verbose)
        seconds = time.perf_counter() - t0
        test_loss = vae.forward(X_test, np.random.default_rng(seed + 1).standard_normal((len(X_test), 2)))
    if verbose:
        print(f"{epochs} epochs in {seconds:.1f} s; test loss {test_loss[0]:.2f} (reconstruction "
              f"{test_loss[1]:.2f}, KL {test_loss[2]:.2f}) per digit")
    pngs = {}

    # reconstructions: pairs of rows, originals above their reconstructions
    n = 12
    rec = vae.reconstruct(X_test[:3 * n])
    pairs = np.concatenate([np.concatenate([X_test[i * n:(i + 1) * n], rec[i * n:(i + 1) * n]])
                            for i in range(3)])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _tiles(ax, pairs, 6, n, "test digits (rows 1, 3, 5) and their reconstructions (rows 2, 4, 6)")
    pngs["reconstructions"] = os.path.join(out_dir, "vae_reconstructions.png")
    fig.savefig(pngs["reconstructions"], dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 6))
    _tiles(ax, vae.sample(100, rng=seed + 2), 10, 10, "decoded from z ~ N(0, I)")
    pngs["samples"] = os.path.join(out_dir, "vae_samples.png")
    fig.savefig(pngs["samples"], dpi=100, bbox_inches="tight")
    plt.close(fig)

    q = norm.ppf(np.linspace(0.03, 0.97, grid))
    z = np.array([[a, b] for b in q[::-1] for a in q])  # rows: z2 from top (high) to bottom
    fig, ax = plt.subplots(figsize=(7, 7))
    _tiles(ax, vae.decode(z), grid, grid,
           f"walk across the latent space: z1, z2 at N(0,1) quantiles {q[0]:.2f} .. {q[-1]:.2f}")
    pngs["latent_walk"] = os.path.join(out_dir, "vae_latent_walk.png")
    fig.savefig(pngs["latent_walk"], dpi=100, bbox_inches="tight")
    plt.close(fig)

    mu, _ = vae.encode(X_test)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sc = ax.scatter(mu[:, 0], mu[:, 1], c=y_test, cmap="tab10", s=12, vmin=-0.5, vmax=9.5)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel("z1 (posterior mean)")
    ax.set_ylabel("z2 (posterior mean)")
    ax.set_title("test digits in the latent space")
    pngs["latent_space"] = os.path.join(out_dir, "vae_latent_space.png")
    fig.savefig(pngs["latent_space"], dpi=100, bbox_inches="tight")
    plt.close(fig)
    if verbose:
        for p in pngs.values():
            print(f"wrote {p}")
    return {"pngs": pngs, "history": vae.history_, "test_loss": test_loss, "seconds": seconds}


def _cli(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="folder for the PNGs")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    main(a.out_dir, epochs=a.epochs, seed=a.seed)


if __name__ == "__main__":
    _cli()
