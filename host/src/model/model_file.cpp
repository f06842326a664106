#include "vkquant/model/model_file.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <mutex>
#include <set>
#include <sstream>
#include <variant>

#include <nlohmann/json.hpp>

#include "vkquant/gguf.hpp"
#include "vkquant/json_strict.hpp"
#include "vkquant/model/arch.hpp"
#include "vkquant/mapped_file.hpp"
#include "vkquant/safetensors_index.hpp"

namespace vkq {

const char* role_name(Role r) {
  switch (r) {
    case Role::embed: return "embed";
    case Role::attn_norm: return "attn_norm";
    case Role::wq: return "wq";
    case Role::wk: return "wk";
    case Role::wv: return "wv";
    case Role::wo: return "wo";
    case Role::bq: return "bq";
    case Role::bk: return "bk";
    case Role::bv: return "bv";
    case Role::q_norm: return "q_norm";
    case Role::k_norm: return "k_norm";
    case Role::ffn_norm: return "ffn_norm";
    case Role::w_gate: return "w_gate";
    case Role::w_up: return "w_up";
    case Role::w_down: return "w_down";
    case Role::router: return "router";
    case Role::exp_gate: return "exp_gate";
    case Role::exp_up: return "exp_up";
    case Role::exp_down: return "exp_down";
    case Role::final_norm: return "final_norm";
    case Role::lm_head: return "lm_head";
  }
  return "?";
}

std::vector<Role> layer_roles(const ModelConfig& c) {
  std::vector<Role> r{Role::attn_norm, Role::wq, Role::wk, Role::wv, Role::wo};
  if (c.qkv_bias) r.insert(r.end(), {Role::bq, Role::bk, Role::bv});
  if (c.qk_norm) r.insert(r.end(), {Role::q_norm, Role::k_norm});
  r.push_back(Role::ffn_norm);
  if (c.moe()) r.insert(r.end(), {Role::router, Role::exp_gate, Role::exp_up, Role::exp_down});
  else r.insert(r.end(), {Role::w_gate, Role::w_up, Role::w_down});
  return r;
}

std::vector<std::uint64_t> role_shape(const ModelConfig& c, Role r) {
  const std::uint64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), f = c.ffn, e = c.experts;
  switch (r) {
    case Role::embed: case Role::lm_head: return {c.vocab, d};
    case Role::attn_norm: case Role::ffn_norm: case Role::final_norm: return {d};
    case Role::wq: return {q, d};
    case Role::wk: case Role::wv: return {kv, d};
    case Role::wo: return {d, q};
    case Role::bq: return {q};
    case Role::bk: case Role::bv: return {kv};
    case Role::q_norm: return {c.qk_norm_per_head ? c.head_dim : q};
    case Role::k_norm: return {c.qk_norm_per_head ? c.head_dim : kv};
    case Role::w_gate: case Role::w_up: return {f, d};
    case Role::w_down: return {d, f};
    case Role::router: return {e, d};
    case Role::exp_gate: case Role::exp_up: return {e, f, d};
    case Role::exp_down: return {e, d, f};
  }
  return {};
}

namespace {

std::string shape_str(const std::vector<std::uint64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool is_layer_role(Role r) { return r != Role::embed && r != Role::final_norm && r != Role::lm_head; }

// GGUF `llama` stores q/k rows permuted for adjacent-pair RoPE
// (convert_hf_to_gguf.py): GGUF row h*hd + 2i + j holds HF row h*hd + (hd/2)*j + i.
std::vector<float> unpermute_rows(const std::vector<float>& w, std::uint32_t heads, std::uint32_t hd, std::uint64_t cols) {
  std::vector<float> out(w.size());
  for (std::uint32_t h = 0; h < heads; ++h)
    for (std::uint32_t i = 0; i < hd / 2; ++i)
      for (std::uint32_t j = 0; j < 2; ++j) {
        const std::uint64_t src = std::uint64_t(h) * hd + 2 * i + j, dst = std::uint64_t(h) * hd + (hd / 2) * j + i;
        std::copy_n(w.begin() + std::ptrdiff_t(src * cols), cols, out.begin() + std::ptrdiff_t(dst * cols));
      }
  return out;
}


}  // namespace

struct ModelFile::Impl {
  Impl(std::filesystem::path p, ModelConfig c, std::variant<SafetensorsModel, GgufFile> f)
      : path(std::move(p)), config(std::move(c)), file(std::move(f)) {}
  std::filesystem::path path;
  ModelConfig config;
  std::variant<SafetensorsModel, GgufFile> file;
  ModelOpenOptions options;
  mutable std::mutex warned_mutex;
  mutable std::set<std::string> warned;  // tensors already reported as non-finite

  // Refuses NaN/Inf in tensor `name`, or (allow_nonfinite) zeroes them and
  // warns once per tensor.
  void check_finite(std::vector<float>& w, const std::string& name) const {
    const auto bad = std::count_if(w.begin(), w.end(), [](float v) { return !std::isfinite(v); });
    if (bad == 0) return;
    const std::string what = "tensor '" + name + "': " + std::to_string(bad) + " of " + std::to_string(w.size()) +
                             " values are NaN or Inf";
    if (!options.allow_nonfinite) throw FormatError(path, what);
    for (float& v : w)
      if (!std::isfinite(v)) v = 0.0f;
    warn_replaced(name, what);
  }
  // Tells options.warn (or stderr) once per tensor that `what` was replaced by 0.
  void warn_replaced(const std::string& name, const std::string& what) const {
    {
      const std::lock_guard<std::mutex> lock(warned_mutex);
      if (!warned.insert(name).second) return;
    }
    const std::string msg = "warning: " + path.string() + ": " + what + "; replaced by 0";
    if (options.warn) {
      options.warn(msg);
    } else {
      std::fprintf(stderr, "%s\n", msg.c_str());
    }
  }

  // Drops the resident pages of file bytes `b` (whichever mapping holds them).
  void drop_pages(std::span<const std::byte> b) const {
    if (const auto* g = gguf()) return g->mapping().drop_pages(b);
    for (const auto& shard : st()->shards()) shard.mapping().drop_pages(b);
  }

  const SafetensorsModel* st() const { return std::get_if<SafetensorsModel>(&file); }
  const GgufFile* gguf() const { return std::get_if<GgufFile>(&file); }
  bool llama_permuted() const { return gguf() && config.spec->gguf_permuted_qk; }
  Format format() const { return st() ? Format::safetensors : Format::gguf; }

  TensorRef ref(Role r, std::uint32_t layer, std::uint32_t expert = 0) const {
    return tensor_ref(config, format(), r, layer, expert);
  }
  std::string name(Role r, std::uint32_t layer) const { return ref(r, layer).name; }

  // Shape of one named tensor, outermost first, and its dtype name; nullopt when absent.
  std::optional<std::pair<std::vector<std::uint64_t>, std::string>> lookup(const std::string& n) const {
    if (const auto* s = st()) {
      const SafetensorsFile* shard = nullptr;
      const TensorInfo* t = s->find(n, &shard);
      if (!t) return std::nullopt;
      return std::make_pair(t->shape, std::string(dtype_name(t->dtype)));
    }
    const GgufTensorInfo* t = gguf()->find_tensor(n);
    if (!t) return std::nullopt;
    return std::make_pair(std::vector<std::uint64_t>(t->ne.rbegin(), t->ne.rend()), std::string(ggml_type_name(t->type)));
  }

  std::vector<float> read(const std::string& n) const {
    if (const auto* s = st()) return s->to_float(n);
    return gguf()->to_float(*gguf()->find_tensor(n));
  }
  // The role's weight: the whole tensor, or its rows of a fused one.
  std::vector<float> read(const TensorRef& t) const {
    std::vector<float> w = read(t.name);
    if (t.rows == 0) return w;
    const std::uint64_t cols = w.size() / t.full_rows;  // validate_tensors checked the shape
    return std::vector<float>(w.begin() + std::ptrdiff_t(t.row0 * cols), w.begin() + std::ptrdiff_t((t.row0 + t.rows) * cols));
  }

  // Checks one tensor exists with `shape` (fused: full_rows rows of the
  // role's columns); throws FormatError naming it.
  void expect(const TensorRef& t, std::vector<std::uint64_t> shape, Role r) const {
    const std::string& n = t.name;
    if (t.rows) shape[0] = t.full_rows;
    const auto found = lookup(n);
    if (!found) throw FormatError(path, "tensor '" + n + "' (" + role_name(r) + "): missing");
    if (found->first != shape)
      throw FormatError(path, "tensor '" + n + "': shape " + shape_str(found->first) + " does not match the config's " +
                                  shape_str(shape));
  }

  void validate_tensors() const {
    const ModelConfig& c = config;
    auto check = [&](Role r, std::uint32_t layer) {
      auto shape = role_shape(c, r);
      if (st() && (r == Role::exp_gate || r == Role::exp_up || r == Role::exp_down)) {
        const std::vector<std::uint64_t> one(shape.begin() + 1, shape.end());
        for (std::uint32_t e = 0; e < c.experts; ++e) expect(ref(r, layer, e), one, r);
        return;
      }
      expect(ref(r, layer), shape, r);
    };
    check(Role::embed, 0);
    for (std::uint32_t l = 0; l < c.layers; ++l)
      for (Role r : layer_roles(c)) check(r, l);
    check(Role::final_norm, 0);
    if (!c.tied_embeddings) check(Role::lm_head, 0);
  }
};

ModelFile::ModelFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModelFile::ModelFile(ModelFile&&) noexcept = default;
ModelFile& ModelFile::operator=(ModelFile&&) noexcept = default;
ModelFile::~ModelFile() = default;

ModelFile ModelFile::open(const std::filesystem::path& path, const ModelOpenOptions& options) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw FormatError(path, "no such file or directory");
  // Anything but a directory must be a regular file: MappedFile refuses a
  // FIFO or device naming what it is (and without blocking on it).
  if (!std::filesystem::is_directory(path, ec) && MappedFile::open(path).starts_with("GGUF")) {
    auto gguf = GgufFile::open(path);
    auto config = config_from_gguf(gguf);
    auto impl = std::make_unique<Impl>(path, std::move(config), std::move(gguf));
    impl->options = options;
    impl->validate_tensors();
    return ModelFile(std::move(impl));
  }
  auto st = SafetensorsModel::open(path);
  const auto cfg_path = st.directory() / "config.json";
  if (!std::filesystem::exists(cfg_path, ec))
    throw FormatError(cfg_path, "missing: a safetensors model needs its config.json beside it");
  const auto json = read_json_file(cfg_path, "config.json");
  auto impl = std::make_unique<Impl>(path, config_from_hf(json, cfg_path), std::move(st));
  impl->options = options;
  // Tied models may still ship lm_head.weight; untied ones must.
  impl->validate_tensors();
  return ModelFile(std::move(impl));
}

const ModelConfig& ModelFile::config() const { return impl_->config; }
Format ModelFile::format() const { return impl_->gguf() ? Format::gguf : Format::safetensors; }
const std::filesystem::path& ModelFile::path() const { return impl_->path; }

std::vector<std::filesystem::path> ModelFile::files() const {
  if (const auto* g = impl_->gguf()) return {g->path()};
  const auto* st = impl_->st();
  std::vector<std::filesystem::path> out;
  for (const auto& shard : st->shards()) out.push_back(shard.path());
  if (st->source().extension() == ".json") out.push_back(st->source());
  out.push_back(st->directory() / "config.json");
  std::error_code ec;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"})
    if (std::filesystem::exists(st->directory() / name, ec)) out.push_back(st->directory() / name);
  return out;
}

std::string ModelFile::tensor_name(Role r, std::uint32_t layer) const {
  if (impl_->st() && (r == Role::exp_gate || r == Role::exp_up || r == Role::exp_down)) {
    auto n = impl_->name(r, layer);
    return n.replace(n.find(".experts.0.") + 9, 1, "*");
  }
  const TensorRef t = impl_->ref(r, layer);
  if (t.rows) return t.name + "[" + std::to_string(t.row0) + ":" + std::to_string(t.row0 + t.rows) + "]";
  return t.name;
}

std::string ModelFile::dtype(Role r, std::uint32_t layer) const {
  const auto found = impl_->lookup(impl_->name(r, layer));
  return found ? found->second : "?";
}

std::vector<float> ModelFile::load(Role r, std::uint32_t layer) const {
  const ModelConfig& c = impl_->config;
  if (r == Role::lm_head && c.tied_embeddings) return load(Role::embed);
  if (is_layer_role(r) && layer >= c.layers)
    throw Error("ModelFile::load: layer " + std::to_string(layer) + " out of range");
  std::vector<float> w;
  if (impl_->st() && (r == Role::exp_gate || r == Role::exp_up || r == Role::exp_down)) {
    for (std::uint32_t e = 0; e < c.experts; ++e) {
      const std::string n = impl_->ref(r, layer, e).name;
      auto one = impl_->read(n);
      impl_->check_finite(one, n);
      w.insert(w.end(), one.begin(), one.end());
    }
    return w;
  }
  const TensorRef t = impl_->ref(r, layer);
  w = impl_->read(t);
  impl_->check_finite(w, t.name);
  if (impl_->llama_permuted()) {
    if (r == Role::wq || r == Role::bq) w = unpermute_rows(w, c.heads, c.head_dim, r == Role::wq ? c.dim : 1);
    if (r == Role::wk || r == Role::bk) w = unpermute_rows(w, c.kv_heads, c.head_dim, r == Role::wk ? c.dim : 1);
  }
  return w;
}

namespace {

// Non-finite values of stored data. F32/F16/BF16: the elements whose exponent
// bits are all ones. Block types: every decoded value is a product of the
// block's fp16 scale (and minus its fp16 minimum) with small integers, so
// the block decodes to finite values exactly when those fields are finite;
// counted as the elements of blocks with a non-finite field.
std::uint64_t count_nonfinite(quant::Type t, std::span<const std::byte> b) {
  auto u16 = [&](std::size_t i) { return std::uint16_t(std::uint16_t(b[i]) | std::uint16_t(b[i + 1]) << 8); };
  auto bad16 = [](std::uint16_t h) { return (h & 0x7c00u) == 0x7c00u; };
  std::uint64_t n = 0;
  switch (t) {
    case quant::Type::f32:
      for (std::size_t i = 0; i + 4 <= b.size(); i += 4) {
        std::uint32_t v;
        std::memcpy(&v, &b[i], 4);
        n += (v & 0x7f800000u) == 0x7f800000u;
      }
      return n;
    case quant::Type::f16:
      for (std::size_t i = 0; i + 2 <= b.size(); i += 2) n += bad16(u16(i));
      return n;
    case quant::Type::bf16:
      for (std::size_t i = 0; i + 2 <= b.size(); i += 2) n += (u16(i) & 0x7f80u) == 0x7f80u;
      return n;
    default: break;
  }
  // Byte offsets of each block's fp16 fields (ggml-common.h block structs).
  std::vector<std::uint32_t> fields;
  switch (t) {
    case quant::Type::q4_0: case quant::Type::q5_0: case quant::Type::q8_0:
    case quant::Type::iq4_nl: case quant::Type::iq4_xs: fields = {0}; break;
    case quant::Type::q4_1: case quant::Type::q5_1: case quant::Type::q4_k: case quant::Type::q5_k: fields = {0, 2}; break;
    case quant::Type::q2_k: fields = {80, 82}; break;   // scales[16], qs[64], d, dmin
    case quant::Type::q3_k: fields = {108}; break;      // hmask[32], qs[64], scales[12], d
    case quant::Type::q6_k: fields = {208}; break;      // ql[128], qh[64], scales[16], d
    default: throw Error(std::string("count_nonfinite: no field table for ") + quant::info(t).name);
  }
  const quant::TypeInfo& ti = quant::info(t);
  for (std::size_t blk = 0; blk + ti.bytes <= b.size(); blk += ti.bytes)
    for (std::uint32_t f : fields)
      if (bad16(u16(blk + f))) {
        n += ti.block;
        break;
      }
  return n;
}

// Zeroes the non-finite elements of F32/F16/BF16 data in place.
void zero_nonfinite(quant::Type t, std::span<std::byte> b) {
  const std::size_t w = t == quant::Type::f32 ? 4 : 2;
  for (std::size_t i = 0; i + w <= b.size(); i += w) {
    if (count_nonfinite(t, std::span<const std::byte>(&b[i], w)) != 0) std::memset(&b[i], 0, w);
  }
}

// Row h*hd + 2i + j of GGUF llama's permuted q/k (rows of `row_bytes`) moves
// to h*hd + (hd/2)*j + i, as unpermute_rows does for fp32.
std::vector<std::byte> unpermute_byte_rows(std::span<const std::byte> w, std::uint32_t heads, std::uint32_t hd, std::uint64_t row_bytes) {
  std::vector<std::byte> out(w.size());
  for (std::uint32_t h = 0; h < heads; ++h)
    for (std::uint32_t i = 0; i < hd / 2; ++i)
      for (std::uint32_t j = 0; j < 2; ++j) {
        const std::uint64_t src = std::uint64_t(h) * hd + 2 * i + j, dst = std::uint64_t(h) * hd + (hd / 2) * j + i;
        std::memcpy(&out[dst * row_bytes], &w[src * row_bytes], row_bytes);
      }
  return out;
}

std::optional<quant::Type> stored_type(DType d) {
  switch (d) {
    case DType::F32: return quant::Type::f32;
    case DType::F16: return quant::Type::f16;
    case DType::BF16: return quant::Type::bf16;
    default: return std::nullopt;
  }
}

}  // namespace

StoredWeight ModelFile::load_stored(Role r, std::uint32_t layer) const {
  const ModelConfig& c = impl_->config;
  if (r == Role::lm_head && c.tied_embeddings) return load_stored(Role::embed);
  if (is_layer_role(r) && layer >= c.layers)
    throw Error("ModelFile::load_stored: layer " + std::to_string(layer) + " out of range");
  StoredWeight w;
  w.shape = role_shape(c, r);
  std::string name;  // for messages
  if (const auto* s = impl_->st()) {
    // Safetensors: F32/F16/BF16 as stored; an expert bank gathered from its
    // per-expert tensors; other dtypes converted to F32.
    const bool bank = r == Role::exp_gate || r == Role::exp_up || r == Role::exp_down;
    const std::uint32_t parts = bank ? c.experts : 1;
    std::vector<const TensorInfo*> infos;
    std::vector<const SafetensorsFile*> shards;
    std::optional<quant::Type> common;
    bool same = true;
    for (std::uint32_t e = 0; e < parts; ++e) {
      const TensorRef t = impl_->ref(r, layer, e);
      const SafetensorsFile* shard = nullptr;
      infos.push_back(s->find(t.name, &shard));
      shards.push_back(shard);
      w.sources.push_back(shard->data(*infos.back()));
      const auto st = stored_type(infos.back()->dtype);
      if (e == 0) common = st;
      same = same && st && st == common;
      name = t.name;
    }
    const TensorRef t0 = impl_->ref(r, layer, 0);
    if (parts == 1 && same) {
      w.type = *common;
      auto bytes = shards[0]->data(*infos[0]);
      if (t0.rows) {
        const std::uint64_t rb = quant::row_bytes(w.type, w.shape.back());
        bytes = bytes.subspan(t0.row0 * rb, t0.rows * rb);
      }
      w.bytes = bytes;
    } else if (same) {
      w.type = *common;
      for (std::uint32_t e = 0; e < parts; ++e) {
        const auto b = shards[e]->data(*infos[e]);
        w.owned.insert(w.owned.end(), b.begin(), b.end());
      }
      w.bytes = w.owned;
    } else {
      // Any other dtype (or a bank of mixed dtypes): fp32, as load() reads it.
      auto f = load(r, layer);
      w.type = quant::Type::f32;
      w.owned.resize(f.size() * sizeof(float));
      std::memcpy(w.owned.data(), f.data(), w.owned.size());
      w.bytes = w.owned;
      return w;  // load() checked finiteness
    }
  } else {
    const GgufFile& g = *impl_->gguf();
    const TensorRef t = impl_->ref(r, layer);
    name = t.name;
    const GgufTensorInfo& info = *g.find_tensor(t.name);
    const quant::TypeInfo* ti = quant::find(info.type);
    if (!ti)
      throw FormatError(impl_->path, "tensor '" + t.name + "': type " + quant::ggml_type_name(info.type) +
                                         " is not supported (vkquant reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
                                         "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS)");
    w.type = ti->type;
    if (w.shape.back() % ti->block != 0)
      throw FormatError(impl_->path, "tensor '" + t.name + "': rows of " + std::to_string(w.shape.back()) +
                                         " elements are not whole " + ti->ggml_name + " blocks of " + std::to_string(ti->block));
    auto bytes = g.data(info);
    w.sources.push_back(bytes);
    const std::uint64_t rb = quant::row_bytes(w.type, w.shape.back());
    if (t.rows) bytes = bytes.subspan(t.row0 * rb, t.rows * rb);
    w.bytes = bytes;
    if (impl_->llama_permuted() && (r == Role::wq || r == Role::wk || r == Role::bq || r == Role::bk)) {
      const std::uint32_t heads = (r == Role::wq || r == Role::bq) ? c.heads : c.kv_heads;
      const bool vec = r == Role::bq || r == Role::bk;
      w.owned = unpermute_byte_rows(bytes, heads, c.head_dim, vec ? quant::row_bytes(w.type, 1) : rb);
      w.bytes = w.owned;
    }
  }
  const std::uint64_t bad = count_nonfinite(w.type, w.bytes);
  if (bad != 0) {
    std::uint64_t total = 1;
    for (auto d : w.shape) total *= d;
    const std::string what = "tensor '" + name + "': " + std::to_string(bad) + " of " + std::to_string(total) +
                             " values are NaN or Inf";
    if (!impl_->options.allow_nonfinite || quant::is_block_quant(w.type))
      throw FormatError(impl_->path, quant::is_block_quant(w.type) && impl_->options.allow_nonfinite
                                         ? what + " (a non-finite " + quant::info(w.type).ggml_name + " scale cannot be replaced)"
                                         : what);
    if (w.owned.empty()) w.owned.assign(w.bytes.begin(), w.bytes.end());
    zero_nonfinite(w.type, w.owned);
    w.bytes = w.owned;
    impl_->warn_replaced(name, what);
  }
  return w;
}

void ModelFile::for_each_stored(const std::function<void(Role, std::uint32_t, const StoredWeight&)>& visit) const {
  const ModelConfig& c = impl_->config;
  auto one = [&](Role r, std::uint32_t l) {
    const StoredWeight w = load_stored(r, l);
    visit(r, l, w);
    drop_pages(w);
  };
  one(Role::embed, 0);
  for (std::uint32_t l = 0; l < c.layers; ++l)
    for (Role r : layer_roles(c)) one(r, l);
  one(Role::final_norm, 0);
  if (!c.tied_embeddings) one(Role::lm_head, 0);
}

void ModelFile::drop_pages(const StoredWeight& w) const {
  for (const auto& src : w.sources) impl_->drop_pages(src);
}

std::unique_ptr<Tokenizer> ModelFile::tokenizer() const {
  auto tok = make_tokenizer();
  // Fewer tokens than embedding rows is padding (Qwen2.5: 151665 of 151936;
  // samplers mask the rest); more would produce ids the model cannot embed.
  const ModelConfig& c = impl_->config;
  if (tok->vocab_size() > std::int32_t(std::min<std::uint32_t>(c.vocab, INT32_MAX)))
    throw FormatError(impl_->path, "the tokenizer has " + std::to_string(tok->vocab_size()) +
                                       " tokens but the model's embedding only " + std::to_string(c.vocab) + " rows");
  return tok;
}

std::unique_ptr<Tokenizer> ModelFile::make_tokenizer() const {
  const ModelConfig& c = impl_->config;
  if (const auto* g = impl_->gguf()) {
    if (g->get_string("vkquant.tokenizer").value_or("") == "bytes")
      return make_byte_tokenizer(std::int32_t(c.vocab), c.bos, c.eos);
    GgufVocab v;
    v.model = g->get_string("tokenizer.ggml.model").value_or("");
    if (v.model.empty()) throw FormatError(g->path(), "tokenizer.ggml.model: missing (the file carries no tokenizer)");
    v.pre = g->get_string("tokenizer.ggml.pre").value_or("");
    v.tokens = g->get_strings("tokenizer.ggml.tokens").value_or(std::vector<std::string>{});
    for (double s : g->get_floats("tokenizer.ggml.scores").value_or(std::vector<double>{})) v.scores.push_back(float(s));
    for (auto t : g->get_ints("tokenizer.ggml.token_type").value_or(std::vector<std::int64_t>{}))
      v.types.push_back(std::int32_t(std::clamp<std::int64_t>(t, -1, 1 << 20)));
    v.merges = g->get_strings("tokenizer.ggml.merges").value_or(std::vector<std::string>{});
    v.bos = c.bos;
    v.eos = c.eos;
    v.add_bos = g->get_bool("tokenizer.ggml.add_bos_token").value_or(true);
    v.add_eos = g->get_bool("tokenizer.ggml.add_eos_token").value_or(false);
    if (const auto u = g->get_uint("tokenizer.ggml.unknown_token_id"); u && *u < v.tokens.size())
      v.unk = std::int32_t(*u);
    v.add_space_prefix = g->get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
    try {
      return make_gguf_tokenizer(v);
    } catch (const FormatError&) {
      throw;
    } catch (const Error& e) {  // the vocabulary's errors name the key, not the file
      throw FormatError(g->path(), e.what());
    }
  }
  const auto dir = impl_->st()->directory();
  std::error_code ec;
  if (std::filesystem::exists(dir / "tokenizer.json", ec)) return load_tokenizer_json(dir / "tokenizer.json");
  // Byte-level models (the bundled ones): ids 0..255 are the bytes.
  if (c.vocab >= 256 && c.vocab <= 512) return make_byte_tokenizer(std::int32_t(c.vocab), c.bos, c.eos);
  throw FormatError(dir / "tokenizer.json", "missing: the model's vocabulary is not byte-level, so it needs its tokenizer.json");
}

HostWeights load_host_weights(const ModelFile& f) {
  HostWeights w;
  w.config = f.config();
  w.embed = f.load(Role::embed);
  w.final_norm = f.load(Role::final_norm);
  w.lm_head = f.load(Role::lm_head);
  w.layers.resize(w.config.layers);
  for (std::uint32_t l = 0; l < w.config.layers; ++l) {
    HostLayer& L = w.layers[l];
    for (Role r : layer_roles(w.config)) {
      std::vector<float>* slot = nullptr;
      switch (r) {
        case Role::attn_norm: slot = &L.attn_norm; break;
        case Role::wq: slot = &L.wq; break;
        case Role::wk: slot = &L.wk; break;
        case Role::wv: slot = &L.wv; break;
        case Role::wo: slot = &L.wo; break;
        case Role::bq: slot = &L.bq; break;
        case Role::bk: slot = &L.bk; break;
        case Role::bv: slot = &L.bv; break;
        case Role::q_norm: slot = &L.q_norm; break;
        case Role::k_norm: slot = &L.k_norm; break;
        case Role::ffn_norm: slot = &L.ffn_norm; break;
        case Role::w_gate: slot = &L.w_gate; break;
        case Role::w_up: slot = &L.w_up; break;
        case Role::w_down: slot = &L.w_down; break;
        case Role::router: slot = &L.router; break;
        case Role::exp_gate: slot = &L.exp_gate; break;
        case Role::exp_up: slot = &L.exp_up; break;
        case Role::exp_down: slot = &L.exp_down; break;
        default: break;
      }
      if (slot) *slot = f.load(r, l);
    }
  }
  return w;
}

}  // namespace vkq
