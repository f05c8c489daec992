// Turn formats and rewards (docs: ground-r1-algorithm.md, "Turn formats" and
// "Rewards"). Pure functions of text; thread-safe; no LibTorch.
//
//   turn texts -> format_reward (every turn's shape)           -+
//   final turn -> extract_answer -> accuracy_reward (dataset)  -+-> reward = format + accuracy
//   last crop box vs evidence -> box_score (logged only, never in the reward)
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/trajectory.h"

namespace gr1 {

// ---- Turn formats ---------------------------------------------------------
//
// Grounding turn, exactly:
//   <think>T</think>WS<box>[N,N,N,N]</box>
// Answer turn, exactly:
//   <think>T</think>WS<answer>A</answer>
// - Nothing before <think> and nothing after </box> / </answer>: not even
//   whitespace or a newline.
// - WS: zero or more of ' ', '\t', '\n', '\r'.
// - N: a non-negative number, digits then optionally '.' and more digits
//   ("12", "12.5", "12." like the reference's \d+\.?\d*); no sign, no
//   exponent. Whitespace is allowed around each N inside the brackets and
//   nowhere else in <box>...</box>.
// - Each tag of the turn's kind occurs exactly once; tags of the other kind
//   (<answer>/</answer> in a grounding turn, <box>/</box> in an answer turn)
//   must not occur at all.
// - Answer turn: T and A are non-empty (at least one character, as the
//   reference's ".+"). Grounding turn: the doc requires non-empty text only
//   for the answer turn, so T may be empty here (the reference trainer
//   required it non-empty; this is a deliberate, literal reading of the doc).
// - A box written anywhere else (a bracketed list of four numbers, signs and
//   decimals allowed, e.g. "[1, 2, 3, 4]" in the think or answer text) is a
//   format failure.
struct GroundingTurn {
  bool ok = false;
  Box box;  // SHOWN-frame pixels as written; only meaningful when ok
};
struct AnswerTurn {
  bool ok = false;
  std::string answer;  // the text between <answer> and </answer>, untrimmed
};

GroundingTurn parse_grounding_turn(std::string_view turn);
AnswerTurn parse_answer_turn(std::string_view turn);

// 2 * (turns matching their pattern) / turns: non-final turns use the
// grounding pattern, the final turn the answer pattern. 0 for no turns.
double format_reward(const std::vector<std::string>& turns);

// ---- Accuracy ---------------------------------------------------------------

enum class AccuracyRule {
  kMultipleChoice,  // letter A-D
  kOcrText,         // 1 - word edit distance / longer length
  kCaption,         // mean of ROUGE-1/2/L F-measures
  kShortAnswer,     // 1.0 exact, 0.6 truth substring of prediction
};

std::string_view accuracy_rule_name(AccuracyRule rule);

// The rule for a dataset name (exact, case-sensitive match): the built-in
// table in reward.cc, then names added by register_accuracy_rule. An unknown
// name is an error naming it.
Result<AccuracyRule> accuracy_rule_for(std::string_view dataset);

// Adds a dataset name (e.g. a configured synthetic task name). Registering
// a name again with the same rule is a no-op; with a different rule, or an
// empty name, it is an error. Thread-safe; entries live for the process.
Status register_accuracy_rule(std::string_view dataset, AccuracyRule rule);

// The text of the first <answer>...</answer> pair in `turn` (first
// "<answer>", then the first "</answer>" after it, newlines allowed: the
// reference's re.search(r"<answer>(.*?)</answer>", DOTALL)), trimmed of
// surrounding whitespace. nullopt when there is no such pair: the reference's
// fallbacks to the whole text are NOT copied (accuracy uses <answer> only).
std::optional<std::string> extract_answer(std::string_view turn);

// The ground truth from a solution field: the trimmed contents of its first
// <answer>...</answer> if it has one ("<answer>B</answer>" -> "B"), else the
// trimmed solution.
std::string solution_truth(std::string_view solution);

// Accuracy in [0, 1] of an already extracted answer against the solution
// field (passed through solution_truth first).
//  - kMultipleChoice: letter of each side = the text itself when it is one
//    letter A-D (case-insensitive), else the first "X." with X in A-D
//    (uppercase only, not preceded by a letter or digit, like the
//    reference's \b([A-D])\.). 1 when both letters exist and agree.
//  - kOcrText: tokens = lower-cased text split on whitespace;
//    1 - levenshtein(tokens) / max(1, max(len_a, len_t)); two empty texts
//    score 1.
//  - kCaption: tokens = lower-cased text with every non-[a-z0-9] char turned
//    into a space (rouge_score's tokenizer, WITHOUT its Porter stemmer), mean
//    of ROUGE-1, ROUGE-2 and ROUGE-L F-measures; F = 2PR/(P+R), 0 when either
//    side has no n-grams or nothing overlaps.
//  - kShortAnswer: both trimmed and lower-cased; 1.0 equal, 0.6 when the
//    (non-empty) truth is a substring of the answer, else 0.
double accuracy_reward(AccuracyRule rule, std::string_view answer, std::string_view solution);

// Building blocks, exposed for tests and logging.
int word_edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b);
double rouge_n_f(const std::vector<std::string>& candidate,
                 const std::vector<std::string>& reference, int n);
double rouge_l_f(const std::vector<std::string>& candidate,
                 const std::vector<std::string>& reference);

// ---- Box quality (logged, never rewarded) -----------------------------------

// Generalised IoU in [-1, 1]. Zero-area boxes have area 0; when the
// enclosing box has zero area GIoU falls back to IoU (0), as the reference.
double giou(const Box& a, const Box& b);
// (GIoU + 1) / 2 in [0, 1].
double box_score(const Box& pred, const Box& truth);

// ---- One call per trajectory -------------------------------------------------

struct RewardBreakdown {
  double format = 0;    // [0, 2]
  double accuracy = 0;  // [0, 1]
  double reward = 0;    // format + accuracy
  std::optional<double> box_score;  // when a last box and an evidence box exist
};

// format = format_reward(turn_texts).
// accuracy = accuracy_reward(rule, extract_answer(final turn), solution): the
//   answer is extracted from the final turn's text even when that turn fails
//   the answer format (as the reference: a regex search in the final
//   completion); no <answer>...</answer> pair, or no turns, gives 0.
// box_score = box_score(*last_box_orig, evidence[0]) when both exist (the
//   first evidence box, as `gr1 eval`), else nullopt.
RewardBreakdown score_trajectory(const std::vector<std::string>& turn_texts,
                                 std::string_view solution, AccuracyRule rule,
                                 const std::optional<Box>& last_box_orig,
                                 const std::vector<Box>& evidence);

}  // namespace gr1
