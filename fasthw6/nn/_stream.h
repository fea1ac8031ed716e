/* fasthw6/nn/_stream.h: the C side of the Cython batch-norm kernels (_cython.pyx), included
   by the module Cython generates.  The numba kernels build the same vectors as LLVM intrinsics
   (_numba/_stream.py); both write the same values. */
#ifndef FASTHW6_NN_STREAM_H
#define FASTHW6_NN_STREAM_H

/* Streaming (non-temporal) stores of large outputs: SSE2 where the target has it (every
   x86-64), else the same lane arithmetic with ordinary stores, so the module builds on any
   target and gives the same values. */
#if defined(__SSE2__) || defined(_M_X64) || defined(_M_AMD64)
#include <emmintrin.h>
typedef __m128 fh6_f4;
typedef __m128d fh6_d2;
#define fh6_loadu_f4 _mm_loadu_ps
#define fh6_set1_f4 _mm_set1_ps
#define fh6_sub_f4 _mm_sub_ps
#define fh6_mul_f4 _mm_mul_ps
#define fh6_add_f4 _mm_add_ps
#define fh6_stream_f4 _mm_stream_ps
#define fh6_loadu_d2 _mm_loadu_pd
#define fh6_set1_d2 _mm_set1_pd
#define fh6_sub_d2 _mm_sub_pd
#define fh6_mul_d2 _mm_mul_pd
#define fh6_add_d2 _mm_add_pd
#define fh6_stream_d2 _mm_stream_pd
#define fh6_fence() _mm_sfence()
#else
typedef struct { float v[4]; } fh6_f4;
typedef struct { double v[2]; } fh6_d2;
#define FH6_LANES(V, N, NAME, EXPR) \
    static inline V NAME(V a, V b) { V r; int i; for (i = 0; i < N; i++) r.v[i] = EXPR; return r; }
FH6_LANES(fh6_f4, 4, fh6_sub_f4, a.v[i] - b.v[i])
FH6_LANES(fh6_f4, 4, fh6_mul_f4, a.v[i] * b.v[i])
FH6_LANES(fh6_f4, 4, fh6_add_f4, a.v[i] + b.v[i])
FH6_LANES(fh6_d2, 2, fh6_sub_d2, a.v[i] - b.v[i])
FH6_LANES(fh6_d2, 2, fh6_mul_d2, a.v[i] * b.v[i])
FH6_LANES(fh6_d2, 2, fh6_add_d2, a.v[i] + b.v[i])
static inline fh6_f4 fh6_loadu_f4(const float *p) { fh6_f4 r; int i; for (i = 0; i < 4; i++) r.v[i] = p[i]; return r; }
static inline fh6_f4 fh6_set1_f4(float a) { fh6_f4 r; int i; for (i = 0; i < 4; i++) r.v[i] = a; return r; }
static inline void fh6_stream_f4(float *p, fh6_f4 a) { int i; for (i = 0; i < 4; i++) p[i] = a.v[i]; }
static inline fh6_d2 fh6_loadu_d2(const double *p) { fh6_d2 r; int i; for (i = 0; i < 2; i++) r.v[i] = p[i]; return r; }
static inline fh6_d2 fh6_set1_d2(double a) { fh6_d2 r; int i; for (i = 0; i < 2; i++) r.v[i] = a; return r; }
static inline void fh6_stream_d2(double *p, fh6_d2 a) { int i; for (i = 0; i < 2; i++) p[i] = a.v[i]; }
#define fh6_fence() ((void)0)
#endif

/* Whole 64-byte lines per streaming store where the CPU has AVX-512 (chosen at run time;
   the module itself is built for the baseline target): on a Sapphire Rapids core 16 MiB of
   64-byte non-temporal stores took 0.64 ms, of 32-byte ones 2.7 ms.  Each function runs the
   vector body from j (64-byte aligned output) while a whole vector fits and returns where it
   stopped.  Lane by lane the same operations as the scalar loops; contraction into FMA is
   off so that stays bitwise true. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#if defined(__clang__)
#define FH6_WIDE __attribute__((target("avx512f")))
#else
#define FH6_WIDE __attribute__((target("avx512f"), optimize("fp-contract=off")))
#endif
#include <stdlib.h>
static int fh6_wide_flag = -1;
static inline int fh6_wide(void) {
    if (fh6_wide_flag < 0) {
        /* FASTHW6_NO_AVX512=1 takes the SSE2 path on any CPU, so that the tests can run
           it on a machine that has AVX-512 */
        const char *off = getenv("FASTHW6_NO_AVX512");
        __builtin_cpu_init();
        fh6_wide_flag = (off && off[0] && off[0] != '0') ? 0
                        : (__builtin_cpu_supports("avx512f") ? 1 : 0);
    }
    return fh6_wide_flag;
}
#define FH6_WIDE_BODIES(T, V, N, LD, ST, SET1, SUB, MUL, ADD)                              \
FH6_WIDE static Py_ssize_t fh6_normalise_wide_##T(const T *xs, T mh, T ml, T k, T b,       \
                                                  T *ys, Py_ssize_t j, Py_ssize_t L) {     \
    V fm = SET1(mh), fl = SET1(ml), fk = SET1(k), fb = SET1(b);                            \
    for (; j + N <= L; j += N)                                                             \
        ST(ys + j, ADD(MUL(SUB(SUB(LD(xs + j), fm), fl), fk), fb));                        \
    return j;                                                                              \
}                                                                                          \
FH6_WIDE static Py_ssize_t fh6_row_normalise_wide_##T(const T *xs, const T *mh,            \
        const T *ml, const T *k, const T *b, T *ys, Py_ssize_t j, Py_ssize_t w) {          \
    for (; j + N <= w; j += N)                                                             \
        ST(ys + j, ADD(MUL(SUB(SUB(LD(xs + j), LD(mh + j)), LD(ml + j)), LD(k + j)),       \
                       LD(b + j)));                                                        \
    return j;                                                                              \
}                                                                                          \
FH6_WIDE static Py_ssize_t fh6_dx_wide_##T(const T *gs, const T *xs, T mh, T ml, T ah,     \
        T al, T k1, T k2, T *ds, Py_ssize_t j, Py_ssize_t L) {                             \
    V f1 = SET1(k1), f2 = SET1(k2), fa = SET1(ah), fb = SET1(al), fm = SET1(mh),           \
      fn = SET1(ml);                                                                       \
    for (; j + N <= L; j += N)                                                             \
        ST(ds + j, SUB(MUL(f1, SUB(SUB(LD(gs + j), fa), fb)),                              \
                       MUL(f2, SUB(SUB(LD(xs + j), fm), fn))));                            \
    return j;                                                                              \
}                                                                                          \
FH6_WIDE static Py_ssize_t fh6_row_dx_wide_##T(const T *gs, const T *xs, const T *co,      \
        Py_ssize_t w, T *ds, Py_ssize_t j) {                                               \
    for (; j + N <= w; j += N)                                                             \
        ST(ds + j, SUB(MUL(LD(co + 4 * w + j),                                             \
                           SUB(SUB(LD(gs + j), LD(co + 2 * w + j)), LD(co + 3 * w + j))),  \
                       MUL(LD(co + 5 * w + j),                                             \
                           SUB(SUB(LD(xs + j), LD(co + j)), LD(co + w + j)))));            \
    return j;                                                                              \
}
FH6_WIDE_BODIES(float, __m512, 16, _mm512_loadu_ps, _mm512_stream_ps, _mm512_set1_ps,
                _mm512_sub_ps, _mm512_mul_ps, _mm512_add_ps)
FH6_WIDE_BODIES(double, __m512d, 8, _mm512_loadu_pd, _mm512_stream_pd, _mm512_set1_pd,
                _mm512_sub_pd, _mm512_mul_pd, _mm512_add_pd)
#else
static inline int fh6_wide(void) { return 0; }
#define FH6_NO_WIDE(T)                                                                     \
static Py_ssize_t fh6_normalise_wide_##T(const T *xs, T mh, T ml, T k, T b, T *ys,         \
                                         Py_ssize_t j, Py_ssize_t L) { return j; }         \
static Py_ssize_t fh6_row_normalise_wide_##T(const T *xs, const T *mh, const T *ml,        \
        const T *k, const T *b, T *ys, Py_ssize_t j, Py_ssize_t w) { return j; }           \
static Py_ssize_t fh6_dx_wide_##T(const T *gs, const T *xs, T mh, T ml, T ah, T al, T k1,  \
        T k2, T *ds, Py_ssize_t j, Py_ssize_t L) { return j; }                             \
static Py_ssize_t fh6_row_dx_wide_##T(const T *gs, const T *xs, const T *co, Py_ssize_t w, \
        T *ds, Py_ssize_t j) { return j; }
FH6_NO_WIDE(float)
FH6_NO_WIDE(double)
#endif

#endif  /* FASTHW6_NN_STREAM_H */
