// RoPE frequencies: the one table every RoPE in vkquant reads (the Vulkan
// rope kernel, the K-codec's decode and mean-RoPE encode, attn_kcode's
// rotation table, and their CPU references), built from a model's RoPE
// scaling exactly as Hugging Face transformers' modeling_rope_utils.py does
// (and llama.cpp's rope_yarn / freq_factors agree with it). Pair i of a head
// of hd coordinates turns by angle = position · inv_freq[i]; cos and sin are
// multiplied by `scale` (YaRN's and LongRoPE's attention factor, else 1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vkq {

enum class RopeType {
  plain,     // inv_freq_i = theta^(-2i/hd)
  linear,    // position interpolation: inv_freq / factor
  llama3,    // Llama 3.1: low frequencies / factor, high kept, smooth between
  yarn,      // YaRN: per-frequency ramp between interpolation and extrapolation, attention factor
  longrope,  // Phi-3 LongRoPE: per-frequency factors (short or long), attention factor
};
const char* rope_type_name(RopeType t);

struct RopeScaling {
  RopeType type = RopeType::plain;
  double factor = 1.0;                // linear, llama3, yarn, longrope (= max_position / original)
  std::uint32_t original_ctx = 0;     // llama3, yarn, longrope: the pre-training context
  double low_freq_factor = 1.0;       // llama3
  double high_freq_factor = 4.0;      // llama3
  double beta_fast = 32.0;            // yarn
  double beta_slow = 1.0;             // yarn
  bool truncate = true;               // yarn: floor/ceil the correction range (HF default)
  double attention_factor = 0.0;      // yarn/longrope: > 0 given; 0: derived from factor
  double mscale = 0.0, mscale_all_dim = 0.0;  // yarn (DeepSeek form of the attention factor)
  // Per-frequency divisors (hd/2): GGUF's rope_freqs.weight (Llama 3.1 as
  // convert_hf_to_gguf.py stores it), longrope's short or long factors.
  // Applied to the type's inv_freq; empty: none.
  std::vector<double> freq_factors;
  // longrope: both factor lists; the long ones are used when the context in
  // use exceeds original_ctx (as llama.cpp decides once per context).
  std::vector<double> long_factors, short_factors;
};

struct RopeTable {
  std::uint32_t hd = 0;         // rotated coordinates (pairs (i, i + hd/2) or (2i, 2i+1))
  std::vector<float> inv_freq;  // (hd/2) radians per position, fp32 as the model was trained with
  float scale = 1.0f;           // cos and sin are multiplied by this
};

// The table for heads of hd coordinates, base theta, at a context of `ctx`
// positions (longrope picks its factors by it). Throws vkq::Error when the
// scaling's numbers are out of range (a loader validates and names keys first).
RopeTable rope_table(float theta, std::uint32_t hd, const RopeScaling& s, std::uint32_t ctx);
// Plain RoPE (no scaling): theta^(-2i/hd).
RopeTable rope_table_plain(float theta, std::uint32_t hd);

// CPU RoPE of one head (hd values) in place at `pos` from the table, fp64
// angles: neox pairs (i, i + hd/2) (Hugging Face rotate_half), else (2i, 2i+1).
void rope_apply(const RopeTable& t, double* v, double pos, bool neox = true);
void rope_apply(const RopeTable& t, float* v, double pos, bool neox = true);

}  // namespace vkq
