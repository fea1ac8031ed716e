"""Explicit-lane float64 reductions and the elementwise formulas of the batch-norm kernels."""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


# ---- reductions (explicit lanes: vectorised, and the same bits as the Cython kernels) -------
# A float64 sum over a plane runs in lanes: lane k adds the values j = k (mod W) in order, the
# values past the last whole group of W are added to lane 0, and the lanes are combined
# pairwise, ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).  The order of every addition is
# written here, not left to the compiler, so the Cython kernels (which do the same) give bit for
# bit the same statistics on any CPU (``fasthw6._backend.STANDIN``).  LLVM does not vectorise
# such lanes written as scalars when x is float32 (it keeps one vcvtss2sd + vaddsd per value,
# 2x slower than a vector sum), so the lanes are one LLVM vector, built below: W = 8 for the
# sums of x and of (x - m)^2, W = 4 for the gradient's two sums.

def _splat(builder, vty, s):
    v = ir.Constant(vty, ir.Undefined)
    for i in range(vty.count):
        v = builder.insert_element(v, s, ir.Constant(ir.IntType(32), i))
    return v


def _lane_loop(kind, width):
    """An intrinsic ``f(xs[, gs], m)`` -> float64 lane sum(s) over contiguous 1-D arrays."""

    def body(builder, vals, m):
        """The per-lane terms of one group (vectors of float64)."""
        if kind == "sum":
            return [vals[0]]
        d = builder.fsub(vals[0], m)
        if kind == "sqdev":
            return [builder.fmul(d, d)]
        return [vals[1], builder.fmul(vals[1], d)]  # grad: (g, g * (x - m))

    def codegen(context, builder, sig, args):
        dbl = ir.DoubleType()
        arrays = [context.make_array(t)(context, builder, v)
                  for t, v in zip(sig.args, args) if isinstance(t, types.Array)]
        m = args[-1] if kind != "sum" else None
        n = builder.extract_value(arrays[0].shape, 0)
        datas = [a.data for a in arrays]
        vty = ir.VectorType(dbl, width)

        def load(i, j, vector):
            elt = datas[i].type.pointee
            ptr = builder.gep(datas[i], [j])
            if vector:
                ptr = builder.bitcast(ptr, ir.VectorType(elt, width).as_pointer())
            v = builder.load(ptr, align=elt.get_abi_size(context.target_data))
            if elt != dbl:
                v = builder.fpext(v, vty if vector else dbl)
            return v

        nterms = 1 if kind != "grad" else 2
        accs = [cgutils.alloca_once_value(builder, ir.Constant(vty, [0.0] * width))
                for _ in range(nterms)]
        mv = _splat(builder, vty, m) if m is not None else None
        groups = builder.udiv(n, ir.Constant(n.type, width))
        with cgutils.for_range(builder, groups) as loop:
            j = builder.mul(loop.index, ir.Constant(n.type, width))
            terms = body(builder, [load(i, j, True) for i in range(len(datas))], mv)
            for acc, t in zip(accs, terms):
                builder.store(builder.fadd(builder.load(acc), t), acc)
        lanes = [[builder.extract_element(builder.load(acc), ir.Constant(ir.IntType(32), k))
                  for k in range(width)] for acc in accs]
        lane0 = [cgutils.alloca_once_value(builder, ls[0]) for ls in lanes]
        start = builder.mul(groups, ir.Constant(n.type, width))
        with cgutils.for_range_slice(builder, start, n, ir.Constant(n.type, 1)) as (j, _):
            terms = body(builder, [load(i, j, False) for i in range(len(datas))], m)
            for acc, t in zip(lane0, terms):
                builder.store(builder.fadd(builder.load(acc), t), acc)
        out = []
        for ls, a0 in zip(lanes, lane0):
            vals = [builder.load(a0)] + ls[1:]
            while len(vals) > 1:  # pairwise: (l0 + l1), (l2 + l3), ... then their pairs
                vals = [builder.fadd(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)]
            out.append(vals[0])
        if len(out) == 1:
            return out[0]
        return context.make_tuple(builder, sig.return_type, out)

    return codegen


def _contiguous(*arrays):
    return all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and
               isinstance(a.dtype, types.Float) for a in arrays)


@intrinsic
def _sum(typingctx, xs):
    """sum(xs) in float64, lanes j mod 8."""
    if _contiguous(xs):
        return types.float64(xs), _lane_loop("sum", 8)


@intrinsic
def _sqdev(typingctx, xs, m):
    """sum((xs - m)^2) in float64, lanes j mod 8."""
    if _contiguous(xs) and isinstance(m, types.Float):
        return types.float64(xs, types.float64), _lane_loop("sqdev", 8)


@intrinsic
def _grad_sums(typingctx, xs, gs, m):
    """(sum(gs), sum(gs * (xs - m))) in float64, lanes j mod 4."""
    if _contiguous(xs, gs) and isinstance(m, types.Float):
        return types.UniTuple(types.float64, 2)(xs, gs, types.float64), _lane_loop("grad", 4)


# ---- elementwise (x's dtype, IEEE order) ---------------------------------------------------
# Outputs are computed in x's dtype: x - mean as (x - m_hi) - m_lo, with m_hi = mean rounded to
# that dtype and m_lo the rest, which is exact for x near the mean (Sterbenz) and so keeps large
# offsets harmless; the float32 <-> float64 conversions of a float64 formulation cost more than
# the memory traffic (1.1 ms of compute per 4M-element pass, measured on L2-resident data).

@njit(nogil=True, cache=True)
def _normalise(xs, mh, ml, k, b, ys):
    for j in range(xs.shape[0]):
        ys[j] = ((xs[j] - mh) - ml) * k + b


@njit(nogil=True, cache=True)
def _dx(gs, xs, mh, ml, ah, al, k1, k2, ds):
    for j in range(xs.shape[0]):
        ds[j] = k1 * ((gs[j] - ah) - al) - k2 * ((xs[j] - mh) - ml)


@njit(nogil=True, cache=True)
def _row_normalise(xs, mh, ml, k, b, ys):
    for j in range(xs.shape[0]):
        ys[j] = ((xs[j] - mh[j]) - ml[j]) * k[j] + b[j]


@njit(nogil=True, cache=True)
def _row_dx(gs, xs, mh, ml, ah, al, k1, k2, ds):
    for j in range(xs.shape[0]):
        ds[j] = k1[j] * ((gs[j] - ah[j]) - al[j]) - k2[j] * ((xs[j] - mh[j]) - ml[j])
