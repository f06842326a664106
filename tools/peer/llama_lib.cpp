#include "llama_lib.hpp"

#include <dlfcn.h>

#include <cstdio>

namespace vkq::peer {

namespace fs = std::filesystem;

namespace {

// The one libllama.<tag>.so in `dir` (libllama.so, libllama.v0.5.0.so,
// libllama.vulkan.v0.5.0.so); libllama-common.so is llama.cpp's helper library.
fs::path find_libllama(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw PeerError("--lib " + dir.string() + ": not a directory (scripts/fetch-peer.sh installs third_party/llamacpp/lib/{vulkan,cpu})");
  std::vector<fs::path> found;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("libllama.", 0) == 0 && name.find(".so") != std::string::npos) found.push_back(e.path());
  }
  if (ec) throw PeerError("--lib " + dir.string() + ": " + ec.message());
  if (found.empty()) throw PeerError("--lib " + dir.string() + ": no libllama.*.so in it");
  if (found.size() > 1)
    throw PeerError("--lib " + dir.string() + ": several libllama.*.so (" + found[0].filename().string() + ", " +
                    found[1].filename().string() + "); keep one");
  return found[0];
}

}  // namespace

std::unique_ptr<LlamaLib> LlamaLib::open(const fs::path& dir, bool verbose) {
  std::unique_ptr<LlamaLib> lib(new LlamaLib());
  lib->verbose_ = verbose;
  lib->path_ = find_libllama(dir);
  // RTLD_LOCAL: llama's and ggml's symbols stay out of the global scope; dlsym
  // on this handle still searches its dependencies (libggml, libggml-base).
  lib->handle_ = ::dlopen(lib->path_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib->handle_) throw PeerError(std::string("dlopen: ") + ::dlerror());
#define VKQ_PEER_RESOLVE(name)                                                                              \
  lib->name = reinterpret_cast<decltype(lib->name)>(::dlsym(lib->handle_, #name));                          \
  if (!lib->name)                                                                                           \
    throw PeerError(lib->path_.string() + ": no symbol " #name " (is it the llama.cpp of third_party/llamacpp/src?)");
  VKQ_PEER_LLAMA_FUNCTIONS(VKQ_PEER_RESOLVE)
#undef VKQ_PEER_RESOLVE

  // Struct layouts are taken from our llama.h: a library of another version
  // would read these defaults at other offsets.
  const llama_context_params cp = lib->llama_context_default_params();
  if (cp.n_batch != 2048 || cp.n_ubatch != 512 || cp.n_seq_max != 1 || cp.type_k != GGML_TYPE_F16)
    throw PeerError(lib->path_.string() + ": llama_context_default_params() does not read as the llama.h this was built with; "
                    "rebuild vkq-peer against the library's own source");

  lib->llama_log_set(&LlamaLib::log_callback, lib.get());
  lib->ggml_backend_load_all_from_path(fs::absolute(dir).c_str());
  lib->llama_backend_init();
  lib->initialized_ = true;
  return lib;
}

// The library stays mapped: ggml's backends register static state and
// threads that outlive a dlclose, and the process ends soon after anyway.
LlamaLib::~LlamaLib() {
  if (initialized_) llama_backend_free();
  // Whatever ggml logs after this object is gone (backend teardown at exit)
  // goes to stderr only with --verbose, and never to a dangling pointer.
  if (llama_log_set) llama_log_set(verbose_ ? nullptr : +[](ggml_log_level, const char*, void*) {}, nullptr);
}

std::vector<BackendDevice> LlamaLib::devices() const {
  std::vector<BackendDevice> out;
  const std::size_t n = ggml_backend_dev_count();
  for (std::size_t i = 0; i < n; ++i) {
    BackendDevice d;
    d.dev = ggml_backend_dev_get(i);
    d.name = ggml_backend_dev_name(d.dev);
    d.description = ggml_backend_dev_description(d.dev);
    d.type = ggml_backend_dev_type(d.dev);
    out.push_back(std::move(d));
  }
  return out;
}

// ggml sends a line in pieces (GGML_LOG_LEVEL_CONT continues the last one).
void LlamaLib::log_callback(ggml_log_level level, const char* text, void* self) {
  auto* lib = static_cast<LlamaLib*>(self);
  if (lib->verbose_) std::fputs(text, stderr);
  if (level != GGML_LOG_LEVEL_CONT) lib->line_level_ = level;
  for (const char* p = text; *p; ++p) {
    if (*p != '\n') {
      lib->line_ += *p;
      continue;
    }
    if (lib->line_level_ == GGML_LOG_LEVEL_ERROR) lib->errors_.push_back(lib->line_);
    if (lib->line_level_ == GGML_LOG_LEVEL_WARN) lib->last_warning_ = lib->line_;
    lib->line_.clear();
  }
}

std::string LlamaLib::take_problems() {
  std::string out;
  for (const auto& e : errors_) out += (out.empty() ? "" : "; ") + e;
  if (out.empty()) out = last_warning_;
  errors_.clear();
  last_warning_.clear();
  return out;
}

}  // namespace vkq::peer
