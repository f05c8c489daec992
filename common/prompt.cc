#include "common/prompt.h"

#include "common/tokenizer.h"

namespace gr1 {

std::optional<PromptMode> prompt_mode_from_name(std::string_view name) {
  if (name == "grounded") return PromptMode::kGrounded;
  if (name == "direct") return PromptMode::kDirect;
  return std::nullopt;
}

std::string_view prompt_mode_name(PromptMode mode) {
  return mode == PromptMode::kDirect ? "direct" : "grounded";
}

std::string instruction_text(const std::string& question, int shown_w, int shown_h,
                             PromptMode mode) {
  const std::string size = " Image " + std::to_string(shown_w) + "x" + std::to_string(shown_h) + ".";
  if (mode == PromptMode::kDirect)
    return question + size +
           " Answer from the whole image. End with <answer>...</answer>. Format:"
           " <think>...</think><answer>...</answer>";
  return question + size +
         " To zoom, give one <box>[x1,y1,x2,y2]</box>; its crop follows, repeatable. End with"
         " <answer>...</answer>. Format: <think>...</think><box>[...]</box> or"
         " <think>...</think><answer>...</answer>";
}

namespace {
void append_user(std::vector<int32_t>& out, const std::string& question, int w, int h, int n,
                 PromptMode mode) {
  Tokenizer tok;
  out.push_back(Tokenizer::kUser);
  const auto text = tok.encode(instruction_text(question, w, h, mode));
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), static_cast<size_t>(n), Tokenizer::kImage);
  out.push_back(Tokenizer::kEnd);
  out.push_back(Tokenizer::kAssistant);
}
}  // namespace

std::vector<int32_t> first_user_turn(const std::string& question, int shown_w, int shown_h,
                                     int image_tokens, PromptMode mode) {
  std::vector<int32_t> out{Tokenizer::kBos};
  append_user(out, question, shown_w, shown_h, image_tokens, mode);
  return out;
}

std::vector<int32_t> later_user_turn(const std::string& question, int shown_w, int shown_h,
                                     int image_tokens, bool close_assistant) {
  std::vector<int32_t> out;
  if (close_assistant) out.push_back(Tokenizer::kEnd);
  append_user(out, question, shown_w, shown_h, image_tokens, PromptMode::kGrounded);
  return out;
}

bool is_stop_token(int32_t t) {
  return t == Tokenizer::kBoxEnd || t == Tokenizer::kAnswerEnd || t == Tokenizer::kEnd ||
         t == Tokenizer::kEos;
}

}  // namespace gr1
