// Population evaluation in register-sized blocks of windows: P networks of one shape, forward
// only, from the zero state, on the same data (GA, PSO, annealing, CMA-ES evaluate many
// weight vectors on one training split).
//
// Why blocks: the networks population search evaluates are small (tens of units) and the
// windows many (hundreds). The loop before this one (population_units in recurrent.cpp, still
// used for wide GRUs) runs each network's whole batch units first, one BLAS product a step
// ((G*H x H) (H x N)) and one SIMD pass for the elementwise step: each step writes its G*H x N
// pre-activations to memory and reads them back, and pays the product's call cost. Here a
// block of C x V windows (V = one SIMD vector's lanes, C = 4 with AVX-512: 64 float windows)
// runs the whole time loop with its state (H x C vectors) in L1 cache: each pre-activation
// is a chain of fused multiply-adds over the input and the state vectors, in a register, and
// its nonlinearity is applied there. Only the inputs and the outputs touch memory beyond L1.
// At P = 50, H = 16, N = 780, L = 20 (benchmarks/bench_population.py) a network's evaluation
// took 1.6-1.9x less time than units first; what is left is about half the FMAs' time and
// half the tanh's (docs/benchmarks.md).
//
// Shapes: x units first (Px, L, F, N), Px = 1 (shared) or P; w_ih (P, G*H, F), w_hh (P, G*H, H),
// b_ih, b_hh (P, G*H) or absent; lengths (N,) or absent -> out (P, L, N, H), zero after each
// sequence's length, or (P, 1, H, N), each sequence's final state units first (final_only: the
// layout a linear readout multiplies, W h^T, and a block's lanes store directly). A window
// past its length keeps its state (its lanes are computed and not kept).
#include "cells.h"

#include <algorithm>
#include <vector>

namespace rnntrain_kernel {
namespace {

template <typename T>
using Vec = at::vec::Vectorized<T>;

// Blocks of C vectors of windows: with a group's R pre-activations that is R x C independent
// chains of fused multiply-adds, enough to keep both FMA units busy (AVX-512: 32 registers
// hold 16 accumulators, 4 loaded inputs and a broadcast weight), and each broadcast weight
// serves C products, so loads stay below the FMA rate. AVX2's 16 registers take C = 2.
template <typename T>
constexpr int C_ = Vec<T>::size() * sizeof(T) == 64 ? 4 : 2;

// A group of units computed together: Elman four units (one pre-activation each); an LSTM
// one unit (i, f, g, o); a GRU one unit (r, z, n's input part, n's recurrent part W_hn h + b_hn).
template <int KIND>
struct Group {
  static constexpr int G = KIND == LSTM ? 4 : KIND == GRU ? 3 : 1;
  static constexpr int U = G == 1 ? 4 : 1;  // units
  static constexpr int R = 4;               // pre-activations
  static constexpr bool reads_x(int r) { return !(KIND == GRU && r == 3); }
  static constexpr bool reads_h(int r) { return !(KIND == GRU && r == 2); }
  // weight row of pre-activation r for unit u0 (a row past H repeats the last: computed, not kept)
  static int64_t row(int r, int64_t u0, int64_t H) {
    return G == 1 ? std::min(u0 + r, H - 1) : std::min<int64_t>(r, G - 1) * H + u0;
  }
};

// acc[r][c] = b_r + sum_k W_ih[row r, k] x[k][c] + sum_k W_hh[row r, k] h[k][c] for the group at u0
template <typename T, int KIND, int C>
inline void group(Vec<T> (&out)[4][C], int64_t u0, int64_t F, int64_t H, const T* bias, const T* wi,
                  const T* wh, const Vec<T>* x, const Vec<T>* h) {
  using Gr = Group<KIND>;
  const T *rx[4], *rh[4];
  Vec<T> acc[4][C];  // local: in registers (through the reference, GCC stored all 16 every k)
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    const int64_t j = Gr::row(r, u0, H);
    rx[r] = wi + j * F;
    rh[r] = wh + j * H;
    const Vec<T> b(bias[KIND == GRU && r == 3 ? 3 * H + u0 : j]);  // GRU: b_hn after the G*H biases
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[r][c] = b;
  }
#pragma GCC unroll 2
  for (int part = 0; part < 2; ++part) {  // the input's products, then the state's
    const T* const* w = part == 0 ? rx : rh;
    const Vec<T>* v = part == 0 ? x : h;
    for (int64_t k = 0, K = part == 0 ? F : H; k < K; ++k) {
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
        if (!(part == 0 ? Gr::reads_x(r) : Gr::reads_h(r))) continue;
        const Vec<T> wk(w[r][k]);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) acc[r][c] = at::vec::fmadd(wk, v[k * C + c], acc[r][c]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) out[r][c] = acc[r][c];
}

// The (windows, H) outputs of a block: lanes (H x C vectors) -> out rows n0 .. n0 + count - 1
template <typename T, int C>
inline void put(const std::vector<Vec<T>>& h, const Vec<T>* live, int64_t H, int64_t count, T* lane, T* out) {
  constexpr int64_t V = Vec<T>::size();
  for (int64_t u = 0; u < H; ++u)
    for (int c = 0; c < C; ++c) (live ? h[u * C + c] & live[c] : h[u * C + c]).store(lane + (u * C + c) * V);
  for (int64_t i = 0; i < count; ++i)
    for (int64_t u = 0; u < H; ++u) out[i * H + u] = lane[(u * C + i / V) * V + i % V];
}

// The final states of a block, units first: lanes (H x C vectors) -> out[u][n0 ..], one
// (partial) vector store each
template <typename T, int C>
inline void put_units(const std::vector<Vec<T>>& h, int64_t N, int64_t H, int64_t count, T* out) {
  constexpr int64_t V = Vec<T>::size();
  for (int64_t u = 0; u < H; ++u)
    for (int c = 0; c < C && c * V < count; ++c) h[u * C + c].store(out + u * N + c * V, std::min(V, count - c * V));
}

template <typename T, int KIND>
void blocks(int64_t P, int64_t Px, int64_t L, int64_t N, int64_t F, int64_t H, const int64_t* len,
            const T* X, const T* WI, const T* WH, const T* BI, const T* BH, T* O, bool final_only) {
  constexpr int C = C_<T>;
  constexpr int64_t V = Vec<T>::size(), W = C * V;  // windows a block
  using Gr = Group<KIND>;
  const int64_t GH = Gr::G * H, per = (N + W - 1) / W;
  // r and z's pre-activations hold both biases (and an Elman or LSTM gate's); n's input part
  // b_ih, its recurrent part b_hh (stored after the G*H)
  const int64_t mixed = KIND == GRU ? 2 * H : GH;
  at::parallel_for(0, P * per, 1, [&](int64_t begin, int64_t end) {
    std::vector<Vec<T>> h(H * C), hn(H * C), c(KIND == LSTM ? H * C : 0), x(F * C);
    std::vector<T> bias(GH + H), lane(W * H);
    Vec<T> acc[4][C], live[C], until[C], s[6];
    int64_t p = -1;
    for (int64_t job = begin; job < end; ++job) {
      if (job / per != p) {
        p = job / per;
        for (int64_t j = 0; j < GH; ++j)
          bias[j] = (BI ? BI[p * GH + j] : T(0)) + (BH && j < mixed ? BH[p * GH + j] : T(0));
        for (int64_t j = 0; KIND == GRU && j < H; ++j) bias[GH + j] = BH ? BH[p * GH + 2 * H + j] : T(0);
      }
      const int64_t n0 = (job % per) * W, count = std::min(W, N - n0);
      const T *wi = WI + p * GH * F, *wh = WH + p * GH * H, *xp = X + (Px == 1 ? 0 : p) * L * F * N;
      std::fill(h.begin(), h.end(), Vec<T>(T(0)));
      std::fill(c.begin(), c.end(), Vec<T>(T(0)));
      for (int b = 0; b < C; ++b) {  // each lane's length (a lane past N never matters)
        T ends[V];
        for (int64_t i = 0; i < V; ++i) ends[i] = T(len && b * V + i < count ? len[n0 + b * V + i] : L);
        until[b] = Vec<T>::loadu(ends);
      }
      for (int64_t t = 0; t < L; ++t) {
        for (int64_t i = 0; i < F; ++i)
          for (int b = 0; b < C; ++b) {
            const int64_t k = std::min(V, count - b * V);
            x[i * C + b] = k > 0 ? Vec<T>::loadu(xp + (t * F + i) * N + n0 + b * V, k) : Vec<T>(T(0));
          }
        for (int b = 0; b < C; ++b) live[b] = Vec<T>(T(t)) < until[b];
        for (int64_t u0 = 0; u0 < H; u0 += Gr::U) {
          group<T, KIND, C>(acc, u0, F, H, bias.data(), wi, wh, x.data(), h.data());
#pragma GCC unroll 4
          for (int b = 0; b < C; ++b) {
            if constexpr (KIND == TANH || KIND == RELU) {
#pragma GCC unroll 4
              for (int r = 0; r < 4; ++r) {
                if (u0 + r >= H) break;
                const int64_t i = (u0 + r) * C + b;
                const Vec<T> next = elman_unit<T>(KIND, acc[r][b]);
                hn[i] = len ? Vec<T>::blendv(h[i], next, live[b]) : next;
              }
            } else if constexpr (KIND == LSTM) {
              const int64_t i = u0 * C + b;
              Vec<T> g[4] = {acc[0][b], acc[1][b], acc[2][b], acc[3][b]}, cn = c[i];
              const Vec<T> next = lstm_unit<T>(g, cn, s);
              hn[i] = len ? Vec<T>::blendv(h[i], next, live[b]) : next;
              c[i] = len ? Vec<T>::blendv(c[i], cn, live[b]) : cn;
            } else {
              const int64_t i = u0 * C + b;
              const Vec<T> next = gru_unit<T>(acc[0][b], acc[1][b], acc[2][b], acc[3][b], h[i], s);
              hn[i] = len ? Vec<T>::blendv(h[i], next, live[b]) : next;
            }
          }
        }
        h.swap(hn);
        if (!final_only) put<T, C>(h, len ? live : nullptr, H, count, lane.data(), O + ((p * L + t) * N + n0) * H);
      }
      if (final_only) put_units<T, C>(h, N, H, count, O + p * H * N + n0);
    }
  });
}

}  // namespace

template <typename T>
void population_blocks(int kind, int64_t P, int64_t Px, int64_t L, int64_t N, int64_t F, int64_t H,
                       const int64_t* len, const T* X, const T* WI, const T* WH, const T* BI, const T* BH,
                       T* O, bool final_only) {
  auto run = [&](auto kernel) { kernel(P, Px, L, N, F, H, len, X, WI, WH, BI, BH, O, final_only); };
  if (kind == TANH) run(blocks<T, TANH>);
  else if (kind == RELU) run(blocks<T, RELU>);
  else if (kind == LSTM) run(blocks<T, LSTM>);
  else run(blocks<T, GRU>);
}

template void population_blocks<float>(int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, const int64_t*,
                                       const float*, const float*, const float*, const float*, const float*,
                                       float*, bool);
template void population_blocks<double>(int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                        const int64_t*, const double*, const double*, const double*,
                                        const double*, const double*, double*, bool);

}  // namespace rnntrain_kernel
