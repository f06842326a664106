// Output files are written whole or not at all (DESIGN §8): a temp file in
// the same directory, fsynced, renamed over the target, then the directory
// fsynced. A failure leaves the old file (or none).
#pragma once

#include <filesystem>
#include <string_view>

namespace vkq {

// Writes `contents` to `path` atomically; throws vkq::Error naming the file.
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

}  // namespace vkq
