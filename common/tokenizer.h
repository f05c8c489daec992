// Character-level tokenizer with the special tokens of the Ground-R1 turn
// format and a grid of box-coordinate LOCATION TOKENS. Stateless apart from
// the shown image size, cheap to copy; no LibTorch (included widely).
//
// Ids (fixed, part of the checkpoint contract; only ever appended to):
//   0 <pad>  1 <bos>  2 <eos>  3 <image>  4 <|user|>  5 <|assistant|>  6 <|end|>
//   7 <think>  8 </think>  9 <box>  10 </box>  11 <answer>  12 </answer>
//   13 '\n', then printable ASCII 32..126 as ids 14..108,
//   109..141 <loc_0>..<loc_32>,
//   142..154 the words of the benchmark's colours and shapes (kWords): "red"
//   .. "white", "circle", "square", "triangle".
//
// Location tokens (issue 4). A char-level policy writing "[12,28,20,40]"
// digit by digit must get up to 13 digits right for one box, and a small
// base writes malformed boxes such as [14,1,219,5] in a 64-pixel frame; one
// token per coordinate on a 16-cell grid was measured to locate far better
// (box score 0.80 vs 0.33 for a ~1M-parameter policy). The grid has 32
// cells per axis: with 16, a box could not fit the benchmark's evidence (an 8 px
// detail in a 256 px image is half a 16 px cell wide): the best box a
// 16-cell grid can write for the test split's evidence scores 0.634 and
// reaches IoU 0.5 on 7.8% of the questions; 32 cells: 0.729 and 42.8%
// (docs/results.md, "The location grid"). <loc_k> denotes the
// shown-frame pixel coordinate k * S / 32 (S = model.image_size; the shown
// frame is square), so <loc_0> is the left/top edge and <loc_32> the
// right/bottom edge. decode() renders it as that NUMBER, so decoded turn
// text keeps the "<box>[x1,y1,x2,y2]</box>" form and every text-level parser
// (reward format regex, extract_box, scoring) is unchanged. The policy still
// writes '[', ',' and ']' as characters, and digits stay legal inside a box.
//
// Word tokens (issue 4). Character by character, the base copied the asked
// shape's colour into its first thought wrongly on 34% of the test
// questions that name it ("How many dots are on the red circle?" ->
// "<think>the blue circle</think>"; the shape word was right, the colour word
// mostly fell back to "blue"), and where the thought named the wrong colour
// its box was on the evidence 29% of the time against 52%
// (docs/results.md, "Word tokens"). A real VLM's BPE vocabulary spells each of
// these words as one token; here the ten colours (the shapes' eight and the
// badges' black and white) and three shapes are one token each, so copying
// the colour is one token's lookup and an image patch can match the word's
// single embedding. A word becomes its token only as a whole word: lowercase,
// exactly the word, with no letter, digit or '_' on either side.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/trajectory.h"

namespace gr1 {

// How encode() writes the numbers of a "<box>[...]</box>".
enum class BoxCoordinates {
  kText,            // digit by digit (prompts, any text)
  kLocationTokens,  // grid values as <loc_k> (teacher turns), other numbers as digits
};

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
  static constexpr int32_t kNewline = 13;         // '\n'
  static constexpr int32_t kFirstPrintable = 14;  // ' ' (32); '~' (126) is 108
  static constexpr int32_t kFirstLocation = 109;  // <loc_0>
  static constexpr int kLocationCells = 32;       // grid cells per axis (a power of 2)
  static constexpr int32_t kNumLocations = kLocationCells + 1;  // <loc_0>..<loc_32>
  static constexpr int32_t kFirstWord = kFirstLocation + kNumLocations;  // 142: "red"
  static constexpr int32_t kNumWords = 13;
  static constexpr int32_t kVocabSize = kFirstWord + kNumWords;  // 155
  // The vocabulary of checkpoints written before location tokens existed.
  static constexpr int32_t kVocabSizeWithoutLocations = kFirstLocation;  // 109
  // The vocabulary of checkpoints written with the earlier 16-cell grid.
  static constexpr int32_t kVocabSizeWith16Cells = kFirstLocation + 17;  // 126
  // The vocabulary of checkpoints written before the word tokens.
  static constexpr int32_t kVocabSizeWithoutWords = kFirstWord;  // 142
  // The word of each word token, in id order from kFirstWord.
  static const std::string_view kWords[kNumWords];

  // `image_size`: side S of the square shown frame (model.image_size), which
  // gives location tokens their pixel values. Only decode(), location_text(),
  // location_index() and encode(.., kLocationTokens) depend on it; prompts and
  // vocab_size() do not. Throws std::invalid_argument when image_size < 1
  // (a programming error: model.image_size is validated with the config).
  explicit Tokenizer(int image_size = 64);

  int image_size() const { return image_size_; }
  int32_t vocab_size() const { return kVocabSize; }

  static constexpr int32_t location_id(int k) { return kFirstLocation + k; }  // k in [0, 32]
  static constexpr bool is_location(int32_t id) {
    return id >= kFirstLocation && id < kFirstLocation + kNumLocations;
  }
  static constexpr bool is_word(int32_t id) { return id >= kFirstWord && id < kVocabSize; }

  // Canonical decimal text of grid value k * S / 32 (k in [0, 32]): an
  // integer when it is one ("12"), else the shortest exact decimal ("3.75",
  // "0.03125"; exact because the denominator is a power of 2).
  std::string location_text(int k) const;

  // k when `v` is exactly (within 1e-4 cell of float noise) the grid value
  // k * S / 32 with k in [0, 32], else nullopt.
  std::optional<int> location_index(float v) const;

  // Text -> ids. The tag texts of ids 3..12 ("<image>", "<think>", "</box>",
  // ...) become their single token; "<pad>", "<bos>", "<eos>" and
  // "<loc_k>" are never read from text (encoded character by character).
  // A whole word of kWords (in either mode; not inside a kLocationTokens box
  // bracket) becomes its word token. Other '\n' and bytes 32..126 are one
  // token each; any other byte becomes '?'.
  // kLocationTokens: in the bracket right after a <box> tag
  // ("<box>" spaces "[" ... "]", up to the first ']'), every maximal run of
  // digits and '.' whose text is exactly location_text(k) becomes <loc_k>;
  // other numbers ("13", "16.0", "016") stay digits. A "[" with no "]" before
  // the next '<' or the end is not a bracket. Outside boxes nothing changes.
  std::vector<int32_t> encode(std::string_view text,
                              BoxCoordinates coords = BoxCoordinates::kText) const;

  // Ids -> text. Special tokens are rendered as their tag text, except
  // pad/bos/eos, which render as "", and location tokens, which render as
  // location_text(k). Out-of-range ids render as "?".
  //
  // Round trips (ids without pad/bos/eos; text of '\n' and bytes 32..126):
  //   decode(encode(text, any mode)) == text (a location token replaces
  //     exactly the text it decodes to).
  //   encode(decode(ids)) == ids when ids hold no location token and do not
  //     spell a word of kWords character by character as a whole word
  //     (sampled text may: "r","e","d" re-encodes as the word token).
  //   encode(decode(ids), kLocationTokens) == ids when every location token
  //     is a whole number in a box bracket (not next to a digit or '.') and
  //     no digit run in a box bracket is a grid value's text. Sampled text
  //     can break this ("<loc_1>5" decodes to "45"; digits "4" re-encode as
  //     <loc_1> at S = 64), which is why the learner trains on the sampled
  //     ids and never re-tokenises decoded text.
  std::string decode(const std::vector<int32_t>& ids) const;

  // Text of one token for logs: tag text for every special token (including
  // "<pad>", "<bos>", "<eos>", "<loc_k>"), the word of a word token, the
  // character otherwise, "?" when out of range.
  std::string token_text(int32_t id) const;

  // Id of one character ('?' for bytes outside '\n' and 32..126).
  static int32_t char_id(char c);

 private:
  int image_size_;
};

// A shown-frame box (S x S frame) snapped OUTWARD to the location grid, so
// it still covers the original: x1, y1 floored and x2, y2 ceiled to
// multiples of S / 32, clamped to [0, S]. A coordinate within 1e-4 cell of a
// grid line counts as on it (float noise of frame conversions must not grow
// the box a whole cell). A side that would be empty (x2 <= x1 after
// snapping) gets one cell: [k, k + 1], or [31, 32] at the far edge. Every
// coordinate of the result has a location_index().
Box snap_box_to_location_grid(const Box& shown, int image_size);

// The same snapping on a grid of `cells` per axis (>= 1): what another
// location grid would write (gr1 data grid compares grids).
// snap_box_to_location_grid(b, S) == snap_box_to_grid(b, S, kLocationCells).
Box snap_box_to_grid(const Box& shown, int image_size, int cells);

// OK when a checkpoint's vocabulary is this tokenizer's; else an error that
// says both sizes and, for 109 (checkpoints from before location tokens), 126
// (the earlier 16-cell grid) and 142 (before the word tokens), that the
// checkpoint must be pretrained again.
Status check_vocab_size(int64_t checkpoint_vocab_size);

}  // namespace gr1
