// The direct convolution kernels at the AVX-512 level (compiled with -mavx512f -mfma):
// 32 vector registers of 16 floats. Forward tile 8 channels x 3 vectors (24 accumulators);
// weight tiles 6, 8, 12, 12 taps x 4, 3, 2, 1 vectors of channels (24 or 12 accumulators).
#define TG_KERNEL_NS avx512
#define TG_KERNEL_ARCH xsimd::avx512f
#define TG_KERNEL_ISA kernels::Isa::Avx512
#define TG_KERNEL_TABLE kAvx512Kernels
#define TG_KERNEL_ROWS 8
#define TG_KERNEL_VECS 3
#define TG_KERNEL_TILE4 6
#define TG_KERNEL_TILE3 8
#define TG_KERNEL_TILE2 12
#define TG_KERNEL_TILE1 12
#define TG_KERNEL_TAP_PAD 24
// GCC 12 warns that _mm512_undefined_ps() (inside xsimd's shuffles) is uninitialised: its bug
// 105593, a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "conv_direct_impl.hpp"
