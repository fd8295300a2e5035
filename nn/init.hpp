#pragma once
/// tg::nn::init: in-place initialisers, as torch.nn.init. fan_in / fan_out of a weight
/// [out, in, *kernel] are in * prod(kernel) and out * prod(kernel).
#include <string>

#include "../autograd/tensor.hpp"

namespace tg::nn::init {

enum class FanMode { FanIn, FanOut };
enum class Nonlinearity { Linear, ReLU, LeakyReLU, Tanh, Sigmoid };

/// The recommended gain for a nonlinearity (torch.nn.init.calculate_gain).
double calculate_gain(Nonlinearity n, double param = 0.01);
/// {fan_in, fan_out} of a weight with at least 2 dims.
std::pair<int64_t, int64_t> fans(const Tensor& w);

Tensor& normal_(Tensor& t, double mean = 0.0, double std = 1.0);
Tensor& uniform_(Tensor& t, double low = 0.0, double high = 1.0);
Tensor& constant_(Tensor& t, double value);
Tensor& zeros_(Tensor& t);
Tensor& ones_(Tensor& t);
Tensor& xavier_uniform_(Tensor& t, double gain = 1.0);
Tensor& xavier_normal_(Tensor& t, double gain = 1.0);
/// He initialisation: std = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2)) for (leaky) ReLU.
Tensor& kaiming_uniform_(Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                         Nonlinearity nonlinearity = Nonlinearity::LeakyReLU);
Tensor& kaiming_normal_(Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                        Nonlinearity nonlinearity = Nonlinearity::LeakyReLU);
/// LeCun normal: std = 1 / sqrt(fan_in).
Tensor& lecun_normal_(Tensor& t);

}  // namespace tg::nn::init
