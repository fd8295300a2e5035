#pragma once
/// TG_ARG: one option of an options class, as libtorch's TORCH_ARG: a fluent setter that returns
/// the options object, a getter, and the member, whose default follows the macro. Every options
/// class of the library (nn, functional, optim, models, gradcheck, data) declares its options
/// with it, and a user's own options classes can too:
///
///   struct BlockOptions {
///     TG_ARG(int64_t, channels) = 64;
///     TG_ARG(double, dropout) = 0.1;
///   };
///   auto o = BlockOptions().channels(32).dropout(0.0);   // o.channels() == 32
///
/// The macro leaves the class in `private:` access, so public members after it say `public:`.
#include <utility>

#define TG_ARG(T, name)                     \
 public:                                    \
  auto& name(T v) {                         \
    name##_ = std::move(v);                 \
    return *this;                           \
  }                                         \
  const T& name() const { return name##_; } \
                                            \
 private:                                   \
  T name##_
