"""Numba tokeniser: bytes of a SEQS text block -> concatenated symbols, lengths, line numbers.

One pass over the bytes, no Python object per token.  The caller sizes the outputs from the
block (a block of B bytes holds at most B//2 + 1 tokens and count('\\n') + 1 lines).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from .._jit import install_cache_locator

install_cache_locator()  # before the first @njit: kernels are cached under fasthw6._jit.cache_dir()


@njit(nogil=True, cache=True)
def tokenize(buf, n_symbols, X, lengths, lines):
    """Parse whitespace-separated non-negative integers, one sequence per line.

    Blank lines are skipped.  Returns ``(n_tokens, n_sequences, err_pos, err_kind)``: ``err_kind``
    0 means success, 1 a byte that is neither a digit nor whitespace at ``err_pos``, 2 a token
    starting at ``err_pos`` whose value is ``>= n_symbols``.
    """
    n = buf.shape[0]
    nt = 0
    ns = 0
    line = 0
    seq_start = 0  # nt at the start of the current line
    val = 0
    in_tok = False
    tok_start = 0
    for i in range(n):
        c = buf[i]
        d = c - 48
        if 0 <= d <= 9:
            if not in_tok:
                in_tok = True
                tok_start = i
                val = d
            elif val < n_symbols:  # past n_symbols it is an error anyway: stop growing
                val = val * 10 + d
            continue
        if not (c == 10 or c == 32 or c == 9 or c == 13 or c == 11 or c == 12):
            return nt, ns, i, 1
        if in_tok:
            if val >= n_symbols:
                return nt, ns, tok_start, 2
            X[nt] = val
            nt += 1
            in_tok = False
        if c == 10:  # '\n' ends a sequence; blank lines give none
            if nt > seq_start:
                lengths[ns] = nt - seq_start
                lines[ns] = line
                ns += 1
                seq_start = nt
            line += 1
    if in_tok:
        if val >= n_symbols:
            return nt, ns, tok_start, 2
        X[nt] = val
        nt += 1
    if nt > seq_start:
        lengths[ns] = nt - seq_start
        lines[ns] = line
        ns += 1
    return nt, ns, -1, 0


@njit(nogil=True, cache=True, inline="always")
def _bits(mask):
    """b for a mask 2^b - 1."""
    b = 0
    while mask > 0:
        mask >>= 1
        b += 1
    return b


# the multiplier of the names' hash (2^64 / golden ratio), as a signed 64-bit value
NAME_MUL = 0x9E3779B97F4A7C15 - (1 << 64)


@njit(nogil=True, cache=True, inline="always")
def _is_space(c):
    """Whitespace as ``bytes.split`` has it; one compare for a token byte (> 32)."""
    return c <= 32 and (c == 32 or c == 10 or c == 9 or c == 13 or c == 11 or c == 12)


@intrinsic
def _load8(typingctx, buf, i):
    """The 8 bytes ``buf[i:i+8]`` as one little-endian int64 (an unaligned load; the caller
    keeps ``i + 8 <= len(buf)``)."""
    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(arr.data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(ptr, align=1)

    return types.int64(buf, types.intp), codegen


@intrinsic
def _masks64(typingctx, buf, b):
    """(spaces, newlines) of the 64 bytes ``buf[b:b+64]`` as uint64 masks (bit k: byte b+k
    is whitespace / '\n'): one unaligned 64-byte vector load and byte compares, which LLVM
    lowers to the target's own (k-masks with AVX-512BW, movemask with AVX2 or SSE2)."""
    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        vty = ir.VectorType(ir.IntType(8), 64)
        v = builder.load(builder.bitcast(builder.gep(arr.data, [args[1]]), vty.as_pointer()),
                         align=1)

        def splat(c):
            return ir.Constant(vty, [ir.Constant(ir.IntType(8), c)] * 64)

        ws = builder.or_(builder.icmp_unsigned("==", v, splat(32)),  # ' ', and 9..13
                         builder.icmp_unsigned("<=", builder.sub(v, splat(9)), splat(4)))
        nl = builder.icmp_unsigned("==", v, splat(10))
        i64 = ir.IntType(64)
        return context.make_tuple(builder, sig.return_type,
                                  [builder.bitcast(ws, i64), builder.bitcast(nl, i64)])

    return types.UniTuple(types.uint64, 2)(buf, types.intp), codegen


@njit(nogil=True, cache=True, inline="always")
def _block_masks(buf, b, n):
    """(spaces, newlines): uint64 masks of the bytes ``buf[b:b+64]`` that are whitespace and
    that are '\n' (bit k for byte b+k; bytes past the end count as spaces)."""
    if b + 64 <= n:
        return _masks64(buf, b)
    sp = np.uint64(0)
    nl = np.uint64(0)
    for k in range(64):
        bit = np.uint64(1) << np.uint64(k)
        if b + k < n:
            c = buf[b + k]
            if _is_space(c):
                sp |= bit
            if c == 10:
                nl |= bit
        else:
            sp |= bit
    return sp, nl


@njit(nogil=True, cache=True, inline="always")
def _ctz(x):
    """Trailing zero bits of a non-zero uint64, as an int64."""
    return np.int64(trailing_zeros(x))


@njit(nogil=True, cache=True)
def tokenize_names(buf, keys, koff, table, X, lengths, lines):
    """``tokenize`` for symbol names: each whitespace-separated token is looked up in a hash
    table of the model's names (and of the integers that also mean symbols).

    The bytes go by 64 at a time: two masks per block (whitespace, line ends; one vector load
    and byte compares, ``_masks64``), from which the token starts and line ends are taken
    lowest bit first, so that where a token ends costs no byte loop and no branch on its
    length.  A token's *word* is its first 8 bytes as a little-endian int64
    (fewer bytes: zero-padded), xor its last 8 when it is longer; its slot, the top bits of
    ``(word ^ length) * NAME_MUL``.  ``table`` (int64, (2^b, 4), at most half full) holds per
    slot the word, the length, the symbol and the name's index ``k`` (-1: an empty slot;
    collisions in the next slots); ``keys`` (uint8) holds the names end to end, name ``k`` at
    ``keys[koff[k]:koff[k+1]]``, compared only for names longer than 8 bytes.  Several names
    may mean one symbol (a name and an integer).  Returns ``(n_tokens, n_sequences, err_pos,
    err_kind)``: err_kind 0 success, 3 an unknown token starting at ``err_pos``.  Outputs and
    blank lines as ``tokenize``."""
    n = buf.shape[0]
    mask = table.shape[0] - 1
    shift = 64 - _bits(mask)
    nt = 0
    ns = 0
    line = 0
    seq_start = 0
    one = np.uint64(1)
    carry = one  # the byte before the block was whitespace (or there was none)
    for b in range(0, n, 64):
        sp, nl = _block_masks(buf, b, n)
        ev = (~sp & ((sp << one) | carry)) | nl  # token starts and line ends
        carry = sp >> np.uint64(63)
        while ev != 0:
            k = _ctz(ev)
            ev &= ev - one
            if (nl >> np.uint64(k)) & one:
                if nt > seq_start:
                    lengths[ns] = nt - seq_start
                    lines[ns] = line
                    ns += 1
                    seq_start = nt
                line += 1
                continue
            s = b + k
            rem = sp >> np.uint64(k)
            if rem != 0:
                e = s + _ctz(rem)
            else:  # runs past the block
                e = b + 64
                while e < n and not _is_space(buf[e]):
                    e += 1
            ln = e - s
            # the word, written out here: as an inlined helper it cost 10 ns per token
            if s + 8 <= n:
                w = _load8(buf, s)
                if ln < 8:
                    w &= (1 << (8 * ln)) - 1
            else:
                w = np.int64(0)
                for q in range(min(ln, 8)):
                    w |= np.int64(buf[s + q]) << (8 * q)  # int64 (uint8 << int would widen)
            if ln > 8:
                w ^= _load8(buf, e - 8)
            h = (((w ^ ln) * NAME_MUL) >> shift) & mask
            found = -1
            if ln <= 8 and table[h, 0] == w and table[h, 1] == ln:  # (an empty slot: -1, -1)
                found = table[h, 2]  # at its own slot, as most names are
            while found < 0 and table[h, 3] >= 0:
                if table[h, 0] == w and table[h, 1] == ln:
                    same = True
                    if ln > 8:  # 8 bytes at a time, the last 8 overlapping
                        a = koff[table[h, 3]]
                        q = 0
                        while q < ln:
                            q = min(q, ln - 8)
                            if _load8(keys, a + q) != _load8(buf, s + q):
                                same = False
                                break
                            q += 8
                    if same:
                        found = table[h, 2]
                        break
                h = (h + 1) & mask
            if found < 0:
                return nt, ns, s, 3
            X[nt] = found
            nt += 1
    if nt > seq_start:
        lengths[ns] = nt - seq_start
        lines[ns] = line
        ns += 1
    return nt, ns, -1, 0
