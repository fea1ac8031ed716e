"""SEQS reading: the compiled tokeniser against the plain one, chunking, formats and errors."""
from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fasthw6.seqio import SeqsError, format_sequences, iter_chunks, read_sequences
from fasthw6.seqio import _numba, reference
from fasthw6.seqio.api import _name_table, name_word

try:
    from fasthw6.seqio import _cython
except ImportError:  # pragma: no cover - a build without the Cython extensions
    _cython = None


def _run(tok, data: bytes, n_symbols: int):
    buf = np.frombuffer(data, dtype=np.uint8)
    X = np.full(len(data) // 2 + 1, -1, np.int32)
    L = np.full(data.count(b"\n") + 1, -1, np.int64)
    lines = np.full_like(L, -1)
    nt, ns, err, kind = tok(buf, n_symbols, X, L, lines)
    return X[:nt].tolist(), L[:ns].tolist(), lines[:ns].tolist(), (err, kind) if kind else (-1, 0)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from([b"0", b"1", b"7", b"12", b"99", b"123456789012", b" ", b"  ",
                                 b"\t", b"\r", b"\n", b"\n\n", b"x", b"-", b"3a"]), max_size=40),
       st.integers(1, 200))
def test_numba_tokenizer_matches_reference(parts, n_symbols):
    data = b"".join(parts)
    assert _run(_numba.tokenize, data, n_symbols) == _run(reference.tokenize, data, n_symbols)


# names the hash table must tell apart: a shared prefix, multi-byte UTF-8, digits (an integer
# also means a symbol), one byte, many bytes
NAMES = ["a", "ab", "abc", "b", "é", "日本", "x1", "long-name-of-a-symbol", "A",
         "other-name-of-a-symbol", "12345678", "ab12345678"]
_LUT = {n.encode(): i for i, n in enumerate(NAMES)}
_LUT.update({str(i).encode(): i for i in range(len(NAMES))})


def _run_names(tok, data: bytes):
    buf = np.frombuffer(data, dtype=np.uint8)
    X = np.full(len(data) // 2 + 1, -1, np.int32)
    L = np.full(data.count(b"\n") + 1, -1, np.int64)
    lines = np.full_like(L, -1)
    nt, ns, err, kind = tok(buf, *_name_table(_LUT), X, L, lines)
    return X[:nt].tolist(), L[:ns].tolist(), lines[:ns].tolist(), (err, kind) if kind else (-1, 0)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from([n.encode() for n in NAMES] + [
    b"0", b"3", b"8", b"9", b"abcd", b"\xc3", b"B", b"xname-of-a-symbol", b"1", b" ", b"\t",
    b"\r", b"\n", b"\n\n", b"\x0b", b"\x0c", b"\x01", b"\x1f", b"\x08", b"\x0e", b"\xa0",
    b" " * 30]),
    max_size=120))
def test_name_tokenizers_match_reference(parts):
    """Tokens glue together where no space parts them (``a`` + ``b`` is ``ab``, ``abcd`` and
    half a UTF-8 character are unknown; control bytes that are not whitespace belong to a
    token): every backend gives the reference's symbols, lengths, lines and first unknown
    token, on inputs long enough for the compiled kernels' 64-byte blocks and their tails."""
    data = b"".join(parts)
    ref = _run_names(reference.tokenize_names, data)
    assert _run_names(_numba.tokenize_names, data) == ref
    if _cython is not None:
        assert _run_names(_cython.tokenize_names, data) == ref


def test_long_names_with_the_same_word():
    """Past 8 bytes the word (first 8 bytes xor last 8) is shared by names that differ only
    in the middle, or whose halves swap: every byte is compared, in every backend."""
    names = [b"aaaaaaaaXbbbbbbbb", b"aaaaaaaaYbbbbbbbb", b"AAAAAAAABBBBBBBB", b"BBBBBBBBAAAAAAAA",
             b"ab", b"aaaaaaaaaaaaaaaaaaaaaaaaXaaaaaaaaaaaaaaaaaaaaaaaaaa"]
    assert len({name_word(n) for n in names[:2]}) == 1 and len({name_word(n) for n in names[2:4]}) == 1
    lut = {n: i for i, n in enumerate(names)}
    order = [3, 1, 0, 2, 5, 4, 1] * 20  # long enough for whole 64-byte blocks
    good = b" ".join(names[i] for i in order) + b"\n"
    bad = good[:-1] + b" aaaaaaaaZbbbbbbbb\n"
    tokenizers = [reference.tokenize_names, _numba.tokenize_names] + (
        [_cython.tokenize_names] if _cython else [])
    for tok in tokenizers:
        for data, want in ((good, (len(order), 1, -1, 0)), (bad, (len(order), 0, len(good), 3))):
            buf = np.frombuffer(data, np.uint8)
            X = np.full(len(data), -1, np.int32)
            L, lines = np.zeros(4, np.int64), np.zeros(4, np.int64)
            got = tok(buf, *_name_table(lut), X, L, lines)
            assert tuple(got) == want, (tok, got)
            assert X[:len(order)].tolist() == order


def test_name_table_with_colliding_slots():
    """Thousands of names in a table at most half full: every one found at its own index
    (linear probing past collisions), and a near miss is not."""
    names = [f"w{i}" for i in range(5000)] + [f"a-name-longer-than-eight-bytes-{i}" for i in
                                              range(50)]
    lut = {n.encode(): i for i, n in enumerate(names)}
    keys, koff, table = _name_table(lut)
    assert (table[:, 3] >= 0).sum() == 5050 and table.shape[0] >= 10100
    data = (" ".join(names[::-1]) + "\nw5000").encode()
    for tok in [_numba.tokenize_names] + ([_cython.tokenize_names] if _cython else []):
        X = np.empty(len(data), np.int32)
        L, lines = np.empty(3, np.int64), np.empty(3, np.int64)
        nt, ns, err, kind = tok(np.frombuffer(data, np.uint8), keys, koff, table, X, L, lines)
        assert X[:nt].tolist() == list(range(5049, -1, -1)) and kind == 3
        assert data[err:] == b"w5000"


def test_name_table_seats_the_model_names_at_home():
    """A small vocabulary whose names collide at the least table size ("in" and "and" share a
    slot of 64) gets a larger table in which each of the model's names sits at its home slot,
    the integers placed after them; a vocabulary too large to seat keeps the least size."""
    from fasthw6.seqio.api import _NAME_TABLE_MAX_BYTES, name_slot
    words = ["the", "and", "of", "to", "a", "in", "is", "it"]
    lut = {w.encode(): i for i, w in enumerate(words)}
    for i in range(8):
        lut.setdefault(str(i).encode(), i)
    assert name_slot(b"in", 6) == name_slot(b"and", 6)  # the collision this test is about
    _, _, table = _name_table(lut, len(words))
    bits = table.shape[0].bit_length() - 1
    assert table.shape[0] > 64 and 32 * table.shape[0] <= _NAME_TABLE_MAX_BYTES
    for i, w in enumerate(words):
        assert table[name_slot(w.encode(), bits), 2] == i, w
    assert (table[:, 3] >= 0).sum() == len(lut)
    big = {f"w{i}".encode(): i for i in range(5000)}
    assert _name_table(big)[2].shape[0] == 1 << (2 * 5000).bit_length()


@pytest.mark.parametrize("backend", ["numba", "cython", "numpy"])
def test_named_symbols_every_backend(backend):
    X, L = read_sequences(io.BytesIO("é 日本 1\r\n\nab a\n".encode()), n_symbols=len(NAMES),
                          symbols=NAMES, backend=backend)
    assert X.tolist() == [4, 5, 1, 1, 0] and L.tolist() == [3, 2]
    with pytest.raises(SeqsError, match=r":2: token 'abd' is not a symbol"):
        read_sequences(io.BytesIO(b"a\nb abd\n"), n_symbols=len(NAMES), symbols=NAMES,
                       backend=backend)


@pytest.mark.parametrize("backend", ["numba", "cython", "numpy"])
def test_blank_lines_crlf_tabs_and_no_final_newline(backend):
    X, L = read_sequences(io.BytesIO(b"\n 0 1\t2 \r\n\n\n3\r\n4 4"), n_symbols=5, backend=backend)
    assert X.tolist() == [0, 1, 2, 3, 4, 4] and L.tolist() == [3, 1, 2]
    assert X.dtype == np.int32 and L.dtype == np.int64


@pytest.mark.parametrize("chunk_bytes", [1, 3, 7, 64, 1 << 20])
def test_chunking_gives_the_same_sequences_and_line_numbers(chunk_bytes):
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 11, rng.integers(1, 30)).tolist() for _ in range(200)]
    text = "\n\n".join(" ".join(map(str, r)) for r in rows).encode()  # a blank line between rows
    chunks = list(iter_chunks(io.BytesIO(text), n_symbols=11, chunk_bytes=chunk_bytes))
    assert sum(len(c) for c in chunks) == 200
    assert [c.start for c in chunks] == list(np.cumsum([0] + [len(c) for c in chunks[:-1]]))
    X = np.concatenate([c.X for c in chunks])
    assert X.tolist() == [v for r in rows for v in r]
    lines = np.concatenate([c.lines for c in chunks])
    assert lines.tolist() == list(range(1, 400, 2))


def test_line_longer_than_a_chunk():
    text = b"1 " * 5000 + b"\n0\n"
    chunks = list(iter_chunks(io.BytesIO(text), n_symbols=2, chunk_bytes=100))
    assert sum((c.lengths.tolist() for c in chunks), []) == [5000, 1]
    assert np.concatenate([c.lines for c in chunks]).tolist() == [1, 2]


def test_symbols_and_integers_mix():
    X, L = read_sequences(io.BytesIO(b"red blue 1\n0 red\n"), n_symbols=2, symbols=["red", "blue"])
    assert X.tolist() == [0, 1, 1, 0, 0] and L.tolist() == [3, 2]


def test_digit_symbols_that_are_not_their_index_go_through_the_table():
    X, _ = read_sequences(io.BytesIO(b"1 0 0\n"), n_symbols=2, symbols=["1", "0"])
    assert X.tolist() == [0, 1, 1]


def test_npz_and_gz(tmp_path):
    np.savez(tmp_path / "s.npz", X=np.array([[0], [1], [1]], np.uint8), lengths=[1, 2])
    X, L = read_sequences(str(tmp_path / "s.npz"), n_symbols=2)
    assert X.tolist() == [0, 1, 1] and L.tolist() == [1, 2]
    with gzip.open(tmp_path / "s.txt.gz", "wb") as f:
        f.write(b"0 1\n1\n")
    X, L = read_sequences(str(tmp_path / "s.txt.gz"), n_symbols=2)
    assert X.tolist() == [0, 1, 1] and L.tolist() == [2, 1]


def test_npz_chunks_are_whole_sequences(tmp_path):
    lengths = np.arange(1, 41)
    X = np.arange(lengths.sum()) % 5
    np.savez(tmp_path / "s.npz", X=X, lengths=lengths)
    chunks = list(iter_chunks(str(tmp_path / "s.npz"), n_symbols=5, chunk_bytes=100))
    assert len(chunks) > 1
    assert np.concatenate([c.lengths for c in chunks]).tolist() == lengths.tolist()
    assert np.concatenate([c.X for c in chunks]).tolist() == X.tolist()


@pytest.mark.parametrize("backend", ["numba", "cython", "numpy"])
@pytest.mark.parametrize("data, line, token", [
    (b"0 1\n1 5\n", 2, "'5'"),
    (b"0 1\n\n\n1 x 0\n", 4, "'x'"),
    (b"0 -1\n", 1, "'-1'"),
    (b"0 1\n2.5\n", 2, "'2.5'"),
    (b"0\n1\n0 99999999999999999999\n", 3, "'99999999999999999999'"),
])
def test_bad_token_names_source_and_line(backend, data, line, token):
    src = io.BytesIO(data)
    src.name = "in.txt"
    with pytest.raises(SeqsError, match=rf"^in.txt:{line}: token {token} is not an integer in \[0, 3\)"):
        read_sequences(src, n_symbols=3, backend=backend)


def test_bad_symbol_names_line():
    src = io.BytesIO(b"red\nblue green\n")
    src.name = "s.txt"
    with pytest.raises(SeqsError, match=r"^s.txt:2: token 'green' is not a symbol of the model \(red, blue\)"):
        read_sequences(src, n_symbols=2, symbols=["red", "blue"])


@pytest.mark.parametrize("make, match", [
    (lambda p: str(p / "missing.txt"), "missing.txt: no such file"),
    (lambda p: str(p), "is a directory"),
    (lambda p: (np.savez(p / "a.npz", X=[0, 1]), str(p / "a.npz"))[1], r"missing array\(s\) lengths"),
    (lambda p: (np.savez(p / "b.npz", X=[0.5], lengths=[1]), str(p / "b.npz"))[1], "integer symbols"),
    (lambda p: (np.savez(p / "c.npz", X=[0, 1], lengths=[3]), str(p / "c.npz"))[1], "sum to 3"),
    (lambda p: (np.savez(p / "d.npz", X=[0, 4], lengths=[2]), str(p / "d.npz"))[1], r"X\[1\] = 4"),
    (lambda p: (np.savez(p / "e.npz", X=[0], lengths=[-1, 2]), str(p / "e.npz"))[1], r"e.npz: lengths must be non-negative, got lengths\[0\] = -1"),
    (lambda p: ((p / "f.npz").write_bytes(b"not a zip"), str(p / "f.npz"))[1], "not a readable .npz"),
])
def test_unreadable_inputs(tmp_path, make, match):
    with pytest.raises(SeqsError, match=match):
        read_sequences(make(tmp_path), n_symbols=3)


def test_chunk_bytes_validated():
    with pytest.raises(ValueError, match="chunk_bytes must be a positive int"):
        iter_chunks(io.BytesIO(b"0\n"), chunk_bytes=0)


def test_format_round_trip():
    X = np.array([2, 0, 1, 1])
    text = format_sequences(X, [1, 3], symbols=["a", "b", "c"])
    assert text == "c\na b b\n"
    X2, L2 = read_sequences(io.BytesIO(text.encode()), n_symbols=3, symbols=["a", "b", "c"])
    assert X2.tolist() == X.tolist() and L2.tolist() == [1, 3]


# --------------------------------------------------------------------------- review 9
@pytest.mark.parametrize("backend", ["numba", "cython", "numpy"])
def test_symbols_beyond_int32_are_refused_not_wrapped(backend, tmp_path):
    # X is int32: 2**33 used to be stored as 0 when the caller's n_symbols allowed it
    with pytest.raises(ValueError, match=r"n_symbols must lie in \[1, 2\*\*31\] .*got 1099511627776"):
        read_sequences(io.BytesIO(b"0 8589934592 1\n"), n_symbols=2**40, backend=backend)
    with pytest.raises(SeqsError, match=r"token '8589934592' is not a non-negative integer below 2\*\*31"):
        read_sequences(io.BytesIO(b"0 8589934592 1\n"), backend=backend)
    with pytest.raises(SeqsError, match=r"token '2147483648' is not a non-negative integer below 2\*\*31"):
        read_sequences(io.BytesIO(b"2147483648\n"), n_symbols=2**31, backend=backend)
    # the largest int32 is a symbol like any other
    X, L = read_sequences(io.BytesIO(b"2147483647 0\n"), backend=backend)
    assert X.tolist() == [2**31 - 1, 0] and X.dtype == np.int32 and L.tolist() == [2]
    p = tmp_path / "big.npz"
    np.savez(p, X=np.array([0, 2**33, 1]), lengths=np.array([3]))
    with pytest.raises(ValueError, match=r"n_symbols must lie in \[1, 2\*\*31\]"):
        read_sequences(str(p), n_symbols=2**40)
    with pytest.raises(SeqsError, match=r"X\[1\] = 8589934592 \(sequence 0\) is not a non-negative integer below"):
        read_sequences(str(p))
    for bad, err in ((0, ValueError), (2.0, TypeError), (True, TypeError)):
        with pytest.raises(err, match="n_symbols must"):
            read_sequences(io.BytesIO(b"0\n"), n_symbols=bad)


@pytest.mark.parametrize("X, lengths, symbols, err, pattern", [
    ([0, -1], [2], ["a", "b"], ValueError, r"X\[1\] = -1 is negative"),
    ([0, -1], [2], None, ValueError, r"X\[1\] = -1 is negative"),
    ([0, 1, 1], [1], ["a", "b"], ValueError, r"lengths sum to 1 but X holds 3 symbols"),
    ([0, 1, 1], [-1, 4], None, ValueError, r"lengths must be non-negative, got lengths\[0\] = -1"),
    ([0, 2], [2], ["a", "b"], ValueError, r"X\[1\] = 2 has no name in symbols \(2 names\)"),
    ([0.5, 1.7], [2], None, TypeError, r"X must hold integer symbols, got float64"),
    ([[0, 1]], [2], None, ValueError, r"X must have shape \(n,\) or \(n, 1\)"),
    ([0, 1], [2], ["a", "a b"], ValueError, r"symbols\[1\] = 'a b' contains whitespace"),
])
def test_format_sequences_validates(X, lengths, symbols, err, pattern):
    with pytest.raises(err, match=pattern):
        format_sequences(np.array(X), lengths, symbols)


def test_format_sequences_round_trips():
    X = np.array([[2], [0], [1], [1]], np.uint8)
    text = format_sequences(X, [1, 0, 3], ["x", "y", "z"])
    assert text == "z\n\nx y y\n"
    Y, L = read_sequences(io.BytesIO(text.encode()), symbols=["x", "y", "z"], n_symbols=3)
    assert Y.tolist() == [2, 0, 1, 1] and L.tolist() == [1, 3]


def test_source_kinds_that_are_not_inputs(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("0 1\n")
    with open(p) as f, pytest.raises(TypeError, match=r"source must be a binary stream, got a text stream"):
        read_sequences(f)
    with pytest.raises(TypeError, match=r"got bytes \(for a path, pass source.decode\(\)"):
        read_sequences(str(p).encode())
    with pytest.raises(TypeError, match=r"source must be a path .* got int"):
        read_sequences(5)
    with open(p, "rb") as f:
        assert read_sequences(f)[0].tolist() == [0, 1]


def test_huge_chunk_bytes_on_a_small_file(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("0 1\n2\n")
    chunks = list(iter_chunks(str(p), chunk_bytes=1 << 40))  # used to pre-allocate 1 TiB
    assert [c.lengths.tolist() for c in chunks] == [[2, 1]]


@pytest.mark.parametrize("seed", range(6))
def test_cython_tokenizer_is_numbas_bit_for_bit(seed):
    """``auto`` runs the Cython tokeniser until numba's is compiled (fasthw6._backend.STANDIN):
    every output, error position and error kind must be the same, on valid and broken input."""
    pytest.importorskip("fasthw6.seqio._cython")
    from fasthw6.seqio import _cython, _numba

    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"0123456789   \t\n\n\r" + (b"x" if seed % 2 else b""), np.uint8)
    buf = rng.choice(alphabet, 4000)
    n_symbols = [1, 10, 1000, 2**31][seed % 4]
    outs = []
    for mod in (_numba, _cython):
        X = np.full(buf.size // 2 + 1, -1, np.int32)
        lengths = np.full(buf.size + 1, -1, np.int64)
        lines = np.full(buf.size + 1, -1, np.int64)
        res = mod.tokenize(buf, n_symbols, X, lengths, lines)
        outs.append((tuple(int(v) for v in res), X, lengths, lines))
    (r1, *a1), (r2, *a2) = outs
    assert r1 == r2
    for u, v in zip(a1, a2):
        assert np.array_equal(u, v)


def test_every_registered_reader_agrees(tmp_path):
    """Every backend of read_sequences and every registered anchor (the benchmark's list) read
    the same file to the same symbols and lengths."""
    from fasthw6._backend import comparisons  # noqa: PLC0415

    rng = np.random.default_rng(3)
    rows = [rng.integers(0, 12, n) for n in (5, 1, 17, 40)]
    path = tmp_path / "seqs.txt"
    path.write_text("".join(" ".join(map(str, r)) + "\n" for r in rows) + "\n")
    impls = comparisons("read_sequences", read_sequences)
    assert {"numba", "cython", "numpy", "python"} <= set(impls)
    for name, fn in impls.items():
        if fn is None:
            continue
        X, lengths = fn(str(path), 12)
        np.testing.assert_array_equal(X, np.concatenate(rows), err_msg=name)
        np.testing.assert_array_equal(lengths, [5, 1, 17, 40], err_msg=name)


_ISA_SCRIPT = r"""
import numpy as np
from fasthw6.seqio import _numba, reference
from fasthw6.seqio.api import _name_table
rng = np.random.default_rng(11)
names = {b"ab": 0, b"a": 1, b"long-name-of-a-symbol": 2, b"a\x01": 0, b"\x1fab": 1}
toks = list(names)
gaps = [b" ", b"  ", b"\t", b"\n", b"\r\n", b"\x0b", b"\x0c", b"\n\n", b" \r "]
data = b"".join(toks[i] + gaps[j] for i, j in zip(rng.integers(0, len(toks), 5000),
                                                   rng.integers(0, len(gaps), 5000)))
for case in (data, data + b" zz " + data):
    out = []
    for tok in (reference.tokenize_names, _numba.tokenize_names):
        buf = np.frombuffer(case, np.uint8)
        X = np.full(len(case), -1, np.int32)
        L, lines = (np.full(case.count(b"\n") + 1, -1, np.int64) for _ in range(2))
        r = tok(buf, *_name_table(names), X, L, lines)
        out.append((tuple(r), X[:r[0]].tolist(), L[:r[1]].tolist(), lines[:r[1]].tolist()))
    assert out[0] == out[1], "differs"
    assert out[0][0][0] > 4000, out[0][0]  # the run went far past the first blocks
print("ok")
"""


@pytest.mark.parametrize("cpu", ["x86-64", "haswell"])
def test_name_masks_on_narrower_isas(cpu, tmp_path):
    """The name tokeniser's 64-byte masks are vector compares that LLVM lowers per target
    (AVX-512 k-masks here maybe, AVX2 or SSE2 movemask elsewhere): compiled for a baseline
    x86-64 and for an AVX2 CPU, in a fresh cache, it gives the reference's results."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES="",
               NUMBA_CACHE_DIR=str(tmp_path), XDG_CACHE_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", _ISA_SCRIPT], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
