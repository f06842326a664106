#include "peer_model.hpp"

#include <algorithm>
#include <cstring>
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
  cp.type_k = o.type_k;
  cp.type_v = o.type_v;
  cp.flash_attn_type = o.flash_attn;
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

std::vector<std::uint8_t> PeerModel::save_state() {
  const std::size_t size = lib_.llama_state_seq_get_size(ctx_, 0);
  std::vector<std::uint8_t> blob(size);
  if (size == 0 || lib_.llama_state_seq_get_data(ctx_, blob.data(), blob.size(), 0) != size)
    throw PeerError("llama_state_seq_get_data failed: " + lib_.take_problems());
  return blob;
}

void PeerModel::load_state(std::span<const std::uint8_t> blob) {
  if (lib_.llama_state_seq_set_data(ctx_, blob.data(), blob.size(), 0) == 0)
    throw PeerError("llama_state_seq_set_data refused the state: " + lib_.take_problems());
}

namespace {

// Reads the blob front to back; every read is bounds-checked.
struct Reader {
  std::span<const std::uint8_t> b;
  std::size_t at = 0;
  template <class T>
  T get(const char* what) {
    T v;
    if (b.size() - at < sizeof v) throw PeerError(std::string("sequence state: cut short at ") + what);
    std::memcpy(&v, b.data() + at, sizeof v);
    at += sizeof v;
    return v;
  }
  std::vector<std::uint8_t> bytes(std::uint64_t n, const char* what) {
    if (b.size() - at < n) throw PeerError(std::string("sequence state: cut short in ") + what);
    std::vector<std::uint8_t> v(b.begin() + std::ptrdiff_t(at), b.begin() + std::ptrdiff_t(at + n));
    at += n;
    return v;
  }
};

template <class T>
void put(std::vector<std::uint8_t>& out, T v) {
  const std::size_t at = out.size();
  out.resize(at + sizeof v);
  std::memcpy(out.data() + at, &v, sizeof v);
}

void append(std::vector<std::uint8_t>& out, const std::vector<std::uint8_t>& bytes) {
  const std::size_t at = out.size();
  out.resize(at + bytes.size());
  if (!bytes.empty()) std::memcpy(out.data() + at, bytes.data(), bytes.size());
}

}  // namespace

SeqState SeqState::parse(std::span<const std::uint8_t> blob) {
  Reader r{blob};
  SeqState s;
  s.magic = r.get<std::uint32_t>("magic");
  s.seq_id = r.get<std::int32_t>("sequence id");
  if (r.get<std::uint32_t>("stream count") != 1) throw PeerError("sequence state: not one stream");
  s.cells = r.get<std::uint32_t>("cell count");
  if (s.cells == 0) throw PeerError("sequence state: no cells");
  for (std::uint32_t i = 0; i < s.cells; ++i) {
    if (r.get<std::int32_t>("position") != std::int32_t(i)) throw PeerError("sequence state: positions are not 0, 1, ...");
    if (r.get<std::uint32_t>("seq-id count") != 1) throw PeerError("sequence state: a cell not of one sequence");
    (void)r.get<std::int32_t>("seq id");
  }
  const std::uint32_t vt = r.get<std::uint32_t>("v_trans");
  if (vt > 1) throw PeerError("sequence state: v_trans is neither 0 nor 1 (cells with extensions?)");
  s.v_trans = vt == 1;
  const std::uint32_t n_layer = r.get<std::uint32_t>("layer count");
  if (n_layer == 0 || n_layer > 4096) throw PeerError("sequence state: implausible layer count");
  s.layers.resize(n_layer);
  for (Layer& l : s.layers) {
    l.k_type = r.get<std::int32_t>("k type");
    l.k_row = r.get<std::uint64_t>("k row size");
    l.k = r.bytes(l.k_row * s.cells, "k rows");
  }
  for (Layer& l : s.layers) {
    l.v_type = r.get<std::int32_t>("v type");
    if (!s.v_trans) {
      l.v_row = r.get<std::uint64_t>("v row size");
      l.v = r.bytes(l.v_row * s.cells, "v rows");
    } else {
      l.v_el = r.get<std::uint32_t>("v element size");
      l.v_dim = r.get<std::uint32_t>("v width");
      l.v_row = std::uint64_t(l.v_el) * l.v_dim;
      l.v = r.bytes(l.v_row * s.cells, "v columns");
    }
  }
  if (r.at != blob.size()) throw PeerError("sequence state: " + std::to_string(blob.size() - r.at) + " bytes left over");
  return s;
}

std::vector<std::uint8_t> SeqState::serialize() const {
  std::vector<std::uint8_t> out;
  put(out, magic);
  put(out, seq_id);
  put(out, std::uint32_t(1));
  put(out, cells);
  for (std::uint32_t i = 0; i < cells; ++i) {
    put(out, std::int32_t(i));
    put(out, std::uint32_t(1));
    put(out, seq_id);
  }
  put(out, std::uint32_t(v_trans ? 1 : 0));
  put(out, std::uint32_t(layers.size()));
  for (const Layer& l : layers) {
    put(out, l.k_type);
    put(out, l.k_row);
    append(out, l.k);
  }
  for (const Layer& l : layers) {
    put(out, l.v_type);
    if (!v_trans) put(out, l.v_row);
    else {
      put(out, l.v_el);
      put(out, l.v_dim);
    }
    append(out, l.v);
  }
  return out;
}

SeqState SeqState::replicated(std::uint32_t n) const {
  SeqState s = *this;
  s.cells = n;
  for (std::size_t li = 0; li < layers.size(); ++li) {
    const Layer& a = layers[li];
    Layer& b = s.layers[li];
    b.k.resize(a.k_row * n);
    b.v.resize(a.v_row * n);
    for (std::uint32_t i = 0; i < n; ++i)
      std::memcpy(b.k.data() + i * a.k_row, a.k.data() + (i % cells) * a.k_row, a.k_row);
    if (!v_trans)
      for (std::uint32_t i = 0; i < n; ++i)
        std::memcpy(b.v.data() + i * a.v_row, a.v.data() + (i % cells) * a.v_row, a.v_row);
    else  // column j holds every cell's element j
      for (std::uint32_t j = 0; j < a.v_dim; ++j)
        for (std::uint32_t i = 0; i < n; ++i)
          std::memcpy(b.v.data() + (std::uint64_t(j) * n + i) * a.v_el,
                      a.v.data() + (std::uint64_t(j) * cells + i % cells) * a.v_el, a.v_el);
  }
  return s;
}

std::uint64_t SeqState::kv_bytes_per_cell() const {
  std::uint64_t b = 0;
  for (const Layer& l : layers) b += l.k_row + l.v_row;
  return b;
}

llama_token argmax(std::span<const float> logits) {
  return llama_token(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace vkq::peer
