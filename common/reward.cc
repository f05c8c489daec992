#include "common/reward.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <mutex>
#include <utility>

namespace gr1 {
namespace {

constexpr std::string_view kThink = "<think>", kThinkEnd = "</think>";
constexpr std::string_view kBox = "<box>", kBoxEnd = "</box>";
constexpr std::string_view kAnswer = "<answer>", kAnswerEnd = "</answer>";

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
// Python str.strip()/split() whitespace (ASCII part).
bool is_py_space(char c) { return is_ws(c) || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

size_t count(std::string_view s, std::string_view needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string_view::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

bool starts_with(std::string_view s, size_t pos, std::string_view prefix) {
  return s.size() >= pos && s.substr(pos, prefix.size()) == prefix;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_py_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_py_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> split_ws(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_py_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_py_space(s[j])) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// rouge_score's default tokenizer without stemming: lower-case, every
// character outside [a-z0-9] becomes a separator.
std::vector<std::string> rouge_tokens(std::string_view s) {
  std::string t = lower(s);
  for (char& c : t) {
    if (!is_digit(c) && !(c >= 'a' && c <= 'z')) c = ' ';
  }
  return split_ws(t);
}

// Number grammar of a <box>: digits, then optionally '.' and digits.
// Advances pos past it and stores the value; false if no number starts here.
bool parse_box_number(std::string_view s, size_t& pos, double& value) {
  size_t i = pos;
  if (i >= s.size() || !is_digit(s[i])) return false;
  double v = 0;
  while (i < s.size() && is_digit(s[i])) v = v * 10 + (s[i++] - '0');
  if (i < s.size() && s[i] == '.') {
    ++i;
    double scale = 0.1;
    while (i < s.size() && is_digit(s[i])) {
      v += (s[i++] - '0') * scale;
      scale *= 0.1;
    }
  }
  pos = i;
  value = v;
  return true;
}

// The looser number grammar used to detect stray boxes: optional sign, then
// digits with an optional fraction, or '.' and digits.
bool skip_loose_number(std::string_view s, size_t& pos) {
  size_t i = pos;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  pos = i;
  return true;
}

void skip_ws(std::string_view s, size_t& pos) {
  while (pos < s.size() && is_ws(s[pos])) ++pos;
}

// "[N,N,N,N]" with whitespace around each N, starting at pos (at '[').
// strict: the <box> number grammar, values stored; loose: stray-box grammar.
bool parse_bracket4(std::string_view s, size_t& pos, bool strict, std::array<double, 4>* values) {
  size_t i = pos;
  if (i >= s.size() || s[i] != '[') return false;
  ++i;
  for (int k = 0; k < 4; ++k) {
    skip_ws(s, i);
    if (strict) {
      double v = 0;
      if (!parse_box_number(s, i, v)) return false;
      if (values) (*values)[k] = v;
    } else if (!skip_loose_number(s, i)) {
      return false;
    }
    skip_ws(s, i);
    const char sep = k < 3 ? ',' : ']';
    if (i >= s.size() || s[i] != sep) return false;
    ++i;
  }
  pos = i;
  return true;
}

// True if text holds something that reads as a box: "[a, b, c, d]".
bool contains_stray_box(std::string_view text) {
  for (size_t p = text.find('['); p != std::string_view::npos; p = text.find('[', p + 1)) {
    size_t q = p;
    if (parse_bracket4(text, q, /*strict=*/false, nullptr)) return true;
  }
  return false;
}

// Parses "<think>T</think>WS" at the start of s; returns the position after
// WS and the think text, or npos.
size_t parse_think_prefix(std::string_view s, std::string_view& think) {
  if (!starts_with(s, 0, kThink)) return std::string_view::npos;
  const size_t end = s.find(kThinkEnd, kThink.size());
  if (end == std::string_view::npos) return std::string_view::npos;
  think = s.substr(kThink.size(), end - kThink.size());
  size_t pos = end + kThinkEnd.size();
  skip_ws(s, pos);
  return pos;
}

bool is_word_char(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return std::isalnum(u) || c == '_' || u >= 0x80;
}

// Multiple-choice letter of a text: itself when it is one letter A-D
// (either case), else the first "X." (X uppercase A-D at a word start).
std::optional<char> choice_letter(std::string_view text) {
  text = trim(text);
  if (text.size() == 1) {
    const char c = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
    if (c >= 'A' && c <= 'D') return c;
  }
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] >= 'A' && text[i] <= 'D' && text[i + 1] == '.' &&
        (i == 0 || !is_word_char(text[i - 1]))) {
      return text[i];
    }
  }
  return std::nullopt;
}

double f_measure(double overlap, double cand_total, double ref_total) {
  if (overlap <= 0 || cand_total <= 0 || ref_total <= 0) return 0.0;
  const double p = overlap / cand_total, r = overlap / ref_total;
  return 2 * p * r / (p + r);
}

// ---- Dataset -> accuracy rule: the ONE table -------------------------------
// Names and rules follow the reference trainer's dataset_handlers (Ground-R1,
// r1-v/src/open_r1/grpo.py) where it has an entry; the rest are ours.
struct RuleEntry {
  std::string_view dataset;
  AccuracyRule rule;
};
constexpr RuleEntry kRuleTable[] = {
    // Multiple choice: solutions are "<answer>X</answer>" (gqa, openimages in
    // the VisCoT sample). v7w is multiple choice in the reference's training
    // data (the public eval sample's v7w rows are free text; they then score
    // 0 here, as in the reference).
    {"v7w", AccuracyRule::kMultipleChoice},
    {"visual7w", AccuracyRule::kMultipleChoice},  // alias of v7w (not in the reference)
    {"gqa", AccuracyRule::kMultipleChoice},
    {"openimages", AccuracyRule::kMultipleChoice},
    // OCR / free-form text: word edit distance.
    {"docvqa", AccuracyRule::kOcrText},
    {"infographicsvqa", AccuracyRule::kOcrText},
    {"textcap", AccuracyRule::kOcrText},  // solutions are read text ("LANCOME"), not captions
    {"textvqa", AccuracyRule::kOcrText},
    {"dude", AccuracyRule::kOcrText},
    {"sroie", AccuracyRule::kOcrText},
    {"emotic", AccuracyRule::kOcrText},  // not in the reference: an "a and b and c" emotion list
    // Captions / sentences: ROUGE.
    {"flickr30k", AccuracyRule::kCaption},
    // Short open answers.
    {"vsr", AccuracyRule::kShortAnswer},
    {"cub", AccuracyRule::kShortAnswer},
    // The synthetic benchmark (common/task.h): "<prefix>_<family>[_mc]" with
    // the default prefix "synth" (other prefixes are registered by
    // SyntheticTask::create), plus the generic names.
    {"synth", AccuracyRule::kShortAnswer},
    {"synth_mc", AccuracyRule::kMultipleChoice},
    {"synth_text", AccuracyRule::kShortAnswer},
    {"synth_text_mc", AccuracyRule::kMultipleChoice},
    {"synth_attribute", AccuracyRule::kShortAnswer},
    {"synth_attribute_mc", AccuracyRule::kMultipleChoice},
    {"synth_spatial", AccuracyRule::kShortAnswer},
    {"synth_spatial_mc", AccuracyRule::kMultipleChoice},
    {"synth_counting", AccuracyRule::kShortAnswer},
    {"synth_counting_mc", AccuracyRule::kMultipleChoice},
};

std::optional<AccuracyRule> builtin_rule(std::string_view dataset) {
  for (const RuleEntry& e : kRuleTable) {
    if (e.dataset == dataset) return e.rule;
  }
  return std::nullopt;
}

struct Registry {
  std::mutex mu;
  std::map<std::string, AccuracyRule, std::less<>> extra;
};
Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: safe at exit
  return *r;
}

}  // namespace

// ---- Turn formats -------------------------------------------------------------

GroundingTurn parse_grounding_turn(std::string_view s) {
  GroundingTurn out;
  if (count(s, kThink) != 1 || count(s, kThinkEnd) != 1 || count(s, kBox) != 1 ||
      count(s, kBoxEnd) != 1 || count(s, kAnswer) != 0 || count(s, kAnswerEnd) != 0) {
    return out;
  }
  std::string_view think;
  size_t pos = parse_think_prefix(s, think);
  if (pos == std::string_view::npos || !starts_with(s, pos, kBox)) return out;
  pos += kBox.size();
  std::array<double, 4> v{};
  if (!parse_bracket4(s, pos, /*strict=*/true, &v)) return out;
  if (!starts_with(s, pos, kBoxEnd) || pos + kBoxEnd.size() != s.size()) return out;
  if (contains_stray_box(think)) return out;
  out.ok = true;
  out.box = Box{static_cast<float>(v[0]), static_cast<float>(v[1]), static_cast<float>(v[2]),
                static_cast<float>(v[3])};
  return out;
}

AnswerTurn parse_answer_turn(std::string_view s) {
  AnswerTurn out;
  if (count(s, kThink) != 1 || count(s, kThinkEnd) != 1 || count(s, kAnswer) != 1 ||
      count(s, kAnswerEnd) != 1 || count(s, kBox) != 0 || count(s, kBoxEnd) != 0) {
    return out;
  }
  std::string_view think;
  size_t pos = parse_think_prefix(s, think);
  if (pos == std::string_view::npos || think.empty() || !starts_with(s, pos, kAnswer)) return out;
  pos += kAnswer.size();
  const size_t end = s.find(kAnswerEnd, pos);
  if (end == std::string_view::npos || end + kAnswerEnd.size() != s.size()) return out;
  const std::string_view answer = s.substr(pos, end - pos);
  if (answer.empty() || contains_stray_box(think) || contains_stray_box(answer)) return out;
  out.ok = true;
  out.answer = std::string(answer);
  return out;
}

double format_reward(const std::vector<std::string>& turns) {
  if (turns.empty()) return 0.0;
  size_t matched = 0;
  for (size_t i = 0; i < turns.size(); ++i) {
    const bool ok = i + 1 == turns.size() ? parse_answer_turn(turns[i]).ok
                                          : parse_grounding_turn(turns[i]).ok;
    matched += ok ? 1 : 0;
  }
  return 2.0 * static_cast<double>(matched) / static_cast<double>(turns.size());
}

// ---- Accuracy -------------------------------------------------------------------

std::string_view accuracy_rule_name(AccuracyRule rule) {
  switch (rule) {
    case AccuracyRule::kMultipleChoice: return "multiple_choice";
    case AccuracyRule::kOcrText: return "ocr_text";
    case AccuracyRule::kCaption: return "caption";
    case AccuracyRule::kShortAnswer: return "short_answer";
  }
  return "unknown";
}

Result<AccuracyRule> accuracy_rule_for(std::string_view dataset) {
  if (auto r = builtin_rule(dataset)) return *r;
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  auto it = reg.extra.find(dataset);
  if (it != reg.extra.end()) return it->second;
  return Result<AccuracyRule>::Error("unknown dataset \"" + std::string(dataset) +
                                     "\": no accuracy rule (see kRuleTable in common/reward.cc)");
}

Status register_accuracy_rule(std::string_view dataset, AccuracyRule rule) {
  if (dataset.empty()) return Status::Error("register_accuracy_rule: empty dataset name");
  auto conflict = [&](AccuracyRule have) {
    return Status::Error("dataset \"" + std::string(dataset) + "\" already uses accuracy rule " +
                         std::string(accuracy_rule_name(have)) + ", cannot register " +
                         std::string(accuracy_rule_name(rule)));
  };
  if (auto r = builtin_rule(dataset)) return *r == rule ? Status::Ok() : conflict(*r);
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  auto [it, inserted] = reg.extra.emplace(std::string(dataset), rule);
  if (!inserted && it->second != rule) return conflict(it->second);
  return Status::Ok();
}

std::optional<std::string> extract_answer(std::string_view turn) {
  const size_t open = turn.find(kAnswer);
  if (open == std::string_view::npos) return std::nullopt;
  const size_t begin = open + kAnswer.size();
  const size_t close = turn.find(kAnswerEnd, begin);
  if (close == std::string_view::npos) return std::nullopt;
  return std::string(trim(turn.substr(begin, close - begin)));
}

std::string solution_truth(std::string_view solution) {
  if (auto inner = extract_answer(solution)) return *inner;
  return std::string(trim(solution));
}

int word_edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1]
                                    : 1 + std::min({prev[j], cur[j - 1], prev[j - 1]});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

double rouge_n_f(const std::vector<std::string>& candidate,
                 const std::vector<std::string>& reference, int n) {
  if (n <= 0) return 0.0;
  auto grams = [n](const std::vector<std::string>& t) {
    std::map<std::vector<std::string>, int> m;
    for (size_t i = 0; i + n <= t.size(); ++i) ++m[std::vector<std::string>(t.begin() + i, t.begin() + i + n)];
    return m;
  };
  const auto c = grams(candidate), r = grams(reference);
  double overlap = 0, c_total = 0, r_total = 0;
  for (const auto& [g, k] : c) c_total += k;
  for (const auto& [g, k] : r) {
    r_total += k;
    auto it = c.find(g);
    if (it != c.end()) overlap += std::min(k, it->second);
  }
  return f_measure(overlap, c_total, r_total);
}

double rouge_l_f(const std::vector<std::string>& candidate,
                 const std::vector<std::string>& reference) {
  const size_t m = candidate.size(), n = reference.size();
  if (m == 0 || n == 0) return 0.0;
  std::vector<int> prev(n + 1, 0), cur(n + 1, 0);
  for (size_t i = 1; i <= m; ++i) {
    for (size_t j = 1; j <= n; ++j) {
      cur[j] = candidate[i - 1] == reference[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    }
    std::swap(prev, cur);
  }
  return f_measure(prev[n], static_cast<double>(m), static_cast<double>(n));
}

double accuracy_reward(AccuracyRule rule, std::string_view answer, std::string_view solution) {
  const std::string truth = solution_truth(solution);
  switch (rule) {
    case AccuracyRule::kMultipleChoice: {
      const auto a = choice_letter(answer), t = choice_letter(truth);
      return a && t && *a == *t ? 1.0 : 0.0;
    }
    case AccuracyRule::kOcrText: {
      const auto a = split_ws(lower(answer)), t = split_ws(lower(truth));
      const size_t longer = std::max<size_t>(1, std::max(a.size(), t.size()));
      const double score = 1.0 - static_cast<double>(word_edit_distance(t, a)) / longer;
      return std::clamp(score, 0.0, 1.0);
    }
    case AccuracyRule::kCaption: {
      const auto a = rouge_tokens(answer), t = rouge_tokens(truth);
      return (rouge_n_f(a, t, 1) + rouge_n_f(a, t, 2) + rouge_l_f(a, t)) / 3.0;
    }
    case AccuracyRule::kShortAnswer: {
      const std::string a = lower(trim(answer)), t = lower(trim(truth));
      if (a == t) return 1.0;
      if (!t.empty() && a.find(t) != std::string::npos) return 0.6;
      return 0.0;
    }
  }
  return 0.0;
}

// ---- Box quality ------------------------------------------------------------------

double giou(const Box& a, const Box& b) {
  const double area_a = a.area(), area_b = b.area();
  const double iw = std::max(0.0, static_cast<double>(std::min(a.x2, b.x2)) - std::max(a.x1, b.x1));
  const double ih = std::max(0.0, static_cast<double>(std::min(a.y2, b.y2)) - std::max(a.y1, b.y1));
  const double inter = (area_a > 0 && area_b > 0) ? iw * ih : 0.0;
  const double uni = area_a + area_b - inter;
  const double iou = uni > 0 ? inter / uni : 0.0;
  const double cw = static_cast<double>(std::max(a.x2, b.x2)) - std::min(a.x1, b.x1);
  const double ch = static_cast<double>(std::max(a.y2, b.y2)) - std::min(a.y1, b.y1);
  const double c = (cw > 0 && ch > 0) ? cw * ch : 0.0;
  return c > 0 ? iou - (c - uni) / c : iou;
}

double box_score(const Box& pred, const Box& truth) { return (giou(pred, truth) + 1.0) / 2.0; }

// ---- One call per trajectory ---------------------------------------------------------

RewardBreakdown score_trajectory(const std::vector<std::string>& turn_texts,
                                 std::string_view solution, AccuracyRule rule,
                                 const std::optional<Box>& last_box_orig,
                                 const std::vector<Box>& evidence) {
  RewardBreakdown out;
  out.format = format_reward(turn_texts);
  if (!turn_texts.empty()) {
    if (auto answer = extract_answer(turn_texts.back())) {
      out.accuracy = accuracy_reward(rule, *answer, solution);
    }
  }
  out.reward = out.format + out.accuracy;
  if (last_box_orig && !evidence.empty()) {
    // The FIRST evidence box, as evaluation's box_score and the paper's
    // "the dataset's evidence box": the same number everywhere it is shown.
    out.box_score = box_score(*last_box_orig, evidence.front());
  }
  return out;
}

}  // namespace gr1
