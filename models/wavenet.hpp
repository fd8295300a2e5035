#pragma once
/// WaveNet (van den Oord et al. 2016): an autoregressive model of mu-law-coded audio. Causal
/// dilated convolutions of kernel 2 (dilations 1, 2, 4, ..., 2^(k-1), the cycle repeated), gated
/// activations tanh(W_f * x) . sigmoid(W_g * x), 1x1 residual and skip convolutions, and
/// relu -> 1x1 -> relu -> 1x1 to one logit per mu-law code.
///
///   auto net = std::make_shared<tg::models::WaveNet>(tg::models::WaveNetOptions().layers_per_cycle(8).cycles(2));
///   tg::Tensor logits = net->forward(codes);        // int64 [N, T] -> [N, 256, T]
///   // logits[:, :, t] is the distribution of codes[:, t + 1], from codes[:, 0..t] only
///
/// WaveNetGenerator samples from a trained WaveNet one code at a time with a queue of past
/// activations per layer (Paine et al. 2016, "Fast WaveNet"), O(layers) work per sample.
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "../autograd/arg.hpp"
#include "../nn/modules.hpp"

namespace tg::models {


class WaveNetOptions {
  /// Mu-law codes in and logits out (256: 8-bit mu-law).
  TG_ARG(int64_t, quantization_channels){256};
  /// Channels of the residual stream (the embedding of the input codes has as many).
  TG_ARG(int64_t, residual_channels){32};
  /// Channels of each half of the gate (tanh and sigmoid), before the 1x1 convolutions.
  TG_ARG(int64_t, gate_channels){32};
  /// Channels of the skip connections and of the output layers' hidden 1x1 convolution.
  TG_ARG(int64_t, skip_channels){64};
  /// Layers per cycle k: dilations 1, 2, ..., 2^(k-1).
  TG_ARG(int64_t, layers_per_cycle){8};
  /// How many times the cycle of dilations repeats.
  TG_ARG(int64_t, cycles){2};
};

namespace functional {
/// One gated residual layer as a function of its weights: h = conv1d(pad_left(x, d), w_dilated,
/// b_dilated, dilation d) of kernel 2, [N, 2G, T]; z = tanh(h[:, :G]) * sigmoid(h[:, G:]);
/// returns {x + conv1x1(z; w_residual, b_residual), conv1x1(z; w_skip, b_skip)}. x [N, R, T],
/// w_dilated [2G, R, 2], w_residual [R, G, 1], w_skip [S, G, 1].
std::vector<Tensor> wavenet_residual(const Tensor& x, const Tensor& w_dilated, const Tensor& b_dilated,
                                     const Tensor& w_residual, const Tensor& b_residual, const Tensor& w_skip,
                                     const Tensor& b_skip, int64_t dilation);
}  // namespace functional

/// One layer of the stack as a two-output module: forward_list({x}) -> {residual, skip},
/// [N, R, T] -> [N, R, T] and [N, S, T]. Causal: output t sees inputs t - dilation and t.
struct WaveNetResidualBlock : nn::Module {
  WaveNetResidualBlock(int64_t residual_channels, int64_t gate_channels, int64_t skip_channels, int64_t dilation);
  nn::TensorList forward_list(const nn::TensorList& inputs) override;
  int64_t dilation;
  std::shared_ptr<nn::Conv1d> dilated, residual, skip;  // kernel 2 (2G outputs), 1x1, 1x1
};

class WaveNet : public nn::Module {
 public:
  explicit WaveNet(const WaveNetOptions& o = {});
  /// int64 codes [N, T] in [0, quantization_channels) -> logits [N, quantization_channels, T];
  /// position t depends on codes[:, 0..t] only (zeros stand for the samples before the start).
  Tensor forward(const Tensor& codes) override;
  /// Samples of context that output t sees: 1 + the sum of the dilations.
  int64_t receptive_field() const;
  const WaveNetOptions& options() const { return options_; }

  Tensor embedding;  // [quantization_channels, residual_channels]: one vector per input code
  std::shared_ptr<nn::ModuleList> layers;                     // the blocks, named layers.0, layers.1, ...
  std::vector<std::shared_ptr<WaveNetResidualBlock>> blocks;  // the same, typed
  std::shared_ptr<nn::Conv1d> output1, output2;               // skip -> skip, skip -> logits

 private:
  WaveNetOptions options_;
};

/// Autoregressive generation with cached activations. Holds a float copy of the network's
/// weights taken at construction (build it after training), and per layer a ring buffer of
/// that layer's last `dilation` inputs, so step() costs O(layers * channels^2) whatever the
/// length generated so far. step(code) feeds one code and returns the logits of the next,
/// exactly those of WaveNet::forward on the whole sequence fed so far (up to float rounding).
class WaveNetGenerator {
 public:
  explicit WaveNetGenerator(const WaveNet& net);
  /// Feeds one code (in [0, quantization_channels)) and returns the logits of the next.
  std::vector<float> step(int64_t code);
  /// Draws `n` codes: each step's logits / temperature through a softmax, sampled with rng,
  /// and fed back. The first input is `first`; -1 means quantization_channels / 2, the mu-law
  /// code of silence (128 of 256).
  std::vector<int64_t> generate(int64_t n, std::mt19937_64& rng, double temperature = 1.0, int64_t first = -1);
  /// Forgets the history: as if nothing had been fed.
  void reset();

 private:
  struct Layer {
    int64_t dilation;
    std::vector<float> w0, w1, b;  // the dilated kernel's taps t - d and t, [2G, R]; bias [2G]
    std::vector<float> wr, br, ws, bs;  // 1x1 residual [R, G], skip [S, G]
    std::vector<float> queue;           // [dilation, R]: inputs t - d .. t - 1, a ring
    int64_t head = 0;
  };
  int64_t q_, r_, g_, s_;
  std::vector<float> embedding_;  // [Q, R]
  std::vector<Layer> layers_;
  std::vector<float> o1w_, o1b_, o2w_, o2b_;
};

}  // namespace tg::models
