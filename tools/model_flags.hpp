// What `run` and `ppl` share: where the bundled model lives, the --weights
// flag, and opening a device for a model.
#pragma once

#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

#include "vkquant/kernels/linear.hpp"

namespace vkq::cli {

// The bundled default model: installed beside the binary
// (<prefix>/share/vkquant/models/kjv-llama) or in the source tree it was built from.
std::filesystem::path default_model_path();

// --weights f16|f32: how matrices are stored on the device.
struct WeightFlag {
  std::string value = "f16";
  void add(CLI::App* cmd);
  kernels::WeightType type() const { return value == "f32" ? kernels::WeightType::f32 : kernels::WeightType::f16; }
};

}  // namespace vkq::cli
