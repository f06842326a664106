// The type each tensor gets (vkquant/gguf_quantize.hpp): llama.cpp's rules,
// read from third_party/llamacpp/src/src/llama-quant.cpp and written anew
// for the file types `vkquant quantize` offers. Falcon's variants, the
// IQ/Q2/Q3 file types and the imatrix-only rules are left out (vkquant reads
// no Falcon, offers none of those types and takes no imatrix).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <numeric>

#include "vkquant/error.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/gguf_convert.hpp"
#include "vkquant/gguf_quantize.hpp"

namespace vkq {

namespace {

using quant::Type;

constexpr QuantMixInfo kMixes[] = {
    {QuantMix::f16, "f16", Type::f16, false, gguf_ftype::f16},
    {QuantMix::q8_0, "q8_0", Type::q8_0, true, gguf_ftype::q8_0},
    {QuantMix::q4_0, "q4_0", Type::q4_0, true, gguf_ftype::q4_0},
    // No LLAMA_FTYPE says "all Q4_K": llama-quantize --pure Q4_K_S writes 14.
    {QuantMix::q4_k, "q4_k", Type::q4_k, false, gguf_ftype::q4_k_s},
    {QuantMix::q5_k, "q5_k", Type::q5_k, false, gguf_ftype::q5_k_s},
    {QuantMix::q6_k, "q6_k", Type::q6_k, true, gguf_ftype::q6_k},
    {QuantMix::q4_k_m, "q4_k_m", Type::q4_k, true, gguf_ftype::q4_k_m},
    {QuantMix::q5_k_m, "q5_k_m", Type::q5_k, true, gguf_ftype::q5_k_m},
};

// tensor_get_category(): broad kinds by name, tested in this order.
enum class Cat { output, token_embd, attn_qkv, attn_kv_b, attn_v, attn_k, attn_q, attn_output, ffn_up, ffn_gate, ffn_down, other };

bool has(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

Cat category(std::string_view n) {
  if (n == "output.weight") return Cat::output;
  if (n == "token_embd.weight" || n == "per_layer_token_embd.weight") return Cat::token_embd;
  if (has(n, "attn_qkv.weight")) return Cat::attn_qkv;
  if (has(n, "attn_kv_b.weight")) return Cat::attn_kv_b;
  if (has(n, "attn_v.weight")) return Cat::attn_v;
  if (has(n, "attn_k.weight")) return Cat::attn_k;
  if (has(n, "attn_q.weight")) return Cat::attn_q;
  if (has(n, "attn_output.weight")) return Cat::attn_output;
  if (has(n, "ffn_up")) return Cat::ffn_up;
  if (has(n, "ffn_gate")) return Cat::ffn_gate;
  if (has(n, "ffn_down")) return Cat::ffn_down;
  return Cat::other;
}

// category_is_attn_v(): the tensors that hold V (more sensitive to quantization).
bool attn_v_like(Cat c) { return c == Cat::attn_v || c == Cat::attn_qkv || c == Cat::attn_kv_b; }

// ggml_n_dims(): trailing dims of 1 do not count.
std::size_t n_dims(const std::vector<std::uint64_t>& ne) {
  std::size_t n = ne.size();
  while (n > 1 && ne[n - 1] == 1) --n;
  return std::max<std::size_t>(n, 1);
}

// tensor_allows_quantization() with llama-quantize's defaults.
bool allows_quantization(const QuantTensor& t) {
  const std::string_view n = t.name;
  if (n_dims(t.ne) < 2 || !n.ends_with("weight") || has(n, "_norm.weight")) return false;
  if (n == "position_embd.weight" || n == "token_types.weight") return false;  // BERT's
  static constexpr std::string_view kKept[] = {
      "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj", "ssm_conv1d",
      "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight", "time_mix_first.weight",
      "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
      "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
      "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
      "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
      ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"};
  return std::none_of(std::begin(kKept), std::end(kKept), [&](std::string_view k) { return has(n, k); });
}

// The layer of "blk.N.…"; -1 for other names.
int layer_of(const std::string& name) {
  int l = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &l) != 1) return -1;
  return l;
}

// The layers that keep more bits in the _M mixes: the first and last eighth, and every third one between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

std::uint32_t block_of(Type t) { return quant::info(t).block; }

// tensor_type_fallback(): a type whose blocks do not tile the rows.
Type fallback(Type t, std::uint64_t ne0, const std::string& name) {
  if (ne0 % block_of(t) == 0) return t;
  Type f = t;
  switch (t) {
    case Type::q2_k:
    case Type::q3_k: f = Type::q4_0; break;
    case Type::q4_k: f = Type::q5_0; break;
    case Type::q5_k: f = Type::q5_1; break;
    case Type::q6_k: f = Type::q8_0; break;
    case Type::iq4_xs: f = Type::iq4_nl; break;
    default:
      if (block_of(t) > 32)
        throw Error("tensor '" + name + "': rows of " + std::to_string(ne0) + " are not whole " + quant::info(t).ggml_name +
                    " blocks and " + quant::info(t).ggml_name + " has no fallback type");
  }
  // Most likely rows not a multiple of 32: llama.cpp's last resort.
  if (ne0 % block_of(f) != 0) f = Type::f16;
  return f;
}

// Per-model state of llama_tensor_get_type_impl: counters of V and FFN tensors.
struct MixState {
  const QuantModelFacts& facts;
  QuantMix mix;
  bool tied = true;  // no output.weight: token_embd takes its rule
  int n_attn_v = 0, i_attn_v = 0;
  int i_ffn_down = 0;
  bool is_70b() const {
    return facts.layers == 80 && ((facts.arch == "llama" && facts.heads != facts.kv_heads) || facts.arch == "qwen2");
  }
};

// llama_tensor_get_type_impl() for Q8_0, Q4_0, Q6_K, Q4_K_M and Q5_K_M (non-Falcon, no imatrix).
Type rule(MixState& s, const QuantTensor& t, Cat cat, Type type) {
  const bool q4_k_m = s.mix == QuantMix::q4_k_m, k_m = q4_k_m || s.mix == QuantMix::q5_k_m;
  const bool eight_experts = s.facts.experts == 8;
  if (cat == Cat::output || (s.tied && cat == Cat::token_embd)) {
    if (t.ne[0] % block_of(type) != 0) return Type::q8_0;
    return type == Type::q8_0 ? type : Type::q6_k;
  }
  if (cat == Cat::token_embd) return type;
  if (attn_v_like(cat)) {
    if (k_m && use_more_bits(s.i_attn_v, s.n_attn_v)) type = Type::q6_k;
    if (s.is_70b() && type == Type::q4_k) type = Type::q5_k;  // 8 heads share each V: more bits cost little
    if (eight_experts) type = Type::q8_0;
    ++s.i_attn_v;
    return type;
  }
  if (cat == Cat::attn_k) return eight_experts ? Type::q8_0 : type;
  if (cat == Cat::ffn_down) {
    int layer = s.i_ffn_down;
    const int n = int(s.facts.layers);
    if (s.facts.experts > 1) {  // experts' tensors need not come in layer order: the name says
      layer = layer_of(t.name);
      if (layer < 0 || layer >= n)
        throw Error("tensor '" + t.name + "': no layer below block_count " + std::to_string(n) + " in its name");
    }
    if (k_m && use_more_bits(layer, n)) type = Type::q6_k;
    ++s.i_ffn_down;
    return type;
  }
  if (cat == Cat::attn_output && eight_experts && q4_k_m) return Type::q5_k;
  return type;
}

}  // namespace

std::span<const QuantMixInfo> quant_mixes() { return kMixes; }

const QuantMixInfo& quant_mix_info(QuantMix m) { return kMixes[std::size_t(m)]; }

std::optional<QuantMix> parse_quant_mix(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& m : kMixes)
    if (lower == m.name) return m.mix;
  return std::nullopt;
}

std::string quant_mix_names() {
  std::string out;
  for (const auto& m : kMixes) out += (out.empty() ? "" : ", ") + std::string(m.name);
  return out;
}

std::vector<QuantDecision> quant_tensor_types(const QuantModelFacts& facts, const std::vector<QuantTensor>& tensors, QuantMix mix) {
  const QuantMixInfo& m = quant_mix_info(mix);
  MixState s{facts, mix};
  for (const auto& t : tensors) {
    const Cat c = category(t.name);
    if (attn_v_like(c)) ++s.n_attn_v;
    if (c == Cat::output) s.tied = false;
  }
  // llama.cpp visits tensors by layer, then name (llama_model_loader's weight_name_comparer).
  std::vector<std::size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const int la = layer_of(tensors[a].name), lb = layer_of(tensors[b].name);
    return la != lb ? la < lb : tensors[a].name < tensors[b].name;
  });
  std::vector<QuantDecision> out(tensors.size());
  for (std::size_t i : order) {
    const QuantTensor& t = tensors[i];
    QuantDecision& d = out[i];
    d.type = d.wanted = t.type;
    if (!allows_quantization(t)) continue;
    d.quantizable = true;
    Type type = m.base;
    if (quant::is_block_quant(type)) {
      if (m.rules) type = rule(s, t, category(t.name), type);
      d.wanted = std::uint32_t(type);
      type = fallback(type, t.ne[0], t.name);
    } else {
      d.wanted = std::uint32_t(type);
    }
    d.type = std::uint32_t(type);
  }
  return out;
}

}  // namespace vkq
