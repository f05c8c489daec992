// The character tokenizer: fixed ids, special tags, round trips.
#include <gtest/gtest.h>

#include <set>

#include "common/tokenizer.h"

namespace gr1 {
namespace {

TEST(TokenizerTest, VocabularyHasSpecialsNewlineAndPrintableAscii) {
  Tokenizer tok;
  EXPECT_EQ(tok.vocab_size(), 13 + 1 + 95);
  // Every printable character and '\n' has its own id, distinct from the specials.
  std::set<int32_t> ids;
  for (int c = 32; c <= 126; ++c) {
    const auto e = tok.encode(std::string(1, static_cast<char>(c)));
    ASSERT_EQ(e.size(), 1u) << c;
    EXPECT_GE(e[0], 13);
    EXPECT_LT(e[0], tok.vocab_size());
    ids.insert(e[0]);
  }
  ids.insert(tok.encode("\n").at(0));
  EXPECT_EQ(ids.size(), 96u);
  EXPECT_EQ(*ids.begin(), 13);
  EXPECT_EQ(tok.encode("\n").at(0), 13);
  EXPECT_EQ(tok.encode(" ").at(0), 14);
}

TEST(TokenizerTest, SpecialTagsInTextBecomeSingleTokens) {
  Tokenizer tok;
  const std::vector<std::pair<std::string, int32_t>> tags = {
      {"<image>", Tokenizer::kImage},   {"<|user|>", Tokenizer::kUser}, {"<|assistant|>", Tokenizer::kAssistant},
      {"<|end|>", Tokenizer::kEnd},     {"<think>", Tokenizer::kThink}, {"</think>", Tokenizer::kThinkEnd},
      {"<box>", Tokenizer::kBox},       {"</box>", Tokenizer::kBoxEnd}, {"<answer>", Tokenizer::kAnswer},
      {"</answer>", Tokenizer::kAnswerEnd}};
  for (const auto& [text, id] : tags) {
    EXPECT_EQ(tok.encode(text), std::vector<int32_t>{id}) << text;
    EXPECT_EQ(tok.token_text(id), text);
  }
  const auto ids = tok.encode("<think>a<b</think><box>[1,2,3,4]</box>");
  ASSERT_EQ(ids.size(), 1 + 3 + 1 + 1 + 9 + 1u);
  EXPECT_EQ(ids.front(), Tokenizer::kThink);
  EXPECT_EQ(ids[2], tok.encode("<").at(0));  // a lone '<' stays a character
  EXPECT_EQ(ids[4], Tokenizer::kThinkEnd);
  EXPECT_EQ(ids[5], Tokenizer::kBox);
  EXPECT_EQ(ids.back(), Tokenizer::kBoxEnd);
  // Almost-tags are plain text.
  EXPECT_EQ(tok.encode("<thin>").size(), 6u);
  EXPECT_EQ(tok.encode("</answer").size(), 8u);
}

TEST(TokenizerTest, RoundTripOfTextWithTags) {
  Tokenizer tok;
  const std::string text =
      "<|user|>What is written?\n<image><image><|end|><|assistant|><think>The sign says \"OPEN\" ~ {x}.</think>"
      " <box>[10.5, 20, 30, 40]</box><answer>B</answer><|end|>";
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
}

TEST(TokenizerTest, IdsRoundTripThroughText) {
  Tokenizer tok;
  std::vector<int32_t> ids;
  for (int32_t id = Tokenizer::kImage; id < tok.vocab_size(); ++id) ids.push_back(id);
  for (int32_t id = tok.vocab_size() - 1; id >= Tokenizer::kImage; id -= 7) ids.push_back(id);
  EXPECT_EQ(tok.encode(tok.decode(ids)), ids);
}

TEST(TokenizerTest, ControlTokensDecodeToNothing) {
  Tokenizer tok;
  const auto hi = tok.encode("hi");
  std::vector<int32_t> ids = {Tokenizer::kBos, hi[0], Tokenizer::kPad, hi[1], Tokenizer::kEos};
  EXPECT_EQ(tok.decode(ids), "hi");
  EXPECT_EQ(tok.token_text(Tokenizer::kBos), "<bos>");
  EXPECT_EQ(tok.token_text(Tokenizer::kPad), "<pad>");
  EXPECT_EQ(tok.token_text(Tokenizer::kEos), "<eos>");
  // Their tag texts are not special inside text.
  EXPECT_EQ(tok.encode("<eos>").size(), 5u);
}

TEST(TokenizerTest, UnknownBytesBecomeQuestionMarks) {
  Tokenizer tok;
  const std::string text = std::string("a\tb\x01") + "\xc3\xa9" + "\x7f" + "c";
  const auto ids = tok.encode(text);
  ASSERT_EQ(ids.size(), text.size());
  EXPECT_EQ(tok.decode(ids), "a?b???" "?c");
  for (auto id : ids) EXPECT_LT(id, tok.vocab_size());
}

TEST(TokenizerTest, OutOfRangeIdsDecodeSafely) {
  Tokenizer tok;
  EXPECT_EQ(tok.decode({-1, tok.vocab_size(), 1 << 30}), "???");
  EXPECT_EQ(tok.token_text(-5), "?");
}

}  // namespace
}  // namespace gr1
