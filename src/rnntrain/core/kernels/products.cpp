// One step of a stack of layers (Elman, LSTM, GRU) and its two Jacobian products, for the
// online algorithms (rnntrain/algorithms/step_function.py, ModelStep.products):
//
//   s' = f(theta, s, x)      cot I = cot (ds'/dtheta)      D tan = (ds'/ds) tan
//
// Why here: through autograd these products are about forty small ops a step (a forward, a
// backward kept differentiable, a double backward), and the per-op cost, not arithmetic, was
// most of UORO's and SnAp's step at the sizes they are run at (docs/benchmarks.md). Here they
// are one call: the forward is step_forward, the cotangent pass step_backward, the tangent
// pass step_tangent (cells.h), with BLAS for the products with the weights. Tests compare
// all three outputs with autograd through the cells' own equations (float64, 1e-10).
//
// Shapes (row-major): N streams, K products of each kind per stream (rows r = n K + k), Lr
// layers of H units, G gates, F inputs:
//   s    (N, S)     S = arity Lr H: [h of every layer, then c of every layer (LSTM)]
//   x    (N, F)     the first layer's input (the data's encoded features)
//   cot, tan (N, K, S)
//   weights  4 per layer: W_ih (G H, F or H), W_hh (G H, H), b_ih, b_hh (G H) or absent
//   offsets  4 per layer: where each weight starts in the flat parameter vector (-1: absent)
//   diagonal W_hh is diagonal and only its diagonal is a parameter (the locally recurrent
//            cell: an Elman step with W_hh = diag(d)); cot I then holds d's gradient on the
//            diagonal of W_hh's block and zeros elsewhere, as autograd gives through diag()
//   -> s' (N, S), cot I (N, K, P) (into out when given), D tan (N, K, S)
#include "cells.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace rnntrain_kernel {
namespace {

using Opt = c10::optional<at::Tensor>;

// out (R, w) = the columns [c0, c0 + w) of a (R, lda)
template <typename T>
void columns(const T* a, int64_t R, int64_t lda, int64_t c0, int64_t w, T* out) {
  for (int64_t r = 0; r < R; ++r) std::memcpy(out + r * w, a + r * lda + c0, w * sizeof(T));
}

// out (R, w) into the columns [c0, c0 + w) of a (R, lda)
template <typename T>
void put_columns(const T* out, int64_t R, int64_t lda, int64_t c0, int64_t w, T* a) {
  for (int64_t r = 0; r < R; ++r) std::memcpy(a + r * lda + c0, out + r * w, w * sizeof(T));
}

// A weight's gradient per row: dst[r, o + i C + j] = u[r, i] v[r / K, j], u (R, A) the
// cotangents of the pre-activations, v (N, C) what the weight multiplied (row-major (A, C)
// blocks, the layout of the weight itself)
template <typename T>
void outer(const T* u, const T* v, int64_t R, int64_t K, int64_t A, int64_t C, T* dst, int64_t ld, int64_t o,
           bool diagonal = false) {
  if (diagonal) {  // (A, A) blocks: only dst[r, o + i A + i] = u[r, i] v[r / K, i]; the rest stays 0
    for (int64_t r = 0; r < R; ++r)
      for (int64_t i = 0; i < A; ++i) dst[r * ld + o + i * C + i] = u[r * A + i] * v[(r / K) * C + i];
    return;
  }
  at::parallel_for(0, R, std::max<int64_t>(1, 32768 / std::max<int64_t>(A * C, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* vr = v + (r / K) * C;
      for (int64_t i = 0; i < A; ++i) {
        const T ui = u[r * A + i];
        T* d = dst + r * ld + o + i * C;
        for (int64_t j = 0; j < C; ++j) d[j] = ui * vr[j];
      }
    }
  });
}

template <typename T>
std::vector<at::Tensor> products_impl(int kind, const std::vector<Opt>& w, const std::vector<int64_t>& off,
                                      int64_t P, const at::Tensor& s_, const at::Tensor& x_,
                                      const at::Tensor& cot_, const at::Tensor& tan_, bool diagonal,
                                      const Opt& out) {
  const int64_t Lr = w.size() / 4, N = s_.size(0), S = s_.size(1), K = cot_.size(1), R = N * K;
  const int64_t H = w[1]->size(1), GH = gates_of(kind) * H, SW = save_width(kind);
  const bool lstm = kind == LSTM;
  const int64_t cbase = Lr * H;  // where the c columns start in s
  auto opts = s_.options();
  // cot I into the caller's buffer when given (RTRL's influence: a fresh N K P tensor a step
  // costs its pages' faults, more than the products at n = 64)
  auto cotI = out.has_value() ? out->zero_() : at::zeros({N, K, P}, opts);
  auto s_next = at::empty({N, S}, opts), Dt = at::empty({N, K, S}, opts);
  const T *s = s_.data_ptr<T>(), *X = x_.data_ptr<T>(), *CT = cot_.data_ptr<T>(), *TN = tan_.data_ptr<T>();
  T *SN = s_next.data_ptr<T>(), *OI = cotI.data_ptr<T>(), *OD = Dt.data_ptr<T>();
  auto W = [&](int64_t l, int j) -> const T* { return w[4 * l + j] ? w[4 * l + j]->data_ptr<T>() : nullptr; };
  auto input = [&](int64_t l) { return l == 0 ? x_.size(1) : H; };  // the layer's input width

  // forward: every layer's state before (hin, cin) and after (hout, cout), what it saved
  std::vector<std::vector<T>> hin(Lr), cin(Lr), hout(Lr), cout(Lr), save(Lr);
  std::vector<T> gx(N * GH), a(N * GH), zeros(GH, T(0));
  for (int64_t l = 0; l < Lr; ++l) {
    hin[l].resize(N * H);
    columns(s, N, S, l * H, H, hin[l].data());
    hout[l] = hin[l];
    if (lstm) {
      cin[l].resize(N * H);
      columns(s, N, S, cbase + l * H, H, cin[l].data());
      cout[l] = cin[l];
    }
    save[l].resize(N * SW * H + 1);
    input_part<T>(kind, N, GH, input(l), l == 0 ? X : hout[l - 1].data(), W(l, 0), W(l, 2), W(l, 3), gx.data());
    mm<T>(false, true, N, GH, H, hin[l].data(), W(l, 1), T(0), a.data());
    const T* B = kind != GRU ? nullptr : W(l, 3) ? W(l, 3) : zeros.data();
    rows(N, GH, [&](int64_t n) {
      step_forward<T>(kind, H, gx.data() + n * GH, a.data() + n * GH, B, hin[l].data() + n * H,
                      hout[l].data() + n * H, lstm ? cout[l].data() + n * H : nullptr, save[l].data() + n * SW * H);
    });
    put_columns(hout[l].data(), N, S, l * H, H, SN);
    if (lstm) put_columns(cout[l].data(), N, S, cbase + l * H, H, SN);
  }

  // D tan, layer by layer upwards: a layer's input tangent is the tangent of the layer below's h_t
  std::vector<T> th(R * H), tc(lstm ? R * H : 0), tg(R * GH), ta(R * GH), tout(R * H), below(R * H);
  for (int64_t l = 0; l < Lr; ++l) {
    columns(TN, R, S, l * H, H, th.data());
    if (lstm) columns(TN, R, S, cbase + l * H, H, tc.data());
    mm<T>(false, true, R, GH, H, th.data(), W(l, 1), T(0), ta.data());
    if (l > 0) mm<T>(false, true, R, GH, H, below.data(), W(l, 0), T(0), tg.data());
    rows(R, GH, [&](int64_t r) {
      const int64_t n = r / K;
      step_tangent<T>(kind, H, hout[l].data() + n * H, hin[l].data() + n * H, lstm ? cin[l].data() + n * H : nullptr,
                      save[l].data() + n * SW * H, l > 0 ? tg.data() + r * GH : nullptr, ta.data() + r * GH,
                      th.data() + r * H, lstm ? tc.data() + r * H : nullptr, tout.data() + r * H);
    });
    put_columns(tout.data(), R, S, l * H, H, OD);
    if (lstm) put_columns(tc.data(), R, S, cbase + l * H, H, OD);
    below.swap(tout);
  }

  // cot I, layer by layer downwards: a layer's h_t also receives the cotangent of the input
  // of the layer above (dg W_ih)
  std::vector<T> dh(R * H), dc(lstm ? R * H : 0), dg(R * GH), da(kind == GRU ? R * GH : 0);
  T* dA = kind == GRU ? da.data() : dg.data();  // the recurrent product's cotangent (GRU: its own)
  for (int64_t l = Lr - 1; l >= 0; --l) {
    columns(CT, R, S, l * H, H, dh.data());
    if (l < Lr - 1)
      for (int64_t i = 0; i < R * H; ++i) dh[i] += below[i];
    if (lstm) columns(CT, R, S, cbase + l * H, H, dc.data());
    rows(R, GH, [&](int64_t r) {
      const int64_t n = r / K;
      step_backward<T>(kind, H, hout[l].data() + n * H, hin[l].data() + n * H, lstm ? cin[l].data() + n * H : nullptr,
                       save[l].data() + n * SW * H, dh.data() + r * H, lstm ? dc.data() + r * H : nullptr,
                       dg.data() + r * GH, dA + r * GH);
    });
    if (l > 0) mm<T>(false, false, R, H, GH, dg.data(), W(l, 0), T(0), below.data());
    const int64_t* o = off.data() + 4 * l;
    if (o[0] >= 0) outer<T>(dg.data(), l == 0 ? X : hout[l - 1].data(), R, K, GH, input(l), OI, P, o[0]);
    if (o[1] >= 0) outer<T>(dA, hin[l].data(), R, K, GH, H, OI, P, o[1], diagonal);
    for (int64_t r = 0; r < R; ++r) {
      if (o[2] >= 0) std::memcpy(OI + r * P + o[2], dg.data() + r * GH, GH * sizeof(T));
      if (o[3] >= 0) std::memcpy(OI + r * P + o[3], dA + r * GH, GH * sizeof(T));
    }
  }
  return {s_next, cotI, Dt};
}

}  // namespace

std::vector<at::Tensor> step_products(int64_t kind, const std::vector<Opt>& weights,
                                      const std::vector<int64_t>& offsets, int64_t P, at::Tensor s,
                                      at::Tensor x, at::Tensor cot, at::Tensor tan, bool diagonal,
                                      c10::optional<at::Tensor> out) {
  TORCH_CHECK(kind >= TANH && kind <= GRU, "unknown cell kind ", kind);
  TORCH_CHECK(!diagonal || kind == TANH || kind == RELU, "a diagonal W_hh is an Elman cell's");
  TORCH_CHECK(!weights.empty() && weights.size() % 4 == 0 && offsets.size() == weights.size(),
              "four weights and offsets per layer");
  s = s.contiguous(); x = x.contiguous(); cot = cot.contiguous(); tan = tan.contiguous();
  std::vector<Opt> w;
  for (size_t i = 0; i < weights.size(); ++i) {
    TORCH_CHECK(weights[i] || i % 4 >= 2, "W_ih and W_hh are required");
    w.push_back(weights[i] ? Opt(weights[i]->contiguous()) : Opt());
  }
  const int64_t H = w[1]->size(1), Lr = w.size() / 4, arity = kind == LSTM ? 2 : 1;
  TORCH_CHECK(s.dim() == 2 && s.size(1) == arity * Lr * H && x.dim() == 2 && x.size(0) == s.size(0) &&
              cot.dim() == 3 && cot.size(0) == s.size(0) && cot.size(2) == s.size(1) &&
              tan.sizes() == cot.sizes() && w[0]->size(1) == x.size(1), "shapes disagree");
  for (const auto& t : w)
    TORCH_CHECK(!t || (t->device().is_cpu() && t->scalar_type() == s.scalar_type()),
                "the weights must be CPU tensors of the state's dtype");
  for (const auto* t : {&x, &cot, &tan})
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == s.scalar_type(), "one dtype, on the CPU");
  TORCH_CHECK(!out || (out->is_contiguous() && out->scalar_type() == s.scalar_type() &&
                       out->sizes() == at::IntArrayRef({s.size(0), cot.size(1), P})),
              "out must be a contiguous (N, K, P) tensor of the state's dtype");
  if (s.scalar_type() == at::kDouble) return products_impl<double>(kind, w, offsets, P, s, x, cot, tan, diagonal, out);
  TORCH_CHECK(s.scalar_type() == at::kFloat, "float32 or float64 only");
  return products_impl<float>(kind, w, offsets, P, s, x, cot, tan, diagonal, out);
}

}  // namespace rnntrain_kernel
