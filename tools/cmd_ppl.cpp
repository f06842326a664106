// `vkquant ppl MODEL --text FILE`: perplexity and bits per byte of a text,
// with the protocol of tools/train/README.md (documents split on blank lines,
// independent chunks of --ctx tokens, each starting with BOS).
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "model_flags.hpp"
#include "progress.hpp"
#include "vkquant/device.hpp"
#include "vkquant/instance.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/model/sampling.hpp"
#include "vkquant/model/vk_forward.hpp"

namespace vkq::cli {

namespace {

struct PplFlags {
  std::string model;
  std::string text;
  std::uint32_t ctx = 0;
  bool json = false;
  WeightFlag weights;
  DeviceFlags device;
};

void ppl(const PplFlags& f) {
  const auto model = ModelFile::open(f.model);
  const auto tok = model.tokenizer();
  const ModelConfig& c = model.config();
  if (f.ctx > c.ctx)
    throw Error("--ctx: " + std::to_string(f.ctx) + " is longer than the model's context of " + std::to_string(c.ctx));
  const std::uint32_t ctx = f.ctx ? f.ctx : c.ctx;
  const auto text_file = MappedFile::open(f.text);
  const auto bytes = text_file.bytes();
  const auto plan = ppl_plan(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), *tok, ctx);
  if (plan.tokens == 0) throw Error(f.text + ": no text to score");

  Instance instance = Instance::create(InstanceOptions::from_env());
  Device device = Device::create(instance, f.device.device);
  VkForwardOptions o;
  o.weights = f.weights.type();
  o.ctx = ctx;
  Progress bar;
  std::optional<VkForward> fwd;
  fwd.emplace(device, model, o, [&](std::size_t done, std::size_t total) {
    bar.update("loading", double(done) / double(total));
  });

  const auto t0 = std::chrono::steady_clock::now();
  double bits = 0.0;
  std::uint64_t scored = 0;
  for (std::size_t i = 0; i < plan.chunks.size(); ++i) {
    const PplChunk& ch = plan.chunks[i];
    fwd->reset();
    const auto logits = fwd->forward(ch.input, /*all_logits=*/true);
    for (std::size_t j = 0; j < ch.targets.size(); ++j)
      bits += bits_of(std::span<const float>(logits).subspan(j * c.vocab, c.vocab), ch.targets[j]);
    scored += ch.targets.size();
    bar.update(fmt::format("{} / {} tokens, {:.4f} bits/byte so far", scored, plan.tokens,
                           bits / double(plan.bytes) * double(plan.tokens) / double(scored)),
               double(scored) / double(plan.tokens));
  }
  bar.clear();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double bpb = bits / double(plan.bytes), bpt = bits / double(plan.tokens);
  const double perplexity = std::exp2(bpt);
  if (f.json) {
    nlohmann::ordered_json j{{"model", f.model},         {"text", f.text},
                             {"ctx", ctx},               {"weights", f.weights.value},
                             {"chunks", plan.chunks.size()}, {"tokens", plan.tokens},
                             {"bytes", plan.bytes},      {"bits_per_byte", bpb},
                             {"bits_per_token", bpt},    {"perplexity", perplexity},
                             {"seconds", secs},          {"tokens_per_second", double(plan.tokens) / secs},
                             {"device", device.info().name}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  fmt::print("{}: {} tokens ({} bytes) in {} chunks of <= {}\n", f.text, plan.tokens, plan.bytes, plan.chunks.size(), ctx);
  fmt::print("bits/byte {:.4f}   perplexity {:.4f} per token   ({:.1f} s, {:.0f} tokens/s, {} weights)\n", bpb,
             perplexity, secs, double(plan.tokens) / secs, f.weights.value);
}

}  // namespace

void add_ppl(CLI::App& app) {
  auto f = std::make_shared<PplFlags>();
  auto* cmd = app.add_subcommand("ppl", "Perplexity and bits per byte of a model on a text");
  cmd->add_option("model", f->model, "model: .gguf, .safetensors, index .json or a Hugging Face directory")->required();
  cmd->add_option("--text", f->text, "text file to score")->required();
  cmd->add_option("--ctx", f->ctx, "tokens per independent chunk (default: the model's context)")
      ->check(CLI::Range(2u, 1u << 22));
  cmd->add_flag("--json", f->json, "print JSON");
  f->weights.add(cmd);
  cmd->add_option("--device", f->device.device, "Vulkan device index (see `vkquant devices`)");
  cmd->callback([f] { ppl(*f); });
}

}  // namespace vkq::cli
