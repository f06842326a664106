// A model file opened for inference: safetensors (one file, a sharded index,
// or a Hugging Face directory with config.json) or GGUF. Weights are read by
// role, converted to fp32 one tensor at a time (the file stays mapped), in
// one canonical layout: Hugging Face's ([out, in] row-major, rotate_half
// RoPE order for q/k; GGUF llama's permuted q/k rows are undone on load).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vkquant/model/config.hpp"
#include "vkquant/quant.hpp"
#include "vkquant/tokenizer.hpp"

namespace vkq {

enum class Role {
  embed,       // (vocab, dim)
  attn_norm,   // (dim)
  wq,          // (heads*hd, dim)
  wk,          // (kv*hd, dim)
  wv,          // (kv*hd, dim)
  wo,          // (dim, heads*hd)
  bq,          // (heads*hd)       qkv_bias only
  bk,          // (kv*hd)
  bv,          // (kv*hd)
  q_norm,      // (heads*hd)       qk_norm only
  k_norm,      // (kv*hd)
  ffn_norm,    // (dim)
  w_gate,      // (ffn, dim)       dense
  w_up,        // (ffn, dim)
  w_down,      // (dim, ffn)
  router,      // (experts, dim)   moe
  exp_gate,    // (experts, ffn, dim)
  exp_up,      // (experts, ffn, dim)
  exp_down,    // (experts, dim, ffn)
  final_norm,  // (dim)
  lm_head,     // (vocab, dim)     absent when tied
};
const char* role_name(Role r);
// Roles a layer has under `c` (in forward-pass order).
std::vector<Role> layer_roles(const ModelConfig& c);
// The shape a role must have under `c` (row-major, outermost first).
std::vector<std::uint64_t> role_shape(const ModelConfig& c, Role r);

enum class Format { safetensors, gguf };

// A role's weight as the file stores it: its type (F32/F16/BF16 or a ggml
// block format), canonical shape and bytes in canonical row order. `bytes`
// points into the file's mapping when the stored rows are already canonical
// (the common case: no copy), else into `owned` (GGUF llama q/k rows
// un-permuted, a safetensors expert bank gathered, a safetensors dtype that
// is not F32/F16/BF16 converted to F32, non-finite values replaced). Rows of
// a fused tensor are a sub-span.
struct StoredWeight {
  quant::Type type = quant::Type::f32;
  std::vector<std::uint64_t> shape;
  std::span<const std::byte> bytes;
  std::vector<std::byte> owned;
  std::vector<std::span<const std::byte>> sources;  // the mapped file bytes it was read from
  StoredWeight() = default;
  StoredWeight(StoredWeight&&) noexcept = default;             // `bytes` may point into `owned`:
  StoredWeight& operator=(StoredWeight&&) noexcept = default;  // a vector's move keeps its heap block
  StoredWeight(const StoredWeight&) = delete;
  StoredWeight& operator=(const StoredWeight&) = delete;
  std::uint64_t rows() const { return shape.size() < 2 ? 1 : bytes.size() / quant::row_bytes(type, shape.back()); }
  std::uint64_t cols() const { return shape.back(); }
};

// How ModelFile treats the weights it loads.
struct ModelOpenOptions {
  // false: a tensor holding NaN or Inf is refused (FormatError naming it and
  // the count). true: those values are replaced by 0 and `warn` is told once
  // per tensor, naming it and the count (`vkquant calibrate --allow-nonfinite`).
  bool allow_nonfinite = false;
  // Receives each warning (one line, no newline); unset: written to stderr.
  std::function<void(const std::string&)> warn;
};

class ModelFile {
 public:
  // `path`: a .gguf file, a .safetensors file, a model.safetensors.index.json,
  // or a directory holding config.json and either. Validates the config
  // against the tensors (every role present with its shape). Throws
  // FormatError naming the file and the key or tensor.
  static ModelFile open(const std::filesystem::path& path, const ModelOpenOptions& options = {});

  ModelFile(ModelFile&&) noexcept;
  ModelFile& operator=(ModelFile&&) noexcept;
  ~ModelFile();

  const ModelConfig& config() const;
  Format format() const;
  const std::filesystem::path& path() const;
  // Every file the model is read from: the GGUF file; or the safetensors
  // shards, the shard index, config.json and, when present,
  // tokenizer.json and tokenizer_config.json. Writers refuse these as outputs.
  std::vector<std::filesystem::path> files() const;
  // The tensor's name in the file (for messages).
  std::string tensor_name(Role r, std::uint32_t layer = 0) const;
  // The weight in fp32, canonical layout, role_shape() elements. Throws
  // FormatError naming the tensor when it holds NaN or Inf (with the count),
  // unless opened with allow_nonfinite (then they read as 0).
  std::vector<float> load(Role r, std::uint32_t layer = 0) const;
  // The weight as stored (no conversion for F32/F16/BF16 and the ggml block
  // types of vkquant/quant.hpp). Non-finite values are refused (or, with
  // allow_nonfinite, replaced by 0 in F32/F16/BF16; a block type's NaN scale
  // is refused either way, naming the tensor). A GGUF tensor of a ggml type
  // vkquant does not read is refused naming the tensor and the type.
  StoredWeight load_stored(Role r, std::uint32_t layer = 0) const;
  // Calls `visit` with every weight as stored, in the canonical order the
  // model hash uses: embed, each layer's layer_roles(), final_norm, lm_head
  // (untied only). One tensor is held at a time, and its file pages are
  // dropped from the process once `visit` returns (MappedFile::drop_pages).
  void for_each_stored(const std::function<void(Role, std::uint32_t layer, const StoredWeight&)>& visit) const;
  // Gives the mapped file pages `w` was read from back to the kernel
  // (MappedFile::drop_pages): for a reader that holds one weight at a time,
  // so that its resident memory follows one tensor, not the model. `w`'s
  // bytes stay readable (they fault in again).
  void drop_pages(const StoredWeight& w) const;
  // The file's storage type of the tensor behind a role ("F32", "F16", "Q8_0", ...).
  std::string dtype(Role r, std::uint32_t layer = 0) const;
  // The tokenizer the file carries or sits next to (tokenizer.json, GGUF
  // vocabulary), or the byte tokenizer for byte-level models.
  // Throws FormatError when the tokenizer has more tokens than the
  // embedding has rows (fewer is vocabulary padding: see Tokenizer::vocab_size).
  std::unique_ptr<Tokenizer> tokenizer() const;

 private:
  std::unique_ptr<Tokenizer> make_tokenizer() const;
  struct Impl;
  explicit ModelFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// fp32 weights of a whole model in host memory (small models, the CPU reference).
struct HostLayer {
  std::vector<float> attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm;
  std::vector<float> ffn_norm, w_gate, w_up, w_down;          // dense
  std::vector<float> router, exp_gate, exp_up, exp_down;      // moe
};
struct HostWeights {
  ModelConfig config;
  std::vector<float> embed;       // (vocab, dim)
  std::vector<HostLayer> layers;
  std::vector<float> final_norm;  // (dim)
  std::vector<float> lm_head;     // (vocab, dim); equals embed when tied
};
HostWeights load_host_weights(const ModelFile& f);

}  // namespace vkq
