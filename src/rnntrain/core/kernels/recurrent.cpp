// rnntrain's compiled time loop: one layer, one direction, forward and backward of the
// recurrence of an Elman (tanh, relu), LSTM or GRU cell over a whole padded batch.
//
// Why written here rather than taken from torch: torch's CPU kernels dispatch every step's
// matrix product and every elementwise op through ATen (microseconds each), which is most of
// the time for the small networks people train on CPUs (docs/benchmarks.md). This loop calls
// BLAS directly on preallocated buffers and fuses each step's elementwise work into one pass
// with torch's own SIMD vectors (at::vec, Sleef). The input projection of every step and the
// weight gradients are each one large matrix product, also here: a layer is one autograd
// node, not five (rnntrain/core/compiled.py).
//
// The equations are those of rnntrain/core/cells.py (the single definition); tests compare
// this kernel with autograd through them (tests/test_compiled.py, float64, 1e-10).
//
// Shapes (row-major, time-major): L steps, N sequences, I inputs, H units, G gates (1, 4, 3):
//   x    (L, N, I)    w_ih (G*H, I)   b_ih, b_hh (G*H,) or absent   w_hh (G*H, H)
//   gx   (L, N, G*H)  x W_ih^T + b_ih (+ b_hh for Elman and LSTM, where it only meets gx;
//                     the GRU's r * (W_hn h + b_hn) needs b_hh inside the loop)
//   out  (L, N, H)    h_t at valid steps, zero after each sequence's length
//   save (L, N, S*H)  what the backward reads: LSTM i, f, g, o, c, tanh c (S = 6); GRU r, z,
//                     n, W_hn h + b_hn (S = 4); Elman nothing (h_t is in out)
// A sequence's state is frozen after its length (lengths (N,) int64, optional).
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

namespace {

enum CellKind { TANH = 0, RELU = 1, LSTM = 2, GRU = 3 };

// Column-major BLAS on row-major data: C (m x n, ld ldc) = alpha op(A) op(B) + beta C.
void gemm(char ta, char tb, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
void gemm(char ta, char tb, int m, int n, int k, double alpha, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc) {
  dgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

// Row-major C (M x N) = op(A) op(B) + beta C, op(A) (M x K), op(B) (K x N); A stored (K x M)
// when ta, B stored (N x K) when tb. Column-major BLAS sees each row-major buffer transposed,
// so it computes C^T = op(B)^T op(A)^T.
template <typename T>
void mm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* a, const T* b, T beta, T* c) {
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
  const Vec x = at::vec::clamp(v, Vec(-9.f), Vec(9.f));
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
  return x * p / q;
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

// One step's elementwise forward of row n: pre-activations gx + a (a = W_hh h_{t-1}) and
// h_{t-1} (hin) -> h_t (hout, may be hin), c in place.
template <typename T>
void step_forward(int kind, int64_t H, const T* gx, const T* a, const T* bhh, const T* hin, T* h,
                  T* c, T* save) {
  using Vec = at::vec::Vectorized<T>;
  if (kind == TANH || kind == RELU) {
    chunks<T>(H, [&](int64_t i, int64_t k) {
      Vec p = Vec::loadu(gx + i, k) + Vec::loadu(a + i, k);
      (kind == TANH ? tanh_(p) : at::vec::maximum(p, Vec(T(0)))).store(h + i, k);
    });
  } else if (kind == LSTM) {  // gates i, f, g, o; c = f c + i g; h = o tanh(c)
    chunks<T>(H, [&](int64_t j, int64_t k) {
      Vec gi = sigmoid(Vec::loadu(gx + j, k) + Vec::loadu(a + j, k));
      Vec gf = sigmoid(Vec::loadu(gx + H + j, k) + Vec::loadu(a + H + j, k));
      Vec gg = tanh_(Vec::loadu(gx + 2 * H + j, k) + Vec::loadu(a + 2 * H + j, k));
      Vec go = sigmoid(Vec::loadu(gx + 3 * H + j, k) + Vec::loadu(a + 3 * H + j, k));
      Vec cn = gf * Vec::loadu(c + j, k) + gi * gg;
      Vec tc = tanh_(cn);
      gi.store(save + j, k); gf.store(save + H + j, k); gg.store(save + 2 * H + j, k);
      go.store(save + 3 * H + j, k); cn.store(save + 4 * H + j, k); tc.store(save + 5 * H + j, k);
      cn.store(c + j, k);
      (go * tc).store(h + j, k);
    });
  } else {  // GRU r, z, n: n = tanh(x_n + r (W_hn h + b_hn)); h = n + z (h - n)
    chunks<T>(H, [&](int64_t j, int64_t k) {
      Vec r = sigmoid(Vec::loadu(gx + j, k) + Vec::loadu(a + j, k) + Vec::loadu(bhh + j, k));
      Vec z = sigmoid(Vec::loadu(gx + H + j, k) + Vec::loadu(a + H + j, k) + Vec::loadu(bhh + H + j, k));
      Vec ahn = Vec::loadu(a + 2 * H + j, k) + Vec::loadu(bhh + 2 * H + j, k);
      Vec nn = tanh_(Vec::loadu(gx + 2 * H + j, k) + r * ahn);
      Vec hp = Vec::loadu(hin + j, k);
      r.store(save + j, k); z.store(save + H + j, k); nn.store(save + 2 * H + j, k);
      ahn.store(save + 3 * H + j, k);
      (nn + z * (hp - nn)).store(h + j, k);
    });
  }
}

// One step's elementwise backward of row n. dh: dL/dh_t (in), dL/dh_{t-1} through paths that
// bypass W_hh (out: GRU's z h_{t-1}, else zero); dc likewise for the LSTM's c. dg: dL/d(gates'
// pre-activations) as the input part sees them; da: as the recurrent product sees them.
template <typename T>
void step_backward(int kind, int64_t H, const T* h, const T* hprev, const T* cprev, const T* save,
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

int save_width(int kind) { return kind == LSTM ? 6 : kind == GRU ? 4 : 0; }
int gates_of(int kind) { return kind == LSTM ? 4 : kind == GRU ? 3 : 1; }

using Opt = c10::optional<at::Tensor>;

template <typename T>
const T* ptr(const Opt& t) { return t.has_value() ? t->data_ptr<T>() : nullptr; }

// sum over rows: out (C,) = 1^T a, a (R, C) (a product, so BLAS's threads share it)
template <typename T>
void column_sums(const T* a, int64_t R, int64_t C, T* out) {
  std::vector<T> ones(R, T(1));
  mm<T>(false, false, 1, C, R, ones.data(), a, T(0), out);
}

template <typename T>
std::vector<at::Tensor> forward_impl(int kind, const at::Tensor& x, const at::Tensor& w_ih,
                                     const Opt& b_ih, const Opt& b_hh, const at::Tensor& w_hh,
                                     const at::Tensor& h0, const Opt& c0, const Opt& lengths) {
  const int64_t L = x.size(0), N = x.size(1), I = x.size(2), H = h0.size(1);
  const int64_t G = gates_of(kind), GH = G * H, S = save_width(kind);
  // gx = x W_ih^T + biases, one product over every step
  auto gx = at::empty({L, N, GH}, x.options());
  T* g = gx.data_ptr<T>();
  std::vector<T> bias(GH, T(0));
  const T *bi = ptr<T>(b_ih), *bh = ptr<T>(b_hh);
  for (int64_t j = 0; j < GH; ++j)
    bias[j] = (bi ? bi[j] : T(0)) + (bh && kind != GRU ? bh[j] : T(0));
  for (int64_t r = 0; r < L * N; ++r) std::memcpy(g + r * GH, bias.data(), GH * sizeof(T));
  mm<T>(false, true, L * N, GH, I, x.data_ptr<T>(), w_ih.data_ptr<T>(), T(1), g);
  std::vector<T> zeros(kind == GRU && !bh ? GH : 0, T(0));
  const T* B = kind != GRU ? nullptr : bh ? bh : zeros.data();

  auto out = at::empty({L, N, H}, x.options());
  auto save = at::empty({L, N, S * H}, x.options());
  auto h = h0.clone();
  auto c = kind == LSTM ? c0->clone() : at::empty({0}, x.options());
  std::vector<T> a(N * GH);
  const int64_t* len = lengths.has_value() ? lengths->data_ptr<int64_t>() : nullptr;
  const T* W = w_hh.data_ptr<T>();
  T *hp = h.data_ptr<T>(), *cp = kind == LSTM ? c.data_ptr<T>() : nullptr, *O = out.data_ptr<T>();
  for (int64_t t = 0; t < L; ++t) {
    T* ot = O + t * N * H;
    // without lengths every row is live: h_t is written straight into out and read from there
    // by the next step; with lengths the state lives in h (a finished row stays frozen)
    const T* prev = len || t == 0 ? hp : ot - N * H;
    mm<T>(false, true, N, GH, H, prev, W, T(0), a.data());  // W_hh h_{t-1}, every row at once
    if (!len && G == 1) {  // Elman, every row live: the step's rows are one contiguous block
      at::parallel_for(0, N * H, 32768, [&](int64_t b, int64_t e) {
        step_forward<T>(kind, e - b, g + t * N * H + b, a.data() + b, B, prev + b, ot + b, nullptr, nullptr);
      });
      continue;
    }
    rows(N, GH, [&](int64_t n) {
      T* o = ot + n * H;
      if (!valid(len, t, n)) { std::memset(o, 0, H * sizeof(T)); return; }
      T* hn = len ? hp + n * H : o;
      step_forward<T>(kind, H, g + (t * N + n) * GH, a.data() + n * GH, B, prev + n * H, hn,
                      cp ? cp + n * H : nullptr, save.data_ptr<T>() + (t * N + n) * S * H);
      if (len) std::memcpy(o, hn, H * sizeof(T));
    });
  }
  if (!len && L > 0) std::memcpy(hp, O + (L - 1) * N * H, N * H * sizeof(T));
  return {out, h, c, save};
}

// -> dx (if needed), dW_ih, db_ih, dW_hh, db_hh, dh0, dc0
template <typename T>
std::vector<at::Tensor> backward_impl(int kind, bool need_dx, const at::Tensor& x, const at::Tensor& w_ih,
                                      const at::Tensor& w_hh, const at::Tensor& save,
                                      const at::Tensor& out, const at::Tensor& h0, const Opt& c0,
                                      const Opt& lengths, const at::Tensor& dout,
                                      const at::Tensor& dhn, const Opt& dcn) {
  const int64_t L = out.size(0), N = out.size(1), H = out.size(2), I = x.size(2);
  const int64_t G = gates_of(kind), GH = G * H, S = save_width(kind);
  auto opts = out.options();
  auto dg = at::empty({L, N, GH}, opts);
  auto da = kind == GRU ? at::empty({L, N, GH}, opts) : dg;
  auto dh = dhn.clone();
  auto dc = kind == LSTM ? dcn->clone() : at::empty({0}, opts);
  std::vector<T> back(N * H);
  const int64_t* len = lengths.has_value() ? lengths->data_ptr<int64_t>() : nullptr;
  const T* W = w_hh.data_ptr<T>();
  T *dhp = dh.data_ptr<T>(), *dcp = kind == LSTM ? dc.data_ptr<T>() : nullptr;
  const T *O = out.data_ptr<T>(), *SV = save.data_ptr<T>(), *DO = dout.data_ptr<T>();
  const T *H0 = h0.data_ptr<T>(), *C0 = ptr<T>(c0);
  for (int64_t t = L - 1; t >= 0; --t) {
    T* dgt = dg.data_ptr<T>() + t * N * GH;
    T* dat = da.data_ptr<T>() + t * N * GH;
    rows(N, GH, [&](int64_t n) {
      if (!valid(len, t, n)) {  // frozen state: the gradient passes through unchanged
        std::memset(dgt + n * GH, 0, GH * sizeof(T));
        if (kind == GRU) std::memset(dat + n * GH, 0, GH * sizeof(T));
        return;
      }
      T* d = dhp + n * H;
      const T* g = DO + (t * N + n) * H;
      for (int64_t j = 0; j < H; ++j) d[j] += g[j];
      const T* hprev = t > 0 ? O + ((t - 1) * N + n) * H : H0 + n * H;
      const T* cprev = kind != LSTM ? nullptr : t > 0 ? SV + ((t - 1) * N + n) * S * H + 4 * H : C0 + n * H;
      step_backward<T>(kind, H, O + (t * N + n) * H, hprev, cprev, SV + (t * N + n) * S * H,
                       d, dcp ? dcp + n * H : nullptr, dgt + n * GH, dat + n * GH);
    });
    mm<T>(false, false, N, H, GH, dat, W, T(0), back.data());  // dL/dh_{t-1} through W_hh
    rows(N, H, [&](int64_t n) {
      if (!valid(len, t, n)) return;
      T* d = dhp + n * H;
      for (int64_t j = 0; j < H; ++j) d[j] += back[n * H + j];
    });
  }
  const T *DG = dg.data_ptr<T>(), *DA = da.data_ptr<T>();
  auto dx = need_dx ? at::empty({L, N, I}, opts) : at::empty({0}, opts);
  if (need_dx) mm<T>(false, false, L * N, I, GH, DG, w_ih.data_ptr<T>(), T(0), dx.data_ptr<T>());
  auto dw_ih = at::empty({GH, I}, opts);
  mm<T>(true, false, GH, I, L * N, DG, x.data_ptr<T>(), T(0), dw_ih.data_ptr<T>());
  // dW_hh = sum_t da_t^T h_{t-1}: h_0 at the first step, the outputs after it (a padding row
  // has da = 0, so the zero written there does not matter)
  auto dw_hh = at::empty({GH, H}, opts);
  mm<T>(true, false, GH, H, N, DA, H0, T(0), dw_hh.data_ptr<T>());
  if (L > 1) mm<T>(true, false, GH, H, (L - 1) * N, DA + N * GH, O, T(1), dw_hh.data_ptr<T>());
  auto db_ih = at::empty({GH}, opts), db_hh = at::empty({GH}, opts);
  column_sums<T>(DG, L * N, GH, db_ih.data_ptr<T>());
  if (kind == GRU) column_sums<T>(DA, L * N, GH, db_hh.data_ptr<T>());
  else db_hh.copy_(db_ih);
  return {dx, dw_ih, db_ih, dw_hh, db_hh, dh, dc};
}

void check(int64_t kind, const at::Tensor& t, const char* what) {
  TORCH_CHECK(kind >= TANH && kind <= GRU, "unknown cell kind ", kind);
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), what, " must be a contiguous CPU tensor");
}

// P networks of one shape, forward only, from the zero state (population search evaluates
// many weight vectors on the same data): x (Px, L, N, F), Px = 1 (shared) or P; w_ih (P, G*H,
// F), b_ih, b_hh (P, G*H) or absent, w_hh (P, G*H, H) -> out (P, L, N, H), zero after each
// sequence's length, or (P, 1, N, H), each sequence's final state (final_only). Networks are
// shared out among torch's threads; each runs its whole time loop in buffers of its own (one
// network's state stays in cache across its steps; its BLAS calls run single-threaded).
template <typename T>
at::Tensor population_impl(int kind, const at::Tensor& x, const at::Tensor& w_ih, const Opt& b_ih,
                           const Opt& b_hh, const at::Tensor& w_hh, const Opt& lengths, bool final_only) {
  const int64_t P = w_hh.size(0), Px = x.size(0), L = x.size(1), N = x.size(2), F = x.size(3);
  const int64_t GH = w_hh.size(1), H = w_hh.size(2), S = save_width(kind), G = gates_of(kind);
  auto out = at::zeros({P, final_only ? 1 : L, N, H}, x.options());
  const int64_t* len = lengths.has_value() ? lengths->data_ptr<int64_t>() : nullptr;
  const T *X = x.data_ptr<T>(), *WI = w_ih.data_ptr<T>(), *WH = w_hh.data_ptr<T>();
  const T *BI = ptr<T>(b_ih), *BH = ptr<T>(b_hh);
  T* O = out.data_ptr<T>();
  at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> gx(L * N * GH), a(N * GH), h(N * H), c(kind == LSTM ? N * H : 0), save(N * S * H + 1);
    std::vector<T> bias(GH), bhh(GH);
    for (int64_t p = begin; p < end; ++p) {
      for (int64_t j = 0; j < GH; ++j) {
        bhh[j] = BH ? BH[p * GH + j] : T(0);
        bias[j] = (BI ? BI[p * GH + j] : T(0)) + (kind != GRU ? bhh[j] : T(0));
      }
      for (int64_t r = 0; r < L * N; ++r) std::memcpy(gx.data() + r * GH, bias.data(), GH * sizeof(T));
      mm<T>(false, true, L * N, GH, F, X + (Px == 1 ? 0 : p) * L * N * F, WI + p * GH * F, T(1), gx.data());
      std::fill(h.begin(), h.end(), T(0));
      std::fill(c.begin(), c.end(), T(0));
      for (int64_t t = 0; t < L; ++t) {
        mm<T>(false, true, N, GH, H, h.data(), WH + p * GH * H, T(0), a.data());
        if (!len && G == 1) {  // Elman, every row live: one elementwise pass over the block
          step_forward<T>(kind, N * H, gx.data() + t * N * H, a.data(), nullptr, h.data(), h.data(),
                          nullptr, nullptr);
          if (!final_only) std::memcpy(O + (p * L + t) * N * H, h.data(), N * H * sizeof(T));
          continue;
        }
        for (int64_t n = 0; n < N; ++n) {
          if (!valid(len, t, n)) continue;  // frozen (and its output stays zero)
          T* hn = h.data() + n * H;
          step_forward<T>(kind, H, gx.data() + (t * N + n) * GH, a.data() + n * GH,
                          kind == GRU ? bhh.data() : nullptr, hn, hn,
                          kind == LSTM ? c.data() + n * H : nullptr, save.data() + n * S * H);
          if (!final_only) std::memcpy(O + ((p * L + t) * N + n) * H, hn, H * sizeof(T));
        }
      }
      if (final_only) std::memcpy(O + p * N * H, h.data(), N * H * sizeof(T));
    }
  });
  return out;
}

at::Tensor population(int64_t kind, at::Tensor x, at::Tensor w_ih, Opt b_ih, Opt b_hh,
                      at::Tensor w_hh, Opt lengths, bool final_only) {
  for (const auto* t : {&x, &w_ih, &w_hh}) check(kind, *t, "every input");
  TORCH_CHECK(w_ih.size(0) == w_hh.size(0) && w_ih.size(1) == w_hh.size(1) &&
              w_hh.size(1) == gates_of(kind) * w_hh.size(2) && w_ih.size(2) == x.size(3) &&
              (x.size(0) == 1 || x.size(0) == w_hh.size(0)), "shapes disagree");
  if (b_ih) b_ih = b_ih->contiguous();
  if (b_hh) b_hh = b_hh->contiguous();
  if (x.scalar_type() == at::kDouble)
    return population_impl<double>(kind, x, w_ih, b_ih, b_hh, w_hh, lengths, final_only);
  TORCH_CHECK(x.scalar_type() == at::kFloat, "float32 or float64 only");
  return population_impl<float>(kind, x, w_ih, b_ih, b_hh, w_hh, lengths, final_only);
}

Opt opt(const at::Tensor& t) { return t.defined() ? Opt(t) : Opt(); }
at::Tensor contiguous(const at::Tensor& t) { return t.defined() ? t.contiguous() : t; }

// One layer and direction as one autograd node (a C++ node: no Python in the backward pass).
// Inputs: x, W_ih, b_ih, b_hh, W_hh, h0, c0 (undefined: absent). Outputs: out, h_n, c_n
// (c_n empty but for an LSTM).
struct Layer : public torch::autograd::Function<Layer> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, int64_t kind,
                                                const Opt& len_, at::Tensor x, at::Tensor w_ih,
                                                const Opt& b_ih_, const Opt& b_hh_, at::Tensor w_hh,
                                                at::Tensor h0, const Opt& c0_) {
    const at::Tensor none;
    at::Tensor lengths = len_.value_or(none), b_ih = b_ih_.value_or(none), b_hh = b_hh_.value_or(none);
    at::Tensor c0 = c0_.value_or(none);
    ctx->saved_data["need_dx"] = x.requires_grad();
    x = x.contiguous(); w_ih = w_ih.contiguous(); w_hh = w_hh.contiguous(); h0 = h0.contiguous();
    c0 = contiguous(c0);
    for (const auto* t : {&x, &w_ih, &w_hh, &h0}) check(kind, *t, "every input");
    const int64_t GH = gates_of(kind) * h0.size(1);
    TORCH_CHECK(w_ih.size(0) == GH && w_ih.size(1) == x.size(2) && w_hh.size(0) == GH &&
                w_hh.size(1) == h0.size(1) && h0.size(0) == x.size(1), "shapes disagree");
    TORCH_CHECK((kind == LSTM) == c0.defined(), "an LSTM, and only an LSTM, takes c0");
    for (const auto* t : {&w_ih, &w_hh, &h0, &b_ih, &b_hh, &c0})
      TORCH_CHECK(!t->defined() || t->scalar_type() == x.scalar_type(),
                  "the input and the weights must have one dtype");
    std::vector<at::Tensor> r;
    Opt bi = opt(contiguous(b_ih)), bh = opt(contiguous(b_hh)), len = opt(lengths);
    if (x.scalar_type() == at::kDouble) {
      r = forward_impl<double>(kind, x, w_ih, bi, bh, w_hh, h0, opt(c0), len);
    } else {
      TORCH_CHECK(x.scalar_type() == at::kFloat, "float32 or float64 only");
      r = forward_impl<float>(kind, x, w_ih, bi, bh, w_hh, h0, opt(c0), len);
    }
    ctx->save_for_backward({x, w_ih, w_hh, r[3], r[0], h0, c0});
    ctx->saved_data["kind"] = kind;
    if (lengths.defined()) ctx->saved_data["lengths"] = lengths;
    ctx->saved_data["biases"] = int64_t(b_ih.defined()) + 2 * int64_t(b_hh.defined());
    return {r[0], r[1], r[2]};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const int64_t kind = ctx->saved_data["kind"].toInt(), biases = ctx->saved_data["biases"].toInt();
    at::Tensor lengths;
    if (ctx->saved_data.count("lengths")) lengths = ctx->saved_data["lengths"].toTensor();
    const bool need_dx = ctx->saved_data["need_dx"].toBool();
    const at::Tensor &x = saved[0], &w_ih = saved[1], &w_hh = saved[2], &save = saved[3],
                     &out = saved[4], &h0 = saved[5], &c0 = saved[6];
    at::Tensor dout = grads[0].contiguous(), dhn = grads[1].contiguous();
    Opt dcn = kind == LSTM ? Opt(grads[2].contiguous()) : Opt();
    std::vector<at::Tensor> r = out.scalar_type() == at::kDouble
        ? backward_impl<double>(kind, need_dx, x, w_ih, w_hh, save, out, h0, opt(c0), opt(lengths), dout, dhn, dcn)
        : backward_impl<float>(kind, need_dx, x, w_ih, w_hh, save, out, h0, opt(c0), opt(lengths), dout, dhn, dcn);
    at::Tensor none;
    return {none, none, need_dx ? r[0] : none, r[1], (biases & 1) ? r[2] : none,
            (biases & 2) ? r[4] : none, r[3], r[5], kind == LSTM ? r[6] : none};
  }
};

std::vector<at::Tensor> layer(int64_t kind, Opt lengths, at::Tensor x, at::Tensor w_ih, Opt b_ih,
                              Opt b_hh, at::Tensor w_hh, at::Tensor h0, Opt c0) {
  auto r = Layer::apply(kind, lengths, x, w_ih, b_ih, b_hh, w_hh, h0, c0);
  return {r[0], r[1], r[2]};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("layer", &layer, "one layer and direction over a padded batch, differentiable: "
        "(kind, lengths, x, W_ih, b_ih, b_hh, W_hh, h_0, c_0) -> (out, h_n, c_n)");
  m.def("population", &population, "P networks forward from the zero state: "
        "(kind, x, W_ih, b_ih, b_hh, W_hh, lengths, final_only) -> (P, L or 1, N, H)");
}
