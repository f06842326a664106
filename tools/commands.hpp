// The vkquant subcommands. Each registers its options on the CLI11 app and
// runs when chosen; failures throw vkq::Error and main() turns them into one
// line on stderr and an exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace vkq::cli {

// Exit codes shared by every subcommand.
enum Exit : int {
  kOk = 0,
  kError = 1,     // bad input, failed run
  kUsage = 2,     // bad command line
  kNoDevice = 3,  // no Vulkan loader, driver or usable device
};

// Options common to commands that open a device.
struct DeviceFlags {
  int device = -1;  // --device N; -1: the default choice
};

void add_devices(CLI::App& app);
void add_bench(CLI::App& app);
void add_gauge(CLI::App& app);
void add_info(CLI::App& app);
void add_run(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_ppl(CLI::App& app);
void add_calibrate(CLI::App& app);
void add_quantize(CLI::App& app);

}  // namespace vkq::cli
