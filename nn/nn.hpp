#pragma once
/// The nn library: functional ops, Module and the built-in modules, init, save/load.
#include "functional.hpp"
#include "init.hpp"
#include "module.hpp"
#include "modules.hpp"
#include "serialize.hpp"
