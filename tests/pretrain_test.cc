// Base-policy pretraining (learner/pretrain.h): the skill mix, the exact
// layout of supervised examples, and that training lowers the loss and
// writes a loadable checkpoint with its held-out report.
#include "learner/pretrain.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "common/config.h"
#include "common/crop.h"
#include "common/policy.h"
#include "common/prompt.h"
#include "common/reward.h"
#include "common/scoring.h"
#include "common/task.h"
#include "common/tokenizer.h"
#include "common/turns.h"

namespace gr1 {
namespace {

Config tests_config() {
  auto c = load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml");
  EXPECT_TRUE(c.ok()) << c.error();
  return *c;
}

// The tokens of `t` where policy_mask is `m`.
std::vector<int32_t> masked_ids(const Trajectory& t, uint8_t m) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < t.tokens.size(); ++i)
    if (t.policy_mask[i] == m) ids.push_back(t.tokens[i]);
  return ids;
}

// The options "\nL. value" of a question, letter -> value (A-D only).
std::map<std::string, std::string> option_values(const std::string& problem) {
  std::map<std::string, std::string> out;
  for (char L : std::string("ABCD")) {
    const std::string tag = std::string("\n") + L + ". ";
    const size_t at = problem.find(tag);
    if (at == std::string::npos) continue;
    const size_t end = problem.find('\n', at + 1);
    out[std::string(1, L)] = problem.substr(at + tag.size(), end - at - tag.size());
  }
  return out;
}

// Runs `gr1 pretrain` briefly (no vision stage, no held-out report, a log
// row per step) into a fresh temporary directory `name` and returns its
// report; the checkpoint path is `*out`.
nlohmann::json short_run_report(Config cfg, const std::string& name, std::string* out) {
  cfg.pretrain.log_every = 1;
  cfg.pretrain.vision_steps = 0;
  cfg.pretrain.report_items = 0;
  const auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(dir);
  *out = (dir / "base.safetensors").string();
  if (run_pretrain(cfg, *out) != 0) return nullptr;
  std::ifstream in(*out + ".report.json");
  return nlohmann::json::parse(in);
}

// Each `--set` list makes configs/tests.yaml invalid with an error naming `key`.
void expect_config_errors(const std::vector<std::pair<std::vector<std::string>, std::string>>& cases) {
  for (const auto& [sets, key] : cases) {
    auto bad = load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml", sets);
    ASSERT_FALSE(bad.ok()) << key;
    EXPECT_NE(bad.error().find(key), std::string::npos) << bad.error();
  }
}

// Location tokens of `ids`, as grid indices k, in order.
std::vector<int> location_indices(const std::vector<int32_t>& ids) {
  std::vector<int> out;
  for (int32_t id : ids)
    if (Tokenizer::is_location(id)) out.push_back(id - Tokenizer::kFirstLocation);
  return out;
}

TEST(Pretrain, SkillMixParsesWeightsAndNamesErrors) {
  auto m = parse_skill_mix("locate:3, zoom_read:0.5,refine");
  ASSERT_TRUE(m.ok()) << m.error();
  EXPECT_DOUBLE_EQ(m->at("locate"), 3.0);
  EXPECT_DOUBLE_EQ(m->at("zoom_read"), 0.5);
  EXPECT_DOUBLE_EQ(m->at("refine"), 1.0);  // no weight: 1
  EXPECT_EQ(m->size(), 3u);
  for (const char* bad :
       {"locate:3,read:1", "locate:x", "locate:-1", "locate:0", "locate,locate", "locate:1.5abc"}) {
    auto r = parse_skill_mix(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().find("pretrain.skills"), std::string::npos) << r.error();
  }
  EXPECT_NE(parse_skill_mix("locate:1,read:1").error().find("\"read\""), std::string::npos);
}

TEST(Pretrain, LocateTeachesTheWholeShapeBoxInTheShownFrame) {
  const Config cfg = tests_config();
  const int S = cfg.model.image_size;
  for (uint64_t i = 0; i < 20; ++i) {
    auto ex = make_pretrain_example(cfg, "locate", i, 1);
    ASSERT_TRUE(ex.ok()) << ex.error();
    const Trajectory& t = ex->traj;
    ASSERT_EQ(t.tokens.size(), t.policy_mask.size());
    ASSERT_EQ(t.tokens.size(), t.logprobs.size());
    // Prompt = the rollout's first user turn, untrained.
    const auto prompt =
        first_user_turn(ex->sample.problem, S, S, cfg.model.image_tokens(), PromptMode::kGrounded);
    ASSERT_GT(t.tokens.size(), prompt.size());
    EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), t.tokens.begin()));
    for (size_t j = 0; j < prompt.size(); ++j) ASSERT_EQ(t.policy_mask[j], 0);
    // One trained turn: a well-formed grounding turn whose box, mapped back
    // to original pixels, covers the named shape and is not much larger.
    ASSERT_EQ(t.turns.size(), 1u);
    const std::string turn = turn_text(t.tokens, t.turns[0], S);
    EXPECT_EQ(Tokenizer(S).decode(masked_ids(t, 1)), turn);
    const GroundingTurn g = parse_grounding_turn(turn);
    ASSERT_TRUE(g.ok) << turn;
    // The box is trained as exactly four location tokens, x1 y1 x2 y2, and
    // the decoded text parses to the grid box they denote (k * S / Tokenizer::kLocationCells).
    const auto ks = location_indices(masked_ids(t, 1));
    ASSERT_EQ(ks.size(), 4u) << turn;
    const float cell = static_cast<float>(S) / Tokenizer::kLocationCells;
    EXPECT_EQ(g.box, (Box{ks[0] * cell, ks[1] * cell, ks[2] * cell, ks[3] * cell})) << turn;
    EXPECT_LT(ks[0], ks[2]);
    EXPECT_LT(ks[1], ks[3]);
    ASSERT_TRUE(t.boxes_shown[0].has_value());
    EXPECT_EQ(*t.boxes_shown[0], g.box);
    // No digit is trained inside the box: the bracket is "[", L, ",", L, ",", L, ",", L, "]".
    const auto box_at =
        std::find(t.tokens.begin() + t.turns[0].begin, t.tokens.end(), Tokenizer::kBox);
    ASSERT_LE(box_at + 11, t.tokens.end());
    EXPECT_EQ(std::vector<int32_t>(box_at, box_at + 11),
              (std::vector<int32_t>{
                  Tokenizer::kBox, Tokenizer::char_id('['), Tokenizer::location_id(ks[0]),
                  Tokenizer::char_id(','), Tokenizer::location_id(ks[1]), Tokenizer::char_id(','),
                  Tokenizer::location_id(ks[2]), Tokenizer::char_id(','),
                  Tokenizer::location_id(ks[3]), Tokenizer::char_id(']'), Tokenizer::kBoxEnd}));
    const Box b = shown_to_original(g.box, S, S, ex->sample.width, ex->sample.height);
    const Box& shape = ex->sample.bboxs[0];
    EXPECT_LE(b.x1, shape.x1);
    EXPECT_LE(b.y1, shape.y1);
    EXPECT_GE(b.x2, shape.x2);
    EXPECT_GE(b.y2, shape.y2);
    // ... and it is the tightest grid box around the whole-pixel cover of
    // the shape: each side at most one pixel (to whole pixels) plus one cell
    // (to the grid) outside the shape's shown-frame extent.
    const float sx = float(S) / ex->sample.width, sy = float(S) / ex->sample.height;
    EXPECT_GT(g.box.x1, shape.x1 * sx - 1 - cell) << turn;
    EXPECT_GT(g.box.y1, shape.y1 * sy - 1 - cell) << turn;
    EXPECT_LT(g.box.x2, shape.x2 * sx + 1 + cell) << turn;
    EXPECT_LT(g.box.y2, shape.y2 * sy + 1 + cell) << turn;
    EXPECT_GT(box_score(b, shape), 0.6) << turn;
    ASSERT_EQ(t.images.size(), 1u);
    EXPECT_FALSE(t.images[0].is_crop);
  }
}

TEST(Pretrain, ZoomReadAndRefineCropWhatTheyBoxAndAnswerTheDetail) {
  const Config cfg = tests_config();
  const int S = cfg.model.image_size;
  for (uint64_t i = 0; i < 20; ++i) {
    auto z = make_pretrain_example(cfg, "zoom_read", i, 1);
    ASSERT_TRUE(z.ok()) << z.error();
    const Trajectory& t = z->traj;
    ASSERT_EQ(t.turns.size(), 2u);
    ASSERT_EQ(t.images.size(), 2u);
    ASSERT_TRUE(t.images[1].is_crop);
    // The crop is the one the rollout cuts for the first turn's box.
    auto crop = shown_box_to_crop(*t.boxes_shown[0], S, S, z->sample.width, z->sample.height,
                                  cfg.rollout.min_crop_px, cfg.rollout.max_aspect);
    ASSERT_TRUE(crop.ok());
    EXPECT_EQ(t.images[1].box_orig, *crop);
    const AnswerTurn a = parse_answer_turn(turn_text(t.tokens, t.turns[1], S));
    ASSERT_TRUE(a.ok);
    EXPECT_EQ(a.answer, z->answer);
    EXPECT_EQ(z->sample.solution, z->answer);
    EXPECT_FALSE(z->answer.empty());
    EXPECT_DOUBLE_EQ(format_reward(turn_texts(t, S)), 2.0);
    EXPECT_TRUE(t.finished);

    auto r = make_pretrain_example(cfg, "refine", i, 1);
    ASSERT_TRUE(r.ok()) << r.error();
    const Trajectory& u = r->traj;
    ASSERT_EQ(u.turns.size(), 3u);
    ASSERT_EQ(u.images.size(), 3u);
    // The first (wrong) turn is context: none of its tokens is trained.
    for (int32_t j = u.turns[0].begin; j < u.turns[0].end; ++j) ASSERT_EQ(u.policy_mask[j], 0);
    for (int k : {1, 2})
      for (int32_t j = u.turns[k].begin; j < u.turns[k].end; ++j) ASSERT_EQ(u.policy_mask[j], 1);
    EXPECT_FALSE(u.boxes_shown[0] == u.boxes_shown[1]);
    // Both boxes, the given one included, are written as location tokens.
    for (int k : {0, 1}) {
      const std::vector<int32_t> turn(u.tokens.begin() + u.turns[k].begin,
                                      u.tokens.begin() + u.turns[k].end);
      EXPECT_EQ(location_indices(turn).size(), 4u) << k;
    }
  }
}

// Examples of `skill` (index i) under two configs that differ only in how
// the read crop is cut: checks that the question, tokens, mask and any
// earlier (refine's given) crop are the same, and returns the two read
// crops with the target's detail box; nullopt for a skill without one.
struct ReadCrops {
  ImageRef plain, changed;
  Box detail;
  int width = 0;
};
std::optional<ReadCrops> read_crops(const Config& plain, const Config& changed, const char* skill,
                                    uint64_t i) {
  auto a = make_pretrain_example(plain, skill, i, 1);
  auto b = make_pretrain_example(changed, skill, i, 1);
  EXPECT_TRUE(a.ok() && b.ok()) << skill << " " << i;
  if (!a.ok() || !b.ok()) return std::nullopt;
  EXPECT_EQ(a->sample.problem, b->sample.problem);
  EXPECT_EQ(a->traj.tokens, b->traj.tokens) << skill << " " << i;
  EXPECT_EQ(a->traj.policy_mask, b->traj.policy_mask);
  EXPECT_EQ(a->traj.images.size(), b->traj.images.size());
  if (a->traj.images.size() != b->traj.images.size() || a->traj.images.size() < 2) return std::nullopt;
  for (size_t k = 0; k + 1 < a->traj.images.size(); ++k)
    EXPECT_EQ(a->traj.images[k].box_orig, b->traj.images[k].box_orig);
  ReadCrops r{a->traj.images.back(), b->traj.images.back(), a->objects[a->target].detail_box,
              a->sample.width};
  EXPECT_TRUE(r.plain.is_crop && r.changed.is_crop);
  return r;
}

TEST(Pretrain, TightCropShareCutsSomeReadCropsAroundTheDetailAndKeepsTheTaughtBox) {
  const Config plain = tests_config();
  Config tight = plain;
  tight.pretrain.tight_crop_share = 1.0;
  const int S = plain.model.image_size;
  int tighter = 0;
  for (uint64_t i = 0; i < 20; ++i) {
    for (const char* skill : {"zoom_read", "refine", "zoom_read_mc", "locate"}) {
      // The same question, tokens and taught boxes: only the shown crop moves.
      const auto c = read_crops(plain, tight, skill, i);
      if (!c) continue;
      const ImageRef& ca = c->plain;
      const ImageRef& cb = c->changed;
      const Box& d = c->detail;
      // The tight crop still shows the whole detail, and is no larger.
      EXPECT_LE(cb.box_orig.x1, d.x1);
      EXPECT_LE(cb.box_orig.y1, d.y1);
      EXPECT_GE(cb.box_orig.x2, d.x2);
      EXPECT_GE(cb.box_orig.y2, d.y2);
      EXPECT_LE(cb.box_orig.width() * cb.box_orig.height(),
                ca.box_orig.width() * ca.box_orig.height());
      tighter += cb.box_orig.width() * cb.box_orig.height() <
                 ca.box_orig.width() * ca.box_orig.height();
    }
  }
  EXPECT_GT(tighter, 30);  // of 60 read crops
  // Share 0.5 cuts some and not others.
  Config half = plain;
  half.pretrain.tight_crop_share = 0.5;
  int moved = 0;
  for (uint64_t i = 0; i < 40; ++i) {
    auto a = make_pretrain_example(plain, "zoom_read", i, 1);
    auto b = make_pretrain_example(half, "zoom_read", i, 1);
    ASSERT_TRUE(a.ok() && b.ok());
    moved += !(a->traj.images[1].box_orig == b->traj.images[1].box_orig);
  }
  EXPECT_GT(moved, 5);
  EXPECT_LT(moved, 35);
  (void)S;
}

// Locate example i is the same tokens under both configs.
void expect_same_locate_tokens(const Config& a, const Config& b, uint64_t i) {
  auto la = make_pretrain_example(a, "locate", i, 1);
  auto lb = make_pretrain_example(b, "locate", i, 1);
  ASSERT_TRUE(la.ok() && lb.ok());
  EXPECT_EQ(la->traj.tokens, lb->traj.tokens) << "locate " << i;
}

// Examples of `skill` (index i) under `plain` and `text`, two configs that
// cut the same read crop and differ in the box the grounding turn before it
// writes: checks the same question, crop and mask length, that `text`'s
// turn writes exactly the box that was cut (the rollout's own crop of that
// box is this crop) and that the crop holds the whole detail. Returns the
// two written boxes (plain's: the shape's); nullopt without a read crop.
struct WrittenBoxes {
  Box plain, text;
};
std::optional<WrittenBoxes> written_read_box(const Config& plain, const Config& text,
                                             const char* skill, uint64_t i) {
  const int S = plain.model.image_size;
  auto a = make_pretrain_example(plain, skill, i, 1);
  auto b = make_pretrain_example(text, skill, i, 1);
  EXPECT_TRUE(a.ok() && b.ok()) << skill << " " << i;
  if (!a.ok() || !b.ok()) return std::nullopt;
  EXPECT_EQ(a->sample.problem, b->sample.problem);
  EXPECT_EQ(a->traj.policy_mask.size(), b->traj.policy_mask.size());
  EXPECT_EQ(a->traj.images.size(), b->traj.images.size());
  if (a->traj.images.size() != b->traj.images.size()) return std::nullopt;
  const ImageRef& crop = b->traj.images.back();
  EXPECT_EQ(a->traj.images.back().box_orig, crop.box_orig) << skill << " " << i;
  if (!crop.is_crop) return std::nullopt;
  const auto ta = turn_texts(a->traj, S), tb = turn_texts(b->traj, S);
  EXPECT_GE(tb.size(), 2u);
  EXPECT_EQ(ta.size(), tb.size());
  if (tb.size() < 2 || ta.size() != tb.size()) return std::nullopt;
  const std::string& turn = tb[tb.size() - 2];
  const auto written = extract_box(turn);
  const auto shape = extract_box(ta[ta.size() - 2]);
  EXPECT_TRUE(written.has_value() && shape.has_value()) << turn;
  if (!written || !shape) return std::nullopt;
  auto cut = shown_box_to_crop(*written, S, S, b->sample.width, b->sample.height,
                               text.rollout.min_crop_px, text.rollout.max_aspect);
  EXPECT_TRUE(cut.ok()) << turn;
  if (cut.ok()) EXPECT_EQ(*cut, crop.box_orig) << skill << " " << i << ": " << turn;
  const Box& d = b->objects[b->target].detail_box;
  EXPECT_LE(crop.box_orig.x1, d.x1);
  EXPECT_LE(crop.box_orig.y1, d.y1);
  EXPECT_GE(crop.box_orig.x2, d.x2);
  EXPECT_GE(crop.box_orig.y2, d.y2);
  return WrittenBoxes{*shape, *written};
}

// written_read_box over examples 0..19 of the read skills (zoom_read,
// zoom_read_mc, refine), checking that locate's tokens are the same under
// both configs (locate keeps the shape's box); the boxes of every read crop.
std::vector<WrittenBoxes> written_read_boxes(const Config& plain, const Config& text) {
  std::vector<WrittenBoxes> out;
  for (uint64_t i = 0; i < 20; ++i) {
    expect_same_locate_tokens(plain, text, i);
    for (const char* skill : {"zoom_read", "zoom_read_mc", "refine"})
      if (const auto w = written_read_box(plain, text, skill, i)) out.push_back(*w);
  }
  return out;
}

TEST(Pretrain, TightBoxTextMakesTheReadSkillsWriteTheTightCropsBoxAndLocateKeepsTheShapes) {
  Config tight = tests_config();
  tight.pretrain.tight_crop_share = 1.0;
  Config text = tight;
  text.pretrain.tight_box_text = true;
  // The same question and crop; the turn before it writes the crop's box.
  const auto boxes = written_read_boxes(tight, text);
  const int reads = static_cast<int>(boxes.size());
  int rewritten = 0;
  for (const auto& w : boxes) {
    // Without the option that turn writes the shape's box; the tight box lies inside it.
    rewritten += !(w.plain == w.text);
    EXPECT_GE(w.text.x1, w.plain.x1);
    EXPECT_GE(w.text.y1, w.plain.y1);
    EXPECT_LE(w.text.x2, w.plain.x2);
    EXPECT_LE(w.text.y2, w.plain.y2);
  }
  EXPECT_GT(reads, 40);            // of 60
  EXPECT_GT(rewritten, reads / 2);  // most tight boxes differ from the shape's

  Config bad = tests_config();
  bad.pretrain.tight_box_text = true;
  bad.pretrain.tight_crop_share = 0.0;
  const Status st = validate_config(bad);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("pretrain.tight_box_text"), std::string::npos) << st.message();
}

TEST(Pretrain, CropJitterMovesReadCropsAroundTheDetailAndKeepsTheTaughtTokens) {
  const Config plain = tests_config();
  Config jit = plain;
  jit.pretrain.crop_jitter_share = 1.0;
  jit.pretrain.crop_jitter_cells = 3;
  int moved = 0, reads = 0;
  for (uint64_t i = 0; i < 20; ++i) {
    for (const char* skill : {"zoom_read", "zoom_read_mc", "refine", "locate"}) {
      const auto c = read_crops(plain, jit, skill, i);
      if (!c) continue;
      const ImageRef& cb = c->changed;
      ++reads;
      moved += !(c->plain.box_orig == cb.box_orig);
      // The detail stays whole inside the moved crop, and the crop inside the image.
      const Box& d = c->detail;
      EXPECT_LE(cb.box_orig.x1, d.x1);
      EXPECT_LE(cb.box_orig.y1, d.y1);
      EXPECT_GE(cb.box_orig.x2, d.x2);
      EXPECT_GE(cb.box_orig.y2, d.y2);
      EXPECT_GE(cb.box_orig.x1, 0.f);
      EXPECT_LE(cb.box_orig.x2, static_cast<float>(c->width));
    }
  }
  ASSERT_EQ(reads, 60);
  EXPECT_GT(moved, 40);  // a draw of all-zero moves (or one clamped away) leaves some in place
  // Zero cells change nothing, whatever the share.
  Config none = plain;
  none.pretrain.crop_jitter_share = 1.0;
  none.pretrain.crop_jitter_cells = 0;
  for (uint64_t i = 0; i < 10; ++i) {
    auto a = make_pretrain_example(plain, "zoom_read", i, 1);
    auto b = make_pretrain_example(none, "zoom_read", i, 1);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->traj.images.back().box_orig, b->traj.images.back().box_orig);
  }
}

TEST(Pretrain, CropJitterTextMakesTheReadSkillsWriteTheJitteredCropsBoxAndLocateKeepsTheShapes) {
  Config jit = tests_config();
  jit.pretrain.crop_jitter_share = 1.0;
  jit.pretrain.crop_jitter_cells = 3;
  Config text = jit;
  text.pretrain.crop_jitter_text = true;
  // The same (jittered) crop; the turn before it writes the crop's box.
  const auto boxes = written_read_boxes(jit, text);
  const int reads = static_cast<int>(boxes.size());
  int rewritten = 0, not_inside = 0;
  for (const auto& w : boxes) {
    rewritten += !(w.plain == w.text);  // without the option: the shape's box
    not_inside += w.text.x1 < w.plain.x1 || w.text.y1 < w.plain.y1 || w.text.x2 > w.plain.x2 ||
                  w.text.y2 > w.plain.y2;
  }
  EXPECT_EQ(reads, 60);
  EXPECT_GT(rewritten, reads / 2);  // most jittered boxes differ from the shape's
  EXPECT_GT(not_inside, 0);         // edges move out as well as in

  // Without jittered crops the option has nothing to write: a config error.
  Config bad = tests_config();
  bad.pretrain.crop_jitter_text = true;
  const Status st = validate_config(bad);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("pretrain.crop_jitter_text"), std::string::npos) << st.message();
}

TEST(Pretrain, LocateSameShapeShareDrawsLocateScenesOfOneKindOnly) {
  const Config plain = tests_config();
  Config same = plain;
  same.pretrain.locate_same_shape_share = 1.0;
  int one_kind = 0, locates = 0;
  for (uint64_t i = 0; i < 20; ++i) {
    auto a = make_pretrain_example(same, "locate", i, 1);
    ASSERT_TRUE(a.ok()) << i;
    std::set<std::string> kinds, names;
    for (const auto& o : a->objects) {
      kinds.insert(o.shape);
      names.insert(o.description());
    }
    ++locates;
    one_kind += kinds.size() == 1;
    EXPECT_EQ(names.size(), a->objects.size());
    // The question names the target by its own (unique) description.
    EXPECT_NE(a->sample.problem.find(a->objects[a->target].description()), std::string::npos);
    // Other skills draw the scenes they always drew.
    for (const char* skill : {"zoom_read", "refine"}) {
      auto p = make_pretrain_example(plain, skill, i, 1);
      auto q = make_pretrain_example(same, skill, i, 1);
      ASSERT_TRUE(p.ok() && q.ok());
      EXPECT_EQ(p->traj.tokens, q->traj.tokens) << skill << " " << i;
    }
  }
  EXPECT_GE(one_kind, locates - 2);  // a too-big subject may fall back to a circle
}

TEST(Pretrain, MultipleChoiceZoomReadAnswersWithTheRightOptionsLetter) {
  const Config cfg = tests_config();
  const int S = cfg.model.image_size;
  const std::string letters = "ABCD";
  std::set<char> seen;
  for (uint64_t i = 0; i < 30; ++i) {
    auto plain = make_pretrain_example(cfg, "zoom_read", i, 1);
    auto ex = make_pretrain_example(cfg, "zoom_read_mc", i, 1);
    ASSERT_TRUE(ex.ok()) << ex.error();
    const Sample& smp = ex->sample;
    // Four options "\nA. v" after the question; the taught letter is the
    // option whose value is the target's detail, and the solution is in
    // the benchmark's multiple-choice form.
    const size_t first = smp.problem.find("\nA. ");
    ASSERT_NE(first, std::string::npos) << smp.problem;
    const auto options = option_values(smp.problem);
    ASSERT_EQ(options.size(), 4u) << smp.problem;
    std::vector<std::string> values;
    for (const auto& [letter, value] : options) values.push_back(value);  // A..D in order
    ASSERT_EQ(ex->answer.size(), 1u);
    const int k = static_cast<int>(letters.find(ex->answer[0]));
    ASSERT_GE(k, 0) << ex->answer;
    seen.insert(ex->answer[0]);
    EXPECT_EQ(smp.solution, "<answer>" + ex->answer + "</answer>");
    EXPECT_EQ(std::set<std::string>(values.begin(), values.end()).size(), 4u) << smp.problem;
    const Trajectory& t = ex->traj;
    ASSERT_EQ(t.turns.size(), 2u);
    ASSERT_TRUE(t.images[1].is_crop);
    const AnswerTurn a = parse_answer_turn(turn_text(t.tokens, t.turns[1], S));
    ASSERT_TRUE(a.ok);
    EXPECT_EQ(a.answer, ex->answer);
    EXPECT_DOUBLE_EQ(accuracy_reward(AccuracyRule::kMultipleChoice, a.answer, smp.solution), 1.0);
    // The thought names the value read; the option with that value is the answer.
    const std::string think = turn_text(t.tokens, t.turns[1], S);
    EXPECT_NE(think.find("it shows " + values[k] + "<"), std::string::npos) << think;
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(plain->sample.problem.find("\nA. "), std::string::npos);
  }
  // The right letter is not always the same one.
  EXPECT_GE(seen.size(), 3u);
}

TEST(Pretrain, QuestionsPutTheShapesWordsAtManyPlaces) {
  const Config cfg = tests_config();
  // How many words precede "the <description>": 4 to 9 in the benchmark's
  // questions, so pretraining must vary it too.
  for (const char* skill : {"locate", "zoom_read"}) {
    std::set<int> starts;
    for (uint64_t i = 0; i < 60; ++i) {
      auto ex = make_pretrain_example(cfg, skill, i, 1);
      ASSERT_TRUE(ex.ok()) << ex.error();
      const std::string& q = ex->sample.problem;
      const std::string desc = ex->objects.at(ex->target).description();
      const size_t at = q.find("the " + desc);
      ASSERT_NE(at, std::string::npos) << q;
      starts.insert(static_cast<int>(std::count(q.begin(), q.begin() + at, ' ')));
    }
    EXPECT_GE(starts.size(), 6u) << skill;
    EXPECT_LE(*starts.begin(), 3) << skill;
    EXPECT_GE(*starts.rbegin(), 9) << skill;
  }
}

// Each direction's wordings of the relational skills (learner/pretrain.cc);
// "basic" wording uses the first of each.
const std::vector<std::vector<std::string>>& relation_words() {
  static const std::vector<std::vector<std::string>> words = {
      {"located to the left of the ", "to the left of the ", "sitting left of the "},
      {"located to the right of the ", "to the right of the ", "sitting right of the "},
      {"lying above the ", "placed above the ", "higher than the "},
      {"lying below the ", "placed below the ", "lower than the "}};
  return words;
}

// The relation a relational example's question names its target by (the
// wording found, "" for none): the anchor is a shape of the scene named
// right after it, and the target is the shape in that relation to it,
// computed as the benchmark computes relations; the question never names
// the target's own description.
std::string checked_relation(const PretrainExample& ex) {
  const std::string& q = ex.sample.problem;
  int dir = -1;
  std::string word;
  for (int d = 0; d < 4; ++d)
    for (const auto& w : relation_words()[d])
      if (q.find("shape " + w) != std::string::npos) {
        dir = d;
        word = w;
      }
  if (dir < 0) return "";
  const size_t at = q.find("shape " + word) + 6 + word.size();
  std::vector<cv::Point> centres;
  for (const auto& o : ex.objects) centres.push_back(o.centre);
  bool found = false;
  for (int a = 0; a < static_cast<int>(ex.objects.size()); ++a)
    if (q.compare(at, ex.objects[a].description().size(), ex.objects[a].description()) == 0 &&
        related_object(centres, a, dir) == ex.target)
      found = true;
  EXPECT_TRUE(found) << q;
  EXPECT_EQ(q.find("the " + ex.objects.at(ex.target).description()), std::string::npos) << q;
  return word;
}

TEST(Pretrain, RelationalZoomReadNamesTheShapeByItsRelationThenBoxesAndReadsIt) {
  Config cfg = tests_config();
  cfg.pretrain.wording = "varied";
  const int S = cfg.model.image_size;
  std::set<std::string> used;
  int related = 0;
  for (uint64_t i = 0; i < 80; ++i) {
    auto ex = make_pretrain_example(cfg, "zoom_read_rel", i, 1);
    ASSERT_TRUE(ex.ok()) << ex.error();
    const SceneObject& target = ex->objects.at(ex->target);
    EXPECT_EQ(ex->sample.bboxs.at(0), target.box);
    EXPECT_EQ(ex->answer, target.value);
    EXPECT_NE(target.detail, DetailKind::kNone);
    if (const std::string word = checked_relation(*ex); !word.empty()) {
      used.insert(word);
      ++related;
    }
    // Box the resolved shape (named in the thought), crop it, read it.
    const Trajectory& t = ex->traj;
    ASSERT_EQ(t.turns.size(), 2u);
    const std::string ground = turn_text(t.tokens, t.turns[0], S);
    EXPECT_NE(ground.find("<think>the " + target.description() + "</think>"), std::string::npos)
        << ground;
    const Box b = shown_to_original(*t.boxes_shown[0], S, S, ex->sample.width, ex->sample.height);
    EXPECT_GT(box_score(b, target.box), 0.6) << ground;
    ASSERT_TRUE(t.images[1].is_crop);
    const AnswerTurn a = parse_answer_turn(turn_text(t.tokens, t.turns[1], S));
    ASSERT_TRUE(a.ok);
    EXPECT_EQ(a.answer, target.value);
  }
  EXPECT_GE(related, 50);  // most spatial scenes have a unique relation
  EXPECT_GE(used.size(), 9u);
}

// locate_rel: the relational question answered by its grounding turn alone
// (the thought names the resolved shape, the box is its whole-shape box),
// asked half the time in locate's wording and half in the read skills'.
TEST(Pretrain, RelationalLocateBoxesTheShapeNamedByItsRelationInOneTurnInBothWordings) {
  const Config cfg = tests_config();
  const int S = cfg.model.image_size;
  int related = 0, read_worded = 0;
  for (uint64_t i = 0; i < 80; ++i) {
    auto ex = make_pretrain_example(cfg, "locate_rel", i, 1);
    ASSERT_TRUE(ex.ok()) << ex.error();
    const SceneObject& target = ex->objects.at(ex->target);
    EXPECT_EQ(ex->sample.bboxs.at(0), target.box);
    const std::string word = checked_relation(*ex);
    if (!word.empty()) {
      bool first_wording = false;  // "basic" wording: each direction's first
      for (const auto& ws : relation_words()) first_wording |= word == ws[0];
      EXPECT_TRUE(first_wording) << word;
      ++related;
    }
    const std::string& q = ex->sample.problem;
    const bool reads = q.find("tell") != std::string::npos || q.find("Tell") != std::string::npos;
    read_worded += reads;
    // One trained turn: thought and box, no crop and no answer.
    const Trajectory& t = ex->traj;
    ASSERT_EQ(t.turns.size(), 1u) << q;
    ASSERT_EQ(t.images.size(), 1u);
    EXPECT_FALSE(t.images[0].is_crop);
    const std::string ground = turn_text(t.tokens, t.turns[0], S);
    EXPECT_EQ(ground.rfind("<think>the " + target.description() + "</think><box>", 0), 0u) << ground;
    EXPECT_EQ(ground.find("<answer>"), std::string::npos) << ground;
    const Box b = shown_to_original(*t.boxes_shown[0], S, S, ex->sample.width, ex->sample.height);
    EXPECT_GT(box_score(b, target.box), 0.6) << ground;
    // Its scenes are the relational skill's, not locate's.
    auto loc = make_pretrain_example(cfg, "locate", i, 1);
    ASSERT_TRUE(loc.ok());
    EXPECT_TRUE(checked_relation(*loc).empty()) << loc->sample.problem;
  }
  EXPECT_GE(related, 50);
  EXPECT_GE(read_worded, 20);
  EXPECT_LE(read_worded, 60);
}

// The chained form of the relational skill: the same question, taught as two
// grounding turns (the named anchor, then from it the shape in the asked
// direction), then the reading; every turn well formed and trained.
TEST(Pretrain, ChainedRelationalZoomReadBoxesTheAnchorThenTheTargetThenReads) {
  Config cfg = tests_config();
  const int S = cfg.model.image_size;
  const char* from_it[] = {"left of it", "right of it", "above it", "below it"};
  int chained = 0;
  std::set<std::string> directions;
  for (uint64_t i = 0; i < 60; ++i) {
    auto rel = make_pretrain_example(cfg, "zoom_read_rel", i, 1);
    auto ex = make_pretrain_example(cfg, "zoom_read_chain", i, 1);
    ASSERT_TRUE(ex.ok() && rel.ok()) << ex.error();
    const SceneObject& target = ex->objects.at(ex->target);
    EXPECT_EQ(ex->sample.bboxs.at(0), target.box);
    EXPECT_EQ(ex->answer, target.value);
    const Trajectory& t = ex->traj;
    EXPECT_DOUBLE_EQ(format_reward(turn_texts(t, S)), 2.0);
    // Its own scenes, not zoom_read_rel's.
    EXPECT_FALSE(rel->sample.image.size() == ex->sample.image.size() &&
                 cv::norm(rel->sample.image, ex->sample.image, cv::NORM_L1) == 0);
    if (t.turns.size() == 2) continue;  // no unique relation in this scene: a plain zoom read
    ASSERT_EQ(t.turns.size(), 3u);
    ++chained;
    const std::string first = turn_text(t.tokens, t.turns[0], S);
    const std::string second = turn_text(t.tokens, t.turns[1], S);
    // The first thought names a shape of the question (the anchor) and boxes it.
    int anchor = -1;
    for (int o = 0; o < static_cast<int>(ex->objects.size()); ++o)
      if (first.find("<think>the " + ex->objects[o].description() + "</think>") != std::string::npos &&
          ex->sample.problem.find("the " + ex->objects[o].description()) != std::string::npos)
        anchor = o;
    ASSERT_GE(anchor, 0) << first << " | " << ex->sample.problem;
    const Box b0 = shown_to_original(*t.boxes_shown[0], S, S, ex->sample.width, ex->sample.height);
    EXPECT_GT(box_score(b0, ex->objects[anchor].box), 0.6) << first;
    // The second goes from it in the asked direction to the target.
    std::vector<cv::Point> centres;
    for (const auto& o : ex->objects) centres.push_back(o.centre);
    int dir = -1;
    for (int d = 0; d < 4; ++d)
      if (second.rfind(std::string("<think>") + from_it[d] + ": the " + target.description() + "</think>", 0) == 0)
        dir = d;
    ASSERT_GE(dir, 0) << second;
    directions.insert(from_it[dir]);
    EXPECT_EQ(related_object(centres, anchor, dir), ex->target);
    const Box b1 = shown_to_original(*t.boxes_shown[1], S, S, ex->sample.width, ex->sample.height);
    EXPECT_GT(box_score(b1, target.box), 0.6) << second;
    ASSERT_EQ(t.images.size(), 3u);
    EXPECT_TRUE(t.images[1].is_crop && t.images[2].is_crop);
    const AnswerTurn a = parse_answer_turn(turn_text(t.tokens, t.turns[2], S));
    ASSERT_TRUE(a.ok);
    EXPECT_EQ(a.answer, target.value);
    // All three turns are trained.
    for (const auto& span : t.turns) {
      float trained = 0;
      for (int k = span.begin; k < span.end; ++k) trained += t.policy_mask[k];
      EXPECT_GT(trained, 0) << turn_text(t.tokens, span, S);
    }
  }
  EXPECT_GE(chained, 40);
  EXPECT_EQ(directions.size(), 4u);
}

TEST(Pretrain, VariedWordingSometimesNamesAnotherShapeAndTheThoughtStillNamesTheTarget) {
  Config cfg = tests_config();
  const int S = cfg.model.image_size;
  // "basic" (the default) never does; "varied" in about a quarter of the questions.
  for (const char* wording : {"basic", "varied"}) {
  cfg.pretrain.wording = wording;
  const bool varied = std::string(wording) == "varied";
  int naming_other = 0, mark_by_shape_word = 0, n = 0;
  for (const char* skill : {"locate", "zoom_read", "zoom_read_mc", "zoom_read_rel"}) {
    for (uint64_t i = 0; i < 60; ++i) {
      auto ex = make_pretrain_example(cfg, skill, i, 1);
      ASSERT_TRUE(ex.ok()) << ex.error();
      ++n;
      const std::string& q = ex->sample.problem;
      const SceneObject& target = ex->objects.at(ex->target);
      for (int o = 0; o < static_cast<int>(ex->objects.size()); ++o) {
        const std::string d = ex->objects[o].description();
        if (o == ex->target || d == target.description()) continue;
        for (const char* pat : {"Ignore the ", "I can see the ", "may be the ", "It is not the ",
                                "Do not pick the ", ". The "})
          if (q.find(pat + d) != std::string::npos) ++naming_other;
      }
      if (q.find("little square on") != std::string::npos) ++mark_by_shape_word;
      // Whatever else the question names, the thought names the target.
      const std::string ground = turn_text(ex->traj.tokens, ex->traj.turns[0], S);
      EXPECT_EQ(ground.find("<think>the " + target.description() + "</think>"), 0u)
          << q << " -> " << ground;
    }
  }
  if (varied) {
    // About a quarter of the questions name another shape; not every one.
    EXPECT_GE(naming_other, n / 8) << n;
    EXPECT_LE(naming_other, n / 2) << n;
    EXPECT_GE(mark_by_shape_word, 2);
  } else {
    EXPECT_EQ(naming_other, 0);
    EXPECT_EQ(mark_by_shape_word, 0);
  }
  }
  cfg.pretrain.wording = "fancy";
  EXPECT_FALSE(validate_config(cfg).ok());
}

TEST(Pretrain, AnswerAndDirectSkillsAnswerAtOnceFromLargeDetails) {
  const Config cfg = tests_config();
  const int S = cfg.model.image_size;
  for (const char* skill : {"answer", "direct"}) {
    for (uint64_t i = 0; i < 10; ++i) {
      auto ex = make_pretrain_example(cfg, skill, i, 1);
      ASSERT_TRUE(ex.ok()) << ex.error();
      ASSERT_EQ(ex->traj.turns.size(), 1u) << skill;
      ASSERT_TRUE(parse_answer_turn(turn_text(ex->traj.tokens, ex->traj.turns[0], S)).ok);
      const auto prompt = first_user_turn(
          ex->sample.problem, S, S, cfg.model.image_tokens(),
          std::string(skill) == "direct" ? PromptMode::kDirect : PromptMode::kGrounded);
      EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), ex->traj.tokens.begin())) << skill;
    }
  }
}

TEST(Pretrain, AnswerLookupIsTextOnlyAndTrainsOnlyTheAnswersTheThoughtsImply) {
  const Config cfg = tests_config();
  const int S = cfg.model.image_size;
  const Tokenizer tok(S);
  int with_options = 0, without = 0;
  std::set<std::string> letters_taught;
  for (uint64_t i = 0; i < 40; ++i) {
    auto ex = make_pretrain_example(cfg, "answer_lookup", i, 1);
    ASSERT_TRUE(ex.ok()) << ex.error();
    const Sample& smp = ex->sample;
    const Trajectory& t = ex->traj;
    // The options of the question, if it has them: letter -> value.
    auto options = option_values(smp.problem);
    ASSERT_TRUE(options.empty() || options.size() == 4u) << smp.problem;
    (options.empty() ? without : with_options) += 1;
    // No image at all: no image block, no <image> token, no box.
    EXPECT_TRUE(t.images.empty());
    EXPECT_EQ(std::count(t.tokens.begin(), t.tokens.end(), Tokenizer::kImage), 0);
    EXPECT_TRUE(location_indices(t.tokens).empty());
    ASSERT_EQ(t.turns.size(), 1u);
    // The prompt is the rollout's first user turn without the image.
    const auto prompt = first_user_turn(smp.problem, S, S, 0, PromptMode::kGrounded);
    ASSERT_GE(t.turns[0].begin, static_cast<int32_t>(prompt.size()));
    EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), t.tokens.begin()));
    // The assistant part: six "<think>it shows V</think><answer>A</answer>",
    // of which only "A</answer>" is trained.
    const std::string text = tok.decode(std::vector<int32_t>(t.tokens.begin() + t.turns[0].begin,
                                                             t.tokens.begin() + t.turns[0].end));
    const std::string trained = tok.decode(masked_ids(t, 1));
    std::string expect_trained;
    size_t at = 0;
    int lookups = 0;
    while ((at = text.find("<think>it shows ", at)) != std::string::npos) {
      const size_t v0 = at + std::string("<think>it shows ").size();
      const size_t v1 = text.find("</think><answer>", v0);
      ASSERT_NE(v1, std::string::npos) << text;
      const std::string value = text.substr(v0, v1 - v0);
      const size_t a0 = v1 + std::string("</think><answer>").size();
      const size_t a1 = text.find("</answer>", a0);
      ASSERT_NE(a1, std::string::npos) << text;
      const std::string answer = text.substr(a0, a1 - a0);
      if (options.empty()) {
        EXPECT_EQ(answer, value) << text;
      } else {
        ASSERT_TRUE(options.count(answer)) << answer << " in " << text;
        EXPECT_EQ(options[answer], value) << smp.problem << "\n" << text;
        letters_taught.insert(answer);
      }
      expect_trained += answer + "</answer>";
      at = a1;
      ++lookups;
    }
    EXPECT_EQ(lookups, 6) << text;
    EXPECT_EQ(trained, expect_trained);
    for (int32_t j = 0; j < t.turns[0].begin; ++j) EXPECT_EQ(t.policy_mask[j], 0);
  }
  EXPECT_GT(with_options, 5);
  EXPECT_GT(without, 5);
  EXPECT_GE(letters_taught.size(), 3u);
}

TEST(Pretrain, PhaseZeroHoldsTheLrAndLeavesTheRestOfTheScheduleAsWithoutIt) {
  PretrainOptions po;
  po.lr = 1e-3;
  po.lr_final_frac = 0.1;
  po.warmup_steps = 10;
  po.steps = 100;
  po.phase0_steps = 0;
  // Without phase 0: linear warm-up, then linear decay to lr * lr_final_frac.
  EXPECT_DOUBLE_EQ(pretrain_lr(po, 5), 0.5e-3);
  EXPECT_DOUBLE_EQ(pretrain_lr(po, 10), 1e-3);
  EXPECT_NEAR(pretrain_lr(po, 55), 1e-3 * (1 - 0.5 * 0.9), 1e-12);
  EXPECT_NEAR(pretrain_lr(po, 100), 1e-4, 1e-12);
  PretrainOptions with0 = po;
  with0.phase0_steps = 40;
  with0.steps = po.steps + 40;
  // Phase 0: its own warm-up, then lr held.
  EXPECT_DOUBLE_EQ(pretrain_lr(with0, 5), 0.5e-3);
  EXPECT_DOUBLE_EQ(pretrain_lr(with0, 25), 1e-3);
  EXPECT_DOUBLE_EQ(pretrain_lr(with0, 40), 1e-3);
  // After it, step 40 + k gets what step k got without it.
  for (int k = 1; k <= po.steps; ++k) EXPECT_DOUBLE_EQ(pretrain_lr(with0, 40 + k), pretrain_lr(po, k)) << k;
}

TEST(Pretrain, PhaseZeroRunsTextOnlyStepsFirstAndItsBoundsAreChecked) {
  Config cfg = tests_config();
  cfg.pretrain.steps = 6;
  cfg.pretrain.phase0_steps = 2;
  cfg.pretrain.phase0_skills = "answer_lookup:1";
  cfg.pretrain.phase1_steps = 2;
  cfg.pretrain.phase1_skills = "locate:1";
  cfg.pretrain.skills = "zoom_read:1";
  std::string out;
  const auto rep = short_run_report(cfg, "gr1_pretrain_phase0_test", &out);
  ASSERT_FALSE(rep.is_null());
  EXPECT_EQ(rep["phase0_steps"], 2);
  EXPECT_EQ(rep["phase0_skills"], "answer_lookup:1");
  ASSERT_EQ(rep["log"].size(), 6u);
  // Phase 0's text-only lookups have no image, so no objectness term (the
  // other skills' first image has one); locate examples (one user turn) are
  // far shorter than zoom-read ones (two): the phases show, in that order.
  ASSERT_GT(cfg.pretrain.objectness_weight, 0);
  const auto row = [&](int k, const char* key) { return rep["log"][k][key].get<double>(); };
  for (int k : {0, 1}) {
    EXPECT_EQ(row(k, "objectness_loss"), 0.0) << rep["log"].dump();
    EXPECT_GT(row(k, "loss"), 0.0) << rep["log"].dump();
    EXPECT_GT(row(k + 2, "objectness_loss"), 0.0) << rep["log"].dump();
    EXPECT_GT(row(k + 4, "objectness_loss"), 0.0) << rep["log"].dump();
    EXPECT_LT(1.5 * row(k + 2, "sequence_tokens"), row(k + 4, "sequence_tokens")) << rep["log"].dump();
  }
  cfg.pretrain.phase0_skills = "answer_lookup:1,peek:2";
  EXPECT_EQ(run_pretrain(cfg, out), 2);
  expect_config_errors({{{"pretrain.steps=4", "pretrain.phase1_steps=2", "pretrain.phase0_steps=3"},
                          "pretrain.phase0_steps"},
                         {{"pretrain.phase0_steps=-1"}, "pretrain.phase0_steps"}});
  std::filesystem::remove_all(std::filesystem::path(out).parent_path());
}

// The bytes of a file ("" when it cannot be read).
std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// configs/tests.yaml without the vision stage, `steps` decoder steps: phase
// 0 (answer_lookup) of `phase0`, then `phase1` locate steps.
Config phased_config(int steps, int phase0, int phase1) {
  Config cfg = tests_config();
  cfg.pretrain.vision_steps = 0;
  cfg.pretrain.steps = steps;
  cfg.pretrain.phase0_steps = phase0;
  cfg.pretrain.phase0_skills = "answer_lookup:1";
  cfg.pretrain.phase1_steps = phase1;
  cfg.pretrain.phase1_skills = "locate:1";
  return cfg;
}

TEST(Pretrain, LocateCurveAndPhaseCheckpointsLeaveTheTrainedWeightsAsWithoutThem) {
  Config cfg = phased_config(7, 1, 2);
  cfg.pretrain.log_every = 2;
  cfg.pretrain.report_items = 4;
  cfg.pretrain.final_steps = 2;
  cfg.pretrain.final_skills = "locate:1";
  cfg.pretrain.skills = "locate:1,zoom_read:1";
  const auto dir = std::filesystem::temp_directory_path() / "gr1_pretrain_curve_test";
  std::filesystem::remove_all(dir);
  const std::string plain = (dir / "plain.safetensors").string(),
                    with = (dir / "with.safetensors").string();
  ASSERT_EQ(run_pretrain(cfg, plain), 0);
  cfg.pretrain.locate_curve_every = 3;
  cfg.pretrain.phase_checkpoints = true;
  ASSERT_EQ(run_pretrain(cfg, with), 0);
  const auto report = [](const std::string& ckpt) {
    std::ifstream in(ckpt + ".report.json");
    return nlohmann::json::parse(in);
  };
  const auto rp = report(plain), rw = report(with);
  // The reports draw no training randomness: the same weights, byte for byte.
  const std::string bytes = file_bytes(plain);
  ASSERT_FALSE(bytes.empty());
  EXPECT_TRUE(bytes == file_bytes(with));
  EXPECT_DOUBLE_EQ(rp["locate_box_score"].get<double>(), rw["locate_box_score"].get<double>());
  EXPECT_FALSE(rp.contains("locate_curve"));
  EXPECT_FALSE(std::filesystem::exists(plain + ".phase1.safetensors"));

  // Every 3rd step and each phase's last step (phase 0: 1, phase 1: 3, the
  // mix: 5), ending with the final report's own figures at step 7.
  ASSERT_TRUE(rw.contains("locate_curve")) << rw.dump();
  const auto& curve = rw["locate_curve"];
  std::vector<int> steps;
  std::vector<std::string> phases;
  for (const auto& row : curve) {
    steps.push_back(row["step"].get<int>());
    phases.push_back(row["phase"].get<std::string>());
    for (const char* k : {"locate_box_score", "locate_right_shape_rate"}) {
      EXPECT_GE(row[k].get<double>(), 0.0) << row.dump();
      EXPECT_LE(row[k].get<double>(), 1.0) << row.dump();
    }
  }
  EXPECT_EQ(steps, (std::vector<int>{1, 3, 5, 6, 7}));
  EXPECT_EQ(phases, (std::vector<std::string>{"phase0", "phase1", "mix", "final", "final"}));
  EXPECT_FALSE(curve[3]["phase_end"].get<bool>());
  EXPECT_TRUE(curve[2]["phase_end"].get<bool>());
  EXPECT_DOUBLE_EQ(curve[4]["locate_box_score"].get<double>(), rw["locate_box_score"].get<double>());
  EXPECT_EQ(rw["locate_curve_every"], 3);
  EXPECT_GE(rw["locate_curve_seconds"].get<double>(), 0.0);

  // The phase checkpoints: loadable, and earlier weights than the final ones.
  for (const char* phase : {"phase0", "phase1", "mix"}) {
    const std::string path = with + "." + phase + ".safetensors";
    auto loaded = load_policy(path);
    ASSERT_TRUE(loaded.ok()) << phase << ": " << loaded.error();
    EXPECT_FALSE(file_bytes(path) == bytes) << phase;
  }
  EXPECT_FALSE(file_bytes(with + ".phase0.safetensors") == file_bytes(with + ".mix.safetensors"));
  expect_config_errors({{{"pretrain.locate_curve_every=-1"}, "pretrain.locate_curve_every"}});
  std::filesystem::remove_all(dir);
}

TEST(Pretrain, ResetOptimizerAfterPhaseZeroActsOnlyFromTheNextPhaseOn) {
  Config cfg = phased_config(5, 2, 3);
  cfg.pretrain.report_items = 0;
  cfg.pretrain.phase_checkpoints = true;
  const auto dir = std::filesystem::temp_directory_path() / "gr1_pretrain_reset_test";
  std::filesystem::remove_all(dir);
  const std::string kept = (dir / "kept.safetensors").string(),
                    reset = (dir / "reset.safetensors").string();
  ASSERT_EQ(run_pretrain(cfg, kept), 0);
  cfg.pretrain.reset_optimizer_after_phase0 = true;
  ASSERT_EQ(run_pretrain(cfg, reset), 0);
  // Phase 0 is the same; what follows it is not (fresh moments and step
  // counts give other updates from the same gradients).
  const std::string p0 = file_bytes(kept + ".phase0.safetensors");
  ASSERT_FALSE(p0.empty());
  EXPECT_TRUE(p0 == file_bytes(reset + ".phase0.safetensors"));
  EXPECT_FALSE(file_bytes(kept) == file_bytes(reset));
  std::ifstream in(reset + ".report.json");
  EXPECT_TRUE(nlohmann::json::parse(in)["reset_optimizer_after_phase0"].get<bool>());
  expect_config_errors({{{"pretrain.reset_optimizer_after_phase0=true", "pretrain.phase0_steps=0"},
                         "pretrain.reset_optimizer_after_phase0"}});
  std::filesystem::remove_all(dir);
}

TEST(Pretrain, FinalPhaseRewarmsToItsOwnLrAndTheStepsBeforeItDecayToTheirEnd) {
  PretrainOptions po;
  po.lr = 1e-3;
  po.lr_final_frac = 0.1;
  po.warmup_steps = 10;
  po.phase0_steps = 20;
  po.steps = 120;
  po.final_steps = 30;
  po.final_lr = 3e-4;
  po.final_warmup_steps = 10;
  // Phase 0 as before; the middle (steps 21..90) warms up, then decays to
  // lr * lr_final_frac at its own last step.
  EXPECT_DOUBLE_EQ(pretrain_lr(po, 20), 1e-3);
  EXPECT_DOUBLE_EQ(pretrain_lr(po, 30), 1e-3);
  EXPECT_NEAR(pretrain_lr(po, 60), 1e-3 * (1 - 0.5 * 0.9), 1e-12);
  EXPECT_NEAR(pretrain_lr(po, 90), 1e-4, 1e-12);
  // The final phase: its own warm-up from 0 to final_lr, then decay to
  // final_lr * lr_final_frac at the last step.
  EXPECT_NEAR(pretrain_lr(po, 95), 0.5 * 3e-4, 1e-12);
  EXPECT_NEAR(pretrain_lr(po, 100), 3e-4, 1e-12);
  EXPECT_NEAR(pretrain_lr(po, 110), 3e-4 * (1 - 0.5 * 0.9), 1e-12);
  EXPECT_NEAR(pretrain_lr(po, 120), 3e-5, 1e-12);
  // Without it the middle is the whole rest, as before.
  PretrainOptions none = po;
  none.final_steps = 0;
  EXPECT_NEAR(pretrain_lr(none, 120), 1e-4, 1e-12);
  EXPECT_NEAR(pretrain_lr(none, 75), 1e-3 * (1 - 0.5 * 0.9), 1e-12);
}

// Five zoom-read steps, the last two a final phase at lr 2e-4 (no warm-up).
Config short_final_phase_config() {
  Config cfg = tests_config();
  cfg.pretrain.steps = 5;
  cfg.pretrain.warmup_steps = 1;
  cfg.pretrain.phase1_steps = 0;
  cfg.pretrain.skills = "zoom_read:1";
  cfg.pretrain.final_steps = 2;
  cfg.pretrain.final_lr = 2e-4;
  cfg.pretrain.final_warmup_steps = 0;
  return cfg;
}

TEST(Pretrain, CropJitterFinalOnlyLeavesTheStepsBeforeTheFinalPhaseAsWithoutIt) {
  Config cfg = short_final_phase_config();
  cfg.pretrain.phase_checkpoints = true;
  std::string plain, final_only, everywhere;
  ASSERT_FALSE(short_run_report(cfg, "gr1_pretrain_jitter_plain", &plain).is_null());
  Config jit = cfg;
  jit.pretrain.crop_jitter_share = 1.0;
  jit.pretrain.crop_jitter_cells = 3;
  jit.pretrain.crop_jitter_text = true;
  ASSERT_FALSE(short_run_report(jit, "gr1_pretrain_jitter_everywhere", &everywhere).is_null());
  jit.pretrain.crop_jitter_final_only = true;
  const auto rep = short_run_report(jit, "gr1_pretrain_jitter_final", &final_only);
  ASSERT_FALSE(rep.is_null());
  EXPECT_TRUE(rep["crop_jitter_final_only"].get<bool>());
  EXPECT_TRUE(rep["crop_jitter_text"].get<bool>());
  EXPECT_DOUBLE_EQ(rep["crop_jitter_share"].get<double>(), 1.0);
  // Before the final phase: the same weights as without jitter, byte for
  // byte; with jitter everywhere they already differ there.
  const std::string mix = file_bytes(plain + ".mix.safetensors");
  ASSERT_FALSE(mix.empty());
  EXPECT_TRUE(mix == file_bytes(final_only + ".mix.safetensors"));
  EXPECT_FALSE(mix == file_bytes(everywhere + ".mix.safetensors"));
  // The final phase's steps do see the jittered crops.
  EXPECT_FALSE(file_bytes(plain) == file_bytes(final_only));
  expect_config_errors(
      {{{"pretrain.crop_jitter_final_only=true"}, "pretrain.crop_jitter_final_only"},
       {{"pretrain.crop_jitter_final_only=true", "pretrain.crop_jitter_share=0.5", "pretrain.final_steps=0"},
        "pretrain.crop_jitter_final_only"}});
  for (const std::string& p : {plain, final_only, everywhere})
    std::filesystem::remove_all(std::filesystem::path(p).parent_path());
}

TEST(Pretrain, FinalPhaseDrawsFromItsOwnMixAndItsBoundsAreChecked) {
  Config cfg = short_final_phase_config();
  cfg.pretrain.final_skills = "answer_lookup:1";
  std::string out;
  const auto rep = short_run_report(cfg, "gr1_pretrain_final_test", &out);
  ASSERT_FALSE(rep.is_null());
  EXPECT_EQ(rep["final_steps"], 2);
  EXPECT_EQ(rep["final_skills"], "answer_lookup:1");
  ASSERT_EQ(rep["log"].size(), 5u);
  const auto row = [&](int k, const char* key) { return rep["log"][k][key].get<double>(); };
  // Zoom-read steps have images (an objectness term); the last two steps'
  // lookups are text only, at the final phase's lr (no warm-up: final_lr,
  // then decayed to final_lr * lr_final_frac at the last step).
  for (int k : {0, 1, 2}) EXPECT_GT(row(k, "objectness_loss"), 0.0) << rep["log"].dump();
  for (int k : {3, 4}) {
    EXPECT_EQ(row(k, "objectness_loss"), 0.0) << rep["log"].dump();
    EXPECT_GT(row(k, "loss"), 0.0) << rep["log"].dump();
  }
  EXPECT_NEAR(row(4, "lr"), 2e-4 * cfg.pretrain.lr_final_frac, 1e-12);
  EXPECT_GT(row(2, "lr"), row(3, "lr"));  // the middle ends at lr * frac > final_lr
  cfg.pretrain.final_skills = "answer_lookup:1,peek:2";
  EXPECT_EQ(run_pretrain(cfg, out), 2);
  const auto named = parse_skill_mix(cfg.pretrain.final_skills, "pretrain.final_skills");
  ASSERT_FALSE(named.ok());
  EXPECT_EQ(named.error().rfind("pretrain.final_skills: unknown skill \"peek\"", 0), 0u) << named.error();
  expect_config_errors(
      {{{"pretrain.steps=4", "pretrain.phase1_steps=2", "pretrain.final_steps=3"}, "pretrain.final_steps"},
       {{"pretrain.final_steps=-1"}, "pretrain.final_steps"},
       {{"pretrain.final_steps=1", "pretrain.final_lr=0"}, "pretrain.final_lr"},
       {{"pretrain.final_warmup_steps=-2"}, "pretrain.final_warmup_steps"}});
  std::filesystem::remove_all(std::filesystem::path(out).parent_path());
}

TEST(Pretrain, NeverUsesTheBenchmarksWordingAndHeldOutScenesDiffer) {
  const Config cfg = tests_config();
  // The opening words of every benchmark template (common/task.cc).
  const char* benchmark[] = {"What character is on", "Which letter or digit",
                             "Read the character",   "What colour is the small",
                             "Which colour does",    "How many dots are on",
                             "Count the dots",       "What character is on the shape",
                             "the shape just",       "nearest shape",
                             "written on",           "small mark"};
  for (const char* skill :
       {"locate", "zoom_read", "refine", "answer", "direct", "zoom_read_mc", "zoom_read_rel",
        "answer_lookup", "zoom_read_chain", "locate_rel"}) {
    for (uint64_t i = 0; i < 30; ++i) {
      Config varied = cfg;
      varied.pretrain.wording = "varied";
      auto v = make_pretrain_example(varied, skill, i, 1);
      ASSERT_TRUE(v.ok()) << v.error();
      for (const char* b : benchmark)
        EXPECT_EQ(v->sample.problem.find(b), std::string::npos) << v->sample.problem;
      auto ex = make_pretrain_example(cfg, skill, i, 1);
      ASSERT_TRUE(ex.ok()) << ex.error();
      for (const char* b : benchmark)
        EXPECT_EQ(ex->sample.problem.find(b), std::string::npos) << ex->sample.problem;
      auto held = make_pretrain_example(cfg, skill, i, 2);
      ASSERT_TRUE(held.ok());
      EXPECT_GT(cv::norm(ex->sample.image, held->sample.image, cv::NORM_INF), 0.0)
          << skill << " " << i;
    }
  }
  EXPECT_FALSE(make_pretrain_example(cfg, "read", 0, 1).ok());
}

TEST(Pretrain, PatchObjectnessMarksPatchesWhoseCentreIsInTheBox) {
  ModelOptions m;
  m.image_size = 64;
  m.patch_size = 8;  // 8 x 8 patches, centres at 4, 12, ..., 60
  // x in [10, 30] holds centres 12, 20, 28 (columns 1-3); y in [0, 13]
  // holds centres 4, 12 (rows 0-1).
  const auto t = patch_objectness(Box{10, 0, 30, 13}, m);
  ASSERT_EQ(t.size(), 64u);
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c)
      EXPECT_EQ(t[r * 8 + c], (r <= 1 && c >= 1 && c <= 3) ? 1.f : 0.f) << r << "," << c;
  // A box between patch centres marks nothing.
  const auto none = patch_objectness(Box{5, 5, 11, 11}, m);
  EXPECT_EQ(std::count(none.begin(), none.end(), 1.f), 0);
}

TEST(Pretrain, OtherShapesPatchesAreTheHardNegativesNeverTheNamedShapes) {
  Config cfg = tests_config();
  cfg.task.distractors = 3;
  const ModelOptions& m = cfg.model;
  const int S = m.image_size;
  auto to_shown = [S](const Box& b, int W, int H) {  // covering, whole pixels
    return Box{std::floor(b.x1 * S / W), std::floor(b.y1 * S / H), std::ceil(b.x2 * S / W),
               std::ceil(b.y2 * S / H)};
  };
  int with_other = 0;
  for (uint64_t i = 0; i < 20; ++i) {
    auto ex = make_pretrain_example(cfg, "locate", i, 1);
    ASSERT_TRUE(ex.ok()) << ex.error();
    const Sample& s = ex->sample;
    const auto target = patch_objectness(to_shown(s.bboxs[0], s.width, s.height), m);
    const auto other = patch_other_shapes(*ex, m);
    ASSERT_EQ(other.size(), target.size());
    // Recomputed: inside some other shape's box and not the named one's.
    std::vector<float> want(target.size(), 0.f);
    for (int o = 0; o < static_cast<int>(ex->objects.size()); ++o) {
      if (o == ex->target) continue;
      const auto in = patch_objectness(to_shown(ex->objects[o].box, s.width, s.height), m);
      for (size_t k = 0; k < in.size(); ++k)
        if (in[k] == 1.f && target[k] == 0.f) want[k] = 1.f;
    }
    EXPECT_EQ(other, want) << i;
    for (size_t k = 0; k < target.size(); ++k)
      EXPECT_FALSE(other[k] == 1.f && target[k] == 1.f) << i << " patch " << k;
    with_other += std::count(other.begin(), other.end(), 1.f) > 0;
  }
  EXPECT_GT(with_other, 10);  // scenes with 3 distractors have other shapes
}

TEST(Pretrain, HardNegativeShareSplitsTheNegativeHalfOfTheObjectnessWeight) {
  // 100 patches: 5 of the named shape, 15 of other shapes, 80 background.
  const auto w = objectness_weights(100, 5, 15, 0.5);
  EXPECT_DOUBLE_EQ(5 * w.target, 50.0);       // half the total weight
  EXPECT_DOUBLE_EQ(15 * w.other, 25.0);       // share 0.5 of the other half
  EXPECT_DOUBLE_EQ(80 * w.background, 25.0);  // the rest
  EXPECT_GT(w.other, w.background);
  // Share 0: every negative alike (the plain class-balanced loss).
  const auto plain = objectness_weights(100, 5, 15, 0.0);
  EXPECT_DOUBLE_EQ(plain.other, plain.background);
  EXPECT_DOUBLE_EQ(95 * plain.background, 50.0);
  // No other shapes (or no background): the plain loss, whatever the share.
  const auto alone = objectness_weights(100, 5, 0, 0.8);
  EXPECT_DOUBLE_EQ(alone.background, plain.background);
  const auto full = objectness_weights(20, 5, 15, 0.8);
  EXPECT_DOUBLE_EQ(full.other, 20.0 / 30.0);
  // Out-of-range settings are named.
  const std::string yaml = std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml";
  for (const char* set : {"pretrain.objectness_hard_negative_share=1",
                          "pretrain.objectness_hard_negative_share=-0.1",
                          "pretrain.objectness_layer=-1", "pretrain.objectness_layer=99"}) {
    auto bad = load_config(yaml, {set});
    ASSERT_FALSE(bad.ok()) << set;
    const std::string key = std::string(set).substr(0, std::string(set).find('='));
    EXPECT_NE(bad.error().find(key), std::string::npos) << bad.error();
  }
}

TEST(Pretrain, ObjectnessLayerReadsAnEarlierBlocksOutputAndStillTrains) {
  Config cfg = tests_config();
  torch::manual_seed(3);
  Policy policy(cfg.model, Tokenizer::kVocabSize);
  auto tokens = torch::randint(10, 100, {2, 6}, torch::kInt64);
  std::vector<torch::Tensor> outs;
  auto h = policy->hidden_states(tokens, torch::Tensor(), torch::Tensor(), torch::Tensor(), &outs);
  ASSERT_EQ(static_cast<int>(outs.size()), cfg.model.n_layers);
  EXPECT_TRUE(torch::equal(outs.back(), h));
  if (cfg.model.n_layers > 1) {
    EXPECT_FALSE(torch::allclose(outs[0], h));
  }

  const std::string dir = testing::TempDir() + "/gr1_pretrain_objlayer";
  std::filesystem::remove_all(dir);
  const std::string out = dir + "/base.safetensors";
  cfg.pretrain.steps = 3;
  cfg.pretrain.log_every = 1;
  cfg.pretrain.vision_steps = 0;
  cfg.pretrain.report_items = 0;
  cfg.pretrain.objectness_layer = 1;
  cfg.pretrain.objectness_hard_negative_share = 0.5;
  ASSERT_EQ(run_pretrain(cfg, out), 0);
  std::ifstream in(out + ".report.json");
  const auto rep = nlohmann::json::parse(in);
  ASSERT_EQ(rep["log"].size(), 3u);
  for (const auto& row : rep["log"]) {
    EXPECT_GT(row["objectness_loss"].get<double>(), 0.0) << row.dump();
    EXPECT_GE(row["objectness_other_shapes_accuracy"].get<double>(), 0.0);
    EXPECT_LE(row["objectness_other_shapes_accuracy"].get<double>(), 1.0);
  }
  // The same run with the head on the last block: same data and init, so
  // the first step's objectness loss differs only through the layer read.
  cfg.pretrain.objectness_layer = 0;
  ASSERT_EQ(run_pretrain(cfg, out), 0);
  std::ifstream in_last(out + ".report.json");
  const auto last = nlohmann::json::parse(in_last);
  EXPECT_NE(last["log"][0]["objectness_loss"].get<double>(),
            rep["log"][0]["objectness_loss"].get<double>());
  EXPECT_DOUBLE_EQ(last["log"][0]["token_accuracy"].get<double>(),
                   rep["log"][0]["token_accuracy"].get<double>());
  std::filesystem::remove_all(dir);
}

TEST(Pretrain, InitVisionOnlyTakesTheEncoderAndSeedsTheDecoder) {
  Config cfg = tests_config();
  cfg.pretrain.steps = 2;
  cfg.pretrain.vision_steps = 0;
  cfg.pretrain.report_items = 0;
  cfg.pretrain.freeze_vision = true;  // the copied encoder is kept as is
  const auto dir = std::filesystem::temp_directory_path() / "gr1_pretrain_init_vision_test";
  std::filesystem::remove_all(dir);
  const std::string a = (dir / "a.safetensors").string(), b = (dir / "b.safetensors").string(),
                    c = (dir / "c.safetensors").string();
  // A: another seed, so its encoder differs from the seeded one.
  Config ca = cfg;
  ca.run.seed = cfg.run.seed + 17;
  ASSERT_EQ(run_pretrain(ca, a), 0);
  cfg.learner.init_checkpoint = a;
  cfg.pretrain.init_vision_only = true;
  ASSERT_EQ(run_pretrain(cfg, b), 0);
  cfg.pretrain.init_vision_only = false;  // everything of A
  ASSERT_EQ(run_pretrain(cfg, c), 0);
  auto pa = load_policy(a), pb = load_policy(b), pc = load_policy(c);
  ASSERT_TRUE(pa.ok() && pb.ok() && pc.ok());
  auto na = pa->policy->named_parameters(), nb = pb->policy->named_parameters(),
       nc = pc->policy->named_parameters();
  int vision = 0;
  for (const auto& np : na) {
    if (np.key().rfind("vision.", 0) != 0) continue;
    ++vision;
    EXPECT_TRUE(torch::equal(np.value(), nb[np.key()])) << np.key();
  }
  EXPECT_GT(vision, 0);
  // B's decoder trained from the seeded init, C's from A's: two steps from
  // different starts end apart.
  const std::string dec = "layers.0.qkv.weight";
  ASSERT_TRUE(na.contains(dec));
  EXPECT_FALSE(torch::allclose(nb[dec], nc[dec]));
  // A checkpoint without the encoder's tensors is an error, not a silent init.
  ModelOptions other = cfg.model;
  other.conv_stem = !other.conv_stem;
  torch::manual_seed(1);
  Policy odd(other, Tokenizer::kVocabSize);
  const std::string d = (dir / "d.safetensors").string();
  ASSERT_TRUE(save_policy(d, odd, other).ok());
  cfg.learner.init_checkpoint = d;
  cfg.pretrain.init_vision_only = true;
  EXPECT_EQ(run_pretrain(cfg, b), 2);
  std::filesystem::remove_all(dir);
}

TEST(Pretrain, PhaseOneDrawsFromItsOwnMixAndBadMixesAreErrors) {
  Config cfg = tests_config();
  cfg.pretrain.steps = 4;
  cfg.pretrain.log_every = 1;
  cfg.pretrain.vision_steps = 0;
  cfg.pretrain.report_items = 0;
  cfg.pretrain.phase1_steps = 2;
  cfg.pretrain.phase1_skills = "locate:1";
  cfg.pretrain.skills = "zoom_read:1";
  const auto dir = std::filesystem::temp_directory_path() / "gr1_pretrain_phase1_test";
  std::filesystem::remove_all(dir);
  const std::string out = (dir / "base.safetensors").string();
  ASSERT_EQ(run_pretrain(cfg, out), 0);
  std::ifstream in(out + ".report.json");
  const auto rep = nlohmann::json::parse(in);
  EXPECT_EQ(rep["phase1_steps"], 2);
  EXPECT_EQ(rep["phase1_skills"], "locate:1");
  // Locate examples (one user turn) are far shorter than zoom-read ones
  // (two user turns): the phase shows in the tokens each step computed.
  ASSERT_EQ(rep["log"].size(), 4u);
  for (int k : {0, 1})
    EXPECT_LT(1.5 * rep["log"][k]["sequence_tokens"].get<double>(),
              rep["log"][k + 2]["sequence_tokens"].get<double>())
        << rep["log"].dump();
  cfg.pretrain.phase1_skills = "locate:1,peek:2";
  EXPECT_EQ(run_pretrain(cfg, out), 2);
  auto bad = load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml",
                         {"pretrain.steps=3", "pretrain.phase1_steps=4"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("pretrain.phase1_steps"), std::string::npos) << bad.error();
  std::filesystem::remove_all(dir);
}

// Phase 2 follows phase 1 with its own mix, then the main mix resumes; the
// three phases share one lr schedule.
TEST(Pretrain, PhaseTwoFollowsPhaseOneWithItsOwnMixAndItsBoundsAreChecked) {
  Config cfg = tests_config();
  cfg.pretrain.steps = 6;
  cfg.pretrain.warmup_steps = 1;
  cfg.pretrain.phase1_steps = 2;
  cfg.pretrain.phase1_skills = "locate:1";
  cfg.pretrain.phase2_steps = 2;
  cfg.pretrain.phase2_skills = "zoom_read:1";
  cfg.pretrain.skills = "locate_rel:1";
  std::string out;
  const auto rep = short_run_report(cfg, "gr1_pretrain_phase2_test", &out);
  ASSERT_FALSE(rep.is_null());
  EXPECT_EQ(rep["phase2_steps"], 2);
  EXPECT_EQ(rep["phase2_skills"], "zoom_read:1");
  ASSERT_EQ(rep["log"].size(), 6u);
  const auto row = [&](int k, const char* key) { return rep["log"][k][key].get<double>(); };
  // Locate and locate_rel steps (one user turn) are far shorter than the
  // zoom-read steps (two user turns) between them.
  for (int k : {0, 1, 4, 5})
    for (int z : {2, 3})
      EXPECT_LT(1.5 * row(k, "sequence_tokens"), row(z, "sequence_tokens")) << rep["log"].dump();
  // One decay from step 2 to the last, across the phase boundaries.
  for (int k = 1; k < 5; ++k) EXPECT_GT(row(k, "lr"), row(k + 1, "lr")) << rep["log"].dump();
  EXPECT_NEAR(row(5, "lr"), cfg.pretrain.lr * cfg.pretrain.lr_final_frac, 1e-12);
  cfg.pretrain.phase2_skills = "zoom_read:1,peek:2";
  EXPECT_EQ(run_pretrain(cfg, out), 2);
  expect_config_errors(
      {{{"pretrain.phase2_steps=-1"}, "pretrain.phase2_steps"},
       {{"pretrain.steps=4", "pretrain.phase1_steps=2", "pretrain.phase2_steps=3"}, "pretrain.phase2_steps"},
       {{"pretrain.steps=6", "pretrain.phase1_steps=2", "pretrain.phase2_steps=2", "pretrain.final_steps=3"},
        "pretrain.final_steps"}});
  std::filesystem::remove_all(std::filesystem::path(out).parent_path());
}

TEST(Pretrain, FreezeVisionKeepsTheEncoderAndTrainsTheDecoder) {
  Config cfg = tests_config();
  cfg.pretrain.steps = 5;
  cfg.pretrain.vision_steps = 0;  // the encoder stays at its seeded init
  cfg.pretrain.freeze_vision = true;
  cfg.pretrain.report_items = 0;
  const auto dir = std::filesystem::temp_directory_path() / "gr1_pretrain_freeze_test";
  std::filesystem::remove_all(dir);
  const std::string out = (dir / "base.safetensors").string();
  ASSERT_EQ(run_pretrain(cfg, out), 0);
  auto loaded = load_policy(out);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  torch::manual_seed(cfg.run.seed);
  Policy init(cfg.model, Tokenizer::kVocabSize);  // what run_pretrain started from
  auto trained = loaded->policy->named_parameters();
  int vision = 0, decoder_changed = 0;
  for (const auto& np : init->named_parameters()) {
    const bool is_vision = np.key().rfind("vision.", 0) == 0;
    const bool same = torch::equal(np.value(), trained[np.key()]);
    if (is_vision) {
      ++vision;
      EXPECT_TRUE(same) << np.key();
    } else {
      decoder_changed += !same;
    }
  }
  EXPECT_GT(vision, 0);
  EXPECT_GT(decoder_changed, 0);
  std::filesystem::remove_all(dir);
}

TEST(Pretrain, OverLongExamplesAreSkippedAndCountedNotTheEndOfTheRun) {
  Config cfg = tests_config();
  // A limit every locate example fits and every refine example (three
  // images) does not.
  size_t locate_max = 0, refine_min = SIZE_MAX;
  for (uint64_t i = 0; i < 200; ++i) {
    locate_max = std::max(locate_max, make_pretrain_example(cfg, "locate", i, 1)->traj.tokens.size());
    refine_min = std::min(refine_min, make_pretrain_example(cfg, "refine", i, 1)->traj.tokens.size());
  }
  ASSERT_LT(locate_max + 1, refine_min);
  cfg.model.max_seq_len = static_cast<int>(locate_max) + 12;  // + the position offset
  auto too_long = make_pretrain_example(cfg, "refine", 0, 1);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().find("model.max_seq_len"), std::string::npos) << too_long.error();
  cfg.pretrain.steps = 3;
  cfg.pretrain.batch = 4;
  cfg.pretrain.vision_steps = 0;
  cfg.pretrain.phase1_steps = 0;
  cfg.pretrain.report_items = 0;
  cfg.pretrain.skills = "locate:1,refine:1";
  const auto dir = std::filesystem::temp_directory_path() / "gr1_pretrain_long_test";
  std::filesystem::remove_all(dir);
  const std::string out = (dir / "base.safetensors").string();
  ASSERT_EQ(run_pretrain(cfg, out), 0);
  std::ifstream in(out + ".report.json");
  const auto rep = nlohmann::json::parse(in);
  ASSERT_TRUE(rep.contains("skipped_too_long")) << rep.dump();
  EXPECT_GT(rep["skipped_too_long"].value("refine", 0), 0) << rep.dump();
  EXPECT_FALSE(rep["skipped_too_long"].contains("locate")) << rep.dump();
  // Every step still trained on full batches of the examples that fit.
  EXPECT_EQ(rep["steps"], 3);

  // Nothing fits: a clear error instead of an endless search.
  cfg.pretrain.skills = "refine:1";
  EXPECT_EQ(run_pretrain(cfg, out), 2);
}

TEST(Pretrain, TrainingLowersTheLossAndWritesALoadableCheckpointWithItsReport) {
  Config cfg = tests_config();
  cfg.pretrain.steps = 40;
  cfg.pretrain.log_every = 10;
  cfg.pretrain.report_items = 4;
  const auto dir = std::filesystem::temp_directory_path() / "gr1_pretrain_test";
  std::filesystem::remove_all(dir);
  const std::string out = (dir / "sub" / "base.safetensors").string();
  ASSERT_EQ(run_pretrain(cfg, out), 0);
  auto loaded = load_policy(out);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded->options.d_model, cfg.model.d_model);

  std::ifstream in(out + ".report.json");
  ASSERT_TRUE(in.good());
  const auto rep = nlohmann::json::parse(in);
  ASSERT_EQ(rep["log"].size(), 4u);
  const double first = rep["log"][0]["loss"], last = rep["log"][3]["loss"];
  EXPECT_LT(last, 0.85 * first) << rep["log"].dump();
  for (const char* k :
       {"locate_box_score", "locate_right_shape_rate", "zoom_read_accuracy", "read_given_box_accuracy",
        "zoom_read_mc_accuracy", "zoom_read_rel_accuracy", "box_choice_rate", "locate_rel_box_score",
        "locate_rel_right_shape_rate"}) {
    ASSERT_TRUE(rep.contains(k)) << k;
    EXPECT_GE(rep[k].get<double>(), 0.0);
    EXPECT_LE(rep[k].get<double>(), 1.0);
  }
  EXPECT_EQ(rep["steps"], 40);
  // The locate-only report measures the same locate score and nothing else.
  auto locate = pretrain_report(cfg, out, /*locate_only=*/true);
  ASSERT_TRUE(locate.ok()) << locate.error();
  EXPECT_DOUBLE_EQ((*locate)["locate_box_score"].get<double>(),
                   rep["locate_box_score"].get<double>());
  EXPECT_DOUBLE_EQ((*locate)["locate_right_shape_rate"].get<double>(),
                   rep["locate_right_shape_rate"].get<double>());
  EXPECT_FALSE(locate->contains("zoom_read_accuracy"));
  EXPECT_FALSE(locate->contains("box_choice_rate"));
  EXPECT_FALSE(locate->contains("locate_rel_box_score"));
  // The vision stage ran first and reported; the objectness head was trained.
  ASSERT_TRUE(rep.contains("vision")) << rep.dump();
  EXPECT_EQ(rep["vision"]["steps"], cfg.pretrain.vision_steps);
  ASSERT_TRUE(rep["log"][3].contains("objectness_balanced_accuracy"));
  ASSERT_TRUE(rep["log"][3].contains("objectness_other_shapes_accuracy"));
  EXPECT_GT(rep["log"][3]["objectness_loss"].get<double>(), 0.0);

  // A bad skill mix is a clear error, before any training.
  cfg.pretrain.skills = "locate:1,read:1";
  EXPECT_EQ(run_pretrain(cfg, out), 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gr1
