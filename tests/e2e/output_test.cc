// What hotsplice prints about text it did not write (issue 9, "Honest
// output"): a payload's metadata that is not UTF-8 and holds a character a
// terminal acts on. `--json` is valid JSON with such bytes escaped as the
// README documents (\xNN for a byte that is not UTF-8, a backslash doubled
// in such a string); text output carries no control or bidirectional
// character to the terminal. Checked for `info` and, with the payload loaded
// into a running target, for `list`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "harness.h"
#include "support/text.h"

using namespace hs::e2e;
using nlohmann::json;

namespace {

// The .modinfo value of patches/hostile_text.c, as each output must show it.
const std::string kJsonNote = "\\xff\\xfe bad \xe2\x80\xae rtl \\\\ end";
const std::string kTextNote = "\\xff\\xfe bad \\u{202e} rtl \\ end";

// No byte a terminal would act on: C0 controls (but the newline), DEL, and
// no right-to-left override; and all of it valid UTF-8.
void expect_terminal_safe(const std::string& out) {
  EXPECT_TRUE(hs::is_valid_utf8(out)) << out;
  for (unsigned char c : out) EXPECT_TRUE(c == '\n' || (c >= 0x20 && c != 0x7f)) << "byte " << int(c) << " in " << out;
  EXPECT_EQ(out.find("\xe2\x80\xae"), std::string::npos) << out;
}

class Output : public testing::Test {
 protected:
  static void SetUpTestSuite() { lp_ = build("hostile_text.c", target_bin("hello"), "hostile_text.lp"); }
  static std::string lp_;
};
std::string Output::lp_;

}  // namespace

TEST_F(Output, InfoEscapesWhatIsNotUtf8OrWouldActOnTheTerminal) {
  HsRun text = hotsplice({"info", lp_});
  ASSERT_EQ(text.code, 0) << text.err;
  expect_terminal_safe(text.out);
  EXPECT_NE(text.out.find("  note            " + kTextNote + "\n"), std::string::npos) << text.out;

  HsRun js = hotsplice({"info", lp_, "--json"});
  ASSERT_EQ(js.code, 0) << js.err;
  json j = json::parse(js.out);  // throws (fails the test) on invalid JSON
  EXPECT_EQ(j["modinfo"]["note"], kJsonNote);
}

TEST_F(Output, ListOfALoadedPayloadEscapesTheSame) {
  Target t(target_bin("hello"));
  OK({"load", P(t), lp_, "--name", "hostile"});
  EXPECT_EQ(t.ask("call"), "hello=2 count=1") << "the payload is applied";

  HsRun text = hotsplice({"list", P(t)});
  ASSERT_EQ(text.code, 0) << text.err;
  expect_terminal_safe(text.out);
  EXPECT_NE(text.out.find("  note=" + kTextNote + "\n"), std::string::npos) << text.out;

  HsRun js = hotsplice({"list", P(t), "--json"});
  ASSERT_EQ(js.code, 0) << js.err;
  json j = json::parse(js.out);
  ASSERT_EQ(j["payloads"].size(), 1u);
  EXPECT_EQ(j["payloads"][0]["modinfo"]["note"], kJsonNote);
  EXPECT_EQ(j["payloads"][0]["name"], "hostile");
}
