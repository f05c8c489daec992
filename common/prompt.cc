#include "common/prompt.h"

#include "common/tokenizer.h"

namespace gr1 {

std::string instruction_text(const std::string& question, int shown_w, int shown_h) {
  return question + " Image " + std::to_string(shown_w) + "x" + std::to_string(shown_h) +
         ". To zoom, give one <box>[x1,y1,x2,y2]</box>; its crop follows, repeatable. End with"
         " <answer>...</answer>. Format: <think>...</think><box>[...]</box> or"
         " <think>...</think><answer>...</answer>";
}

namespace {
void append_user(std::vector<int32_t>& out, const std::string& question, int w, int h, int n) {
  Tokenizer tok;
  out.push_back(Tokenizer::kUser);
  const auto text = tok.encode(instruction_text(question, w, h));
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), static_cast<size_t>(n), Tokenizer::kImage);
  out.push_back(Tokenizer::kEnd);
  out.push_back(Tokenizer::kAssistant);
}
}  // namespace

std::vector<int32_t> first_user_turn(const std::string& question, int shown_w, int shown_h,
                                     int image_tokens) {
  std::vector<int32_t> out{Tokenizer::kBos};
  append_user(out, question, shown_w, shown_h, image_tokens);
  return out;
}

std::vector<int32_t> later_user_turn(const std::string& question, int shown_w, int shown_h,
                                     int image_tokens, bool close_assistant) {
  std::vector<int32_t> out;
  if (close_assistant) out.push_back(Tokenizer::kEnd);
  append_user(out, question, shown_w, shown_h, image_tokens);
  return out;
}

bool is_stop_token(int32_t t) {
  return t == Tokenizer::kBoxEnd || t == Tokenizer::kAnswerEnd || t == Tokenizer::kEnd ||
         t == Tokenizer::kEos;
}

}  // namespace gr1
