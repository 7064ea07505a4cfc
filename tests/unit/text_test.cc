// Tests of the escaping of untrusted text (support/text.h): terminal escape
// sequences, bytes that are not UTF-8, bidirectional overrides, and JSON that
// nlohmann-json accepts and dumps for any input.
#include "support/text.h"

#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace hs {
namespace {

TEST(Text, Utf8Validity) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain /usr/lib/x.so"));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xc3"));              // truncated
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe2\x28\xa1"));      // bad continuation
}

TEST(Text, TerminalKeepsPrintableText) {
  EXPECT_EQ(escape_for_terminal("fix-1.lp"), "fix-1.lp");
  EXPECT_EQ(escape_for_terminal("caf\xc3\xa9"), "caf\xc3\xa9");
}

TEST(Text, TerminalEscapesControlsAndBadBytes) {
  EXPECT_EQ(escape_for_terminal("a\x1b[2Jb"), "a\\x1b[2Jb");          // clear screen
  EXPECT_EQ(escape_for_terminal("\x1b]0;title\x07"), "\\x1b]0;title\\x07");  // set title
  EXPECT_EQ(escape_for_terminal("x\ny\tz\r"), "x\\ny\\tz\\r");
  EXPECT_EQ(escape_for_terminal(std::string_view("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(escape_for_terminal("\x7f"), "\\x7f");
  EXPECT_EQ(escape_for_terminal("\xc2\x9b" "31m"), "\\u{009b}31m");    // C1 CSI
  EXPECT_EQ(escape_for_terminal("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(escape_for_terminal("evil\xe2\x80\xaetxt.lp"), "evil\\u{202e}txt.lp");  // right-to-left override
  EXPECT_EQ(escape_for_terminal("a\\x41"), "a\\x41");  // for people: a backslash stays as it is
}

TEST(Text, JsonKeepsValidStringsAndEscapesTheRest) {
  EXPECT_EQ(escape_for_json("caf\xc3\xa9\n\\"), "caf\xc3\xa9\n\\");
  EXPECT_EQ(escape_for_json("/tmp/\xff/x\\y"), "/tmp/\\xff/x\\\\y");
}

TEST(Text, EveryByteStringDumpsAsJsonAndTerminalOutputHasNoControls) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20000; round++) {
    std::string s(rng() % 24, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xff);
    nlohmann::json j = {{"v", escape_for_json(s)}};
    std::string dumped;
    ASSERT_NO_THROW(dumped = j.dump()) << round;
    EXPECT_TRUE(is_valid_utf8(dumped));
    const std::string t = escape_for_terminal(s);
    EXPECT_TRUE(is_valid_utf8(t));
    for (unsigned char c : t) ASSERT_TRUE(c >= 0x20 && c != 0x7f) << round;
  }
}

}  // namespace
}  // namespace hs
