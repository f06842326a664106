// JSON from files we do not trust: nlohmann's parser (which rejects invalid
// UTF-8) plus what it lets through — duplicate keys and unbounded nesting.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string_view>

namespace vkq {

struct JsonLimits {
  int max_depth = 64;
};

// Parses `text` (which starts at byte `base_offset` of `file`); throws
// vkq::FormatError naming the file and byte offset on any syntax error,
// invalid UTF-8, duplicate key or nesting deeper than the limit.
nlohmann::json parse_json_strict(const std::filesystem::path& file, std::string_view text,
                                 std::uint64_t base_offset = 0, const JsonLimits& limits = {});

}  // namespace vkq
