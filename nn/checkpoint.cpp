// checkpoint_sequential: the segments of a Sequential, each under tg::checkpoint but the last.
#include "checkpoint.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace tg {

Tensor checkpoint_sequential(nn::Sequential& seq, int64_t segments, const Tensor& x) {
  const int64_t n = int64_t(seq.size());
  if (segments < 1 || (n > 0 && segments > n) || (n == 0 && segments != 1))
    throw Error(fmt::format("checkpoint_sequential: segments must be in [1, {}] for a Sequential of {} modules, got {}",
                            std::max<int64_t>(n, 1), n, segments));
  if (!x.defined()) throw Error("checkpoint_sequential: the input is undefined");
  // The modules [begin, end) applied in order, through operator() so forward hooks run.
  auto run = [&seq](int64_t begin, int64_t end) {
    std::vector<std::shared_ptr<nn::Module>> part;
    for (int64_t i = begin; i < end; ++i) part.push_back(seq[size_t(i)]);
    return [part](const std::vector<Tensor>& in) {
      Tensor y = in[0];
      for (const auto& m : part) y = (*m)(y);
      return y;
    };
  };
  const int64_t size = n / segments;
  Tensor y = x;
  int64_t start = 0;
  for (; start < size * (segments - 1); start += size) y = checkpoint(run(start, start + size), {y});
  return run(start, n)({y});
}

Tensor checkpoint_sequential(const std::shared_ptr<nn::Sequential>& seq, int64_t segments, const Tensor& x) {
  if (!seq) throw Error("checkpoint_sequential: the Sequential is null");
  return checkpoint_sequential(*seq, segments, x);
}

}  // namespace tg
