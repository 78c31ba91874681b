// tilec emulator: nvcuda::wmma (warp matrix multiply-accumulate) on the CPU.
//
// On a GPU a fragment's elements are spread over the 32 lanes of a warp in an unspecified layout, and the
// *_sync functions are warp-collective. Here every lane is a fiber with its own fragment object, so the
// layout is ours to pick, chosen so that no function needs the other lanes (no rendezvous):
//   - matrix_a / matrix_b fragments: every lane holds the whole M×K / K×N tile (num_elements = all of it);
//     loading is a per-lane copy, which is what each lane needs to compute its outputs.
//   - accumulator fragments: lane l owns the row-major elements e = l, l + 32, l + 64, ... of the M×N tile,
//     so mma_sync does each output once, and load/store touch only the owned elements.
// Element-wise code over x[0 .. num_elements) (scaling, fill) behaves as on a GPU under any layout.
// Fragments are loaded from and stored to shared memory by tilec's kernels; a raw pointer into global
// memory would work too but is not counted in the global byte totals (kernels go through TL_LD/TL_ST).
#pragma once
#include <type_traits>

#include "emu_types.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
template <class Use, int M, int N, int K> struct dims;
template <int M, int N, int K> struct dims<matrix_a, M, N, K> { static constexpr int R = M, C = K; };
template <int M, int N, int K> struct dims<matrix_b, M, N, K> { static constexpr int R = K, C = N; };
template <int M, int N, int K> struct dims<accumulator, M, N, K> { static constexpr int R = M, C = N; };
template <class Layout> struct is_col { static constexpr bool value = false; };
template <> struct is_col<col_major> { static constexpr bool value = true; };
inline int lane() { return tl_emu::lane_id(); }
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = detail::dims<Use, M, N, K>::R;
  static constexpr int cols = detail::dims<Use, M, N, K>::C;
  static constexpr bool owned = std::is_same<Use, accumulator>::value;   // per-lane share vs whole tile
  static_assert(!owned || (rows * cols) % 32 == 0, "accumulator tile must split evenly over 32 lanes");
  static_assert(sizeof(T) && tl_emu::kWarp == 32, "nvcuda::wmma is NVIDIA's API for 32-lane warps");
  static constexpr int num_elements = owned ? rows * cols / 32 : rows * cols;
  T x[num_elements];
  // The tile element (row-major index) that slot i holds for the calling lane.
  static int element(int i) { return owned ? detail::lane() + 32 * i : i; }
};

template <class Use, int M, int N, int K, class T, class L, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, const V& v) {
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = T(v);
}

// matrix_a / matrix_b: the layout is the fragment's template argument.
template <class Use, int M, int N, int K, class T, class L>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const T* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, T, L>;
  for (int i = 0; i < F::num_elements; ++i) {
    int e = F::element(i), r = e / F::cols, c = e % F::cols;
    f.x[i] = detail::is_col<L>::value ? p[c * ldm + r] : p[r * ldm + c];
  }
}

// accumulator: the layout is a run-time argument.
template <int M, int N, int K, class T>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T, void>& f, const T* p, unsigned ldm, layout_t l) {
  using F = fragment<accumulator, M, N, K, T, void>;
  for (int i = 0; i < F::num_elements; ++i) {
    int e = F::element(i), r = e / F::cols, c = e % F::cols;
    f.x[i] = l == mem_col_major ? p[c * ldm + r] : p[r * ldm + c];
  }
}

template <int M, int N, int K, class T>
inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T, void>& f, unsigned ldm, layout_t l) {
  using F = fragment<accumulator, M, N, K, T, void>;
  for (int i = 0; i < F::num_elements; ++i) {
    int e = F::element(i), r = e / F::cols, c = e % F::cols;
    (l == mem_col_major ? p[c * ldm + r] : p[r * ldm + c]) = f.x[i];
  }
}

// D = A·B + C with fp32 products summed in order k = 0..K-1 (a GPU may order the sum differently).
template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC, class TD>
inline void mma_sync(fragment<accumulator, M, N, K, TD, void>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC, void>& c) {
  using F = fragment<accumulator, M, N, K, TD, void>;
  TD out[F::num_elements];
  for (int i = 0; i < F::num_elements; ++i) {
    int e = F::element(i), r = e / N, col = e % N;
    float s = float(c.x[i]);
    for (int k = 0; k < K; ++k) s += float(a.x[r * K + k]) * float(b.x[k * N + col]);
    out[i] = TD(s);
  }
  for (int i = 0; i < F::num_elements; ++i) d.x[i] = out[i];   // d may alias c
}

}  // namespace wmma
}  // namespace nvcuda
