// JSON from files we do not trust: nlohmann's parser (which rejects invalid
// UTF-8) plus what it lets through — duplicate keys and unbounded nesting.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "vkquant/mapped_file.hpp"

namespace vkq {

struct JsonLimits {
  int max_depth = 64;
};

// Parses `text` (which starts at byte `base_offset` of `file`); throws
// vkq::FormatError naming the file and byte offset on any syntax error,
// invalid UTF-8, duplicate key or nesting deeper than the limit.
nlohmann::json parse_json_strict(const std::filesystem::path& file, std::string_view text,
                                 std::uint64_t base_offset = 0, const JsonLimits& limits = {});

// The most bytes a JSON file read whole may hold (config.json, tokenizer.json,
// tokenizer_config.json, bench --compare files): real tokenizer.json files are
// 2-35 MB, so this is a wide margin that still bounds the parse's memory.
inline constexpr std::uint64_t kMaxJsonFileBytes = std::uint64_t(256) << 20;

// Maps `path` to be read whole, refusing before reading it anything that is
// not a regular file and a file over `cap` bytes: vkq::FormatError
// "PATH: <what> is N bytes, over the CAP-byte cap".
MappedFile map_json_file(const std::filesystem::path& path, std::string_view what, std::uint64_t cap = kMaxJsonFileBytes);

// map_json_file then parse_json_strict: the way every JSON file is read.
nlohmann::json read_json_file(const std::filesystem::path& path, std::string_view what, std::uint64_t cap = kMaxJsonFileBytes,
                              const JsonLimits& limits = {});

}  // namespace vkq
