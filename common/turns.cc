#include "common/turns.h"

#include <cctype>
#include <cstdlib>

#include "common/tokenizer.h"

namespace gr1 {

std::string turn_text(const std::vector<int32_t>& tokens, const TurnSpan& span, int image_size) {
  int32_t end = span.end;
  while (end > span.begin && (tokens[end - 1] == Tokenizer::kEnd || tokens[end - 1] == Tokenizer::kEos))
    --end;
  std::vector<int32_t> ids(tokens.begin() + span.begin, tokens.begin() + end);
  return Tokenizer(image_size).decode(ids);
}

std::vector<std::string> turn_texts(const Trajectory& t, int image_size) {
  std::vector<std::string> out;
  out.reserve(t.turns.size());
  for (const auto& s : t.turns) out.push_back(turn_text(t.tokens, s, image_size));
  return out;
}

namespace {
// Parses a non-negative integer or decimal at s[i..]; advances i.
bool parse_number(std::string_view s, size_t& i, float* out) {
  size_t j = i;
  bool digits = false;
  while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j, digits = true;
  if (j < s.size() && s[j] == '.') {
    ++j;
    while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j, digits = true;
  }
  if (!digits) return false;
  *out = std::strtof(std::string(s.substr(i, j - i)).c_str(), nullptr);
  i = j;
  return true;
}
void skip_ws(std::string_view s, size_t& i) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
}
}  // namespace

std::optional<Box> extract_box(std::string_view turn) {
  size_t pos = 0;
  while ((pos = turn.find("<box>", pos)) != std::string_view::npos) {
    size_t i = pos + 5;
    pos = i;
    skip_ws(turn, i);
    if (i >= turn.size() || turn[i] != '[') continue;
    ++i;
    float v[4];
    bool ok = true;
    for (int k = 0; k < 4 && ok; ++k) {
      skip_ws(turn, i);
      ok = parse_number(turn, i, &v[k]);
      skip_ws(turn, i);
      if (ok && k < 3) ok = i < turn.size() && turn[i++] == ',';
    }
    if (!ok || i >= turn.size() || turn[i] != ']') continue;
    ++i;
    skip_ws(turn, i);
    if (turn.substr(i, 6) != "</box>") continue;
    return Box{v[0], v[1], v[2], v[3]};
  }
  return std::nullopt;
}

bool is_answer_turn(std::string_view turn) { return turn.find("<answer>") != std::string_view::npos; }

std::optional<Box> last_box_shown(const Trajectory& t) {
  for (auto it = t.boxes_shown.rbegin(); it != t.boxes_shown.rend(); ++it)
    if (it->has_value()) return *it;
  return std::nullopt;
}

int policy_token_count(const Trajectory& t) {
  int n = 0;
  for (auto m : t.policy_mask) n += m;
  return n;
}

}  // namespace gr1
