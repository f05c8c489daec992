// Character-level tokenizer with the special tokens of the Ground-R1 turn
// format. Stateless and cheap to copy; no LibTorch (included widely).
//
// Ids (fixed, part of the checkpoint contract):
//   0 <pad>  1 <bos>  2 <eos>  3 <image>  4 <|user|>  5 <|assistant|>  6 <|end|>
//   7 <think>  8 </think>  9 <box>  10 </box>  11 <answer>  12 </answer>
//   13 '\n', then printable ASCII 32..126 as ids 14..108.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gr1 {

class Tokenizer {
 public:
  static constexpr int32_t kPad = 0;
  static constexpr int32_t kBos = 1;
  static constexpr int32_t kEos = 2;
  static constexpr int32_t kImage = 3;  // one image-embedding slot
  static constexpr int32_t kUser = 4;
  static constexpr int32_t kAssistant = 5;
  static constexpr int32_t kEnd = 6;
  static constexpr int32_t kThink = 7;
  static constexpr int32_t kThinkEnd = 8;
  static constexpr int32_t kBox = 9;
  static constexpr int32_t kBoxEnd = 10;
  static constexpr int32_t kAnswer = 11;
  static constexpr int32_t kAnswerEnd = 12;
  static constexpr int32_t kNumSpecial = 13;
  static constexpr int32_t kNewline = 13;     // '\n'
  static constexpr int32_t kFirstPrintable = 14;  // ' ' (32); '~' (126) is 108
  static constexpr int32_t kVocabSize = 109;

  int32_t vocab_size() const { return kVocabSize; }

  // Text -> ids. The tag texts of ids 3..12 ("<image>", "<think>", "</box>",
  // ...) become their single token; "<pad>", "<bos>", "<eos>" are control
  // tokens that never appear in text and are encoded character by character.
  // '\n' and bytes 32..126 are one token each; any other byte becomes '?'.
  std::vector<int32_t> encode(std::string_view text) const;

  // Ids -> text. Special tokens are rendered as their tag text, except
  // pad/bos/eos, which render as "". Out-of-range ids render as "?".
  // encode(decode(ids)) == ids for ids without pad/bos/eos.
  std::string decode(const std::vector<int32_t>& ids) const;

  // Text of one token for logs: tag text for every special token (including
  // "<pad>", "<bos>", "<eos>"), the character otherwise, "?" when out of range.
  std::string token_text(int32_t id) const;

  // Id of one character ('?' for bytes outside '\n' and 32..126).
  static int32_t char_id(char c);
};

}  // namespace gr1
