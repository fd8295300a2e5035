// The direct convolution kernels at the AVX2 level (compiled with -mavx2 -mfma): 16 vector
// registers of 8 floats. Forward tile 4 channels x 3 vectors (12 accumulators, 3 loads and a
// broadcast); weight tiles 3, 4, 6, 12 taps x 4, 3, 2, 1 vectors of channels (12 accumulators).
#define TG_KERNEL_NS avx2
#define TG_KERNEL_ARCH xsimd::fma3<xsimd::avx2>
#define TG_KERNEL_ISA kernels::Isa::Avx2
#define TG_KERNEL_TABLE kAvx2Kernels
#define TG_KERNEL_ROWS 4
#define TG_KERNEL_VECS 3
#define TG_KERNEL_TILE4 3
#define TG_KERNEL_TILE3 4
#define TG_KERNEL_TILE2 6
#define TG_KERNEL_TILE1 12
#define TG_KERNEL_TAP_PAD 12
#include "conv_direct_impl.hpp"
