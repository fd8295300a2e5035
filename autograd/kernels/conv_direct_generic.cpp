// The direct convolution kernels at the generic level: x86-64's baseline SSE2, 16 registers of
// 4 floats, no FMA (xsimd::fma is a multiply and an add). The AVX2 level's tile shapes.
#define TG_KERNEL_NS generic
#define TG_KERNEL_ARCH xsimd::sse2
#define TG_KERNEL_ISA kernels::Isa::Generic
#define TG_KERNEL_TABLE kGenericKernels
#define TG_KERNEL_ROWS 4
#define TG_KERNEL_VECS 3
#define TG_KERNEL_TILE4 3
#define TG_KERNEL_TILE3 4
#define TG_KERNEL_TILE2 6
#define TG_KERNEL_TILE1 12
#define TG_KERNEL_TAP_PAD 12
#include "conv_direct_impl.hpp"
