"""Progress on a terminal: ``fit``, ``score`` and ``decode`` run with stderr on a pseudo-terminal
(100 columns, as a user's shell gives them) draw a bar with a rate and an ETA that ends at
100% and stays as a summary line; on a pipe they draw nothing."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

from fasthw6.hmm import CategoricalHMM

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="pseudo-terminals as on Linux")
EXE = os.path.join(os.path.dirname(sys.executable), "fasthw6")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tty")
    rng = np.random.default_rng(3)
    m = CategoricalHMM(n_components=3, random_state=0)
    m.startprob_ = rng.dirichlet(np.ones(3))
    m.transmat_ = rng.dirichlet(np.ones(3), 3)
    m.emissionprob_ = rng.dirichlet(np.ones(5), 3)
    m.n_features = 5
    m.save(str(d / "m.json"))
    X = rng.integers(0, 5, size=(400, 50))
    (d / "seqs.txt").write_text("\n".join(" ".join(map(str, r)) for r in X) + "\n")
    np.save(d / "frames.npy", rng.normal(size=(2000, 2)))
    np.save(d / "frames.lengths.npy", np.full(40, 50))
    return d


def _on_terminal(args, cwd):
    """Run the command with stderr on a 100-column pseudo-terminal; its exit code and what
    the terminal received, carriage returns as line ends."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    try:
        p = subprocess.Popen([EXE, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=slave, cwd=cwd)
        os.close(slave)
        chunks = []
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not b:
                break
            chunks.append(b)
        code = p.wait(timeout=120)
    finally:
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    return code, [ln for ln in re.split(r"[\r\n]+", text) if ln.strip()]


@pytest.mark.parametrize("command", ["fit", "score", "decode"])
def test_bar_with_eta_on_a_terminal(files, command):
    if command == "fit":
        args = ["fit", "--n-states", "3", "seqs.txt", "-o", "out.json", "--n-iter", "4",
                "--tol", "-1"]
    else:
        args = [command, "-m", "m.json", "seqs.txt", "-o", "out.csv", "--chunk-size", "4K"]
    code, lines = _on_terminal(args, files)
    assert code == 0, lines
    bars = [ln for ln in lines if ln.startswith(f"{command}:") and "|" in ln]
    assert bars, lines
    # tqdm's layout: share done, then [elapsed<ETA, rate]
    assert all(re.search(r"\[\d\d:\d\d<(\d\d:\d\d|\?)", b) for b in bars), bars
    assert re.match(fr"{command}: 100%\|", bars[-1]), bars[-1]
    if command == "fit":
        assert "4/4" in bars[-1]
        assert re.fullmatch(r"fasthw6 fit: 4 iterations, final log-likelihood \S+, not converged",
                            lines[-1].strip()), lines[-1]
    else:  # the whole file, in bytes
        size = os.path.getsize(files / "seqs.txt") / 1024
        assert f"{size:.1f}k/{size:.1f}k" in bars[-1], (size, bars[-1])


def test_nothing_on_a_pipe(files):
    r = subprocess.run([EXE, "score", "-m", "m.json", "seqs.txt", "-o", "out.csv"], cwd=files,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_frames_bar_knows_its_total(files):
    """A FRAMES input is read whole first; then the bar learns its size and shows an ETA."""
    code, lines = _on_terminal(["fit", "--model", "gaussian", "--n-states", "2", "frames.npy",
                                "-o", "g.json", "--n-iter", "2"], files)
    assert code == 0, lines
    code, lines = _on_terminal(["score", "-m", "g.json", "frames.npy", "-o", "g.csv",
                                "--chunk-size", "4K"], files)
    assert code == 0, lines
    bars = [ln for ln in lines if ln.startswith("score:") and "|" in ln]
    assert bars and re.match(r"score: 100%\|", bars[-1]), lines
    assert "31.2k/31.2k" in bars[-1], bars[-1]  # 2000 frames x 2 float64
