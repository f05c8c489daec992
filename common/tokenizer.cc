#include "common/tokenizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace gr1 {
namespace {

constexpr std::array<std::string_view, Tokenizer::kNumSpecial> kTags = {
    "<pad>",   "<bos>",    "<eos>", "<image>", "<|user|>", "<|assistant|>", "<|end|>",
    "<think>", "</think>", "<box>", "</box>",  "<answer>", "</answer>"};

// Tags recognised inside text (see encode()).
constexpr int32_t kFirstTextTag = Tokenizer::kImage;

// Float noise allowed when a coordinate is compared with a grid line, in cells.
constexpr double kGridTolerance = 1e-4;

// The grid's cell count is 2^kGridDigits, so a grid value's fraction has at
// most kGridDigits decimals: rem / 2^p = rem * 5^p / 10^p.
constexpr int log2_exact(int n) { return n <= 1 ? 0 : 1 + log2_exact(n / 2); }
constexpr int kGridDigits = log2_exact(Tokenizer::kLocationCells);
constexpr int64_t pow5(int p) { return p == 0 ? 1 : 5 * pow5(p - 1); }
constexpr int64_t kGridFivePow = pow5(kGridDigits);

// Letters, digits and '_': what a word token may not touch on either side.
bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// The word token whose word starts text[i..] as a whole word, or -1.
int32_t word_at(std::string_view text, size_t i) {
  if (i > 0 && is_word_char(text[i - 1])) return -1;
  for (int32_t w = 0; w < Tokenizer::kNumWords; ++w) {
    const std::string_view word = Tokenizer::kWords[w];
    if (text.compare(i, word.size(), word) != 0) continue;
    const size_t end = i + word.size();
    if (end < text.size() && is_word_char(text[end])) continue;
    return Tokenizer::kFirstWord + w;
  }
  return -1;
}

bool is_number_char(char c) { return (c >= '0' && c <= '9') || c == '.'; }

// Length of the box bracket "<spaces>[...]" at text[i..] (i just after a
// <box> tag), 0 when there is none: the ']' must come before any '<'.
size_t box_bracket_length(std::string_view text, size_t i) {
  size_t j = i;
  while (j < text.size() && (text[j] == ' ' || text[j] == '\n' || text[j] == '\t')) ++j;
  if (j >= text.size() || text[j] != '[') return 0;
  for (size_t e = j + 1; e < text.size(); ++e) {
    if (text[e] == ']') return e + 1 - i;
    if (text[e] == '<') return 0;
  }
  return 0;
}

}  // namespace

const std::string_view Tokenizer::kWords[Tokenizer::kNumWords] = {
    "red",   "green", "blue",  "yellow", "orange", "purple",  "cyan",
    "brown", "black", "white", "circle", "square", "triangle"};

Tokenizer::Tokenizer(int image_size) : image_size_(image_size) {
  if (image_size < 1)
    throw std::invalid_argument("Tokenizer: image_size (model.image_size) must be >= 1, got " +
                                std::to_string(image_size));
}

int32_t Tokenizer::char_id(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (u == '\n') return kNewline;
  if (u >= 32 && u <= 126) return kFirstPrintable + (u - 32);
  return kFirstPrintable + ('?' - 32);
}

std::string Tokenizer::location_text(int k) const {
  // k * S / C = whole + rem / C with C = 2^p, and rem / C = rem * 5^p / 10^p
  // exactly: p decimal digits, trailing zeros dropped.
  static_assert(kLocationCells > 0 && (kLocationCells & (kLocationCells - 1)) == 0,
                "the location grid's decimal texts need a power-of-2 cell count");
  const int64_t num = static_cast<int64_t>(k) * image_size_;
  const int64_t whole = num / kLocationCells, rem = num % kLocationCells;
  if (rem == 0) return std::to_string(whole);
  std::string f = std::to_string(rem * kGridFivePow);
  f.insert(0, static_cast<size_t>(kGridDigits) - f.size(), '0');
  while (f.back() == '0') f.pop_back();
  return std::to_string(whole) + "." + f;
}

std::optional<int> Tokenizer::location_index(float v) const {
  const double q = static_cast<double>(v) * kLocationCells / image_size_;
  const double k = std::round(q);
  if (!(std::fabs(q - k) <= kGridTolerance) || k < 0 || k > kLocationCells) return std::nullopt;
  return static_cast<int>(k);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, BoxCoordinates coords) const {
  std::vector<int32_t> out;
  out.reserve(text.size());
  // The canonical texts of the grid values, built once per call that needs them.
  std::array<std::string, kNumLocations> grid;
  if (coords == BoxCoordinates::kLocationTokens)
    for (int k = 0; k < kNumLocations; ++k) grid[k] = location_text(k);
  size_t bracket_end = 0;  // > i while inside a box bracket (kLocationTokens only)
  size_t i = 0;
  while (i < text.size()) {
    if (i < bracket_end && is_number_char(text[i])) {
      size_t j = i;
      while (j < bracket_end && is_number_char(text[j])) ++j;
      const std::string_view run = text.substr(i, j - i);
      const auto hit = std::find(grid.begin(), grid.end(), run);
      if (hit != grid.end()) {
        out.push_back(location_id(static_cast<int>(hit - grid.begin())));
      } else {
        for (size_t c = i; c < j; ++c) out.push_back(char_id(text[c]));
      }
      i = j;
      continue;
    }
    if (text[i] == '<') {
      int32_t hit = -1;
      for (int32_t id = kFirstTextTag; id < kNumSpecial; ++id) {
        if (text.compare(i, kTags[id].size(), kTags[id]) == 0) {
          hit = id;
          break;
        }
      }
      if (hit >= 0) {
        out.push_back(hit);
        i += kTags[hit].size();
        if (hit == kBox && coords == BoxCoordinates::kLocationTokens)
          bracket_end = i + box_bracket_length(text, i);
        continue;
      }
    }
    if (text[i] >= 'a' && text[i] <= 'z' && i >= bracket_end) {
      if (const int32_t w = word_at(text, i); w >= 0) {
        out.push_back(w);
        i += kWords[w - kFirstWord].size();
        continue;
      }
    }
    out.push_back(char_id(text[i]));
    ++i;
  }
  return out;
}

std::string Tokenizer::token_text(int32_t id) const {
  if (id >= 0 && id < kNumSpecial) return std::string(kTags[id]);
  if (id == kNewline) return "\n";
  if (id > kNewline && id < kFirstLocation)
    return std::string(1, static_cast<char>(32 + id - kFirstPrintable));
  if (is_location(id)) return "<loc_" + std::to_string(id - kFirstLocation) + ">";
  if (is_word(id)) return std::string(kWords[id - kFirstWord]);
  return "?";
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    if (id == kPad || id == kBos || id == kEos) continue;
    if (id >= kFirstPrintable && id < kFirstLocation) {
      out.push_back(static_cast<char>(32 + id - kFirstPrintable));
    } else if (is_location(id)) {
      out += location_text(id - kFirstLocation);
    } else {
      out += token_text(id);
    }
  }
  return out;
}

Box snap_box_to_location_grid(const Box& shown, int image_size) {
  return snap_box_to_grid(shown, image_size, Tokenizer::kLocationCells);
}

Box snap_box_to_grid(const Box& shown, int image_size, int cells) {
  if (cells < 1)
    throw std::invalid_argument("snap_box_to_grid: cells must be >= 1, got " +
                                std::to_string(cells));
  const double cells_per_px = static_cast<double>(cells) / image_size;
  const int n = cells;
  auto lo = [&](float v) {
    return std::clamp(static_cast<int>(std::floor(v * cells_per_px + kGridTolerance)), 0, n);
  };
  auto hi = [&](float v) {
    return std::clamp(static_cast<int>(std::ceil(v * cells_per_px - kGridTolerance)), 0, n);
  };
  int k[4] = {lo(shown.x1), lo(shown.y1), hi(shown.x2), hi(shown.y2)};
  for (int a = 0; a < 2; ++a) {
    if (k[a + 2] > k[a]) continue;
    if (k[a] < n) {
      k[a + 2] = k[a] + 1;
    } else {
      k[a] = n - 1;
      k[a + 2] = n;
    }
  }
  auto px = [&](int c) {
    return static_cast<float>(static_cast<double>(c) * image_size / cells);
  };
  return Box{px(k[0]), px(k[1]), px(k[2]), px(k[3])};
}

Status check_vocab_size(int64_t checkpoint_vocab_size) {
  if (checkpoint_vocab_size == Tokenizer::kVocabSize) return Status::Ok();
  std::string msg = "vocabulary size " + std::to_string(checkpoint_vocab_size) +
                    ", the tokenizer's is " + std::to_string(Tokenizer::kVocabSize);
  if (checkpoint_vocab_size == Tokenizer::kVocabSizeWithoutLocations)
    msg += " (a checkpoint from before the location tokens were added;"
           " pretrain a new base with `gr1 pretrain`)";
  if (checkpoint_vocab_size == Tokenizer::kVocabSizeWith16Cells)
    msg += " (a checkpoint of the earlier 16-cell location grid <loc_0>..<loc_16>; the grid"
           " now has 32 cells per axis: pretrain a new base with `gr1 pretrain`)";
  if (checkpoint_vocab_size == Tokenizer::kVocabSizeWithoutWords)
    msg += " (a checkpoint from before the colour and shape words became single tokens;"
           " pretrain a new base with `gr1 pretrain`)";
  return Status::Error(msg);
}

}  // namespace gr1
