// Error messages carry names and values read from files and the environment:
// every library error escapes them (escape_bytes), so a NUL cannot cut a
// message short and raw bytes never reach the terminal (issue 19, item 7).
#include <gtest/gtest.h>

#include <string>

#include "model_data.hpp"
#include "vkquant/error.hpp"
#include "vkquant/gguf.hpp"
#include "vkquant/model/model_file.hpp"

namespace vkq::test {
namespace {

TEST(ErrorMessages, EscapeNulControlAndInvalidUtf8) {
  using namespace std::string_literals;
  EXPECT_EQ(escape_bytes("plain ascii \\ 'quoted'"), "plain ascii \\ 'quoted'");
  EXPECT_EQ(escape_bytes("caf\xc3\xa9 \xe1\x9e\x80 \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe1\x9e\x80 \xf0\x9f\x98\x80");
  EXPECT_EQ(escape_bytes("a\0b"s), "a\\x00b");
  EXPECT_EQ(escape_bytes("line\nbreak\ttab\x1b[31m\x7f"), "line\\x0abreak\\x09tab\\x1b[31m\\x7f");
  EXPECT_EQ(escape_bytes("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(escape_bytes("\xc0\xaf"), "\\xc0\\xaf");                 // overlong '/'
  EXPECT_EQ(escape_bytes("\xed\xa0\x80"), "\\xed\\xa0\\x80");        // a surrogate
  EXPECT_EQ(escape_bytes("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  EXPECT_EQ(escape_bytes("\xe2\x82"), "\\xe2\\x82");                 // cut short
  EXPECT_EQ(escape_bytes(escape_bytes("a\0\xff"s)), escape_bytes("a\0\xff"s));
  // Every library error escapes its message: a NUL no longer ends it early.
  const Error e("tensor 'a\0b' of \xff file"s);
  EXPECT_STREQ(e.what(), "tensor 'a\\x00b' of \\xff file");
}

// A GGUF architecture name with an embedded NUL and a byte that is not UTF-8:
// the whole name reaches the message, escaped (was: cut at the NUL).
TEST(ErrorMessages, GgufStringWithNulAndRawBytes) {
  using namespace std::string_literals;
  const auto p = temp_dir("messages") / "nul_arch.gguf";
  write_gguf(p, {{"general.architecture", gguf_string("lla\0ma\xff tail"s)}}, {});
  try {
    (void)ModelFile::open(p);
    ADD_FAILURE() << "opened";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'lla\\x00ma\\xff tail' is not supported"), std::string::npos) << what;
    EXPECT_EQ(what.find('\xff'), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace vkq::test
