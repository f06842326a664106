#include "vkquant/json_strict.hpp"

#include <set>
#include <string>
#include <vector>

#include "vkquant/mapped_file.hpp"

namespace vkq {

namespace {
// Thrown from the parser callback; carries what nlohmann cannot report itself.
struct Reject {
  std::string what;
};
}  // namespace

nlohmann::json parse_json_strict(const std::filesystem::path& file, std::string_view text, std::uint64_t base_offset,
                                 const JsonLimits& limits) {
  using nlohmann::json;
  std::vector<std::set<std::string>> keys;  // keys seen, per open object
  std::vector<bool> is_object;              // kind of each open container
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= limits.max_depth)
          throw Reject{"JSON nested deeper than " + std::to_string(limits.max_depth) + " levels"};
        is_object.push_back(event == json::parse_event_t::object_start);
        if (is_object.back()) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!is_object.empty()) {
          if (is_object.back()) keys.pop_back();
          is_object.pop_back();
        }
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second)
          throw Reject{"duplicate JSON key \"" + parsed.get<std::string>() + "\""};
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), callback);
  } catch (const Reject& r) {
    throw FormatError(file, r.what);
  } catch (const json::parse_error& e) {
    // e.byte is 1-based and points just past the offending character.
    const std::uint64_t at = base_offset + (e.byte > 0 ? e.byte - 1 : 0);
    std::string what = e.what();
    if (const auto p = what.find("parse error"); p != std::string::npos) what = what.substr(p);
    throw FormatError(file, "invalid JSON: " + what, at);
  } catch (const json::exception& e) {
    // e.g. out_of_range 406, a number beyond double's range ("1e999").
    std::string what = e.what();
    if (const auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    throw FormatError(file, "invalid JSON: " + what);
  }
}

MappedFile map_json_file(const std::filesystem::path& path, std::string_view what, std::uint64_t cap) {
  MappedFile f = MappedFile::open(path);
  if (f.size() > cap)
    throw FormatError(path, std::string(what) + " is " + std::to_string(f.size()) + " bytes, over the " + std::to_string(cap) +
                                "-byte cap");
  return f;
}

nlohmann::json read_json_file(const std::filesystem::path& path, std::string_view what, std::uint64_t cap,
                              const JsonLimits& limits) {
  const MappedFile f = map_json_file(path, what, cap);
  const std::string_view text(reinterpret_cast<const char*>(f.bytes().data()), f.bytes().size());
  return parse_json_strict(path, text, 0, limits);
}

}  // namespace vkq
