// The memory-bound loops at the avx512 level (-mavx512f -mfma).
#define TG_LOOPS_NS avx512
#define TG_LOOPS_ISA Isa::Avx512
#define TG_LOOPS_TABLE kAvx512Loops
#include "loops_impl.hpp"
