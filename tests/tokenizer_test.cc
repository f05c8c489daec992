// The character tokenizer: fixed ids, special tags, location tokens, round
// trips, snapping boxes to the location grid.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

#include "common/tokenizer.h"

namespace gr1 {
namespace {

TEST(TokenizerTest, VocabularyHasSpecialsNewlineAndPrintableAscii) {
  Tokenizer tok;
  EXPECT_EQ(tok.vocab_size(), 13 + 1 + 95 + 33 + 13);
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
  EXPECT_EQ(tok.encode("~").at(0), 108);  // the last character id predates location tokens
}

TEST(TokenizerTest, LocationTokensAreAppendedAfterEveryTextId) {
  EXPECT_EQ(Tokenizer::kFirstWord, 142);
  EXPECT_EQ(Tokenizer::location_id(0), 109);
  EXPECT_EQ(Tokenizer::location_id(32), 141);
  EXPECT_FALSE(Tokenizer::is_location(108));
  EXPECT_TRUE(Tokenizer::is_location(109));
  EXPECT_TRUE(Tokenizer::is_location(141));
  EXPECT_FALSE(Tokenizer::is_location(142));
  Tokenizer tok;
  EXPECT_EQ(tok.token_text(109), "<loc_0>");
  EXPECT_EQ(tok.token_text(141), "<loc_32>");
  // Their tag text is not special in text: a question cannot inject one.
  const auto ids = tok.encode("<loc_3>", BoxCoordinates::kLocationTokens);
  EXPECT_EQ(ids.size(), 7u);
  for (auto id : ids) EXPECT_FALSE(Tokenizer::is_location(id));
}

TEST(TokenizerTest, LocationTokensDecodeToShownFramePixels) {
  // S = 64: 2-pixel cells.
  Tokenizer t64(64);
  EXPECT_EQ(t64.image_size(), 64);
  const std::vector<std::pair<int, std::string>> s64 = {{0, "0"}, {1, "2"}, {6, "12"}, {32, "64"}};
  for (const auto& [k, text] : s64) {
    EXPECT_EQ(t64.location_text(k), text);
    EXPECT_EQ(t64.decode({Tokenizer::location_id(k)}), text);
  }
  std::vector<int32_t> box = {Tokenizer::kBox, Tokenizer::char_id('[')};
  for (int k : {6, 14, 10, 20}) {
    box.push_back(Tokenizer::location_id(k));
    box.push_back(Tokenizer::char_id(k == 20 ? ']' : ','));
  }
  box.push_back(Tokenizer::kBoxEnd);
  EXPECT_EQ(t64.decode(box), "<box>[12,28,20,40]</box>");
  // The same ids in other frames.
  EXPECT_EQ(Tokenizer(32).decode(box), "<box>[6,14,10,20]</box>");
  EXPECT_EQ(Tokenizer(48).decode(box), "<box>[9,21,15,30]</box>");  // 1.5-pixel cells
  // A frame that is not a multiple of 32: exact shortest decimals.
  EXPECT_EQ(Tokenizer(40).decode(box), "<box>[7.5,17.5,12.5,25]</box>");  // 1.25-pixel cells
  Tokenizer t50(50);  // 1.5625-pixel cells
  EXPECT_EQ(t50.location_text(1), "1.5625");
  EXPECT_EQ(t50.location_text(2), "3.125");
  EXPECT_EQ(t50.location_text(4), "6.25");
  EXPECT_EQ(t50.location_text(16), "25");
  EXPECT_EQ(t50.location_text(32), "50");
  EXPECT_EQ(Tokenizer(1).location_text(1), "0.03125");
  EXPECT_EQ(Tokenizer(1).location_text(31), "0.96875");
  EXPECT_EQ(Tokenizer(3).location_text(1), "0.09375");  // a leading zero kept
}

TEST(TokenizerTest, LocationIndexFindsExactGridValuesOnly) {
  Tokenizer t64(64);
  EXPECT_EQ(t64.location_index(12), 6);
  EXPECT_EQ(t64.location_index(14), 7);
  EXPECT_EQ(t64.location_index(0), 0);
  EXPECT_EQ(t64.location_index(64), 32);
  EXPECT_EQ(t64.location_index(12.00001f), 6);  // float noise
  EXPECT_EQ(t64.location_index(13), std::nullopt);
  EXPECT_EQ(t64.location_index(12.5f), std::nullopt);
  EXPECT_EQ(t64.location_index(66), std::nullopt);  // beyond the frame
  EXPECT_EQ(t64.location_index(-2), std::nullopt);
  EXPECT_EQ(Tokenizer(40).location_index(7.5f), 6);
  EXPECT_EQ(Tokenizer(40).location_index(7), std::nullopt);
}

TEST(TokenizerTest, RejectsAnEmptyFrame) {
  EXPECT_THROW(Tokenizer(0), std::invalid_argument);
  EXPECT_THROW(Tokenizer(-64), std::invalid_argument);
}

// ids of `text` character by character (no tags).
std::vector<int32_t> chars(const std::string& text) {
  std::vector<int32_t> out;
  for (char c : text) out.push_back(Tokenizer::char_id(c));
  return out;
}

TEST(TokenizerTest, EncodeWritesGridValuesInBoxesAsLocationTokens) {
  Tokenizer tok(64);
  const std::string text = "<think>a 12</think><box>[12,28,20,40]</box>";
  std::vector<int32_t> want = {Tokenizer::kThink};
  for (int32_t id : chars("a 12")) want.push_back(id);
  want.push_back(Tokenizer::kThinkEnd);
  want.push_back(Tokenizer::kBox);
  want.push_back(Tokenizer::char_id('['));
  for (int k : {6, 14, 10, 20}) {
    want.push_back(Tokenizer::location_id(k));
    want.push_back(Tokenizer::char_id(k == 20 ? ']' : ','));
  }
  want.push_back(Tokenizer::kBoxEnd);
  EXPECT_EQ(tok.encode(text, BoxCoordinates::kLocationTokens), want);
  // kText (the default) writes digits, as before location tokens existed.
  const auto digits = tok.encode(text);
  EXPECT_EQ(digits.size(), 1 + 4 + 1 + 1 + 13 + 1u);
  for (auto id : digits) EXPECT_FALSE(Tokenizer::is_location(id));
  EXPECT_EQ(digits, tok.encode(text, BoxCoordinates::kText));
}

TEST(TokenizerTest, EncodeKeepsNonGridNumbersAndTextOutsideBoxesAsDigits) {
  Tokenizer tok(64);
  const auto L = [](int k) { return Tokenizer::location_id(k); };
  // 13 is off the grid; "16.0" and "016" are not the canonical text "16".
  std::vector<int32_t> want = {Tokenizer::kBox};
  for (int32_t id : chars(" [ 13, 16.0,016 , ")) want.push_back(id);
  want.push_back(L(32));
  want.push_back(Tokenizer::char_id(']'));
  want.push_back(Tokenizer::kBoxEnd);
  EXPECT_EQ(tok.encode("<box> [ 13, 16.0,016 , 64]</box>", BoxCoordinates::kLocationTokens), want);
  // Numbers outside a box bracket, or in a bracket that never closes, stay digits.
  for (const std::string text : {"<answer>12</answer>", "[12,28,20,40]", "<think>[4,8]</think>",
                                 "<box>[12,16</box>", "<box>12,16]</box>", "<box>[12,16"}) {
    for (auto id : tok.encode(text, BoxCoordinates::kLocationTokens))
      EXPECT_FALSE(Tokenizer::is_location(id)) << text;
  }
  // Only the bracket right after <box>: a second bracket is plain text.
  const auto two = tok.encode("<box>[4][8]</box>", BoxCoordinates::kLocationTokens);
  EXPECT_EQ(two, (std::vector<int32_t>{Tokenizer::kBox, Tokenizer::char_id('['), L(2),
                                       Tokenizer::char_id(']'), Tokenizer::char_id('['),
                                       Tokenizer::char_id('8'), Tokenizer::char_id(']'),
                                       Tokenizer::kBoxEnd}));
  // A frame with decimal grid values (S = 40, 1.25-pixel cells).
  EXPECT_EQ(Tokenizer(40).encode("<box>[2.5,5,7.5,40]</box>", BoxCoordinates::kLocationTokens),
            (std::vector<int32_t>{Tokenizer::kBox, Tokenizer::char_id('['), L(2),
                                  Tokenizer::char_id(','), L(4), Tokenizer::char_id(','), L(6),
                                  Tokenizer::char_id(','), L(32), Tokenizer::char_id(']'),
                                  Tokenizer::kBoxEnd}));
}

TEST(TokenizerTest, LocationRoundTripsHoldForWellFormedBoxesOnly) {
  Tokenizer tok(64);
  const auto L = [](int k) { return Tokenizer::location_id(k); };
  const int32_t lb = Tokenizer::char_id('['), rb = Tokenizer::char_id(']'),
                cm = Tokenizer::char_id(',');
  // Text survives encode with location tokens then decode, whatever it holds.
  for (const std::string text :
       {"<think>x</think><box>[12,28,20,40]</box>", "<box> [ 13, 16.0,016 , 64]</box>",
        "<box>[12,16</box>", "<box>[4][8]</box><answer>12</answer>"})
    EXPECT_EQ(tok.decode(tok.encode(text, BoxCoordinates::kLocationTokens)), text);
  // Ids with location tokens as the four numbers of a box bracket survive
  // decode then encode with location tokens (and so do off-grid digits).
  const std::vector<int32_t> good = {Tokenizer::kBox, lb, L(0), cm, L(32), cm,
                                     Tokenizer::char_id('5'), cm, L(4), rb, Tokenizer::kBoxEnd};
  EXPECT_EQ(tok.decode(good), "<box>[0,64,5,8]</box>");
  EXPECT_EQ(tok.encode(tok.decode(good), BoxCoordinates::kLocationTokens), good);
  // What a sampling policy can write that does NOT round trip (which is why
  // the learner trains on sampled ids and never re-tokenises text):
  // a location token next to a digit reads as one number ("4" "5" -> "45"),
  const std::vector<int32_t> glued = {Tokenizer::kBox, lb, L(2), Tokenizer::char_id('5'), rb,
                                      Tokenizer::kBoxEnd};
  EXPECT_EQ(tok.decode(glued), "<box>[45]</box>");
  EXPECT_NE(tok.encode(tok.decode(glued), BoxCoordinates::kLocationTokens), glued);
  // a grid value written in digits comes back as a location token,
  const std::vector<int32_t> digit = {Tokenizer::kBox, lb, Tokenizer::char_id('4'), rb,
                                      Tokenizer::kBoxEnd};
  EXPECT_EQ(tok.encode(tok.decode(digit), BoxCoordinates::kLocationTokens),
            (std::vector<int32_t>{Tokenizer::kBox, lb, L(2), rb, Tokenizer::kBoxEnd}));
  // and a location token outside a box comes back as digits.
  const std::vector<int32_t> outside = {Tokenizer::kAnswer, L(6), Tokenizer::kAnswerEnd};
  EXPECT_EQ(tok.encode(tok.decode(outside), BoxCoordinates::kLocationTokens),
            (std::vector<int32_t>{Tokenizer::kAnswer, Tokenizer::char_id('1'),
                                  Tokenizer::char_id('2'), Tokenizer::kAnswerEnd}));
}

TEST(TokenizerTest, SnappingGrowsABoxOutwardToTheGrid) {
  // S = 64, 2-pixel cells: floor 13/2 = 6 -> 12, floor 3/2 = 1 -> 2,
  // ceil 27/2 = 14 -> 28, ceil 41/2 = 21 -> 42.
  EXPECT_EQ(snap_box_to_location_grid(Box{13, 3, 27, 41}, 64), (Box{12, 2, 28, 42}));
  // On the grid already: unchanged, also with float noise around the lines.
  EXPECT_EQ(snap_box_to_location_grid(Box{12, 28, 20, 40}, 64), (Box{12, 28, 20, 40}));
  EXPECT_EQ(snap_box_to_location_grid(Box{12.00001f, 0, 19.99999f, 4}, 64), (Box{12, 0, 20, 4}));
  // Clamped to the frame.
  EXPECT_EQ(snap_box_to_location_grid(Box{-5, 1, 70, 64.5f}, 64), (Box{0, 0, 64, 64}));
  // An empty side gets one cell; at the far edge the cell before it.
  EXPECT_EQ(snap_box_to_location_grid(Box{16, 16, 16, 16}, 64), (Box{16, 16, 18, 18}));
  EXPECT_EQ(snap_box_to_location_grid(Box{64, 10, 64, 10}, 64), (Box{62, 10, 64, 12}));
  // S = 48 (1.5-pixel cells): 4 -> 3, 5 -> 4.5, 10 -> 10.5, 11 -> 12.
  EXPECT_EQ(snap_box_to_location_grid(Box{4, 5, 10, 11}, 48), (Box{3, 4.5f, 10.5f, 12}));
  // S = 40 (1.25-pixel cells): floor 3/1.25 = 2 -> 2.5, ceil 6/1.25 = 5 -> 6.25.
  EXPECT_EQ(snap_box_to_location_grid(Box{3, 3, 6, 6}, 40), (Box{2.5f, 2.5f, 6.25f, 6.25f}));
  // Every snapped coordinate is a location token's value.
  Tokenizer t40(40);
  const Box b = snap_box_to_location_grid(Box{1.3f, 17.7f, 33.1f, 39.9f}, 40);
  for (float v : {b.x1, b.y1, b.x2, b.y2}) EXPECT_TRUE(t40.location_index(v).has_value()) << v;
}

TEST(TokenizerTest, SnappingToAnotherGridCountsItsCells) {
  // The location grid is snap_box_to_grid with kLocationCells.
  for (const Box& b : {Box{13, 3, 27, 41}, Box{1.3f, 17.7f, 33.1f, 39.9f}, Box{64, 10, 64, 10}})
    EXPECT_EQ(snap_box_to_location_grid(b, 64), snap_box_to_grid(b, 64, Tokenizer::kLocationCells));
  // 16 cells (the grid before 2026-12-06), S = 64, 4-pixel cells: floor 13/4
  // = 3 -> 12, floor 2/4 = 0 -> 0, ceil 27/4 = 7 -> 28, ceil 41/4 = 11 -> 44.
  EXPECT_EQ(snap_box_to_grid(Box{13, 2, 27, 41}, 64, 16), (Box{12, 0, 28, 44}));
  EXPECT_EQ(snap_box_to_grid(Box{16, 16, 16, 16}, 64, 16), (Box{16, 16, 20, 20}));
  EXPECT_EQ(snap_box_to_grid(Box{64, 10, 64, 10}, 64, 16), (Box{60, 8, 64, 12}));
  // One cell: the whole frame; 64 cells at S = 64: whole pixels.
  EXPECT_EQ(snap_box_to_grid(Box{13, 2, 27, 41}, 64, 1), (Box{0, 0, 64, 64}));
  EXPECT_EQ(snap_box_to_grid(Box{13.5f, 2, 27.2f, 41}, 64, 64), (Box{13, 2, 28, 41}));
  EXPECT_THROW(snap_box_to_grid(Box{0, 0, 1, 1}, 64, 0), std::invalid_argument);
}

TEST(TokenizerTest, VocabularyCheckExplainsOldCheckpoints) {
  EXPECT_TRUE(check_vocab_size(155).ok());
  const Status old = check_vocab_size(109);
  ASSERT_FALSE(old.ok());
  for (const char* part : {"109", "155", "location tokens", "gr1 pretrain"})
    EXPECT_NE(old.message().find(part), std::string::npos) << old.message();
  // A checkpoint of the earlier 16-cell grid is named as such.
  const Status grid16 = check_vocab_size(126);
  ASSERT_FALSE(grid16.ok());
  for (const char* part : {"126", "155", "16-cell", "gr1 pretrain"})
    EXPECT_NE(grid16.message().find(part), std::string::npos) << grid16.message();
  // And one from before the word tokens.
  const Status words = check_vocab_size(142);
  ASSERT_FALSE(words.ok());
  for (const char* part : {"142", "155", "single tokens", "gr1 pretrain"})
    EXPECT_NE(words.message().find(part), std::string::npos) << words.message();
  const Status other = check_vocab_size(200);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.message().find("200"), std::string::npos) << other.message();
  EXPECT_EQ(other.message().find("gr1 pretrain"), std::string::npos) << other.message();
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
  // Every id but pad/bos/eos and location tokens (see LocationRoundTrips...).
  Tokenizer tok;
  std::vector<int32_t> ids;
  for (int32_t id = Tokenizer::kImage; id < Tokenizer::kFirstLocation; ++id) ids.push_back(id);
  for (int32_t id = Tokenizer::kFirstLocation - 1; id >= Tokenizer::kImage; id -= 7)
    ids.push_back(id);
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

TEST(TokenizerTest, ColourAndShapeWordsAreOneTokenAsWholeWordsOnly) {
  Tokenizer tok;
  EXPECT_EQ(Tokenizer::kVocabSize, 155);
  // Every word is one token of its own, in id order after the location grid,
  // and decodes to itself.
  std::set<int32_t> seen;
  for (int w = 0; w < Tokenizer::kNumWords; ++w) {
    const std::string word(Tokenizer::kWords[w]);
    const auto ids = tok.encode(word);
    ASSERT_EQ(ids.size(), 1u) << word;
    EXPECT_EQ(ids[0], Tokenizer::kFirstWord + w) << word;
    EXPECT_TRUE(Tokenizer::is_word(ids[0]));
    EXPECT_FALSE(Tokenizer::is_location(ids[0]));
    EXPECT_EQ(tok.token_text(ids[0]), word);
    EXPECT_EQ(tok.decode(ids), word);
    seen.insert(ids[0]);
  }
  EXPECT_EQ(seen.size(), 13u);
  EXPECT_FALSE(Tokenizer::is_word(Tokenizer::kFirstWord - 1));
  EXPECT_FALSE(Tokenizer::is_word(Tokenizer::kVocabSize));
  EXPECT_EQ(tok.encode("red")[0], 142);
  EXPECT_EQ(tok.encode("triangle")[0], 154);

  // In a question: "How many dots are on the red circle?" is
  // "How many dots are on the " (25 characters), red, ' ', circle, '?'.
  const std::string q = "How many dots are on the red circle?";
  const auto ids = tok.encode(q);
  ASSERT_EQ(ids.size(), 25u + 4u);
  EXPECT_EQ(ids[25], Tokenizer::kFirstWord + 0);
  EXPECT_EQ(ids[26], Tokenizer::char_id(' '));
  EXPECT_EQ(ids[27], Tokenizer::kFirstWord + 10);
  EXPECT_EQ(ids[28], Tokenizer::char_id('?'));
  EXPECT_EQ(tok.decode(ids), q);
  // Next to tags, punctuation and newlines (an answer, a multiple-choice option).
  const auto ans = tok.encode("<answer>yellow</answer>\nB. cyan,blue");
  const std::vector<int32_t> want = {Tokenizer::kAnswer,        Tokenizer::kFirstWord + 3,
                                     Tokenizer::kAnswerEnd,     Tokenizer::kNewline,
                                     Tokenizer::char_id('B'),   Tokenizer::char_id('.'),
                                     Tokenizer::char_id(' '),   Tokenizer::kFirstWord + 6,
                                     Tokenizer::char_id(','),   Tokenizer::kFirstWord + 2};
  EXPECT_EQ(ans, want);

  // Not part of a longer word, not capitalised, not next to a digit or '_'.
  for (const char* text : {"reduce", "bored", "Red", "red2", "x_red", "squares", "circles",
                           "whiteboard", "sred"}) {
    for (auto id : tok.encode(text)) EXPECT_FALSE(Tokenizer::is_word(id)) << text;
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  }
  // Characters that spell a word re-encode as the word (the documented
  // exception to encode(decode(ids)) == ids).
  const std::vector<int32_t> spelled = {Tokenizer::char_id('r'), Tokenizer::char_id('e'),
                                        Tokenizer::char_id('d')};
  EXPECT_EQ(tok.encode(tok.decode(spelled)), std::vector<int32_t>{Tokenizer::kFirstWord});
  // Location tokens beside a word: the thought's words, the box's cells.
  const auto turn = tok.encode("<think>the green square</think><box>[2,4,6,8]</box>",
                               BoxCoordinates::kLocationTokens);
  EXPECT_EQ(tok.decode(turn), "<think>the green square</think><box>[2,4,6,8]</box>");
  int words = 0, locations = 0;
  for (auto id : turn) {
    words += Tokenizer::is_word(id);
    locations += Tokenizer::is_location(id);
  }
  EXPECT_EQ(words, 2);
  EXPECT_EQ(locations, 4);
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
