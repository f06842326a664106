#include "model_flags.hpp"

#include <unistd.h>

#include <climits>

#include "vkquant/error.hpp"

namespace vkq::cli {

std::filesystem::path default_model_path() {
  std::error_code ec;
  char self[PATH_MAX] = {};
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    const auto installed = std::filesystem::path(std::string(self, std::size_t(n))).parent_path().parent_path() /
                           "share" / "vkquant" / "models" / "kjv-llama";
    if (std::filesystem::is_directory(installed, ec)) return installed;
  }
  const std::filesystem::path source = std::filesystem::path(VKQ_SOURCE_MODELS) / "kjv-llama";
  if (std::filesystem::is_directory(source, ec)) return source;
  throw Error("the bundled model is not installed (looked in <prefix>/share/vkquant/models/kjv-llama and " +
              source.string() + "); name a model file");
}

void WeightFlag::add(CLI::App* cmd) {
  cmd->add_option("--weights", value, "matrix storage on the device: f16 (default) or f32")
      ->check(CLI::IsMember({"f16", "f32"}));
}

}  // namespace vkq::cli
