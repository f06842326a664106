// `vkquant run [MODEL]`: generate text from a prompt on a Vulkan device,
// streamed to stdout; prefill and decode speeds on stderr at the end.
#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "model_flags.hpp"
#include "progress.hpp"
#include "vkquant/device.hpp"
#include "vkquant/instance.hpp"
#include "vkquant/model/sampling.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq::cli {

namespace {

struct RunFlags {
  std::string model;
  std::string prompt;
  int n = 200;
  SamplerOptions sampling;
  WeightFlag weights;
  QuantFlags quant;
  DeviceFlags device;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run(const RunFlags& f) {
  Sampler sampler(f.sampling);  // validates the sampling and quantization flags before any heavy work
  const KCacheConfig kcache = f.quant.config();
  const auto path = f.model.empty() ? default_model_path() : std::filesystem::path(f.model);
  const auto model = ModelFile::open(path);
  const auto tok = model.tokenizer();
  const ModelConfig& c = model.config();

  std::vector<std::int32_t> prompt;
  if (const auto bos = tok->bos()) prompt.push_back(*bos);
  const auto text = tok->encode(f.prompt);
  prompt.insert(prompt.end(), text.begin(), text.end());
  if (prompt.empty()) throw Error("--prompt: empty, and the model has no BOS token to start from");
  if (prompt.size() >= c.ctx)
    throw Error("--prompt: " + std::to_string(prompt.size()) + " tokens fill the model's context of " +
                std::to_string(c.ctx));

  Instance instance = Instance::create(InstanceOptions::from_env());
  Device device = Device::create(instance, f.device.device);
  const auto calibration = f.quant.calibration(model);
  VkForwardOptions o;
  o.weights = f.weights.type();
  o.kcache = kcache;
  o.mlp = f.quant.mlp_config();
  o.calibration = calibration ? &*calibration : nullptr;
  std::optional<VkForward> fwd;
  {
    Progress bar;
    fwd.emplace(device, model, o, [&](std::size_t done, std::size_t total) {
      bar.update("loading " + path.filename().string(), double(done) / double(total));
    });
  }

  std::fwrite(f.prompt.data(), 1, f.prompt.size(), stdout);
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  auto logits = fwd->forward(prompt);
  const double prefill_s = seconds_since(t0);

  const std::uint32_t room = fwd->ctx() - std::uint32_t(prompt.size());
  const std::uint32_t n = std::min<std::uint32_t>(std::uint32_t(f.n), room);
  std::uint32_t generated = 0;
  const auto t1 = std::chrono::steady_clock::now();
  for (; generated < n; ++generated) {
    const std::int32_t next = sampler.sample(logits);
    if (tok->eos() && next == *tok->eos()) break;
    const std::string piece = tok->token_bytes(next);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    if (generated + 1 < n) logits = fwd->forward(std::span<const std::int32_t>(&next, 1));
  }
  const double decode_s = seconds_since(t1);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  if (std::uint32_t(f.n) > room)
    fmt::print(stderr, "note: stopped at the model's context of {} tokens\n", fwd->ctx());
  fmt::print(stderr, "prefill: {} tokens in {:.3f} s ({:.1f} tokens/s)\n", prompt.size(), prefill_s,
             double(prompt.size()) / prefill_s);
  // The first sampled token came from the prefill's logits: decode timed the rest.
  const std::uint32_t decoded = generated > 0 ? generated - (generated == n ? 1 : 0) : 0;
  fmt::print(stderr, "decode: {} tokens in {:.3f} s ({:.1f} tokens/s)  [{}, {} weights, keys {} ({:.3f} bits/coordinate), {}]\n",
             decoded, decode_s, decoded > 0 ? double(decoded) / decode_s : 0.0, path.filename().string(), f.weights.value,
             f.quant.label(), fwd->key_bits_per_coordinate(), device.info().name);
}

}  // namespace

void add_run(CLI::App& app) {
  auto f = std::make_shared<RunFlags>();
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt (no MODEL: the bundled KJV model)");
  cmd->add_option("model", f->model, "model: .gguf, .safetensors, index .json or a Hugging Face directory");
  cmd->add_option("--prompt,-p", f->prompt, "text to continue");
  cmd->add_option("-n", f->n, "tokens to generate")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--temp", f->sampling.temperature, "sampling temperature (0: greedy)")->check(number_in(0.0, 100.0));
  cmd->add_option("--top-k", f->sampling.top_k, "sample among the K most likely tokens (0: all)");
  cmd->add_option("--top-p", f->sampling.top_p, "nucleus: the smallest set of tokens holding mass P")
      ->check(number_in(0.0, 1.0, /*open_low=*/true));
  cmd->add_option("--seed", f->sampling.seed, "sampling seed")->check(unsigned64());
  f->weights.add(cmd);
  f->quant.add(cmd);
  cmd->add_option("--device", f->device.device, "Vulkan device index (see `vkquant devices`)");
  cmd->callback([f] { run(*f); });
}

}  // namespace vkq::cli
