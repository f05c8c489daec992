#include "common/tokenizer.h"

#include <array>

namespace gr1 {
namespace {

constexpr std::array<std::string_view, Tokenizer::kNumSpecial> kTags = {
    "<pad>",   "<bos>",    "<eos>", "<image>", "<|user|>", "<|assistant|>", "<|end|>",
    "<think>", "</think>", "<box>", "</box>",  "<answer>", "</answer>"};

// Tags recognised inside text (see encode()).
constexpr int32_t kFirstTextTag = Tokenizer::kImage;

}  // namespace

int32_t Tokenizer::char_id(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (u == '\n') return kNewline;
  if (u >= 32 && u <= 126) return kFirstPrintable + (u - 32);
  return kFirstPrintable + ('?' - 32);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
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
  if (id > kNewline && id < kVocabSize) return std::string(1, static_cast<char>(32 + id - kFirstPrintable));
  return "?";
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    if (id == kPad || id == kBos || id == kEos) continue;
    if (id >= kFirstPrintable && id < kVocabSize) {
      out.push_back(static_cast<char>(32 + id - kFirstPrintable));
    } else {
      out += token_text(id);
    }
  }
  return out;
}

}  // namespace gr1
