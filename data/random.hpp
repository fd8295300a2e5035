#pragma once
/// Portable random draws for the data pipeline. std::uniform_int_distribution and friends are
/// implementation-defined (libstdc++ and libc++ give different numbers for the same engine), so
/// shuffling and augmentation use these instead: the same seed gives the same batches with
/// any standard library.
///
///   std::mt19937_64 gen(tg::data::mix_seed(seed, epoch));
///   int64_t k = tg::data::uniform_int(gen, -2, 2);   // in [-2, 2]
#include <cstdint>
#include <random>

namespace tg::data {

/// SplitMix64 finaliser of (a, b): well-spread seeds from small related integers.
inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Uniform double in [0, 1) from 53 random bits.
inline double uniform01(std::mt19937_64& gen) { return double(gen() >> 11) * 0x1.0p-53; }

/// Uniform double in [lo, hi).
inline double uniform_real(std::mt19937_64& gen, double lo, double hi) {
  return lo + (hi - lo) * uniform01(gen);
}

/// Uniform integer in [lo, hi] (inclusive, lo <= hi), without modulo bias.
inline int64_t uniform_int(std::mt19937_64& gen, int64_t lo, int64_t hi) {
  uint64_t range = uint64_t(hi) - uint64_t(lo);  // hi - lo, as unsigned
  if (range == ~uint64_t(0)) return int64_t(gen());
  uint64_t n = range + 1, limit = ~uint64_t(0) - (~uint64_t(0) % n);  // largest multiple of n
  uint64_t r;
  do r = gen();
  while (r >= limit);
  return int64_t(uint64_t(lo) + r % n);
}

}  // namespace tg::data
