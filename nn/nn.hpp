#pragma once
/// The nn library: functional ops, Module and the built-in modules, init, save/load,
/// checkpoint_sequential.
#include "checkpoint.hpp"
#include "functional.hpp"
#include "init.hpp"
#include "module.hpp"
#include "modules.hpp"
#include "serialize.hpp"
