// Sharded safetensors models (model.safetensors.index.json + shards).
#include "vkquant/safetensors_index.hpp"

#include <algorithm>
#include <set>

#include "vkquant/json_strict.hpp"

namespace vkq {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMaxIndexBytes = 100'000'000;  // as for safetensors headers

std::string q(std::string_view s) {
  std::string out = "'";
  for (const char c : s) out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
  return out + "'";
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The only file in `dir` whose name ends with `suffix`, or an empty path.
fs::path only_file_ending(const fs::path& dir, std::string_view suffix, const fs::path& index_for_errors) {
  fs::path found;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file() || !ends_with(e.path().filename().string(), suffix)) continue;
    if (!found.empty())
      throw FormatError(index_for_errors, "holds several *" + std::string(suffix) + " files (" + found.filename().string() + ", " +
                                              e.path().filename().string() + "); name the one to open");
    found = e.path();
  }
  return found;
}

// Why `name` is not a plain file name inside the index's directory ("" when it is).
std::string bad_shard_name(const std::string& name) {
  if (name.empty()) return "is empty";
  if (name == "." || name == "..") return "is not a file name";
  if (name.find('\0') != std::string::npos) return "contains a NUL byte";
  if (name.find_first_of("/\\") != std::string::npos) return "contains a path separator (shards must sit beside the index)";
  if (name.find(':') != std::string::npos) return "contains ':' (a drive or stream name)";
  return "";
}

}  // namespace

SafetensorsModel SafetensorsModel::open(const fs::path& path) {
  fs::path file = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::is_regular_file(path / "model.safetensors.index.json", ec)) file = path / "model.safetensors.index.json";
    else if (fs::is_regular_file(path / "model.safetensors", ec)) file = path / "model.safetensors";
    else if (auto idx = only_file_ending(path, ".safetensors.index.json", path); !idx.empty()) file = idx;
    else if (auto st = only_file_ending(path, ".safetensors", path); !st.empty()) file = st;
    else throw FormatError(path, "holds no model.safetensors or model.safetensors.index.json");
  }
  SafetensorsModel m;
  m.source_ = file;
  m.directory_ = file.parent_path();
  if (m.directory_.empty()) m.directory_ = ".";

  if (file.extension() != ".json") {
    m.shards_.push_back(SafetensorsFile::open(file));
    const auto& ts = m.shards_[0].tensors();
    for (std::size_t i = 0; i < ts.size(); ++i) m.index_.emplace(ts[i].name, std::pair{std::size_t(0), i});
    return m;
  }

  // --- the index
  const nlohmann::json j = read_json_file(file, "index", kMaxIndexBytes);
  if (!j.is_object()) throw FormatError(file, "index is not a JSON object", 0);
  const auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) throw FormatError(file, "index has no \"weight_map\" object");
  if (wm->empty()) throw FormatError(file, "\"weight_map\" is empty");
  std::map<std::string, std::string> mapped;  // tensor -> shard name
  std::set<std::string> shard_names;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) throw FormatError(file, "weight_map: tensor " + q(tensor) + " maps to " + shard.dump() + ", not a file name");
    const std::string name = shard.get<std::string>();
    if (const std::string why = bad_shard_name(name); !why.empty())
      throw FormatError(file, "weight_map: tensor " + q(tensor) + ": shard name " + q(name) + " " + why);
    mapped.emplace(tensor, name);
    shard_names.insert(name);
  }

  // --- the shards, sorted by name; each tensor in exactly one, each listed
  std::map<std::string, std::size_t> shard_index;
  for (const auto& name : shard_names) {
    const fs::path p = m.directory_ / name;
    if (!fs::exists(p, ec)) throw FormatError(file, "shard " + q(name) + " (" + p.string() + ") does not exist");
    shard_index.emplace(name, m.shards_.size());
    m.shards_.push_back(SafetensorsFile::open(p));
  }
  std::map<std::string_view, std::size_t> holder;
  for (std::size_t s = 0; s < m.shards_.size(); ++s)
    for (const auto& t : m.shards_[s].tensors())
      if (const auto [it, fresh] = holder.emplace(t.name, s); !fresh)
        throw FormatError(file, "tensor " + q(t.name) + " is in two shards, " + q(m.shards_[it->second].path().filename().string()) +
                                    " and " + q(m.shards_[s].path().filename().string()));
  for (std::size_t s = 0; s < m.shards_.size(); ++s) {
    const auto& sh = m.shards_[s];
    const std::string sname = sh.path().filename().string();
    const auto& ts = sh.tensors();
    for (std::size_t i = 0; i < ts.size(); ++i) {
      const auto it = mapped.find(ts[i].name);
      if (it == mapped.end())
        throw FormatError(file, "shard " + q(sname) + " holds tensor " + q(ts[i].name) + " which the weight_map does not list");
      if (it->second != sname)
        throw FormatError(file, "tensor " + q(ts[i].name) + " is in shard " + q(sname) + " but the weight_map puts it in " + q(it->second));
      m.index_.emplace(ts[i].name, std::pair{s, i});
    }
  }
  for (const auto& [tensor, shard] : mapped)
    if (!m.index_.count(tensor))
      throw FormatError(file, "weight_map puts tensor " + q(tensor) + " in shard " + q(shard) + " which does not hold it");
  return m;
}

const TensorInfo* SafetensorsModel::find(std::string_view name, const SafetensorsFile** shard) const {
  const auto it = index_.find(name);
  if (it == index_.end()) return nullptr;
  const auto& sh = shards_[it->second.first];
  if (shard) *shard = &sh;
  return &sh.tensors()[it->second.second];
}

std::vector<std::string> SafetensorsModel::tensor_names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, where] : index_) out.push_back(name);
  return out;
}

std::vector<float> SafetensorsModel::to_float(std::string_view name) const {
  const SafetensorsFile* shard = nullptr;
  const TensorInfo* t = find(name, &shard);
  if (!t) throw FormatError(source_, "no tensor named " + q(name));
  return shard->to_float(*t);
}

}  // namespace vkq
