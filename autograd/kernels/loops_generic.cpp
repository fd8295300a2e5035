// The memory-bound loops at the generic level (baseline SSE2).
#define TG_LOOPS_NS generic
#define TG_LOOPS_ISA Isa::Generic
#define TG_LOOPS_TABLE kGenericLoops
#include "loops_impl.hpp"
