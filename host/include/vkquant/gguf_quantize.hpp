// Weight quantization of a whole model into a GGUF file (`vkquant quantize`):
// which ggml type each tensor gets, by llama.cpp's rules, and the writer that
// reads, quantizes and appends one tensor at a time.
//
// The rules are llama.cpp's (third_party/llamacpp/src/src/llama-quant.cpp, the
// source fetched by scripts/fetch-peer.sh; tensor_allows_quantization,
// llama_tensor_get_type_impl, tensor_type_fallback):
//   - only tensors of 2+ dims whose name ends in "weight" are quantized, not
//     norms, routers (ffn_gate_inp) or the small special tensors it lists;
//     every other tensor keeps its type (from safetensors: F32);
//   - f16, q8_0, q4_0, q6_k, q4_k_m, q5_k_m are llama-quantize's file types
//     of those names (LLAMA_FTYPE_MOSTLY_*): every quantized tensor that type
//     except: output.weight (token_embd.weight when the embeddings are tied)
//     Q6_K (Q8_0 stays Q8_0; Q8_0 too when its rows are not whole blocks);
//     with exactly 8 experts attn_v and attn_k Q8_0; and for the _m types
//     attn_v (attn_qkv, attn_kv_b) and ffn_down Q6_K in the layers
//     use_more_bits picks (the first and last eighth and every third
//     between), q4_k_m's attn_output Q5_K with 8 experts, and a 70B
//     llama/qwen2 (80 layers, grouped KV for llama) lifts a Q4_K attn_v to Q5_K;
//   - q4_k, q5_k: every quantized tensor that type (llama-quantize --pure;
//     llama-quantize's own "Q4_K" and "Q5_K" are aliases of Q4_K_M and
//     Q5_K_M, here they are not);
//   - then a row length that is not a whole number of blocks falls back:
//     Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when even that does not fit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vkquant/model/model_file.hpp"
#include "vkquant/quant.hpp"

namespace vkq {

// The --type values of `vkquant quantize`.
enum class QuantMix { f16, q8_0, q4_0, q4_k, q5_k, q6_k, q4_k_m, q5_k_m };

struct QuantMixInfo {
  QuantMix mix;
  const char* name;         // as the CLI spells it: "q4_k_m"
  quant::Type base;         // the type most weights get
  bool rules;               // llama.cpp's per-tensor rules apply (all but f16, q4_k, q5_k)
  std::uint32_t file_type;  // general.file_type (llama.h LLAMA_FTYPE_*)
};
// Every mix, in the order above.
std::span<const QuantMixInfo> quant_mixes();
const QuantMixInfo& quant_mix_info(QuantMix m);
// By name, either case ("q4_k_m", "Q4_K_M"); nullopt when unknown.
std::optional<QuantMix> parse_quant_mix(std::string_view name);
// "f16, q8_0, q4_0, q4_k, q5_k, q6_k, q4_k_m, q5_k_m" (for messages).
std::string quant_mix_names();

// What the rules read of the model besides its tensors (GGUF keys).
struct QuantModelFacts {
  std::string arch;           // general.architecture
  std::uint32_t layers = 0;   // {arch}.block_count
  std::uint32_t experts = 0;  // {arch}.expert_count (0: dense)
  std::uint32_t heads = 0, kv_heads = 0;
};

// A tensor as the rules see it: GGUF name, ggml-order dims, stored ggml type.
struct QuantTensor {
  std::string name;
  std::vector<std::uint64_t> ne;
  std::uint32_t type = 0;
};

// The type one tensor is stored in.
struct QuantDecision {
  std::uint32_t type = 0;      // ggml type id
  bool quantizable = false;    // llama.cpp would choose a type for it (else: kept as stored)
  std::uint32_t wanted = 0;    // the type the rules chose before a row-length fallback (== type when none)
};

// The decision for every tensor of `tensors` (same order). Counters that
// depend on order (the n-th attn_v) count in llama.cpp's order: by layer,
// then by name. Throws vkq::Error when a tensor's row length has no fallback.
std::vector<QuantDecision> quant_tensor_types(const QuantModelFacts& facts, const std::vector<QuantTensor>& tensors, QuantMix mix);

// Called before each tensor is written: (index, count, name, type).
using QuantizeProgress = std::function<void(std::size_t, std::size_t, const std::string&, std::uint32_t)>;

struct QuantizeSummary {
  std::map<std::uint32_t, std::size_t> tensors_per_type;  // ggml type -> tensors
  std::size_t tensors = 0;
  std::uint64_t weights = 0;    // elements of every tensor
  std::uint64_t bytes_in = 0;   // tensor bytes as the input stores them
  std::uint64_t bytes_out = 0;  // tensor bytes written
  std::uint64_t file_bytes = 0;
  std::size_t copied = 0;       // tensors copied byte for byte (already in their type)
  // Row-length fallbacks, one line per (wanted type, row length, type): "4 tensors with rows of 704: Q4_K -> Q5_0".
  std::vector<std::string> fallbacks;
  double bits_per_weight() const { return weights ? 8.0 * double(bytes_out) / double(weights) : 0.0; }
};

// Writes `model` (GGUF, or safetensors converted as convert_hf_to_gguf.py
// converts it) as a GGUF file at `out` with the types of
// quant_tensor_types(): metadata copied (general.file_type set,
// general.quantization_version 2 added), tensors in the input's order, one
// tensor read, quantized and appended at a time; a tensor already in its
// type is copied byte for byte. Everything is checked before anything is
// written, and the file appears only when complete (AtomicFile). Throws
// vkq::Error naming the tensor for a type that cannot be read or written,
// vkq::FormatError for non-finite weights.
QuantizeSummary quantize_to_gguf(const ModelFile& model, const std::filesystem::path& out, QuantMix mix,
                                 const QuantizeProgress& progress = {});

}  // namespace vkq
