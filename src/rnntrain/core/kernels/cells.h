// The cells' equations, restated for the compiled loop (recurrent.cpp): one step's fused
// elementwise forward and backward of an Elman (tanh, relu), LSTM or GRU row, on torch's
// SIMD vectors (at::vec, Sleef), and the BLAS products the loop calls.
//
// The single definition of each cell is rnntrain/core/cells.py; tests/test_compiled.py
// checks everything here against autograd through it (float64, 1e-10).
#pragma once
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>

#include <cstring>
#include <vector>

extern "C" {
// the Fortran BLAS interface that torch's CPU library carries (MKL, OpenBLAS)
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*, const int*);
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
            const double*, const int*, const double*, const int*, const double*, double*, const int*);
}

namespace rnntrain_kernel {

enum CellKind { TANH = 0, RELU = 1, LSTM = 2, GRU = 3 };

// Column-major BLAS on row-major data: C (m x n, ld ldc) = alpha op(A) op(B) + beta C.
inline void gemm(char ta, char tb, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
inline void gemm(char ta, char tb, int m, int n, int k, double alpha, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc) {
  dgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

// Row-major C (M x N) = op(A) op(B) + beta C, op(A) (M x K), op(B) (K x N); A stored (K x M)
// when ta, B stored (N x K) when tb. Column-major BLAS sees each row-major buffer transposed,
// so it computes C^T = op(B)^T op(A)^T.
template <typename T>
inline void mm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* a, const T* b, T beta, T* c) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum (BLAS would reject the leading dimensions)
    for (int64_t i = 0; i < M * N; ++i) c[i] = beta == T(0) ? T(0) : beta * c[i];
    return;
  }
  gemm(tb ? 'T' : 'N', ta ? 'T' : 'N', N, M, K, T(1), b, tb ? K : N, a, ta ? M : K, beta, c, N);
}

// f(offset, count) over [0, n) in vector-sized chunks (count < size() only at the tail)
template <typename T, typename F>
inline void chunks(int64_t n, const F& f) {
  constexpr int64_t V = at::vec::Vectorized<T>::size();
  int64_t i = 0;
  for (; i + V <= n; i += V) f(i, V);
  if (i < n) f(i, n - i);
}

template <typename T>
inline at::vec::Vectorized<T> sigmoid(const at::vec::Vectorized<T>& x) {
  using Vec = at::vec::Vectorized<T>;
  const Vec one(T(1));
  return one / (one + x.neg().exp());
}

// tanh for the loop. float32: a 13/6-degree odd/even rational minimax fit on [-9, 9] (the
// coefficients of Eigen's fast tanh; beyond 9, tanh is +-1 in float32), no exp: about twice
// as fast here as exp-based forms and four times Sleef's tanhf, within a few ulp (tested
// against float64's tanh over the whole range). float64 is Sleef's own.
template <typename T>
inline at::vec::Vectorized<T> tanh_(const at::vec::Vectorized<T>& x) { return x.tanh(); }
template <>
inline at::vec::Vectorized<float> tanh_(const at::vec::Vectorized<float>& v) {
  using Vec = at::vec::Vectorized<float>;
#if defined(CPU_CAPABILITY_AVX512)
  // the clamp in one instruction: the smaller magnitude of v and 9, with v's sign (vrangeps);
  // bit for bit ATen's clamp for every float but NaN (checked over all 2^32), 3 % of the
  // population loop's time at 16 units
  const Vec x = Vec(_mm512_range_ps(v, _mm512_set1_ps(9.f), 0x02));
#else
  const Vec x = at::vec::clamp(v, Vec(-9.f), Vec(9.f));
#endif
  const Vec x2 = x * x;
  Vec p = at::vec::fmadd(x2, Vec(-2.76076847742355e-16f), Vec(2.00018790482477e-13f));
  p = at::vec::fmadd(p, x2, Vec(-8.60467152213735e-11f));
  p = at::vec::fmadd(p, x2, Vec(5.12229709037114e-08f));
  p = at::vec::fmadd(p, x2, Vec(1.48572235717979e-05f));
  p = at::vec::fmadd(p, x2, Vec(6.37261928875436e-04f));
  p = at::vec::fmadd(p, x2, Vec(4.89352455891786e-03f));
  Vec q = at::vec::fmadd(x2, Vec(1.19825839466702e-06f), Vec(1.18534705686654e-04f));
  q = at::vec::fmadd(q, x2, Vec(2.26843463243900e-03f));
  q = at::vec::fmadd(q, x2, Vec(4.89352518554385e-03f));
#if defined(CPU_CAPABILITY_AVX512)
  // 1/q by the 14-bit estimate and one Newton step (2^-28 relative, under float32's rounding):
  // a division cost half of the whole tanh here (q >= 0.0048, no special values)
  const __m512 r = _mm512_rcp14_ps(q);
  return x * p * Vec(_mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.f))));
#else
  return x * p / q;
#endif
}

// f(n) for every row n of a step, on torch's intra-op threads when the step's elementwise
// work is large enough to pay for them (small layers stay on the calling thread)
template <typename F>
inline void rows(int64_t N, int64_t width, const F& f) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(width, 1));
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) f(n);
  });
}

inline bool valid(const int64_t* len, int64_t t, int64_t n) { return len == nullptr || t < len[n]; }

// One unit's step on a vector of lanes (a row's units, or one unit in a block of windows of
// the population loop), from its gates' pre-activations; s receives what the backward reads
// (LSTM i, f, g, o, c, tanh c; GRU r, z, n, W_hn h + b_hn). step_forward and population.cpp
// both call these, so the SIMD equations are written once.
template <typename T>
inline at::vec::Vectorized<T> elman_unit(int kind, const at::vec::Vectorized<T>& p) {
  return kind == TANH ? tanh_(p) : at::vec::maximum(p, at::vec::Vectorized<T>(T(0)));
}
// gates i, f, g, o; c = f c + i g (c in place); h = o tanh(c)
template <typename T>
inline at::vec::Vectorized<T> lstm_unit(const at::vec::Vectorized<T>* pre, at::vec::Vectorized<T>& c,
                                        at::vec::Vectorized<T>* s) {
  s[0] = sigmoid(pre[0]); s[1] = sigmoid(pre[1]); s[2] = tanh_(pre[2]); s[3] = sigmoid(pre[3]);
  c = s[1] * c + s[0] * s[2];
  s[4] = c; s[5] = tanh_(c);
  return s[3] * s[5];
}
// r, z from their pre-activations; n = tanh(x_n + r (W_hn h + b_hn)) (xn, ahn); h = n + z (h - n)
template <typename T>
inline at::vec::Vectorized<T> gru_unit(const at::vec::Vectorized<T>& pr, const at::vec::Vectorized<T>& pz,
                                       const at::vec::Vectorized<T>& xn, const at::vec::Vectorized<T>& ahn,
                                       const at::vec::Vectorized<T>& hp, at::vec::Vectorized<T>* s) {
  s[0] = sigmoid(pr); s[1] = sigmoid(pz); s[2] = tanh_(xn + s[0] * ahn); s[3] = ahn;
  return s[2] + s[1] * (hp - s[2]);
}

// One step's elementwise forward of row n: pre-activations gx + a (a = W_hh h_{t-1}) and
// h_{t-1} (hin) -> h_t (hout, may be hin), c in place. H values of each gate, gate k's at
// offset k * gs of gx, a, bhh and save (gs = H: a row).
template <typename T>
inline void step_forward(int kind, int64_t H, const T* gx, const T* a, const T* bhh, const T* hin, T* h,
                  T* c, T* save, int64_t gs = -1) {
  using Vec = at::vec::Vectorized<T>;
  if (gs < 0) gs = H;
  auto pre = [&](int g, int64_t j, int64_t k) { return Vec::loadu(gx + g * gs + j, k) + Vec::loadu(a + g * gs + j, k); };
  if (kind == TANH || kind == RELU) {
    chunks<T>(H, [&](int64_t i, int64_t k) { elman_unit<T>(kind, pre(0, i, k)).store(h + i, k); });
  } else if (kind == LSTM) {
    chunks<T>(H, [&](int64_t j, int64_t k) {
      Vec p[4] = {pre(0, j, k), pre(1, j, k), pre(2, j, k), pre(3, j, k)}, s[6];
      Vec cn = Vec::loadu(c + j, k);
      Vec hn = lstm_unit<T>(p, cn, s);
      for (int i = 0; i < 6; ++i) s[i].store(save + i * gs + j, k);
      cn.store(c + j, k);
      hn.store(h + j, k);
    });
  } else {
    chunks<T>(H, [&](int64_t j, int64_t k) {
      Vec s[4];
      Vec hn = gru_unit<T>(pre(0, j, k) + Vec::loadu(bhh + j, k), pre(1, j, k) + Vec::loadu(bhh + gs + j, k),
                           Vec::loadu(gx + 2 * gs + j, k), Vec::loadu(a + 2 * gs + j, k) + Vec::loadu(bhh + 2 * gs + j, k),
                           Vec::loadu(hin + j, k), s);
      for (int i = 0; i < 4; ++i) s[i].store(save + i * gs + j, k);
      hn.store(h + j, k);
    });
  }
}

// One step's elementwise backward of row n. dh: dL/dh_t (in), dL/dh_{t-1} through paths that
// bypass W_hh (out: GRU's z h_{t-1}, else zero); dc likewise for the LSTM's c. dg: dL/d(gates'
// pre-activations) as the input part sees them; da: as the recurrent product sees them.
template <typename T>
inline void step_backward(int kind, int64_t H, const T* h, const T* hprev, const T* cprev, const T* save,
                   T* dh, T* dc, T* dg, T* da) {
  using Vec = at::vec::Vectorized<T>;
  const Vec one(T(1)), zero(T(0));
  if (kind == TANH || kind == RELU) {
    chunks<T>(H, [&](int64_t i, int64_t k) {
      Vec y = Vec::loadu(h + i, k), d = Vec::loadu(dh + i, k);
      (kind == TANH ? d * (one - y * y) : d * y.gt(zero)).store(dg + i, k);
      zero.store(dh + i, k);
    });
  } else if (kind == LSTM) {
    chunks<T>(H, [&](int64_t j, int64_t k) {
      Vec gi = Vec::loadu(save + j, k), gf = Vec::loadu(save + H + j, k);
      Vec gg = Vec::loadu(save + 2 * H + j, k), go = Vec::loadu(save + 3 * H + j, k);
      Vec tc = Vec::loadu(save + 5 * H + j, k);
      Vec d = Vec::loadu(dh + j, k);
      Vec dcn = Vec::loadu(dc + j, k) + d * go * (one - tc * tc);
      (dcn * gg * gi * (one - gi)).store(dg + j, k);
      (dcn * Vec::loadu(cprev + j, k) * gf * (one - gf)).store(dg + H + j, k);
      (dcn * gi * (one - gg * gg)).store(dg + 2 * H + j, k);
      (d * tc * go * (one - go)).store(dg + 3 * H + j, k);
      (dcn * gf).store(dc + j, k);
      zero.store(dh + j, k);
    });
  } else {
    chunks<T>(H, [&](int64_t j, int64_t k) {
      Vec r = Vec::loadu(save + j, k), z = Vec::loadu(save + H + j, k);
      Vec nn = Vec::loadu(save + 2 * H + j, k), ahn = Vec::loadu(save + 3 * H + j, k);
      Vec d = Vec::loadu(dh + j, k), hp = Vec::loadu(hprev + j, k);
      Vec dn = d * (one - z) * (one - nn * nn);  // dL/d(n's pre-activation)
      Vec dr = dn * ahn * r * (one - r);
      Vec dz = d * (hp - nn) * z * (one - z);
      dr.store(dg + j, k); dz.store(dg + H + j, k); dn.store(dg + 2 * H + j, k);
      dr.store(da + j, k); dz.store(da + H + j, k); (dn * r).store(da + 2 * H + j, k);
      (d * z).store(dh + j, k);
    });
  }
}

// One step's elementwise tangent (forward mode) of one row, at the point step_forward saved
// (h: h_t, hprev, cprev, save): the tangents of the pre-activations' input part tg (nullptr:
// zero, the data's first layer) and recurrent part ta (the product's, W_hh dh_{t-1}), of
// h_{t-1} (th) and of the LSTM's c_{t-1} (tc, replaced by c_t's) -> h_t's (dh). The
// transpose of step_backward's local map; tests check both against autograd.
template <typename T>
inline void step_tangent(int kind, int64_t H, const T* h, const T* hprev, const T* cprev, const T* save,
                         const T* tg, const T* ta, const T* th, T* tc, T* dh) {
  using Vec = at::vec::Vectorized<T>;
  const Vec one(T(1)), zero(T(0));
  auto pre = [&](int64_t j, int64_t k) {  // the tangent of a pre-activation: tg + ta
    return tg ? Vec::loadu(tg + j, k) + Vec::loadu(ta + j, k) : Vec::loadu(ta + j, k);
  };
  if (kind == TANH || kind == RELU) {
    chunks<T>(H, [&](int64_t i, int64_t k) {
      Vec y = Vec::loadu(h + i, k);
      (kind == TANH ? pre(i, k) * (one - y * y) : pre(i, k) * y.gt(zero)).store(dh + i, k);
    });
  } else if (kind == LSTM) {  // c = f c + i g; h = o tanh(c)
    chunks<T>(H, [&](int64_t j, int64_t k) {
      Vec gi = Vec::loadu(save + j, k), gf = Vec::loadu(save + H + j, k);
      Vec gg = Vec::loadu(save + 2 * H + j, k), go = Vec::loadu(save + 3 * H + j, k);
      Vec tcn = Vec::loadu(save + 5 * H + j, k);
      Vec di = pre(j, k) * gi * (one - gi), df = pre(H + j, k) * gf * (one - gf);
      Vec dg = pre(2 * H + j, k) * (one - gg * gg), dout = pre(3 * H + j, k) * go * (one - go);
      Vec dc = df * Vec::loadu(cprev + j, k) + gf * Vec::loadu(tc + j, k) + di * gg + gi * dg;
      dc.store(tc + j, k);
      (dout * tcn + go * (one - tcn * tcn) * dc).store(dh + j, k);
    });
  } else {  // GRU: n = tanh(x_n + r (W_hn h + b_hn)); h = n + z (h - n)
    chunks<T>(H, [&](int64_t j, int64_t k) {
      Vec r = Vec::loadu(save + j, k), z = Vec::loadu(save + H + j, k);
      Vec nn = Vec::loadu(save + 2 * H + j, k), ahn = Vec::loadu(save + 3 * H + j, k);
      Vec dr = pre(j, k) * r * (one - r), dz = pre(H + j, k) * z * (one - z);
      Vec dxn = tg ? Vec::loadu(tg + 2 * H + j, k) : zero;
      Vec dn = (dxn + dr * ahn + r * Vec::loadu(ta + 2 * H + j, k)) * (one - nn * nn);
      (dn + dz * (Vec::loadu(hprev + j, k) - nn) + z * (Vec::loadu(th + j, k) - dn)).store(dh + j, k);
    });
  }
}

// Up to this many inputs (a univariate or few-variate series) the input part is one SIMD pass
// writing gx; above, a bias copy then one GEMM. The copy plus a rank-1 BLAS update (I = 1) were
// two passes over gx and cost as much as the loop's own products in population search.
constexpr int64_t FEW_INPUTS = 4;

// The bias the input part adds: b_ih + b_hh where b_hh only meets gx (Elman, LSTM); the
// GRU's b_hh stays inside its n gate (either may be absent)
template <typename T>
inline void input_bias(int kind, int64_t GH, const T* b_ih, const T* b_hh, T* bias) {
  for (int64_t j = 0; j < GH; ++j)
    bias[j] = (b_ih ? b_ih[j] : T(0)) + (b_hh && kind != GRU ? b_hh[j] : T(0));
}

// gx (R, G*H) = x W_ih^T + b_ih (+ b_hh where it only meets gx: Elman, LSTM), x (R, I); one
// product for every step of every sequence
template <typename T>
inline void input_part(int kind, int64_t R, int64_t GH, int64_t I, const T* x, const T* w_ih,
                const T* b_ih, const T* b_hh, T* gx) {
  std::vector<T> bias(GH);
  input_bias<T>(kind, GH, b_ih, b_hh, bias.data());
  if (I <= FEW_INPUTS) {  // gx = b + sum_i x_i w_i in one SIMD pass over gx
    using Vec = at::vec::Vectorized<T>;
    std::vector<T> wt(I * GH);  // W_ih transposed, (I, G*H)
    for (int64_t j = 0; j < GH; ++j)
      for (int64_t i = 0; i < I; ++i) wt[i * GH + j] = w_ih[j * I + i];
    rows(R, GH, [&](int64_t r) {
      const T* xr = x + r * I;
      chunks<T>(GH, [&](int64_t j, int64_t k) {
        Vec acc = Vec::loadu(bias.data() + j, k);
        for (int64_t i = 0; i < I; ++i) acc = at::vec::fmadd(Vec(xr[i]), Vec::loadu(wt.data() + i * GH + j, k), acc);
        acc.store(gx + r * GH + j, k);
      });
    });
    return;
  }
  for (int64_t r = 0; r < R; ++r) std::memcpy(gx + r * GH, bias.data(), GH * sizeof(T));
  mm<T>(false, true, R, GH, I, x, w_ih, T(1), gx);
}

inline int save_width(int kind) { return kind == LSTM ? 6 : kind == GRU ? 4 : 0; }
inline int gates_of(int kind) { return kind == LSTM ? 4 : kind == GRU ? 3 : 1; }

// population.cpp: P networks forward on shared data, in blocks of one SIMD vector's windows
template <typename T>
void population_blocks(int kind, int64_t P, int64_t Px, int64_t L, int64_t N, int64_t F, int64_t H,
                       const int64_t* len, const T* X, const T* WI, const T* WH, const T* BI, const T* BH,
                       T* O, bool final_only);

// products.cpp: one step of a stack of layers and its Jacobian products (online algorithms)
std::vector<at::Tensor> step_products(int64_t kind, const std::vector<c10::optional<at::Tensor>>& weights,
                                      const std::vector<int64_t>& offsets, int64_t P, at::Tensor s,
                                      at::Tensor x, at::Tensor cot, at::Tensor tan, bool diagonal,
                                      c10::optional<at::Tensor> out);

}  // namespace rnntrain_kernel
