#pragma once
/// tg::data (datasets, DataLoader, transforms) and tg::metrics. See docs/data.md.
#include "dataloader.hpp"
#include "canvas.hpp"
#include "dataset.hpp"
#include "metrics.hpp"
#include "mnist.hpp"
#include "random.hpp"
#include "sampler.hpp"
#include "transforms.hpp"
