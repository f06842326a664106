// vkquant: the command-line tool. See `vkquant --help` and docs/design.md §6.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "vkquant/error.hpp"

int main(int argc, char** argv) {
  using namespace vkq::cli;
  CLI::App app{"vkquant: 1-bit K-cache and 1-bit MLP matmuls on any Vulkan GPU"};
  app.require_subcommand(1);
  add_devices(app);
  add_bench(app);
  add_gauge(app);
  add_info(app);
  add_run(app);
  add_tokenize(app);
  add_ppl(app);
  add_calibrate(app);
  add_quantize(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "vkquant: %s\n", e.what());
    return kUsage;
  } catch (const vkq::UsageError& e) {  // a bad environment variable, like a bad flag
    std::fprintf(stderr, "vkquant: %s\n", e.what());
    return kUsage;
  } catch (const vkq::NoDeviceError& e) {
    std::fprintf(stderr, "vkquant: %s\n", e.what());
    return kNoDevice;
  } catch (const vkq::Error& e) {
    std::fprintf(stderr, "vkquant: %s\n", e.what());
    return kError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vkquant: %s\n", e.what());
    return kError;
  }
  return kOk;
}
