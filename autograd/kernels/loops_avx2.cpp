// The memory-bound loops at the avx2 level (-mavx2 -mfma).
#define TG_LOOPS_NS avx2
#define TG_LOOPS_ISA Isa::Avx2
#define TG_LOOPS_TABLE kAvx2Loops
#include "loops_impl.hpp"
