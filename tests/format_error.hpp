// The hostile-file tests' one assertion: a loader refuses a file with a
// vkq::FormatError naming the file, the key or tensor, and the byte offset.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "vkquant/mapped_file.hpp"

namespace vkq::test {

// `load()` throws a FormatError for `file` whose message names the file and
// holds `fragment` and `key`, at byte `at` (kNoOffset: none is known).
template <class Load>
void expect_format_error(Load&& load, const std::filesystem::path& file, const std::string& fragment,
                         const std::string& key, std::uint64_t at = FormatError::kNoOffset) {
  try {
    load();
    ADD_FAILURE() << file << " was accepted";
  } catch (const FormatError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.file(), file) << what;
    EXPECT_NE(what.find(file.string()), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << "wanted \"" << fragment << "\" in: " << what;
    EXPECT_NE(what.find(key), std::string::npos) << "wanted \"" << key << "\" in: " << what;
    EXPECT_EQ(e.offset(), at) << what;
  }
}

}  // namespace vkq::test
