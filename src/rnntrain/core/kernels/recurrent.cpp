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
// The equations are those of rnntrain/core/cells.py (the single definition), restated for
// SIMD in cells.h; tests compare this kernel with autograd through them
// (tests/test_compiled.py, float64, 1e-10).
//
// Shapes (row-major, time-major): L steps, N sequences, I inputs, H units, G gates (1, 4, 3):
//   x    (L, N, I)    w_ih (G*H, I)   b_ih, b_hh (G*H,) or absent   w_hh (G*H, H)
//   gx   (L, N, G*H)  x W_ih^T + b_ih (+ b_hh for Elman and LSTM, where it only meets gx;
//                     the GRU's r * (W_hn h + b_hn) needs b_hh inside the loop)
//   out  (L, N, H)    h_t at valid steps, zero after each sequence's length
//   save (L, N, S*H)  what the backward reads: LSTM i, f, g, o, c, tanh c (S = 6); GRU r, z,
//                     n, W_hn h + b_hn (S = 4); Elman nothing (h_t is in out)
// A sequence's state is frozen after its length (lengths (N,) int64, optional).
#include "cells.h"

#include <cstring>
#include <vector>

namespace {

using namespace rnntrain_kernel;

using Opt = c10::optional<at::Tensor>;

template <typename T>
const T* ptr(const Opt& t) { return t.has_value() ? t->data_ptr<T>() : nullptr; }

// sum over rows: out (C,) = 1^T a, a (R, C) (a product, so BLAS's threads share it)
template <typename T>
void column_sums(const T* a, int64_t R, int64_t C, T* out) {
  std::vector<T> ones(R, T(1));
  mm<T>(false, false, 1, C, R, ones.data(), a, T(0), out);
}

// The time loop of one network: gx (L, N, G*H), W_hh (G*H, H), the GRU's b_hh (G*H) -> the state
// h, c (N, H) advanced in place; each step's h into out (L, N, H) when given (zero after a
// sequence's length) and what the backward reads into save + t * save_step (save_step = 0:
// a scratch row reused). a (N, G*H): the recurrent product's buffer. The steps are t0 .. t0 + L
// - 1 of the sequences (what lengths are compared with); g, out and save start at step t0.
template <typename T>
void run_steps(int kind, int64_t L, int64_t N, int64_t H, const T* g, const T* W, const T* B,
               const int64_t* len, T* h, T* c, T* out, T* save, int64_t save_step, T* a, int64_t t0 = 0) {
  const int64_t G = gates_of(kind), GH = G * H, S = save_width(kind);
  for (int64_t t = 0; t < L; ++t) {
    mm<T>(false, true, N, GH, H, h, W, T(0), a);  // W_hh h_{t-1}, every row at once
    T* st = save + t * save_step;
    if (!len && G == 1) {  // Elman, every row live: the step's rows are one contiguous block
      at::parallel_for(0, N * H, 32768, [&](int64_t b, int64_t e) {
        step_forward<T>(kind, e - b, g + t * N * H + b, a + b, nullptr, h + b, h + b, nullptr, nullptr);
      });
    } else {
      rows(N, GH, [&](int64_t n) {
        if (!valid(len, t0 + t, n)) return;  // frozen
        step_forward<T>(kind, H, g + (t * N + n) * GH, a + n * GH, B, h + n * H, h + n * H,
                        c ? c + n * H : nullptr, st + n * S * H);
      });
    }
    if (!out) continue;
    T* ot = out + t * N * H;
    if (!len) {
      std::memcpy(ot, h, N * H * sizeof(T));
      continue;
    }
    for (int64_t n = 0; n < N; ++n) {
      if (valid(len, t0 + t, n)) std::memcpy(ot + n * H, h + n * H, H * sizeof(T));
      else std::memset(ot + n * H, 0, H * sizeof(T));
    }
  }
}

template <typename T>
std::vector<at::Tensor> forward_impl(int kind, const at::Tensor& x, const at::Tensor& w_ih,
                                     const Opt& b_ih, const Opt& b_hh, const at::Tensor& w_hh,
                                     const at::Tensor& h0, const Opt& c0, const Opt& lengths) {
  const int64_t L = x.size(0), N = x.size(1), I = x.size(2), H = h0.size(1);
  const int64_t GH = gates_of(kind) * H, S = save_width(kind);
  auto gx = at::empty({L, N, GH}, x.options());
  input_part<T>(kind, L * N, GH, I, x.data_ptr<T>(), w_ih.data_ptr<T>(), ptr<T>(b_ih), ptr<T>(b_hh),
                gx.data_ptr<T>());
  std::vector<T> zeros(GH, T(0)), a(N * GH);
  const T* B = kind != GRU ? nullptr : b_hh ? ptr<T>(b_hh) : zeros.data();
  auto out = at::empty({L, N, H}, x.options());
  auto save = at::empty({L, N, S * H}, x.options());
  auto h = h0.clone();
  auto c = kind == LSTM ? c0->clone() : at::empty({0}, x.options());
  run_steps<T>(kind, L, N, H, gx.data_ptr<T>(), w_hh.data_ptr<T>(), B,
               lengths.has_value() ? lengths->data_ptr<int64_t>() : nullptr, h.data_ptr<T>(),
               kind == LSTM ? c.data_ptr<T>() : nullptr, out.data_ptr<T>(), save.data_ptr<T>(),
               N * S * H, a.data());
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
    // dL/dh_{t-1} += da_t W_hh, added by the product itself (a frozen row's da_t is zero)
    mm<T>(false, false, N, H, GH, dat, W, T(1), dhp);
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

// A population call's sizes and data (population_impl below): x (Px, L, N, F) as X, or units
// first (Px, L, F, N) for population_units; the weights of network p at WI + p G H F, ...
template <typename T>
struct Population {
  int kind;
  int64_t P, Px, L, N, F, GH, H, S;
  const int64_t* len;
  const T *X, *WI, *WH, *BI, *BH;
  T* O;
  bool final_only;
};

// Ragged batches: the rows-first loop of a layer (run_steps) one step at a time, each step's
// input part just before it (it stays in cache); run_steps skips the steps past a sequence's
// length.
template <typename T>
void population_rows(const Population<T>& q) {
  const auto [kind, P, Px, L, N, F, GH, H, S, len, X, WI, WH, BI, BH, O, final_only] = q;
  at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {  // the loop's own rows() run inline here
    std::vector<T> gx(N * GH), a(N * GH), h(N * H), c(kind == LSTM ? N * H : 0), save(N * S * H + 1);
    std::vector<T> zeros(GH, T(0));
    for (int64_t p = begin; p < end; ++p) {
      std::fill(h.begin(), h.end(), T(0));
      std::fill(c.begin(), c.end(), T(0));
      const T* B = kind != GRU ? nullptr : BH ? BH + p * GH : zeros.data();
      const T* xp = X + (Px == 1 ? 0 : p) * L * N * F;
      for (int64_t t = 0; t < L; ++t) {
        input_part<T>(kind, N, GH, F, xp + t * N * F, WI + p * GH * F, BI ? BI + p * GH : nullptr,
                      BH ? BH + p * GH : nullptr, gx.data());
        run_steps<T>(kind, 1, N, H, gx.data(), WH + p * GH * H, B, len, h.data(),
                     kind == LSTM ? c.data() : nullptr, final_only ? nullptr : O + (p * L + t) * N * H,
                     save.data(), 0, a.data(), t);
      }
      for (int64_t n = 0; final_only && n < N; ++n)  // units first (population_blocks' layout)
        for (int64_t u = 0; u < H; ++u) O[(p * H + u) * N + n] = h[n * H + u];
    }
  });
}

// P networks of one shape, forward only, from the zero state (population search evaluates
// many weight vectors on the same data): x (Px, L, N, F), Px = 1 (shared) or P; w_ih (P, G*H,
// F), b_ih, b_hh (P, G*H) or absent, w_hh (P, G*H, H) -> out (P, L, N, H), zero after each
// sequence's length, or (P, 1, H, N), each sequence's final state units first (final_only).
//
// Networks are shared out among torch's threads; each runs its whole time loop in buffers of
// its own, units first: its state is h^T (H, N) and a step's recurrent product one GEMM
// a^T (G*H, N) = W_hh h^T. Population search evaluates small networks on many windows, and
// there the rows-first product (N x H) (H x G*H) has so few columns that BLAS ran it at a
// third of its rate (H = 16, N = 780); units first it is a short, wide product BLAS runs at
// full rate. The elementwise step is step_forward over each unit's N values (gate stride
// H N); a sequence past its length keeps its state (the frozen columns are put back).
template <typename T>
void population_units(const Population<T>& q, const std::vector<std::vector<int64_t>>& frozen) {
  const auto [kind, P, Px, L, N, F, GH, H, S, len, X, WI, WH, BI, BH, O, final_only] = q;
  at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {  // BLAS calls here run single-threaded
    std::vector<T> gx(GH * N), a(GH * N), h(H * N), c(kind == LSTM ? H * N : 0), save(S * H * N + 1);
    std::vector<T> bias(GH), bh(kind == GRU ? GH * N : 0), old(len ? 2 * H * N : 0);
    for (int64_t p = begin; p < end; ++p) {
      const T *wi = WI + p * GH * F, *wh = WH + p * GH * H, *bi = BI ? BI + p * GH : nullptr;
      const T* bhh = BH ? BH + p * GH : nullptr;
      input_bias<T>(kind, GH, bi, bhh, bias.data());
      for (int64_t j = 0; kind == GRU && j < GH; ++j) std::fill_n(bh.data() + j * N, N, bhh ? bhh[j] : T(0));
      std::fill(h.begin(), h.end(), T(0));
      std::fill(c.begin(), c.end(), T(0));
      const T* xp = X + (Px == 1 ? 0 : p) * L * F * N;
      for (int64_t t = 0; t < L; ++t) {
        const T* xs = xp + t * F * N;  // (F, N)
        if (F <= FEW_INPUTS) {  // gx^T = W_ih x^T + b in one SIMD pass (as input_part)
          using Vec = at::vec::Vectorized<T>;
          for (int64_t j = 0; j < GH; ++j)
            chunks<T>(N, [&](int64_t n, int64_t k) {
              Vec acc(bias[j]);
              for (int64_t i = 0; i < F; ++i) acc = at::vec::fmadd(Vec(wi[j * F + i]), Vec::loadu(xs + i * N + n, k), acc);
              acc.store(gx.data() + j * N + n, k);
            });
        } else {
          for (int64_t j = 0; j < GH; ++j) std::fill_n(gx.data() + j * N, N, bias[j]);
          mm<T>(false, false, GH, N, F, wi, xs, T(1), gx.data());
        }
        mm<T>(false, false, GH, N, H, wh, h.data(), T(0), a.data());  // a^T = W_hh h^T
        T* kept = old.data();  // the frozen sequences' state, put back after the step
        for (int64_t n : frozen[t])
          for (int64_t u = 0; u < H; ++u) {
            *kept++ = h[u * N + n];
            if (!c.empty()) *kept++ = c[u * N + n];
          }
        if (kind == TANH || kind == RELU) {
          step_forward<T>(kind, H * N, gx.data(), a.data(), nullptr, h.data(), h.data(), nullptr, nullptr);
        } else {
          for (int64_t u = 0; u < H; ++u)
            step_forward<T>(kind, N, gx.data() + u * N, a.data() + u * N, kind == GRU ? bh.data() + u * N : nullptr,
                            h.data() + u * N, h.data() + u * N, c.empty() ? nullptr : c.data() + u * N,
                            save.data() + u * N, H * N);
        }
        kept = old.data();
        for (int64_t n : frozen[t])
          for (int64_t u = 0; u < H; ++u) {
            h[u * N + n] = *kept++;
            if (!c.empty()) c[u * N + n] = *kept++;
          }
        if (final_only) continue;
        T* ot = O + (p * L + t) * N * H;  // (N, H): h^T transposed, zero past each length
        for (int64_t n = 0; n < N; ++n)
          for (int64_t u = 0; u < H; ++u) ot[n * H + u] = h[u * N + n];
        for (int64_t n : frozen[t]) std::fill_n(ot + n * H, H, T(0));
      }
      if (final_only) std::memcpy(O + p * H * N, h.data(), H * N * sizeof(T));  // units first
    }
  });
}

// Units first where few steps are padding; rows first for ragged batches, whose loop skips a
// finished sequence's steps (units first computes them and puts the state back).
template <typename T>
at::Tensor population_impl(int kind, const at::Tensor& x, const at::Tensor& w_ih, const Opt& b_ih,
                           const Opt& b_hh, const at::Tensor& w_hh, const Opt& lengths, bool final_only) {
  const int64_t P = w_hh.size(0), L = x.size(1), N = x.size(2), H = w_hh.size(2);
  auto out = final_only ? at::empty({P, 1, H, N}, x.options()) : at::empty({P, L, N, H}, x.options());
  const int64_t* len = lengths.has_value() ? lengths->data_ptr<int64_t>() : nullptr;
  std::vector<std::vector<int64_t>> frozen(L);  // the sequences past their length at step t
  int64_t padding = 0;
  for (int64_t t = 0; len && t < L; ++t)
    for (int64_t n = 0; n < N; ++n)
      if (!valid(len, t, n)) frozen[t].push_back(n), ++padding;
  const bool units = padding * 8 <= L * N;
  auto xs = units ? x.transpose(2, 3).contiguous() : x;  // units first: (Px, L, F, N)
  Population<T> q{kind, P, x.size(0), L, N, x.size(3), w_hh.size(1), H, save_width(kind), len,
                  xs.template data_ptr<T>(), w_ih.data_ptr<T>(), w_hh.data_ptr<T>(), ptr<T>(b_ih),
                  ptr<T>(b_hh), out.data_ptr<T>(), final_only};
  // blocks of windows (population.cpp) where measured faster (benchmarks/bench_population.py:
  // 1.0-1.9x at H = 16-128, equal at LSTM 256); a GRU above 64 units ran 1.4x faster units first
  if (units && (kind != GRU || H <= 64))
    population_blocks<T>(kind, P, x.size(0), L, N, x.size(3), H, len, q.X, q.WI, q.WH, q.BI, q.BH, q.O, final_only);
  else if (units) population_units<T>(q, frozen);
  else population_rows<T>(q);
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
        "(kind, x, W_ih, b_ih, b_hh, W_hh, lengths, final_only) -> (P, L, N, H), or (P, 1, H, N) final_only");
  m.def("products", &rnntrain_kernel::step_products, "one step of a stack of layers and its "
        "Jacobian products (products.cpp): (kind, weights, offsets, P, s, x, cot, tan, "
        "diagonal, out) -> (s', cot I (into out if given), D tan)");
}
