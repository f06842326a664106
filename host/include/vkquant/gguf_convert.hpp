// A Hugging Face checkpoint as GGUF, the way llama.cpp's convert_hf_to_gguf.py
// writes it: the general.* and {arch}.* keys from config.json, the
// tokenizer.ggml.* keys from tokenizer.json (or the byte vocabulary of the
// bundled byte-level models), each role's tensor under its GGUF name with the
// llama q/k rows permuted, fused tensors whole, and the RoPE factor tensors
// GGUF keeps where config.json keeps numbers. Shared by `vkquant quantize`
// (safetensors in, GGUF out) and vkq-synth (tools/synth).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "vkquant/gguf.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq {

using GgufKeys = std::vector<std::pair<std::string, GgufValue>>;

// llama.cpp's general.file_type values (llama.h, enum llama_ftype).
namespace gguf_ftype {
inline constexpr std::uint32_t all_f32 = 0, f16 = 1, q4_0 = 2, q8_0 = 7, q4_k_s = 14, q4_k_m = 15, q5_k_s = 16,
                               q5_k_m = 17, q6_k = 18, bf16 = 32;
}
// general.quantization_version of a file with block types (ggml.h GGML_QNT_VERSION).
inline constexpr std::uint32_t kGgufQuantizationVersion = 2;

// The hyper-parameters the {arch}.* keys are written from.
struct GgufHparams {
  std::string arch;  // general.architecture: "llama", "qwen2", "qwen3", "phi3", "olmoe"
  std::uint32_t vocab = 0, dim = 0, ffn = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  std::uint32_t experts = 0, experts_used = 0;  // MoE only
  bool norm_topk = false;                       // MoE: renormalised top-k weights
};

// general.* and {arch}.* keys as convert_hf_to_gguf.py writes them for
// `config` (config.json), general.file_type = `file_type`. Numbers the
// config leaves out take Hugging Face's defaults.
GgufKeys gguf_model_keys(const GgufHparams& h, const nlohmann::json& config, const std::string& name, std::uint32_t file_type);

// tokenizer.json + tokenizer_config.json + config.json -> the tokenizer.ggml.*
// keys convert_hf_to_gguf.py writes: "gpt2" (byte-level BPE, _set_vocab_gpt2)
// or "llama" (SentencePiece, _set_vocab_sentencepiece; the scores, which
// tokenizer.json does not keep, rebuilt as -rank). `vocab_size` (the
// config's, the embedding's rows) pads the token list with "[PAD<i>]" UNUSED
// tokens as llama.cpp does. `pre`: tokenizer.ggml.pre for byte-level BPE.
// Throws vkq::FormatError naming `tokenizer_path` and the key.
GgufKeys gguf_vocab_keys(const nlohmann::json& tokenizer, const nlohmann::json& tokenizer_config, const nlohmann::json& config,
                         std::uint32_t vocab_size, const std::string& pre, const std::filesystem::path& tokenizer_path);

// The vocabulary of a byte-level model (the bundled ones, as
// tools/train/export.py writes it): byte b is "<0xBB>" (BYTE), the space
// "\u2581" (NORMAL, as llama.cpp's SentencePiece tokenizer rewrites it), ids
// from 256 on CONTROL ("<s>" for bos, "</s>" for eos); vkquant.tokenizer
// "bytes" tells vkquant to read it as the byte tokenizer.
GgufKeys gguf_byte_vocab_keys(std::uint32_t vocab_size, std::optional<std::int32_t> bos, std::optional<std::int32_t> eos);

// tokenizer.ggml.pre for a byte-level BPE whose pre-tokenization is `split`
// (Tokenizer::pre_tokenizer(): "gpt2", "llama3", "qwen2"); nullopt for others.
std::optional<std::string> gguf_pre_for_split(const std::string& split);

// convert_hf_to_gguf.py LlamaModel.permute: GGUF `llama` stores q/k rows for
// adjacent-pair RoPE. Row `row` of such a tensor of `rows` rows over `heads`
// heads holds Hugging Face row h*hd + (hd/2)*j + i, where row = h*hd + 2i + j.
std::uint64_t gguf_permuted_source_row(std::uint64_t row, std::uint64_t rows, std::uint32_t heads);

// rope_freqs.weight for rope_type llama3 (convert_hf_to_gguf.py
// LlamaModel.generate_extra_tensors): one divisor per rotated pair, the
// frequencies computed in float32 as torch does.
std::vector<float> llama3_rope_freqs(double theta, std::uint32_t head_dim, double factor, double low_freq_factor,
                                     double high_freq_factor, double original_ctx);

// ---- a model's tensors, as GGUF tensors --------------------------------------------

// One GGUF tensor written from a model's roles: the rows of `parts` in turn
// (several for a fused tensor), rows permuted when `permute_heads` is set,
// or `values` (a RoPE factor tensor GGUF has and config.json derives).
struct GgufTensorPlan {
  std::string name;
  std::vector<std::uint64_t> ne;  // ggml order: ne[0] innermost
  std::vector<std::pair<Role, std::uint32_t>> parts;  // (role, layer)
  std::uint32_t permute_heads = 0;
  std::vector<float> values;
  std::uint64_t elements() const;
};

// Every tensor of `c` in GGUF, in llama.cpp's per-layer order (embedding,
// each layer's roles, output norm, output, RoPE factors). Throws
// vkq::Error for RoPE scaling it cannot write (yarn).
std::vector<GgufTensorPlan> gguf_tensor_plan(const ModelConfig& c);

// The tensor's values in fp32, GGUF row order (ggml order: ne[0] contiguous).
std::vector<float> gguf_tensor_values(const ModelFile& model, const GgufTensorPlan& t);

// general.architecture for `c` (Mistral's is "llama").
std::string gguf_architecture(const ModelConfig& c);

// The metadata of a safetensors model (config.json, tokenizer.json and
// tokenizer_config.json when present, else the byte vocabulary of a
// byte-level model) with general.file_type = `file_type`; general.name is
// the model directory's name. Throws vkq::FormatError naming the file.
GgufKeys gguf_metadata_from_hf(const ModelFile& model, std::uint32_t file_type);

}  // namespace vkq
