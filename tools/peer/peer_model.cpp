#include "peer_model.hpp"

#include <algorithm>
#include <vector>

namespace vkq::peer {

std::unique_ptr<PeerModel> PeerModel::load(LlamaLib& lib, const std::filesystem::path& model, const LoadOptions& o) {
  if (o.n_batch == 0 || o.n_ctx < o.n_batch) throw PeerError("load: need 0 < n_batch <= n_ctx");
  std::unique_ptr<PeerModel> m(new PeerModel(lib));
  m->n_batch_ = o.n_batch;

  std::vector<ggml_backend_dev_t> devs;  // NULL-terminated, as llama_model_params wants it
  if (o.backend == Backend::vulkan) {
    for (const auto& d : lib.devices())
      if (d.gpu()) {
        m->gpu_ = d;
        break;
      }
    if (!m->gpu_)
      throw PeerError(lib.path().parent_path().string() +
                      ": ggml registered no GPU device (no libggml-vulkan.so there, no Vulkan driver, or only a CPU "
                      "Vulkan device such as lavapipe, which ggml-vulkan skips unless GGML_VK_VISIBLE_DEVICES=0)");
    devs.push_back(m->gpu_->dev);
  }
  devs.push_back(nullptr);

  llama_model_params mp = lib.llama_model_default_params();
  mp.devices = devs.data();
  mp.n_gpu_layers = o.backend == Backend::vulkan ? -1 : 0;  // -1: all layers
  lib.take_problems();
  m->model_ = lib.llama_model_load_from_file(model.c_str(), mp);
  if (!m->model_) throw PeerError(model.string() + ": llama.cpp cannot load it: " + lib.take_problems());
  m->n_vocab_ = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(m->model_));

  llama_context_params cp = lib.llama_context_default_params();
  cp.n_ctx = o.n_ctx;
  cp.n_batch = o.n_batch;
  cp.n_ubatch = o.n_batch;  // one graph per decode call, as vkquant's forward
  cp.n_threads = o.threads;
  cp.n_threads_batch = o.threads;
  cp.no_perf = true;
  m->ctx_ = lib.llama_init_from_model(m->model_, cp);
  if (!m->ctx_) throw PeerError(model.string() + ": llama_init_from_model failed: " + lib.take_problems());

  m->batch_ = lib.llama_batch_init(std::int32_t(o.n_batch), 0, 1);
  m->batch_allocated_ = true;
  return m;
}

PeerModel::~PeerModel() {
  if (batch_allocated_) lib_.llama_batch_free(batch_);
  if (ctx_) lib_.llama_free(ctx_);
  if (model_) lib_.llama_model_free(model_);
}

std::uint32_t PeerModel::n_ctx() const { return lib_.llama_n_ctx(ctx_); }

std::string PeerModel::desc() const {
  char buf[256];
  lib_.llama_model_desc(model_, buf, sizeof buf);
  return buf;
}

std::uint64_t PeerModel::size_bytes() const { return lib_.llama_model_size(model_); }
std::uint64_t PeerModel::n_params() const { return lib_.llama_model_n_params(model_); }

void PeerModel::clear() { lib_.llama_memory_clear(lib_.llama_get_memory(ctx_), true); }

std::span<const float> PeerModel::decode(std::span<const llama_token> tokens, llama_pos pos0) {
  if (tokens.empty() || tokens.size() > n_batch_)
    throw PeerError("decode: " + std::to_string(tokens.size()) + " tokens, the batch holds 1.." + std::to_string(n_batch_));
  batch_.n_tokens = std::int32_t(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    batch_.token[i] = tokens[i];
    batch_.pos[i] = pos0 + llama_pos(i);
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = 0;
    batch_.logits[i] = i + 1 == tokens.size();
  }
  if (const std::int32_t rc = lib_.llama_decode(ctx_, batch_); rc != 0)
    throw PeerError("llama_decode returned " + std::to_string(rc) + " at position " + std::to_string(pos0) + ": " +
                    lib_.take_problems());
  lib_.llama_synchronize(ctx_);
  const float* logits = lib_.llama_get_logits_ith(ctx_, -1);
  if (!logits) throw PeerError("llama_get_logits_ith: no logits: " + lib_.take_problems());
  return {logits, std::size_t(n_vocab_)};
}

llama_token argmax(std::span<const float> logits) {
  return llama_token(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace vkq::peer
