// Turn formats, accuracy rules, box score (common/reward.h). Every expected
// number below is computed by hand in the comment next to it.
#include "common/reward.h"

#include <gtest/gtest.h>

namespace gr1 {
namespace {

const std::string kGround = "<think>the red circle is at the left</think><box>[10,20,30,40]</box>";
const std::string kAnswer = "<think>I can read a K</think><answer>K</answer>";

// ---- Grounding turns ---------------------------------------------------------

TEST(GroundingTurn, AcceptsTheCanonicalForm) {
  auto g = parse_grounding_turn(kGround);
  ASSERT_TRUE(g.ok);
  EXPECT_EQ(g.box, (Box{10, 20, 30, 40}));
}

TEST(GroundingTurn, AllowsWhitespaceBetweenThinkAndBoxAndInsideBrackets) {
  EXPECT_TRUE(parse_grounding_turn("<think>a</think> \n\t<box>[10,20,30,40]</box>").ok);
  auto g = parse_grounding_turn("<think>a</think><box>[ 10 ,\n20,30 , 40 ]</box>");
  ASSERT_TRUE(g.ok);
  EXPECT_EQ(g.box, (Box{10, 20, 30, 40}));
}

TEST(GroundingTurn, AcceptsDecimals) {
  auto g = parse_grounding_turn("<think>a</think><box>[10.5,0.25,30,40.]</box>");
  ASSERT_TRUE(g.ok);
  EXPECT_FLOAT_EQ(g.box.x1, 10.5f);
  EXPECT_FLOAT_EQ(g.box.y1, 0.25f);
  EXPECT_FLOAT_EQ(g.box.y2, 40.f);
}

TEST(GroundingTurn, AcceptsEmptyThinkText) {
  // The doc demands non-empty text only of answer turns (literal reading).
  EXPECT_TRUE(parse_grounding_turn("<think></think><box>[1,2,3,4]</box>").ok);
}

TEST(GroundingTurn, RejectsBadNumbers) {
  for (const char* box : {"[-1,20,30,40]", "[+1,20,30,40]", "[.5,20,30,40]", "[1e2,20,30,40]",
                          "[10,20,30]", "[10,20,30,40,50]", "[10,,30,40]", "[a,20,30,40]",
                          "[10;20;30;40]", "(10,20,30,40)", "[]", "[10 20,30,40]"}) {
    const std::string t = std::string("<think>a</think><box>") + box + "</box>";
    EXPECT_FALSE(parse_grounding_turn(t).ok) << t;
  }
}

TEST(GroundingTurn, RejectsWhitespaceOutsideTheBrackets) {
  for (const char* t : {"<think>a</think><box> [1,2,3,4]</box>",
                        "<think>a</think><box>[1,2,3,4] </box>",
                        " <think>a</think><box>[1,2,3,4]</box>",
                        "<think>a</think><box>[1,2,3,4]</box>\n",
                        "<think>a</think><box>[1,2,3,4]</box> "}) {
    EXPECT_FALSE(parse_grounding_turn(t).ok) << t;
  }
}

TEST(GroundingTurn, RejectsMissingTags) {
  for (const char* t : {"the red circle<box>[1,2,3,4]</box>", "<think>a<box>[1,2,3,4]</box>",
                        "a</think><box>[1,2,3,4]</box>", "<think>a</think>[1,2,3,4]</box>",
                        "<think>a</think><box>[1,2,3,4]", "<think>a</think>[1,2,3,4]", ""}) {
    EXPECT_FALSE(parse_grounding_turn(t).ok) << t;
  }
}

TEST(GroundingTurn, RejectsDoubledTags) {
  for (const char* t : {"<think>a<think>b</think><box>[1,2,3,4]</box>",
                        "<think>a</think></think><box>[1,2,3,4]</box>",
                        "<think>a</think><box>[1,2,3,4]</box><box>[1,2,3,4]</box>",
                        "<think>a <box> b</think><box>[1,2,3,4]</box>",
                        "<think>a</think><box>[1,2,3,4]</box></box>"}) {
    EXPECT_FALSE(parse_grounding_turn(t).ok) << t;
  }
}

TEST(GroundingTurn, RejectsTextBeforeThinkOrAfterBox) {
  EXPECT_FALSE(parse_grounding_turn("ok <think>a</think><box>[1,2,3,4]</box>").ok);
  EXPECT_FALSE(parse_grounding_turn("<think>a</think><box>[1,2,3,4]</box> done").ok);
  EXPECT_FALSE(parse_grounding_turn("<think>a</think> so <box>[1,2,3,4]</box>").ok);
}

TEST(GroundingTurn, RejectsABoxOutsideTheBoxTags) {
  EXPECT_FALSE(parse_grounding_turn("<think>look at [1, 2, 3, 4]</think><box>[1,2,3,4]</box>").ok);
  EXPECT_FALSE(parse_grounding_turn("<think>look at [-1,2.5,3,4]</think><box>[1,2,3,4]</box>").ok);
  // Brackets that are not four numbers are ordinary text.
  EXPECT_TRUE(parse_grounding_turn("<think>see [1,2] and [x]</think><box>[1,2,3,4]</box>").ok);
}

TEST(GroundingTurn, RejectsAnswerTags) {
  EXPECT_FALSE(parse_grounding_turn("<think><answer>K</answer></think><box>[1,2,3,4]</box>").ok);
}

// ---- Answer turns ---------------------------------------------------------------

TEST(AnswerTurn, AcceptsTheCanonicalForm) {
  auto a = parse_answer_turn(kAnswer);
  ASSERT_TRUE(a.ok);
  EXPECT_EQ(a.answer, "K");
  auto b = parse_answer_turn("<think>x</think>\n <answer> K </answer>");
  ASSERT_TRUE(b.ok);
  EXPECT_EQ(b.answer, " K ");
}

TEST(AnswerTurn, RejectsEmptyTexts) {
  EXPECT_FALSE(parse_answer_turn("<think>x</think><answer></answer>").ok);
  EXPECT_FALSE(parse_answer_turn("<think></think><answer>K</answer>").ok);
}

TEST(AnswerTurn, RejectsMissingOrDoubledTags) {
  for (const char* t : {"<think>x</think><answer>K", "<think>x</think>K</answer>",
                        "<think>x<answer>K</answer>", "<answer>K</answer>",
                        "<think>x</think><answer>K</answer><answer>K</answer>",
                        "<think>x</think><answer>K<answer>K</answer>",
                        "<think>x<think>y</think><answer>K</answer>"}) {
    EXPECT_FALSE(parse_answer_turn(t).ok) << t;
  }
}

TEST(AnswerTurn, RejectsTextOutsideTheTags) {
  EXPECT_FALSE(parse_answer_turn("<think>x</think><answer>K</answer>.").ok);
  EXPECT_FALSE(parse_answer_turn("<think>x</think><answer>K</answer>\n").ok);
  EXPECT_FALSE(parse_answer_turn("Sure! <think>x</think><answer>K</answer>").ok);
  EXPECT_FALSE(parse_answer_turn("<think>x</think>so<answer>K</answer>").ok);
}

TEST(AnswerTurn, RejectsBoxesAnywhere) {
  EXPECT_FALSE(parse_answer_turn("<think>x</think><box>[1,2,3,4]</box><answer>K</answer>").ok);
  EXPECT_FALSE(parse_answer_turn("<think>at [1,2,3,4]</think><answer>K</answer>").ok);
  EXPECT_FALSE(parse_answer_turn("<think>x</think><answer>[1,2,3,4]</answer>").ok);
}

// ---- Format reward ------------------------------------------------------------------

TEST(FormatReward, IsTwiceTheFractionOfWellFormedTurns) {
  const std::string bad = "<think>x</think>K";
  EXPECT_DOUBLE_EQ(format_reward({}), 0.0);
  EXPECT_DOUBLE_EQ(format_reward({kAnswer}), 2.0);
  EXPECT_DOUBLE_EQ(format_reward({kGround, kAnswer}), 2.0);
  EXPECT_DOUBLE_EQ(format_reward({kGround, kGround, kAnswer}), 2.0);
  EXPECT_DOUBLE_EQ(format_reward({kGround, bad}), 1.0);        // 2 * 1/2
  EXPECT_DOUBLE_EQ(format_reward({bad}), 0.0);
  EXPECT_DOUBLE_EQ(format_reward({kGround, bad, kAnswer}), 4.0 / 3.0);  // 2 * 2/3
}

TEST(FormatReward, FinalTurnMustBeAnAnswerAndEarlierTurnsGroundings) {
  EXPECT_DOUBLE_EQ(format_reward({kGround}), 0.0);             // unfinished trajectory
  EXPECT_DOUBLE_EQ(format_reward({kGround, kGround}), 1.0);    // last one is not an answer
  EXPECT_DOUBLE_EQ(format_reward({kAnswer, kAnswer}), 1.0);    // first one is not a grounding
}

// ---- Answer extraction ------------------------------------------------------------------

TEST(ExtractAnswer, TakesTheFirstPairTrimmedAcrossNewlines) {
  EXPECT_EQ(extract_answer("<think>x</think><answer> K </answer>"), "K");
  EXPECT_EQ(extract_answer("<answer>a\nb</answer>"), "a\nb");
  EXPECT_EQ(extract_answer("<answer>1</answer><answer>2</answer>"), "1");
  EXPECT_EQ(extract_answer("junk <answer>K</answer> junk"), "K");
  EXPECT_EQ(extract_answer("<think>x</think>K"), std::nullopt);
  EXPECT_EQ(extract_answer("<answer>K"), std::nullopt);
  EXPECT_EQ(extract_answer("</answer>K<answer>"), std::nullopt);
}

TEST(SolutionTruth, UnwrapsAnswerTags) {
  EXPECT_EQ(solution_truth("<answer>C</answer>"), "C");
  EXPECT_EQ(solution_truth("  dog "), "dog");
}

// ---- Accuracy rules ------------------------------------------------------------------------

TEST(MultipleChoice, MatchesLettersCaseInsensitively) {
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, "B", "<answer>B</answer>"), 1.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, " b ", "<answer>B</answer>"), 1.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, "B", "b"), 1.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, "C", "<answer>B</answer>"), 0.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, "E", "E"), 0.0);  // not A-D
}

TEST(MultipleChoice, FallsBackToALetterWithAPeriod) {
  EXPECT_DOUBLE_EQ(
      accuracy_reward(AccuracyRule::kMultipleChoice, "I think B. Wall", "<answer>B</answer>"), 1.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, "D. Door", "<answer>B</answer>"),
                   0.0);
  // The fallback wants an uppercase letter starting a word.
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, "b. wall", "<answer>B</answer>"),
                   0.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, "AB. x", "<answer>B</answer>"),
                   0.0);
  // No letter at all.
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, "Wall", "<answer>B</answer>"), 0.0);
}

TEST(OcrText, IsOneMinusWordEditDistanceOverTheLongerLength) {
  // Case-insensitive identical tokens.
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kOcrText, "a. c. monk", "A. C. Monk"), 1.0);
  // One insertion, longer length 4: 1 - 1/4.
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kOcrText, "the cat sat down", "the cat sat"), 0.75);
  // One deletion, longer length 2: 1 - 1/2.
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kOcrText, "10", "10 years"), 0.5);
  // Two substitutions + one deletion over 3 tokens: 0.
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kOcrText, "x y", "a b c"), 0.0);
  // One substitution in 3: 1 - 1/3; whitespace runs do not matter.
  EXPECT_NEAR(accuracy_reward(AccuracyRule::kOcrText, "kuala  lumpur\ncity", "kuala lumpur town"),
              2.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kOcrText, "", "two words"), 0.0);
}

TEST(WordEditDistance, CountsInsertionsDeletionsSubstitutions) {
  EXPECT_EQ(word_edit_distance({"a", "b", "c"}, {"a", "c", "d"}), 2);  // delete b, insert d
  EXPECT_EQ(word_edit_distance({}, {"a", "b"}), 2);
  EXPECT_EQ(word_edit_distance({"a", "b"}, {"b", "a"}), 2);
  EXPECT_EQ(word_edit_distance({"a"}, {"a"}), 0);
}

TEST(Caption, IsTheMeanOfRouge1Rouge2RougeL) {
  EXPECT_DOUBLE_EQ(
      accuracy_reward(AccuracyRule::kCaption, "the cat sat on the mat", "the cat sat on the mat"),
      1.0);
  // cand "the cat sat", ref "the cat sat on the mat":
  //   R1: overlap 3, P 3/3, R 3/6 -> F 2/3; R2: overlap 2, P 2/2, R 2/5 -> F 4/7;
  //   RL: LCS 3 -> F 2/3. Mean (2/3 + 4/7 + 2/3) / 3 = 40/63.
  EXPECT_NEAR(accuracy_reward(AccuracyRule::kCaption, "the cat sat", "the cat sat on the mat"),
              40.0 / 63.0, 1e-12);
  // Order: "b a" vs "a b": R1 1, R2 0, RL (LCS 1) 1/2 -> mean 1/2.
  EXPECT_NEAR(accuracy_reward(AccuracyRule::kCaption, "b a", "a b"), 0.5, 1e-12);
  // One identical word: R1 1, R2 0 (no bigrams), RL 1 -> 2/3.
  EXPECT_NEAR(accuracy_reward(AccuracyRule::kCaption, "Dog", "dog"), 2.0 / 3.0, 1e-12);
  // Punctuation and case are separators, not tokens.
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kCaption, "The cat, sat.", "the cat sat"), 1.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kCaption, "", "the cat sat"), 0.0);
}

TEST(Rouge, HandComputedPieces) {
  // cand a a b, ref a b b: unigram overlap min(2,1)+min(1,2) = 2, P 2/3, R 2/3 -> 2/3.
  EXPECT_NEAR(rouge_n_f({"a", "a", "b"}, {"a", "b", "b"}, 1), 2.0 / 3.0, 1e-12);
  // bigrams (a a)(a b) vs (a b)(b b): overlap 1, P 1/2, R 1/2 -> 1/2.
  EXPECT_NEAR(rouge_n_f({"a", "a", "b"}, {"a", "b", "b"}, 2), 0.5, 1e-12);
  // LCS of a b c d / a c e d is a c d = 3: P 3/4, R 3/4.
  EXPECT_NEAR(rouge_l_f({"a", "b", "c", "d"}, {"a", "c", "e", "d"}), 0.75, 1e-12);
  EXPECT_DOUBLE_EQ(rouge_l_f({}, {"a"}), 0.0);
}

TEST(ShortAnswer, ExactSubstringOrNothing) {
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kShortAnswer, "Yes", "Yes"), 1.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kShortAnswer, "  YES ", "yes"), 1.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kShortAnswer, "yes, a dog", "Dog"), 0.6);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kShortAnswer, "do", "dog"), 0.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kShortAnswer, "cat", "dog"), 0.0);
  EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kShortAnswer, "", "dog"), 0.0);
}

// ---- Dataset table ------------------------------------------------------------------------

TEST(AccuracyRuleFor, KnowsEveryDatasetOfTheVisCoTSample) {
  for (const char* d : {"flickr30k", "emotic", "vsr", "infographicsvqa", "docvqa", "textcap",
                        "openimages", "sroie", "cub", "textvqa", "gqa", "v7w", "dude"}) {
    EXPECT_TRUE(accuracy_rule_for(d).ok()) << d;
  }
}

TEST(AccuracyRuleFor, MapsNamesToRules) {
  EXPECT_EQ(*accuracy_rule_for("gqa"), AccuracyRule::kMultipleChoice);
  EXPECT_EQ(*accuracy_rule_for("openimages"), AccuracyRule::kMultipleChoice);
  EXPECT_EQ(*accuracy_rule_for("synth_mc"), AccuracyRule::kMultipleChoice);
  EXPECT_EQ(*accuracy_rule_for("docvqa"), AccuracyRule::kOcrText);
  EXPECT_EQ(*accuracy_rule_for("flickr30k"), AccuracyRule::kCaption);
  EXPECT_EQ(*accuracy_rule_for("vsr"), AccuracyRule::kShortAnswer);
  EXPECT_EQ(*accuracy_rule_for("synth"), AccuracyRule::kShortAnswer);
}

TEST(AccuracyRuleFor, UnknownDatasetIsAnErrorNamingIt) {
  auto r = accuracy_rule_for("imagenet");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("imagenet"), std::string::npos) << r.error();
  EXPECT_FALSE(accuracy_rule_for("").ok());
  EXPECT_FALSE(accuracy_rule_for("GQA").ok());  // exact names only
}

TEST(RegisterAccuracyRule, AddsNamesAndRejectsConflicts) {
  ASSERT_FALSE(accuracy_rule_for("reward_test_ds").ok());
  ASSERT_TRUE(register_accuracy_rule("reward_test_ds", AccuracyRule::kOcrText).ok());
  EXPECT_EQ(*accuracy_rule_for("reward_test_ds"), AccuracyRule::kOcrText);
  EXPECT_TRUE(register_accuracy_rule("reward_test_ds", AccuracyRule::kOcrText).ok());
  EXPECT_FALSE(register_accuracy_rule("reward_test_ds", AccuracyRule::kCaption).ok());
  EXPECT_FALSE(register_accuracy_rule("gqa", AccuracyRule::kShortAnswer).ok());
  EXPECT_TRUE(register_accuracy_rule("gqa", AccuracyRule::kMultipleChoice).ok());
  EXPECT_FALSE(register_accuracy_rule("", AccuracyRule::kShortAnswer).ok());
}

// ---- Box score -------------------------------------------------------------------------------

TEST(BoxScore, IdenticalBoxesScoreOne) {
  EXPECT_DOUBLE_EQ(giou(Box{1, 2, 5, 9}, Box{1, 2, 5, 9}), 1.0);
  EXPECT_DOUBLE_EQ(box_score(Box{1, 2, 5, 9}, Box{1, 2, 5, 9}), 1.0);
}

TEST(BoxScore, DisjointBoxesArePenalisedByTheEnclosingBox) {
  // Side by side: union 2, enclosing 3x1 = 3 -> GIoU 0 - 1/3; score 1/3.
  EXPECT_NEAR(giou(Box{0, 0, 1, 1}, Box{2, 0, 3, 1}), -1.0 / 3.0, 1e-12);
  EXPECT_NEAR(box_score(Box{0, 0, 1, 1}, Box{2, 0, 3, 1}), 1.0 / 3.0, 1e-12);
  // Diagonal: union 2, enclosing 3x3 = 9 -> GIoU -7/9; score 1/9.
  EXPECT_NEAR(box_score(Box{0, 0, 1, 1}, Box{2, 2, 3, 3}), 1.0 / 9.0, 1e-12);
  // Far apart the score approaches 0.
  EXPECT_LT(box_score(Box{0, 0, 1, 1}, Box{999, 999, 1000, 1000}), 1e-5);
}

TEST(BoxScore, OverlappingAndNestedBoxes) {
  // Inter 1, union 7, enclosing 9: GIoU 1/7 - 2/9 = -5/63; score 29/63.
  EXPECT_NEAR(box_score(Box{0, 0, 2, 2}, Box{1, 1, 3, 3}), 29.0 / 63.0, 1e-12);
  // Nested: inter 4, union 16 = enclosing: GIoU 1/4; score 5/8. Symmetric.
  EXPECT_NEAR(box_score(Box{0, 0, 4, 4}, Box{1, 1, 3, 3}), 0.625, 1e-12);
  EXPECT_NEAR(box_score(Box{1, 1, 3, 3}, Box{0, 0, 4, 4}), 0.625, 1e-12);
}

TEST(BoxScore, DegenerateBoxHasNoArea) {
  // Zero-area prediction inside a 10x10 truth: IoU 0, enclosing == union -> GIoU 0.
  EXPECT_NEAR(box_score(Box{5, 5, 5, 5}, Box{0, 0, 10, 10}), 0.5, 1e-12);
}

// ---- One call per trajectory ---------------------------------------------------------------

TEST(ScoreTrajectory, SumsFormatAndAccuracyAndLogsBoxScore) {
  const Box truth{10, 10, 20, 20};
  auto r = score_trajectory({kGround, kAnswer}, "K", AccuracyRule::kShortAnswer, truth, {truth});
  EXPECT_DOUBLE_EQ(r.format, 2.0);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(r.reward, 3.0);
  ASSERT_TRUE(r.box_score.has_value());
  EXPECT_DOUBLE_EQ(*r.box_score, 1.0);
}

TEST(ScoreTrajectory, ExtractsTheAnswerEvenWhenTheFinalTurnIsMalformed) {
  // Final turn has empty think text and trailing text: format fails, answer still read.
  auto r = score_trajectory({kGround, "<think></think><answer>k</answer> ok"}, "K",
                            AccuracyRule::kShortAnswer, std::nullopt, {});
  EXPECT_DOUBLE_EQ(r.format, 1.0);
  EXPECT_DOUBLE_EQ(r.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(r.reward, 2.0);
  EXPECT_FALSE(r.box_score.has_value());
}

TEST(ScoreTrajectory, AnswersOnlyCountInTheFinalTurn) {
  // An <answer> in an earlier turn does not count; the final turn has none.
  auto r = score_trajectory({"<think>x</think><answer>K</answer>", kGround}, "K",
                            AccuracyRule::kShortAnswer, std::nullopt, {});
  EXPECT_DOUBLE_EQ(r.accuracy, 0.0);
  EXPECT_DOUBLE_EQ(r.format, 0.0);
  EXPECT_DOUBLE_EQ(r.reward, 0.0);
}

TEST(ScoreTrajectory, NoTurnsScoreZero) {
  auto r = score_trajectory({}, "K", AccuracyRule::kShortAnswer, Box{0, 0, 1, 1}, {});
  EXPECT_DOUBLE_EQ(r.reward, 0.0);
  EXPECT_FALSE(r.box_score.has_value());  // no evidence box
}

TEST(ScoreTrajectory, BoxScoreUsesTheFirstEvidenceBox) {
  const Box last{0, 0, 2, 2};
  // vs [1,1,3,3]: inter 1, union 7, enclosing [0,0,3,3] = 9:
  //   GIoU = 1/7 - 2/9 = -5/63 -> (GIoU + 1) / 2 = 29/63.
  // vs [0,0,4,4]: inter 4, union 16 = enclosing -> (1/4 + 1) / 2 = 5/8.
  auto r = score_trajectory({kAnswer}, "K", AccuracyRule::kShortAnswer, last,
                            {Box{1, 1, 3, 3}, Box{0, 0, 4, 4}});
  ASSERT_TRUE(r.box_score.has_value());
  EXPECT_NEAR(*r.box_score, 29.0 / 63.0, 1e-12);
  auto s = score_trajectory({kAnswer}, "K", AccuracyRule::kShortAnswer, last,
                            {Box{0, 0, 4, 4}, Box{1, 1, 3, 3}});
  EXPECT_NEAR(*s.box_score, 0.625, 1e-12);
}

}  // namespace
}  // namespace gr1
