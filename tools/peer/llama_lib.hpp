// llama.cpp's C API opened at run time from a folder of prebuilt libraries
// (third_party/llamacpp/lib/{vulkan,cpu}, scripts/fetch-peer.sh), with every
// function pointer typed from the matching llama.h/ggml-backend.h, so one
// vkq-peer binary drives either build and needs no rpath into a git-ignored folder.
#pragma once

#include <llama.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace vkq::peer {

// Any failure of the peer: one line, printed by main as `vkq-peer: <what>`.
struct PeerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One list of the functions used: the member's name, its type (decltype of
// the declaration in llama.h) and the dlsym string all come from this line,
// so they cannot drift apart.
#define VKQ_PEER_LLAMA_FUNCTIONS(X)                                                                            \
  X(llama_backend_init) X(llama_backend_free) X(llama_log_set) X(llama_print_system_info)                      \
  X(llama_model_default_params) X(llama_context_default_params) X(llama_model_load_from_file)                  \
  X(llama_model_free) X(llama_init_from_model) X(llama_free) X(llama_model_get_vocab) X(llama_vocab_n_tokens)  \
  X(llama_model_desc) X(llama_model_size) X(llama_model_n_params) X(llama_n_ctx) X(llama_get_memory)           \
  X(llama_memory_clear) X(llama_batch_init) X(llama_batch_free) X(llama_decode) X(llama_synchronize)           \
  X(llama_get_logits_ith) X(llama_state_seq_get_size) X(llama_state_seq_get_data) X(llama_state_seq_set_data) \
  X(llama_model_quantize_default_params) X(llama_model_quantize)                      \
  X(ggml_backend_load_all_from_path) X(ggml_backend_dev_count) X(ggml_backend_dev_get) \
  X(ggml_backend_dev_name) X(ggml_backend_dev_description) X(ggml_backend_dev_type)

// A ggml device after the backends are loaded (ggml's name, description, kind).
struct BackendDevice {
  ggml_backend_dev_t dev = nullptr;
  std::string name;
  std::string description;
  enum ggml_backend_dev_type type = GGML_BACKEND_DEVICE_TYPE_CPU;  // "enum": a function of the same name hides the type
  bool gpu() const { return type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU; }
};

class LlamaLib {
 public:
  // Opens the one libllama*.so in `dir` (its RUNPATH $ORIGIN brings libggml
  // and libggml-base), routes llama's and ggml's log into this object, loads
  // the ggml backends found in `dir` (the build is GGML_BACKEND_DL: CPU and
  // Vulkan are separate libggml-<name>[-variant].so files, and ggml's default
  // search looks only beside the executable and in the current directory),
  // then llama_backend_init. `verbose` echoes the library's log to stderr.
  static std::unique_ptr<LlamaLib> open(const std::filesystem::path& dir, bool verbose);
  ~LlamaLib();
  LlamaLib(const LlamaLib&) = delete;
  LlamaLib& operator=(const LlamaLib&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Every ggml device the loaded backends registered.
  std::vector<BackendDevice> devices() const;
  // The ERROR lines logged since the last call (the last WARN line when
  // there are none), joined by "; ": llama.cpp says why a load or a decode
  // failed there, not through its return value.
  std::string take_problems();

#define VKQ_PEER_MEMBER(name) decltype(&::name) name = nullptr;
  VKQ_PEER_LLAMA_FUNCTIONS(VKQ_PEER_MEMBER)
#undef VKQ_PEER_MEMBER

 private:
  LlamaLib() = default;
  static void log_callback(ggml_log_level level, const char* text, void* self);

  std::filesystem::path path_;
  void* handle_ = nullptr;
  bool verbose_ = false;
  bool initialized_ = false;
  ggml_log_level line_level_ = GGML_LOG_LEVEL_NONE;
  std::string line_;
  std::vector<std::string> errors_;
  std::string last_warning_;
};

}  // namespace vkq::peer
