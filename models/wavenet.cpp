// WaveNet: the training-time network is composed of public ops only (conv1d, pad, tanh,
// sigmoid, index_select); the generator is plain loops over a float copy of the weights,
// which is also what makes the cache-vs-forward test (tests/test_wavenet.cpp) a check of two
// independent computations.
#include "wavenet.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "../autograd/autograd.hpp"
#include "../nn/functional.hpp"
#include "../nn/init.hpp"

namespace tg::models {

namespace F = nn::functional;

namespace functional {
std::vector<Tensor> wavenet_residual(const Tensor& x, const Tensor& w_dilated, const Tensor& b_dilated,
                                     const Tensor& w_residual, const Tensor& b_residual, const Tensor& w_skip,
                                     const Tensor& b_skip, int64_t dilation) {
  if (x.dim() != 3 || w_dilated.dim() != 3 || w_dilated.size(2) != 2 || w_dilated.size(0) % 2 != 0)
    throw Error(fmt::format("wavenet_residual: expects x [N, R, T] and w_dilated [2G, R, 2], got {} and {}",
                            shape_str(x.shape()), shape_str(w_dilated.shape())));
  if (dilation < 1) throw Error(fmt::format("wavenet_residual: dilation must be positive, got {}", dilation));
  const int64_t g = w_dilated.size(0) / 2;
  // Left padding by the dilation makes the kernel-2 convolution causal: output t = w0 x[t-d] + w1 x[t].
  const Tensor h = F::conv1d(pad(x, {dilation, 0}), w_dilated, b_dilated, F::ConvOptions().dilation({dilation}));
  const Tensor z = tanh(h.narrow(1, 0, g)) * sigmoid(h.narrow(1, g, g));
  return {x + F::conv1d(z, w_residual, b_residual), F::conv1d(z, w_skip, b_skip)};
}
}  // namespace functional

WaveNetResidualBlock::WaveNetResidualBlock(int64_t residual_channels, int64_t gate_channels, int64_t skip_channels,
                                           int64_t dilation_)
    : nn::Module("WaveNetResidualBlock"), dilation(dilation_) {
  if (residual_channels < 1 || gate_channels < 1 || skip_channels < 1 || dilation < 1)
    fail(fmt::format("channels (residual {}, gate {}, skip {}) and dilation {} must be positive", residual_channels,
                     gate_channels, skip_channels, dilation));
  dilated = register_module("dilated", std::make_shared<nn::Conv1d>(residual_channels, 2 * gate_channels, nn::IntList{2}));
  residual = register_module("residual", std::make_shared<nn::Conv1d>(gate_channels, residual_channels, nn::IntList{1}));
  skip = register_module("skip", std::make_shared<nn::Conv1d>(gate_channels, skip_channels, nn::IntList{1}));
}

nn::TensorList WaveNetResidualBlock::forward_list(const nn::TensorList& inputs) {
  if (inputs.size() != 1) fail(fmt::format("expects one input [N, R, T], got {}", inputs.size()));
  return after_forward(inputs, functional::wavenet_residual(inputs[0], dilated->weight, dilated->bias, residual->weight,
                                                            residual->bias, skip->weight, skip->bias, dilation));
}

WaveNet::WaveNet(const WaveNetOptions& o) : nn::Module("WaveNet"), options_(o) {
  if (o.quantization_channels() < 2 || o.layers_per_cycle() < 1 || o.cycles() < 1 || o.layers_per_cycle() > 20)
    fail(fmt::format("expects quantization_channels >= 2, layers_per_cycle in [1, 20] and cycles >= 1, got {}, {}, {}",
                     o.quantization_channels(), o.layers_per_cycle(), o.cycles()));
  embedding = register_parameter("embedding", empty({o.quantization_channels(), o.residual_channels()}));
  {
    NoGradGuard guard;
    nn::init::normal_(embedding);  // as torch.nn.Embedding
  }
  layers = register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t c = 0; c < o.cycles(); ++c)
    for (int64_t l = 0; l < o.layers_per_cycle(); ++l) {
      blocks.push_back(std::make_shared<WaveNetResidualBlock>(o.residual_channels(), o.gate_channels(),
                                                              o.skip_channels(), int64_t(1) << l));
      layers->push_back(blocks.back());
    }
  output1 = register_module("output1", std::make_shared<nn::Conv1d>(o.skip_channels(), o.skip_channels(), nn::IntList{1}));
  output2 =
      register_module("output2", std::make_shared<nn::Conv1d>(o.skip_channels(), o.quantization_channels(), nn::IntList{1}));
}

int64_t WaveNet::receptive_field() const {
  int64_t rf = 1;
  for (const auto& b : blocks) rf += b->dilation;
  return rf;
}

Tensor WaveNet::forward(const Tensor& codes) {
  if (!codes.defined() || codes.dtype() != kInt64 || codes.dim() != 2)
    fail(fmt::format("expects int64 codes [N, T], got {}",
                     codes.defined() ? std::string(dtype_name(codes.dtype())) + " " + shape_str(codes.shape()) : "undefined"));
  const int64_t n = codes.size(0), t = codes.size(1), r = options_.residual_channels();
  Tensor x = embedding.index_select(0, codes.reshape({n * t})).reshape({n, t, r}).transpose(1, 2).contiguous();
  Tensor skips;
  for (auto& b : blocks) {
    nn::TensorList out = (*b)(nn::TensorList{x});
    x = out[0];
    skips = skips.defined() ? skips + out[1] : out[1];
  }
  return after_forward(codes, output2->forward(relu(output1->forward(relu(skips)))));
}

// ---- generation ----

namespace {
std::vector<float> floats(const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  return std::vector<float>(v.begin(), v.end());
}
// out[o] = b[o] + sum_i w[o, i] in[i] (+= when accumulate)
void affine(const std::vector<float>& w, const float* b, const float* in, float* out, int64_t rows, int64_t cols,
            bool accumulate = false) {
  for (int64_t o = 0; o < rows; ++o) {
    float acc = b ? b[o] : 0.f;
    const float* wr = &w[size_t(o * cols)];
    for (int64_t i = 0; i < cols; ++i) acc += wr[i] * in[i];
    out[o] = accumulate ? out[o] + acc : acc;
  }
}
}  // namespace

WaveNetGenerator::WaveNetGenerator(const WaveNet& net)
    : q_(net.options().quantization_channels()),
      r_(net.options().residual_channels()),
      g_(net.options().gate_channels()),
      s_(net.options().skip_channels()) {
  NoGradGuard guard;
  embedding_ = floats(net.embedding);
  for (const auto& b : net.blocks) {
    Layer l;
    l.dilation = b->dilation;
    l.w0 = floats(b->dilated->weight.narrow(2, 0, 1).contiguous());
    l.w1 = floats(b->dilated->weight.narrow(2, 1, 1).contiguous());
    l.b = floats(b->dilated->bias);
    l.wr = floats(b->residual->weight);
    l.br = floats(b->residual->bias);
    l.ws = floats(b->skip->weight);
    l.bs = floats(b->skip->bias);
    l.queue.assign(size_t(l.dilation * r_), 0.f);
    layers_.push_back(std::move(l));
  }
  o1w_ = floats(net.output1->weight);
  o1b_ = floats(net.output1->bias);
  o2w_ = floats(net.output2->weight);
  o2b_ = floats(net.output2->bias);
}

void WaveNetGenerator::reset() {
  for (auto& l : layers_) {
    std::fill(l.queue.begin(), l.queue.end(), 0.f);
    l.head = 0;
  }
}

std::vector<float> WaveNetGenerator::step(int64_t code) {
  if (code < 0 || code >= q_) throw Error(fmt::format("WaveNetGenerator::step: code {} outside [0, {})", code, q_));
  std::vector<float> x(embedding_.begin() + code * r_, embedding_.begin() + (code + 1) * r_);
  std::vector<float> h(static_cast<size_t>(2 * g_)), z(static_cast<size_t>(g_)), skips(static_cast<size_t>(s_), 0.f),
      next(static_cast<size_t>(r_));
  for (auto& l : layers_) {
    float* past = &l.queue[size_t(l.head * r_)];  // this layer's input d steps ago
    affine(l.w0, l.b.data(), past, h.data(), 2 * g_, r_);
    affine(l.w1, nullptr, x.data(), h.data(), 2 * g_, r_, true);
    for (int64_t i = 0; i < g_; ++i) z[i] = std::tanh(h[i]) / (1.f + std::exp(-h[g_ + i]));
    affine(l.ws, l.bs.data(), z.data(), skips.data(), s_, g_, true);
    affine(l.wr, l.br.data(), z.data(), next.data(), r_, g_);
    std::copy(x.begin(), x.end(), past);  // becomes the input d steps ago for t + d
    l.head = (l.head + 1) % l.dilation;
    for (int64_t i = 0; i < r_; ++i) x[i] += next[i];
  }
  for (auto& v : skips) v = std::max(v, 0.f);
  std::vector<float> hidden(static_cast<size_t>(s_)), logits(static_cast<size_t>(q_));
  affine(o1w_, o1b_.data(), skips.data(), hidden.data(), s_, s_);
  for (auto& v : hidden) v = std::max(v, 0.f);
  affine(o2w_, o2b_.data(), hidden.data(), logits.data(), q_, s_);
  return logits;
}

std::vector<int64_t> WaveNetGenerator::generate(int64_t n, std::mt19937_64& rng, double temperature, int64_t first) {
  if (n < 0 || !(temperature > 0))
    throw Error(fmt::format("WaveNetGenerator::generate: expects n >= 0 and temperature > 0, got {} and {}", n, temperature));
  std::vector<int64_t> out;
  out.reserve(size_t(n));
  std::vector<double> p(static_cast<size_t>(q_));
  int64_t code = first == -1 ? q_ / 2 : first;
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<float> logits = step(code);
    const double top = *std::max_element(logits.begin(), logits.end());
    for (int64_t k = 0; k < q_; ++k) p[k] = std::exp((logits[k] - top) / temperature);
    code = int64_t(std::discrete_distribution<int64_t>(p.begin(), p.end())(rng));
    out.push_back(code);
  }
  return out;
}

}  // namespace tg::models
