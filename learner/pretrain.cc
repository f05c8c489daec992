#include "learner/pretrain.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "actors/rollout.h"
#include "common/crop.h"
#include "common/image_tensor.h"
#include "common/log.h"
#include "common/policy.h"
#include "common/prompt.h"
#include "common/reward.h"
#include "common/scoring.h"
#include "common/task.h"
#include "common/threads.h"
#include "learner/data_parallel.h"
#include "common/tokenizer.h"
#include "common/turns.h"
#include "learner/vision_pretrain.h"

namespace gr1 {
namespace {

// Micro-batches are cut so that one attention score buffer (rows x heads x
// T x T floats) stays under 24 MiB: below glibc's largest mmap threshold
// (32 MiB, see keep_freed_memory), where freed buffers are reused instead of
// being mapped, faulted and zeroed again on every layer.
constexpr double kAttentionBudgetBytes = 24.0 * (1 << 20);

// Appended only: a skill's index picks its scene sub-stream.
constexpr const char* kSkills[] = {"locate",       "zoom_read",     "refine",
                                   "answer",       "direct",        "zoom_read_mc",
                                   "zoom_read_rel", "answer_lookup", "zoom_read_chain",
                                   "locate_rel"};

// The start of make_pretrain_example's error for an example longer than
// model.max_seq_len (training skips and counts those).
constexpr const char* kTooLong = "too long";

// splitmix64: example draws are a pure function of (seed, index).
uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The generic wording of a detail question; none of the benchmark's
// templates (common/task.cc) is used. Each kind has several phrasings (the
// first is pretrain.wording "basic"'s, drawn with r = 0), and
// some name the mark by a shape word ("the little square on the red
// circle"): the description to copy is the one after "on the", not any
// shape word the question also holds.
std::string detail_phrase(DetailKind k, uint64_t r) {
  static constexpr const char* kBadge[] = {"the colour of its mark", "the colour of the little square on it",
                                           "what colour its tiny patch has"};
  static constexpr const char* kDots[] = {"how many dots it has", "the number of spots on it",
                                          "how many points are drawn on it"};
  static constexpr const char* kGlyph[] = {"the character on it", "the symbol printed on it",
                                           "which letter or number it carries"};
  switch (k) {
    case DetailKind::kBadge:
      return kBadge[r % std::size(kBadge)];
    case DetailKind::kDots:
      return kDots[r % std::size(kDots)];
    default:
      return kGlyph[r % std::size(kGlyph)];
  }
}

// The same, as a lead-in to the shape's description ("... the red circle").
std::string detail_lead(DetailKind k, uint64_t r) {
  static constexpr const char* kBadge[] = {"the colour of the mark on", "the colour of the little square on",
                                           "the colour of the tiny patch drawn on",
                                           "the colour of the badge on"};
  static constexpr const char* kDots[] = {"the number of dots on", "the number of spots on",
                                          "how many points are drawn on"};
  static constexpr const char* kGlyph[] = {"the symbol shown on", "the letter or number on",
                                           "the character printed on"};
  switch (k) {
    case DetailKind::kBadge:
      return kBadge[r % std::size(kBadge)];
    case DetailKind::kDots:
      return kDots[r % std::size(kDots)];
    default:
      return kGlyph[r % std::size(kGlyph)];
  }
}

// Generic openings before a question (most often none), so that the shape's
// words do not always sit at the same place in the prompt; with the
// templates whose description comes last they span the positions that any
// question may put them at. None is a benchmark wording.
constexpr const char* kOpenings[] = {"",
                                     "",
                                     "",
                                     "",
                                     "Please. ",
                                     "Look at the picture. ",
                                     "In this image, ",
                                     "Question: ",
                                     "There are a few shapes here. ",
                                     "Take a careful look at the whole scene before you answer. ",
                                     "Here is a picture of some coloured shapes. ",
                                     "Help me with this one: "};

// An opening drawn from `r`, then `q` (its first letter lower-cased after a
// comma).
std::string with_opening(const std::string& q, uint64_t r) {
  const std::string o = kOpenings[r % std::size(kOpenings)];
  std::string body = q;
  if (o.size() >= 2 && o[o.size() - 2] == ',' && !body.empty())
    body[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(body[0])));
  return o + body;
}

// Sentences that name ANOTHER shape of the scene ("%s" = its description),
// before or after the question: a question can hold colour and shape words
// that are not the target's, and the thought must still name the target.
constexpr const char* kOtherBefore[] = {"I can see the %s already. ", "Ignore the %s. ",
                                        "Next to the target there may be the %s. "};
constexpr const char* kOtherAfter[] = {" It is not the %s.", " Do not pick the %s.",
                                       " The %s is a different shape."};
// Sentences after the question with no shape in them.
constexpr const char* kClosings[] = {" Be precise.", " Thank you.", " One more look may help."};
// The added sentence is left out where the question would pass this many
// characters (as long as the longest question without one): the prompt
// recurs in every user turn, and the three-image skill must still fit.
constexpr size_t kMaxQuestionChars = 120;

// `q` with, drawn from `r`: most often nothing; else a closing, or a
// sentence naming another shape of the scene (`others`: their
// descriptions) before or after it.
std::string with_other_words(const std::string& q, const std::vector<std::string>& others,
                             uint64_t r) {
  const uint64_t kind = r % 8;
  r = mix64(r);
  std::string out = q;
  char buf[128];
  if (kind == 0) {
    out = q + kClosings[r % std::size(kClosings)];
  } else if ((kind == 2 || kind == 3) && !others.empty()) {
    const std::string& o = others[r % others.size()];
    r = mix64(r);
    if (kind == 2) {
      std::snprintf(buf, sizeof(buf), kOtherBefore[r % std::size(kOtherBefore)], o.c_str());
      out = buf + q;
    } else {
      std::snprintf(buf, sizeof(buf), kOtherAfter[r % std::size(kOtherAfter)], o.c_str());
      out = q + buf;
    }
  }
  return out.size() <= kMaxQuestionChars ? out : q;
}

// Relation words of the relational skill (direction k as in
// related_object()), several per direction; the benchmark says "just left
// of" / "nearest shape left of", these do not.
constexpr const char* kRelationWords[][3] = {
    {"located to the left of", "to the left of", "sitting left of"},
    {"located to the right of", "to the right of", "sitting right of"},
    {"lying above", "placed above", "higher than"},
    {"lying below", "placed below", "lower than"}};

// Whole-pixel box in the shown frame that covers `b` (original pixels).
Box to_shown(const Box& b, int S, int W, int H) {
  auto f = [](float v, int s, int n) { return static_cast<float>(std::floor(v * s / n)); };
  auto c = [](float v, int s, int n) { return static_cast<float>(std::ceil(v * s / n)); };
  Box o{f(b.x1, S, W), f(b.y1, S, H), c(b.x2, S, W), c(b.y2, S, H)};
  o.x1 = std::clamp(o.x1, 0.f, static_cast<float>(S));
  o.y1 = std::clamp(o.y1, 0.f, static_cast<float>(S));
  o.x2 = std::clamp(o.x2, o.x1 + 1, static_cast<float>(S));
  o.y2 = std::clamp(o.y2, o.y1 + 1, static_cast<float>(S));
  return o;
}

// The teacher's box: `b` (shown frame) snapped outward to the location grid
// and written with the grid values' canonical texts, which
// encode(.., kLocationTokens) turns into exactly four <loc_k> tokens.
struct TeacherBox {
  Box box;           // snapped, shown frame
  std::string text;  // "[x1,y1,x2,y2]"
};
TeacherBox teacher_box(const Box& b, int S) {
  const Tokenizer tok(S);
  TeacherBox t{snap_box_to_location_grid(b, S), "["};
  const float c[4] = {t.box.x1, t.box.y1, t.box.x2, t.box.y2};
  for (int i = 0; i < 4; ++i)
    t.text += (i ? "," : "") + tok.location_text(*tok.location_index(c[i]));
  t.text += "]";
  return t;
}

// The read crop `crop` (shown frame, on the location grid) with, for a
// `share` of the draws `h`, each edge moved by up to `cells` grid cells in or
// out, never cutting into `detail` (shown frame) nor leaving the frame; the
// result stays on the grid. Otherwise (not drawn, or no cells) nullopt.
std::optional<Box> jitter_read_crop(const Box& crop, const Box& detail, int S, double share,
                                    int cells, uint64_t h) {
  if (!(share > 0) || cells <= 0) return std::nullopt;
  if (static_cast<double>(h % (1u << 20)) >= share * (1u << 20)) return std::nullopt;
  const float cell = static_cast<float>(S) / Tokenizer::kLocationCells;
  auto move = [&](uint64_t& g) {
    g = mix64(g);
    return static_cast<float>(static_cast<int>(g % (2 * cells + 1)) - cells) * cell;
  };
  // Into [lo, hi]; lo wins should they cross.
  auto within = [](float v, float lo, float hi) { return std::max(lo, std::min(v, hi)); };
  uint64_t g = h;
  Box b = crop;
  b.x1 = within(b.x1 + move(g), 0.f, std::min(detail.x1, b.x2 - cell));
  b.y1 = within(b.y1 + move(g), 0.f, std::min(detail.y1, b.y2 - cell));
  b.x2 = within(b.x2 + move(g), std::max(detail.x2, b.x1 + cell), static_cast<float>(S));
  b.y2 = within(b.y2 + move(g), std::max(detail.y2, b.y1 + cell), static_cast<float>(S));
  return snap_box_to_location_grid(b, S);
}

// Appends tokens with one mask value.
void append(Trajectory& t, const std::vector<int32_t>& tokens, uint8_t mask) {
  t.tokens.insert(t.tokens.end(), tokens.begin(), tokens.end());
  t.logprobs.insert(t.logprobs.end(), tokens.size(), 0.f);
  t.policy_mask.insert(t.policy_mask.end(), tokens.size(), mask);
}

// Appends one assistant turn's text (trained when `train`), its box
// coordinates as location tokens where they are grid values: the base learns
// to write boxes the way RL will sample them.
void append_turn(Trajectory& t, const std::string& text, bool train, int S) {
  const auto ids = Tokenizer(S).encode(text, BoxCoordinates::kLocationTokens);
  TurnSpan span;
  span.begin = static_cast<int32_t>(t.tokens.size());
  append(t, ids, train ? 1 : 0);
  span.end = static_cast<int32_t>(t.tokens.size());
  t.turns.push_back(span);
  t.boxes_shown.push_back(extract_box(text));
}

// The next user turn after a grounding turn, with the crop the rollout would
// cut for `shown` (or the full image when the crop is rejected).
void append_crop_turn(Trajectory& t, const Config& cfg, const Sample& s, const Box& shown) {
  const int S = cfg.model.image_size;
  append(t, later_user_turn(s.problem, S, S, cfg.model.image_tokens(), /*close_assistant=*/true),
         0);
  ImageRef ref{false, {}};
  auto crop = shown_box_to_crop(shown, S, S, s.width, s.height, cfg.rollout.min_crop_px,
                                cfg.rollout.max_aspect);
  if (crop.ok()) ref = ImageRef{true, *crop};
  t.images.push_back(ref);
}

// Scenes whose details are large enough to read in the full view (about 5
// shown pixels), for the `answer` and `direct` skills.
TaskOptions large_detail_task(const TaskOptions& base, int S) {
  TaskOptions o = base;
  const int side = std::min(base.image_width, base.image_height);
  const int want = static_cast<int>(std::ceil(5.0 * side / S));
  o.max_glyph_px = std::min(side / 4, std::max(base.max_glyph_px, want));
  o.min_glyph_px = o.max_glyph_px;
  return o;
}

}  // namespace

Result<std::map<std::string, double>> parse_skill_mix(const std::string& spec, const std::string& key) {
  std::map<std::string, double> mix;
  std::stringstream ss(spec);
  std::string item;
  double total = 0;
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.find(':');
    std::string name = item.substr(0, colon);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    if (std::find(std::begin(kSkills), std::end(kSkills), name) == std::end(kSkills)) {
      std::string known;
      for (const char* k : kSkills) known += (known.empty() ? "" : ", ") + std::string(k);
      return Status::Error(key + ": unknown skill \"" + name + "\" (known: " + known + ")");
    }
    if (mix.count(name)) return Status::Error(key + ": \"" + name + "\" listed twice");
    double w = 1.0;
    if (colon != std::string::npos) {
      try {
        size_t used = 0;
        w = std::stod(item.substr(colon + 1), &used);
        if (item.substr(colon + 1 + used).find_first_not_of(" \t") != std::string::npos)
          throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        return Status::Error(key + ": bad weight in \"" + item + "\"");
      }
    }
    if (!(w >= 0) || !std::isfinite(w))
      return Status::Error(key + ": weight of \"" + name + "\" must be >= 0");
    mix[name] = w;
    total += w;
  }
  if (!(total > 0)) return Status::Error(key + ": no skill with a positive weight");
  return mix;
}

std::vector<float> patch_objectness(const Box& shown, const ModelOptions& m) {
  const int g = m.image_size / m.patch_size;
  std::vector<float> out(static_cast<size_t>(g) * g);
  for (int r = 0; r < g; ++r)
    for (int c = 0; c < g; ++c) {
      const float cx = (c + 0.5f) * m.patch_size, cy = (r + 0.5f) * m.patch_size;
      out[r * g + c] = cx >= shown.x1 && cx <= shown.x2 && cy >= shown.y1 && cy <= shown.y2;
    }
  return out;
}

namespace {

// answer_lookup (text only): the step from what an answer turn's thought read
// to the answer. The question (the zoom-read wording of a scene) comes with
// the benchmark's four options half of the time, and no image. The assistant
// part holds kLookups answer turns "<think>it shows V</think><answer>A</answer>",
// V drawn from the option values: A is V's option letter when the question
// lists options, else V. Only each A and its </answer> are trained, never the
// thought (V need not be what any image shows). Without an image the
// sequences are short, so the decoder can get the many examples that the
// copy and the letter lookup take before it learns to answer from the
// image summary (docs/results.md, "How fast does this decoder learn the copy
// at all?").
constexpr int kLookups = 6;

Result<PretrainExample> answer_lookup_example(const Config& cfg, PretrainExample ex,
                                              const SceneObject& target, uint64_t r) {
  const int S = cfg.model.image_size;
  Sample& s = ex.sample;
  std::vector<std::string> confusions;
  for (int i = 0; i < static_cast<int>(ex.objects.size()); ++i)
    if (i != ex.target && ex.objects[i].detail == target.detail) confusions.push_back(ex.objects[i].value);
  char letter = 'A';
  const std::string suffix =
      multiple_choice_suffix(target.detail, target.value, confusions, mix64(r), &letter);
  const auto options = multiple_choice_options(suffix);  // (letter, value)
  if (options.empty()) return Status::Error("answer_lookup: no options in \"" + suffix + "\"");
  r = mix64(r);
  const bool with_options = r % 2 == 0;
  if (with_options) {
    s.problem += suffix;
    ex.answer = std::string(1, letter);
    s.solution = "<answer>" + ex.answer + "</answer>";
  }
  s.dataset = "pretrain_answer_lookup";
  Trajectory& t = ex.traj;
  append(t, first_user_turn(s.problem, S, S, /*image_tokens=*/0, PromptMode::kGrounded), 0);
  const Tokenizer tok(S);
  TurnSpan span;
  span.begin = static_cast<int32_t>(t.tokens.size());
  for (int k = 0; k < kLookups; ++k) {
    r = mix64(r);
    const auto& [opt_letter, value] = options[r % options.size()];
    append(t, tok.encode("<think>it shows " + value + "</think><answer>"), 0);
    append(t, tok.encode((with_options ? opt_letter : value) + "</answer>"), 1);
  }
  span.end = static_cast<int32_t>(t.tokens.size());
  t.turns.push_back(span);
  t.finished = true;
  if (static_cast<int>(t.tokens.size()) > cfg.model.max_seq_len)
    return Status::Error(std::string(kTooLong) + ": pretraining example of skill answer_lookup has " +
                         std::to_string(t.tokens.size()) + " tokens > model.max_seq_len " +
                         std::to_string(cfg.model.max_seq_len));
  return ex;
}

}  // namespace

Result<PretrainExample> make_pretrain_example(const Config& cfg, const std::string& skill,
                                              uint64_t index, uint64_t stream) {
  if (std::find(std::begin(kSkills), std::end(kSkills), skill) == std::end(kSkills))
    return Status::Error("unknown pretraining skill \"" + skill + "\"");
  const int S = cfg.model.image_size;
  const bool large = skill == "answer" || skill == "direct";
  TaskOptions topt = large ? large_detail_task(cfg.task, S) : cfg.task;
  topt.families = "text,attribute,counting";
  if (skill == "locate") topt.same_shape_scenes = cfg.pretrain.locate_same_shape_share;
  auto task = SyntheticTask::create(topt);
  if (!task.ok()) return task.status();

  uint64_t r = mix64(index * 0x9E37 + std::hash<std::string>{}(skill) + stream);
  static constexpr Family kFamilies[] = {Family::kText, Family::kAttribute, Family::kCounting};
  const Family family = kFamilies[r % 3];
  r = mix64(r);
  // Separate sub-streams per skill so skills do not share scenes.
  // (The first eight skills' sub-streams are stream * 8 + index, as when there
  // were eight; later skills get sub-streams of their own above 2^40.)
  const uint64_t skill_index = static_cast<uint64_t>(
      std::find(std::begin(kSkills), std::end(kSkills), skill) - std::begin(kSkills));
  const uint64_t sub = skill_index < 8 ? stream * 8 + skill_index
                                       : (skill_index << 40) + stream;
  const bool chain = skill == "zoom_read_chain";
  const bool locating = skill == "locate" || skill == "locate_rel";
  const bool relational = skill == "zoom_read_rel" || skill == "locate_rel" || chain;
  const bool varied = cfg.pretrain.wording == "varied";
  Scene sc = task->scene(index, relational ? Family::kSpatial : family, sub);

  // The target: a shape with a detail, drawn at random; for the relational
  // skill, the shape in a unique relation to another (as the benchmark's
  // spatial questions pick theirs), named by that relation.
  std::vector<int> with_detail;
  for (int i = 0; i < static_cast<int>(sc.objects.size()); ++i)
    if (sc.objects[i].detail != DetailKind::kNone) with_detail.push_back(i);
  int ti = with_detail[r % with_detail.size()];
  r = mix64(r);
  std::string named;  // how the question names the target ("" = its description)
  int anchor = -1;    // the shape a relational question names the target by
  int anchor_dir = 0;  // its direction from the anchor (0 left, 1 right, 2 above, 3 below)
  if (relational) {
    std::vector<cv::Point> centres;
    for (const auto& o : sc.objects) centres.push_back(o.centre);
    std::vector<std::pair<int, int>> options;  // (anchor, direction)
    for (int a = 0; a < static_cast<int>(sc.objects.size()); ++a)
      for (int dir = 0; dir < 4; ++dir) {
        const int k = related_object(centres, a, dir);
        if (k >= 0 && sc.objects[k].detail != DetailKind::kNone) options.emplace_back(a, dir);
      }
    if (!options.empty()) {
      const auto [a, dir] = options[r % options.size()];
      ti = related_object(centres, a, dir);
      anchor = a;
      anchor_dir = dir;
      const size_t w = varied ? mix64(r) % std::size(kRelationWords[dir]) : 0;
      named = std::string("shape ") + kRelationWords[dir][w] + " the " + sc.objects[a].description();
    }
    r = mix64(r);
  }
  const SceneObject& target = sc.objects[ti];

  PretrainExample ex;
  ex.skill = skill;
  Sample& s = ex.sample;
  s.problem_id = index;
  s.width = sc.image.cols;
  s.height = sc.image.rows;
  s.bboxs = {target.box};
  s.dataset = "pretrain_" + skill;
  s.image = sc.image;
  ex.objects = sc.objects;
  ex.target = ti;

  const std::string desc = target.description();
  const std::string name = named.empty() ? desc : named;
  static constexpr const char* kLocate[] = {"Where is the %s?",
                                            "Locate the %s.",
                                            "Find the %s.",
                                            "Put a box around the %s.",
                                            "Can you show me where I can find the %s?",
                                            "I am looking for the %s.",
                                            "Show me the %s.",
                                            "Mark the %s with a box.",
                                            "Which region holds the %s?"};
  // Description first ("%s" then the detail phrase) ...
  static constexpr const char* kZoom[] = {"Zoom in on the %s and tell %s.",
                                          "Look closely at the %s: tell %s.",
                                          "About the %s: tell me %s.",
                                          "Find the %s, zoom in and tell me %s."};
  // ... or last (the detail's lead-in, then "%s").
  static constexpr const char* kZoomLead[] = {"Tell me %s the %s.", "I would like to know %s the %s.",
                                              "Please report %s the %s, after zooming in.",
                                              "Can you tell me %s the %s?", "I need to know %s the %s."};
  // "basic" wording draws from the first 6 locate, 2 description-first and
  // 3 description-last templates only.
  const size_t n_locate = varied ? std::size(kLocate) : 6;
  const size_t n_zoom = varied ? std::size(kZoom) : 2;
  const size_t n_lead = varied ? std::size(kZoomLead) : 3;
  const uint64_t phrasing = varied ? mix64(r) : 0;
  char q[320];
  // locate_rel asks half of its questions in the read skills' wording (the
  // benchmark asks its relations that way), still answered by the grounding
  // turn alone: the relation is bound whatever the question goes on to ask.
  const bool read_worded = skill == "locate_rel" && (mix64(r ^ 0x4E1A7E5ULL) & 1);
  if (locating && !read_worded) {
    std::snprintf(q, sizeof(q), kLocate[r % n_locate], name.c_str());
  } else {
    const size_t k = r % (n_zoom + n_lead);
    if (k < n_zoom)
      std::snprintf(q, sizeof(q), kZoom[k], name.c_str(), detail_phrase(target.detail, phrasing).c_str());
    else
      std::snprintf(q, sizeof(q), kZoomLead[k - n_zoom], detail_lead(target.detail, phrasing).c_str(),
                    name.c_str());
    ex.answer = target.value;
    s.solution = target.value;
  }
  r = mix64(r);
  s.problem = with_opening(q, r);
  if (varied) {
    std::vector<std::string> others;  // the scene's other shapes, the anchor excepted
    for (int i = 0; i < static_cast<int>(sc.objects.size()); ++i)
      if (i != ti && i != anchor && sc.objects[i].description() != desc)
        others.push_back(sc.objects[i].description());
    s.problem = with_other_words(s.problem, others, mix64(r ^ 0x5bd1e995ULL));
  }
  r = mix64(r);
  if (skill == "zoom_read_mc") {
    // Options in the benchmark's multiple-choice form (the scene's other
    // details of the kind first, as the benchmark does), answered by letter.
    std::vector<std::string> confusions;
    for (int i = 0; i < static_cast<int>(sc.objects.size()); ++i)
      if (i != ti && sc.objects[i].detail == target.detail) confusions.push_back(sc.objects[i].value);
    char letter = 'A';
    s.problem += multiple_choice_suffix(target.detail, target.value, confusions, mix64(r), &letter);
    ex.answer = std::string(1, letter);
    s.solution = "<answer>" + ex.answer + "</answer>";
    s.dataset = "pretrain_zoom_read_mc";
  }

  if (skill == "answer_lookup") return answer_lookup_example(cfg, std::move(ex), target, r);
  Trajectory& t = ex.traj;
  const PromptMode mode = skill == "direct" ? PromptMode::kDirect : PromptMode::kGrounded;
  append(t, first_user_turn(s.problem, S, S, cfg.model.image_tokens(), mode), 0);
  t.images.push_back(ImageRef{false, {}});
  const TeacherBox teach = teacher_box(to_shown(target.box, S, s.width, s.height), S);
  const Box& shown = teach.box;
  // The crop the zoom-read skills show after the box turn: the shape's box,
  // or for pretrain.tight_crop_share of the examples one between the
  // detail's own box and the shape's (snapped outward to the location grid),
  // so the reader also learns to read a glyph-tight crop. Drawn from r
  // without advancing it, so share 0 keeps every example as it was.
  // The box the grounding turn writes (`written`) stays the shape's, so no
  // detail box is taught, unless pretrain.tight_box_text: then the read
  // skills write that tight box too (the crop is the box they wrote), and
  // their box prior spans shape-tight to detail-tight boxes, none preferred,
  // for RL's answer reward to choose from. Locate always writes the shape's.
  Box crop_shown = shown;
  TeacherBox written = teach;
  if (const double t = tight_crop_draw(mix64(r ^ 0x71C4A11DULL), cfg.pretrain.tight_crop_share);
      t >= 0) {
    const TeacherBox tight = teacher_box(to_shown(tight_object_box(target, t), S, s.width, s.height), S);
    crop_shown = tight.box;
    if (cfg.pretrain.tight_box_text && !locating) written = tight;
  }
  // A jittered read crop (pretrain.crop_jitter_share); with
  // pretrain.crop_jitter_text the read skills' grounding turn writes it too,
  // so the box tokens and the crop after them agree, as in an RL rollout.
  if (const auto jittered =
          jitter_read_crop(crop_shown, to_shown(target.detail_box, S, s.width, s.height), S,
                           cfg.pretrain.crop_jitter_share, cfg.pretrain.crop_jitter_cells,
                           mix64(r ^ 0x6A177E2DULL))) {
    crop_shown = *jittered;
    if (cfg.pretrain.crop_jitter_text && !locating) written = teacher_box(crop_shown, S);
  }
  const std::string ground = "<think>the " + desc + "</think><box>" + written.text + "</box>";
  const std::string answer =
      "<think>it shows " + target.value + "</think><answer>" + ex.answer + "</answer>";

  if (locating) {
    append_turn(t, ground, true, S);
  } else if (chain && anchor >= 0) {
    // Two grounding turns: the named anchor first, then, from it, the shape in
    // the asked direction ("below it: the red square"), then the reading.
    static constexpr const char* kFromIt[] = {"left of it", "right of it", "above it", "below it"};
    const SceneObject& a = sc.objects[anchor];
    const TeacherBox at = teacher_box(to_shown(a.box, S, s.width, s.height), S);
    append_turn(t, "<think>the " + a.description() + "</think><box>" + at.text + "</box>", true, S);
    append_crop_turn(t, cfg, s, at.box);
    append_turn(t, std::string("<think>") + kFromIt[anchor_dir] + ": the " + desc + "</think><box>" +
                       written.text + "</box>",
                true, S);
    append_crop_turn(t, cfg, s, crop_shown);
    append_turn(t, answer, true, S);
    t.finished = true;
  } else if (skill == "zoom_read" || skill == "zoom_read_mc" || skill == "zoom_read_rel" || chain) {
    append_turn(t, ground, true, S);
    append_crop_turn(t, cfg, s, crop_shown);
    append_turn(t, answer, true, S);
    t.finished = true;
  } else if (skill == "refine") {
    // A given first turn that boxed another shape (or, in a one-shape scene,
    // an empty corner): context only, never trained, and written with
    // location tokens like the turn the policy would have sampled.
    Box other{0, 0, S / 4.f, S / 4.f};
    std::string wrong_desc = "corner";
    if (sc.objects.size() > 1) {
      const int oi = (ti + 1 + static_cast<int>(r % (sc.objects.size() - 1))) %
                     static_cast<int>(sc.objects.size());
      other = to_shown(sc.objects[oi].box, S, s.width, s.height);
      wrong_desc = sc.objects[oi].description();
    }
    const TeacherBox wrong = teacher_box(other, S);
    append_turn(t, "<think>the " + wrong_desc + "</think><box>" + wrong.text + "</box>", false, S);
    append_crop_turn(t, cfg, s, wrong.box);
    append_turn(t, "<think>not the " + desc + "</think><box>" + written.text + "</box>", true, S);
    append_crop_turn(t, cfg, s, crop_shown);
    append_turn(t, answer, true, S);
    t.finished = true;
  } else {  // answer, direct: from the full view
    append_turn(t, answer, true, S);
    t.finished = true;
  }
  if (static_cast<int>(t.tokens.size()) > cfg.model.max_seq_len) {
    return Status::Error(std::string(kTooLong) + ": pretraining example of skill " + skill +
                         " has " + std::to_string(t.tokens.size()) + " tokens > model.max_seq_len " +
                         std::to_string(cfg.model.max_seq_len));
  }
  return ex;
}

std::vector<float> patch_other_shapes(const PretrainExample& ex, const ModelOptions& m) {
  const int S = m.image_size;
  const Sample& smp = ex.sample;
  const auto target = patch_objectness(to_shown(smp.bboxs.at(0), S, smp.width, smp.height), m);
  std::vector<float> other(target.size(), 0.f);
  for (int o = 0; o < static_cast<int>(ex.objects.size()); ++o) {
    if (o == ex.target) continue;
    const auto in = patch_objectness(to_shown(ex.objects[o].box, S, smp.width, smp.height), m);
    for (size_t k = 0; k < in.size(); ++k)
      if (in[k] > 0 && target[k] == 0) other[k] = 1.f;
  }
  return other;
}

ObjectnessWeights objectness_weights(double n, double pos, double other, double share) {
  pos = std::max(1.0, pos);
  const double bg = n - pos - other;
  if (share > 0 && other > 0 && bg > 0)
    return {n / (2 * pos), share * n / (2 * other), (1 - share) * n / (2 * bg)};
  const double neg = std::max(1.0, n - pos);
  return {n / (2 * pos), n / (2 * neg), n / (2 * neg)};
}

namespace {

struct SupervisedBatch {
  torch::Tensor tokens, positions, key_mask, targets, mask, pixels;
  // Per-patch objectness of each row's FIRST image: flat indices into
  // [B*T] of its patch slots, and 1 where the patch centre lies inside the
  // named object's box (shown frame), else 0; obj_other is 1 where it lies
  // inside another shape's box instead (the hard negatives).
  torch::Tensor obj_index, obj_target, obj_other;
};

SupervisedBatch make_batch(const std::vector<PretrainExample>& exs, const ModelOptions& m,
                           int jitter, uint64_t seed) {
  const int64_t B = static_cast<int64_t>(exs.size());
  int64_t T = 0;
  for (const auto& e : exs) T = std::max<int64_t>(T, e.traj.tokens.size());
  SupervisedBatch b;
  b.tokens = torch::full({B, T}, Tokenizer::kPad, torch::kInt64);
  b.positions = torch::zeros({B, T}, torch::kInt64);
  b.key_mask = torch::zeros({B, T}, torch::kBool);
  auto mask = torch::zeros({B, T}, torch::kFloat32);
  auto ta = b.tokens.accessor<int64_t, 2>();
  auto pa = b.positions.accessor<int64_t, 2>();
  auto ka = b.key_mask.accessor<bool, 2>();
  auto ma = mask.accessor<float, 2>();
  std::vector<torch::Tensor> pixels;
  std::vector<int64_t> obj_index;
  std::vector<float> obj_target, obj_other;
  const int S = m.image_size;
  for (int64_t i = 0; i < B; ++i) {
    const Trajectory& t = exs[i].traj;
    if (!exs[i].sample.bboxs.empty() && !t.images.empty()) {
      const Sample& smp = exs[i].sample;
      const auto target = patch_objectness(to_shown(smp.bboxs[0], S, smp.width, smp.height), m);
      const auto other = patch_other_shapes(exs[i], m);
      size_t k = 0;
      for (size_t j = 0; j < t.tokens.size() && k < target.size(); ++j) {
        if (t.tokens[j] != Tokenizer::kImage) continue;
        obj_index.push_back(i * T + static_cast<int64_t>(j));
        obj_other.push_back(other[k]);
        obj_target.push_back(target[k++]);
      }
    }
    const int64_t n = static_cast<int64_t>(t.tokens.size());
    // A random offset on every position: robustness to prompts a few tokens
    // longer than any seen in pretraining (RL prompts differ in length).
    const int64_t room = std::max<int64_t>(0, m.max_seq_len - n);
    const int64_t off =
        jitter > 0 ? static_cast<int64_t>(mix64(seed + i) % (std::min<int64_t>(jitter, room) + 1))
                   : 0;
    for (int64_t j = 0; j < n; ++j) {
      ta[i][j] = t.tokens[j];
      pa[i][j] = off + j;
      ka[i][j] = true;
      ma[i][j] = t.policy_mask[j];
    }
    for (const auto& ref : t.images)
      pixels.push_back(image_block_tensor(exs[i].sample.image, ref, m.image_size));
  }
  b.targets = b.tokens.slice(1, 1);
  b.mask = mask.slice(1, 1);
  b.pixels = pixels.empty() ? torch::Tensor() : torch::stack(pixels);
  b.obj_index = torch::tensor(obj_index, torch::kInt64);
  b.obj_target = torch::tensor(obj_target, torch::kFloat32);
  b.obj_other = torch::tensor(obj_other, torch::kFloat32);
  return b;
}

// End of the micro-batch starting at `begin` in a length-sorted batch.
size_t micro_batch_end(const std::vector<PretrainExample>& batch, size_t begin, int heads) {
  size_t end = begin + 1;  // at least one sequence, whatever its length
  while (end < batch.size()) {
    const double t = static_cast<double>(batch[end].traj.tokens.size());  // longest so far
    if (static_cast<double>(end + 1 - begin) * heads * t * t * 4 > kAttentionBudgetBytes) break;
    ++end;
  }
  return end;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The scene's shape a box covers best (box score), -1 for none.
int boxed_shape(const Box& b, const std::vector<SceneObject>& objects) {
  int best = -1;
  double best_score = -1;
  for (int k = 0; k < static_cast<int>(objects.size()); ++k)
    if (const double v = box_score(b, objects[k].box); v > best_score) {
      best_score = v;
      best = k;
    }
  return best;
}

// Greedy or sampled rollouts of `samples` in chunks (batched decoding).
std::vector<TrajectoryGroup> rollouts(RolloutEngine& engine, const std::vector<Sample>& samples,
                                      bool greedy, torch::Generator gen) {
  std::vector<TrajectoryGroup> out;
  constexpr size_t kChunk = 32;
  for (size_t i = 0; i < samples.size(); i += kChunk) {
    std::vector<Sample> chunk(samples.begin() + i,
                              samples.begin() + std::min(samples.size(), i + kChunk));
    auto groups = engine.rollout_batch(chunk, 1, 1, gen, greedy, nullptr);
    for (auto& g : groups) out.push_back(std::move(g));
  }
  return out;
}

}  // namespace

// pretrain_report on a policy in memory; with `dp` (every rank calls it, on
// equal weights) the items are shared out over the ranks and every rank
// returns the whole report.
static Result<nlohmann::json> policy_report(const Config& cfg, Policy policy,
                                            const ModelOptions& m, bool locate_only,
                                            DataParallel* dp);

Result<nlohmann::json> pretrain_report(const Config& cfg, const std::string& checkpoint,
                                       bool locate_only) {
  auto loaded = load_policy(checkpoint);
  if (!loaded.ok()) return Status::Error("checkpoint: " + loaded.error());
  if (Status v = check_vocab_size(loaded->vocab_size); !v.ok())
    return Status::Error("checkpoint " + checkpoint + ": " + v.message());
  return policy_report(cfg, loaded->policy, loaded->options, locate_only, nullptr);
}

static Result<nlohmann::json> policy_report(const Config& cfg, Policy policy,
                                            const ModelOptions& m, bool locate_only,
                                            DataParallel* dp) {
  const bool was_training = policy->is_training();
  policy->eval();
  struct Restore {
    Policy p;
    bool train;
    ~Restore() { p->train(train); }
  } restore{policy, was_training};
  torch::NoGradGuard ng;
  const int S = m.image_size;
  const int n = cfg.pretrain.report_items;
  const int world = dp ? dp->world() : 1, rank = dp ? dp->rank() : 0;
  nlohmann::json rep;
  rep["items"] = n;
  if (n == 0) return rep;
  // Every rank measures items rank, rank + W, ... of each section; the
  // counts are summed over the ranks at the end (one all-reduce).
  std::vector<double> counts;
  int held_locate_items = 0;
  auto gen = at::detail::createCPUGenerator(cfg.run.seed + 99 + 1000003ULL * rank);
  // This rank's share of the first n held-out items (stream 2) of a skill;
  // with `examples`, also the whole examples (scene objects and target).
  auto held_out = [&](const char* skill, std::vector<PretrainExample>* examples =
                                             nullptr) -> Result<std::vector<Sample>> {
    std::vector<Sample> samples;
    for (int i = rank; i < n; i += world) {
      auto ex = make_pretrain_example(cfg, skill, static_cast<uint64_t>(i), 2);
      if (!ex.ok()) return ex.status();
      samples.push_back(ex->sample);
      if (examples) examples->push_back(std::move(*ex));
    }
    return samples;
  };
  // Whether the final turn's answer earns the full accuracy reward.
  auto answered_right = [&](const Trajectory& t, const std::string& solution, AccuracyRule rule) {
    const auto texts = turn_texts(t, S);
    auto a = texts.empty() ? std::nullopt : extract_answer(texts.back());
    return a && accuracy_reward(rule, *a, solution) == 1.0;
  };

  // Locate: the first (only) turn's box against the named shape's box;
  // pushes the box score's sum and the count of boxes on the named shape.
  auto locate_counts = [&](const char* skill) -> Status {
    RolloutOptions ro = cfg.rollout;
    ro.mode = "grounded";
    ro.max_turns = 1;
    RolloutEngine engine(policy, m, ro);
    std::vector<PretrainExample> held;
    auto held_samples = held_out(skill, &held);
    if (!held_samples.ok()) return held_samples.status();
    const std::vector<Sample>& samples = *held_samples;
    auto groups = rollouts(engine, samples, true, gen);
    double sum = 0;
    int right_shape = 0;
    for (size_t i = 0; i < groups.size(); ++i) {
      const auto& t = groups[i].trajectories[0];
      if (t.boxes_shown.empty() || !t.boxes_shown[0]) continue;  // no box: 0
      const Box b = shown_to_original(*t.boxes_shown[0], S, S, samples[i].width, samples[i].height);
      sum += box_score(b, samples[i].bboxs[0]);
      right_shape += boxed_shape(b, held[i].objects) == held[i].target;
    }
    counts.push_back(sum);
    counts.push_back(right_shape);
    held_locate_items = static_cast<int>(samples.size());
    return Status::Ok();
  };
  // locate_box_score; locate_right_shape_rate: whether the box is on the
  // named shape at all (its best-matching shape of the scene), apart from
  // how tight it is.
  if (Status st = locate_counts("locate"); !st.ok()) return st;
  static constexpr const char* kLocateKeys[] = {"locate_box_score", "locate_right_shape_rate"};
  static constexpr const char* kAllKeys[] = {
      "locate_box_score",      "locate_right_shape_rate", "zoom_read_accuracy",
      "read_given_box_accuracy", "zoom_read_mc_accuracy", "zoom_read_rel_accuracy",
      "box_choice_rate",       "locate_rel_box_score",    "locate_rel_right_shape_rate"};
  // The shares over all n items, from every rank's counts.
  // items_per_rank: how many of each section's items every rank measured.
  auto finish = [&](const char* const* keys) -> Result<nlohmann::json> {
    const size_t k = counts.size();
    counts.resize(k + static_cast<size_t>(world), 0.0);
    counts[k + static_cast<size_t>(rank)] = static_cast<double>(held_locate_items);
    if (dp)
      if (Status s = dp->sum(counts); !s.ok()) return Status::Error("report: " + s.message());
    for (size_t i = 0; i < k; ++i) rep[keys[i]] = counts[i] / n;
    rep["items_per_rank"] = std::vector<double>(counts.begin() + static_cast<long>(k), counts.end());
    return rep;
  };
  if (locate_only) return finish(kLocateKeys);
  // Greedy grounded rollouts (up to rollout.max_turns) on `samples`: the
  // share whose final answer earns the full reward under `rule`.
  RolloutOptions grounded = cfg.rollout;
  grounded.mode = "grounded";
  auto greedy_accuracy = [&](const std::vector<Sample>& samples, AccuracyRule rule) {
    RolloutEngine engine(policy, m, grounded);
    auto groups = rollouts(engine, samples, true, gen);
    int right = 0;
    for (size_t i = 0; i < groups.size(); ++i)
      right += answered_right(groups[i].trajectories[0], samples[i].solution, rule);
    return static_cast<double>(right);
  };
  // Zoom-read: locate, crop, read; exact answer.
  {
    auto held = held_out("zoom_read");
    if (!held.ok()) return held.status();
    const std::vector<Sample>& samples = *held;
    counts.push_back(greedy_accuracy(samples, AccuracyRule::kShortAnswer));  // zoom_read_accuracy
    // Reading alone: the same items with the named shape's box GIVEN as the
    // first turn (forced_box_trajectories, scale 1), its crop shown, one
    // greedy turn. zoom_read_accuracy ~ locating x this.
    int read = 0;
    constexpr size_t kChunk = 32;
    for (size_t i = 0; i < samples.size(); i += kChunk) {
      std::vector<Sample> chunk(samples.begin() + i,
                                samples.begin() + std::min(samples.size(), i + kChunk));
      const auto trajs = forced_box_trajectories(policy, m, grounded, chunk, 1.0);
      for (size_t k = 0; k < chunk.size(); ++k)
        read += answered_right(trajs[k], chunk[k].solution, AccuracyRule::kShortAnswer);
    }
    counts.push_back(read);  // read_given_box_accuracy
  }
  // Multiple choice (four options, answered by letter: the benchmark's
  // multiple-choice rule), and shapes named by their relation to another.
  // (zoom_read_mc_accuracy, zoom_read_rel_accuracy)
  static constexpr struct {
    const char* skill;
    AccuracyRule rule;
  } kAnswered[] = {{"zoom_read_mc", AccuracyRule::kMultipleChoice},
                   {"zoom_read_rel", AccuracyRule::kShortAnswer}};
  for (const auto& a : kAnswered) {
    auto held = held_out(a.skill);
    if (!held.ok()) return held.status();
    counts.push_back(greedy_accuracy(*held, a.rule));
  }
  // Box choice: sampled first turns on held-out benchmark questions.
  {
    RolloutOptions ro = cfg.rollout;
    ro.mode = "grounded";
    ro.max_turns = 1;
    RolloutEngine engine(policy, m, ro);
    TaskOptions to = cfg.task;
    to.split = "test";
    auto task = SyntheticTask::create(to);
    if (!task.ok()) return task.status();
    std::vector<Sample> samples;
    for (int i = rank; i < n; i += world) samples.push_back(task->get(static_cast<uint64_t>(i)));
    auto groups = rollouts(engine, samples, false, gen);
    int boxes = 0;
    for (const auto& g : groups) {
      const auto& t = g.trajectories[0];
      boxes += !t.boxes_shown.empty() && t.boxes_shown[0].has_value();
    }
    counts.push_back(boxes);  // box_choice_rate
  }
  // The same locate figures for shapes named by their relation to another
  // (locate_rel): whether the relation, apart from reading, is grounded.
  if (Status st = locate_counts("locate_rel"); !st.ok()) return st;
  return finish(kAllKeys);
}

namespace {

// Copies the encoder's parameters (vision.*) of `src` into `dst`, leaving
// the rest of `dst` as it is; the number copied, or an error naming a
// missing or differently shaped one (pretrain.init_vision_only).
Result<int> copy_vision_parameters(const Policy& src, const Policy& dst) {
  auto s = src->named_parameters();
  int copied = 0;
  torch::NoGradGuard ng;
  for (auto& np : dst->named_parameters()) {
    if (np.key().rfind("vision.", 0) != 0) continue;
    const auto* t = s.find(np.key());
    if (!t) return Status::Error("the checkpoint has no encoder parameter " + np.key());
    if (t->sizes() != np.value().sizes())
      return Status::Error(np.key() + " has shape " + c10::str(t->sizes()) +
                           " in the checkpoint, " + c10::str(np.value().sizes()) + " in the model");
    np.value().copy_(*t);
    ++copied;
  }
  if (copied == 0) return Status::Error("the model has no vision.* parameters");
  return copied;
}

// Linear warm-up over `warmup` steps to `peak`, then linear decay to peak *
// final_frac at step `length` (`local` is 1-based within the phase).
double warmup_then_decay(double peak, int local, int warmup, int length, double final_frac) {
  if (local <= warmup) return peak * local / std::max(1, warmup);
  const double f = static_cast<double>(local - warmup) / std::max(1, length - warmup);
  return peak * (1.0 - f * (1.0 - final_frac));
}

// Saves `policy` to `path` (its folder made first); false after printing
// what went wrong.
bool write_checkpoint(const std::string& path, const Policy& policy, const ModelOptions& m) {
  if (const auto parent = std::filesystem::path(path).parent_path(); !parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
  }
  if (Status s = save_policy(path, policy, m); !s.ok()) {
    std::cerr << "gr1 pretrain: cannot write " << path << ": " << s.message() << "\n";
    return false;
  }
  return true;
}

// Whether decoder step `step` (1-based) is one of the last final_steps.
bool in_final_phase(const PretrainOptions& po, int step) { return step > po.steps - po.final_steps; }

// The phase decoder step `step` (1-based) belongs to: phase 0, phase 1,
// phase 2, the mix (pretrain.skills) or the final phase. Each phase draws from
// its own skill mix; a step is its phase's last when the next step is in
// another.
enum class Phase { kZero, kOne, kTwo, kMix, kFinal };
Phase phase_of(const PretrainOptions& po, int step) {
  if (step <= po.phase0_steps) return Phase::kZero;
  if (step <= po.phase0_steps + po.phase1_steps) return Phase::kOne;
  if (step <= po.phase0_steps + po.phase1_steps + po.phase2_steps) return Phase::kTwo;
  return in_final_phase(po, step) ? Phase::kFinal : Phase::kMix;
}
const char* phase_name(Phase p) {
  switch (p) {
    case Phase::kZero: return "phase0";
    case Phase::kOne: return "phase1";
    case Phase::kTwo: return "phase2";
    case Phase::kMix: return "mix";
    case Phase::kFinal: return "final";
  }
  return "?";
}

}  // namespace

double pretrain_lr(const PretrainOptions& po, int step) {
  // Phase 0 (if any), the middle and the final phase (if any) each get a
  // linear warm-up; phase 0 then holds lr, the middle decays linearly to
  // lr * lr_final_frac, the final phase from final_lr to final_lr *
  // lr_final_frac.
  const int final_start = po.steps - po.final_steps;  // last step before it
  if (in_final_phase(po, step))
    return warmup_then_decay(po.final_lr, step - final_start, po.final_warmup_steps, po.final_steps,
                             po.lr_final_frac);
  if (step <= po.phase0_steps)  // held: a "decay" to lr * 1
    return warmup_then_decay(po.lr, step, po.warmup_steps, po.phase0_steps, 1.0);
  return warmup_then_decay(po.lr, step - po.phase0_steps, po.warmup_steps, final_start - po.phase0_steps,
                           po.lr_final_frac);
}

int run_pretrain(const Config& cfg, const std::string& out, const DataParallelOptions& dpo) {
  auto mix = parse_skill_mix(cfg.pretrain.skills);
  if (!mix.ok()) {
    std::cerr << "gr1 pretrain: " << mix.error() << "\n";
    return 2;
  }
  // Phase 0's and phase 1's steps draw from their own mixes (when they have
  // steps; otherwise the main mix stands in, unused).
  auto phase_mix = [&](int steps, const std::string& spec, const char* key) {
    if (steps <= 0) return mix;
    auto m = parse_skill_mix(spec, std::string("pretrain.") + key);
    if (!m.ok()) std::cerr << "gr1 pretrain: " << m.error() << "\n";
    return m;
  };
  const auto mix0 = phase_mix(cfg.pretrain.phase0_steps, cfg.pretrain.phase0_skills, "phase0_skills");
  const auto mix1 = phase_mix(cfg.pretrain.phase1_steps, cfg.pretrain.phase1_skills, "phase1_skills");
  const auto mix2 = phase_mix(cfg.pretrain.phase2_steps, cfg.pretrain.phase2_skills, "phase2_skills");
  const auto mixf = phase_mix(cfg.pretrain.final_skills.empty() ? 0 : cfg.pretrain.final_steps,
                              cfg.pretrain.final_skills, "final_skills");
  if (!mix0.ok() || !mix1.ok() || !mix2.ok() || !mixf.ok()) return 2;
  configure_compute_threads(cfg.pretrain.threads);
  const PretrainOptions& po = cfg.pretrain;
  auto joined = DataParallel::connect(dpo);
  if (!joined.ok()) {
    std::cerr << "gr1 pretrain: " << joined.error() << "\n";
    return 2;
  }
  DataParallel& dp = **joined;
  const bool leader = dp.leader();
  torch::manual_seed(cfg.run.seed);
  Policy policy(cfg.model, Tokenizer::kVocabSize);
  if (!cfg.learner.init_checkpoint.empty()) {
    auto loaded = load_policy(cfg.learner.init_checkpoint);
    if (!loaded.ok()) {
      std::cerr << "gr1 pretrain: learner.init_checkpoint: " << loaded.error() << "\n";
      return 2;
    }
    if (Status v = check_vocab_size(loaded->vocab_size); !v.ok()) {
      std::cerr << "gr1 pretrain: learner.init_checkpoint " << cfg.learner.init_checkpoint << ": "
                << v.message() << "\n";
      return 2;
    }
    if (po.init_vision_only) {
      // Only the encoder: a decoder recipe trained from one vision stage.
      auto copied = copy_vision_parameters(loaded->policy, policy);
      if (!copied.ok()) {
        std::cerr << "gr1 pretrain: learner.init_checkpoint: " << copied.error() << "\n";
        return 2;
      }
      if (leader)
        std::printf("gr1 pretrain: %d vision.* tensors from learner.init_checkpoint, the rest seeded\n",
                    *copied);
    } else {
      // The checkpoint may be of a smaller architecture (e.g. a vision-stage
      // checkpoint before image_context): its parameters are copied, the
      // others keep their seeded init and are listed.
      auto kept = copy_shared_parameters(loaded->policy, policy);
      if (!kept.ok()) {
        std::cerr << "gr1 pretrain: learner.init_checkpoint: " << kept.error() << "\n";
        return 2;
      }
      for (const auto& name : *kept)
        if (leader) std::printf("gr1 pretrain: %s is not in learner.init_checkpoint: initialised\n",
                    name.c_str());
    }
  }
  nlohmann::json vision_report;
  if (po.vision_steps > 0) {
    auto vr = pretrain_vision(policy, cfg, &dp);
    if (!vr.ok()) {
      std::cerr << "gr1 pretrain: vision stage: " << vr.error() << "\n";
      return 2;
    }
    vision_report = vr->to_json();
  }
  policy->train();
  // The per-patch objectness head exists only during pretraining.
  torch::nn::Linear obj_head(cfg.model.d_model, 1);
  // Two parameter groups: the decoder (+ the objectness head) at lr, the
  // encoder at lr * encoder_lr_scale (or frozen).
  std::vector<torch::Tensor> params, decoder_params, encoder_params;
  for (auto& np : policy->named_parameters()) {
    const bool vision = np.key().rfind("vision.", 0) == 0;
    if (vision && (po.freeze_vision || po.encoder_lr_scale == 0)) {
      np.value().set_requires_grad(false);
      continue;
    }
    (vision ? encoder_params : decoder_params).push_back(np.value());
    params.push_back(np.value());
  }
  for (auto& p : obj_head->parameters()) {
    decoder_params.push_back(p);
    params.push_back(p);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decoder_params,
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(po.lr).weight_decay(po.weight_decay)));
  if (!encoder_params.empty())
    groups.emplace_back(encoder_params, std::make_unique<torch::optim::AdamWOptions>(
                                            torch::optim::AdamWOptions(po.lr * po.encoder_lr_scale)
                                                .weight_decay(po.weight_decay)));
  torch::optim::AdamW opt(groups, torch::optim::AdamWOptions(po.lr).weight_decay(po.weight_decay));
  const std::vector<double> group_scale = {1.0, po.encoder_lr_scale};
  // Every rank starts from rank 0's numbers (the objectness head's init and
  // an init checkpoint included).
  if (Status s = dp.broadcast(params); !s.ok()) {
    std::cerr << "gr1 pretrain: " << s.message() << "\n";
    return 2;
  }

  struct Mix {
    std::vector<std::string> names;
    std::vector<double> cumulative;
    double total = 0;
  };
  auto make_mix = [](const std::map<std::string, double>& m) {
    Mix x;
    for (const auto& [name, w] : m) {
      if (w <= 0) continue;
      x.total += w;
      x.names.push_back(name);
      x.cumulative.push_back(x.total);
    }
    return x;
  };
  const Mix main_mix = make_mix(*mix), first_mix = make_mix(*mix1), zeroth_mix = make_mix(*mix0),
            second_mix = make_mix(*mix2), final_mix = make_mix(*mixf);
  const std::string& final_skills = po.final_skills.empty() ? po.skills : po.final_skills;
  if (leader) {
  std::printf("gr1 pretrain: %lld parameters, %d steps x %d sequences, skills %s",
              static_cast<long long>(count_parameters(policy)), po.steps, po.batch,
              po.skills.c_str());
  if (po.phase0_steps > 0)
    std::printf(" (the first %d steps: %s)", po.phase0_steps, po.phase0_skills.c_str());
  if (po.phase1_steps > 0)
    std::printf(" (%s %d steps: %s)", po.phase0_steps > 0 ? "then" : "the first", po.phase1_steps,
                po.phase1_skills.c_str());
  if (po.phase2_steps > 0)
    std::printf(" (then %d steps: %s)", po.phase2_steps, po.phase2_skills.c_str());
  if (po.final_steps > 0)
    std::printf(" (the last %d steps: %s, lr %g)", po.final_steps, final_skills.c_str(), po.final_lr);
  if (dp.world() > 1)
    std::printf(", each step's batch shared out over %d processes (gradients summed)", dp.world());
  std::printf("\n");
  std::fflush(stdout);
  }

  auto t0 = std::chrono::steady_clock::now();
  nlohmann::json log = nlohmann::json::array();
  nlohmann::json curve = nlohmann::json::array();  // pretrain.locate_curve_every
  double curve_s = 0;
  double loss_acc = 0, correct_acc = 0, tokens_acc = 0;
  double obj_loss_acc = 0, obj_tp = 0, obj_pos = 0, obj_tn = 0, obj_neg = 0;
  double obj_other_tn = 0, obj_other_n = 0;  // the other shapes' patches
  int64_t seq_tokens = 0, seq_tokens_logged = 0;
  uint64_t next_index = 0;
  std::map<std::string, int> too_long;  // skipped over-long examples per skill
  // pretrain.crop_jitter_final_only: the phases before the final one draw
  // their examples without jittered read crops.
  Config unjittered = cfg;
  unjittered.pretrain.crop_jitter_share = 0.0;
  unjittered.pretrain.crop_jitter_text = false;
  for (int step = 1; step <= po.steps; ++step) {
    const double lr = pretrain_lr(po, step);
    for (size_t gi = 0; gi < opt.param_groups().size(); ++gi)
      static_cast<torch::optim::AdamWOptions&>(opt.param_groups()[gi].options())
          .lr(lr * group_scale[gi]);

    if (po.reset_optimizer_after_phase0 && po.phase0_steps > 0 && step == po.phase0_steps + 1) {
      // Phase 0's moments come from text-only gradients; every rank drops
      // them alike (the next step() starts each parameter's state afresh).
      opt.state().clear();
      if (leader) std::printf("pretrain step %5d  optimizer state reset after phase 0\n", step);
    }
    std::vector<PretrainExample> batch;
    const Phase phase = phase_of(po, step);
    const Mix& mx = phase == Phase::kZero  ? zeroth_mix
                    : phase == Phase::kOne ? first_mix
                    : phase == Phase::kTwo ? second_mix
                    : phase == Phase::kFinal ? final_mix
                                             : main_mix;
    int skipped_in_step = 0;
    for (int i = 0; i < po.batch; ++next_index) {
      const double u =
          (mix64(cfg.run.seed * 0x100000001B3ULL + next_index) >> 11) * 0x1.0p-53 * mx.total;
      const size_t k =
          std::upper_bound(mx.cumulative.begin(), mx.cumulative.end(), u) - mx.cumulative.begin();
      const std::string& skill = mx.names[std::min(k, mx.names.size() - 1)];
      auto ex = make_pretrain_example(
          po.crop_jitter_final_only && phase != Phase::kFinal ? unjittered : cfg, skill, next_index, 1);
      if (!ex.ok() && ex.error().find(kTooLong) != std::string::npos) {
        // A rare long draw (long wording on a three-image skill): skipped
        // and counted, not the end of a run that may be an hour old.
        if (too_long[skill]++ == 0 && leader)
          std::fprintf(stderr, "gr1 pretrain: skipping over-long examples (%s); counted in the report\n",
                       ex.error().c_str());
        if (++skipped_in_step > 100 * po.batch) {
          std::cerr << "gr1 pretrain: almost every example is longer than model.max_seq_len "
                    << cfg.model.max_seq_len << ": raise it\n";
          return 2;
        }
        continue;
      }
      if (!ex.ok()) {
        std::cerr << "gr1 pretrain: " << ex.error() << "\n";
        return 2;
      }
      batch.push_back(std::move(*ex));
      ++i;
    }
    // Micro-batches of similar length (gradients accumulated): attention
    // buffers grow with B * T^2, and padding to the longest sequence of the
    // whole batch would waste most of the work.
    std::sort(batch.begin(), batch.end(), [](const PretrainExample& a, const PretrainExample& b) {
      return a.traj.tokens.size() < b.traj.tokens.size();
    });
    double total_tokens = 0;
    for (const auto& ex : batch)
      for (size_t j = 1; j < ex.traj.policy_mask.size(); ++j)
        total_tokens += ex.traj.policy_mask[j];
    opt.zero_grad();
    // Every rank drew the same batch; rank r runs the sorted batch's
    // sequences i with i % world == r (so every rank gets the same spread of
    // lengths), in micro-batches of its own. The loss terms are normalised by
    // the whole batch, so the summed gradient is the batch's gradient.
    std::vector<PretrainExample> mine;
    for (size_t i = static_cast<size_t>(dp.rank()); i < batch.size();
         i += static_cast<size_t>(dp.world()))
      mine.push_back(std::move(batch[i]));  // batch.size() is still the whole batch
    for (size_t s0 = 0, s1 = 0; s0 < mine.size(); s0 = s1) {
      s1 = micro_batch_end(mine, s0, cfg.model.n_heads);
      const std::vector<PretrainExample> mb(mine.begin() + s0, mine.begin() + s1);
      // (One process: rank 0 of 1, the seed of a micro-batch starting at s0.)
      auto b = make_batch(mb, cfg.model, po.position_jitter,
                          cfg.run.seed * 7919 + step * 64 + s0 * dp.world() + dp.rank());
      torch::Tensor emb;
      if (b.pixels.defined()) {
        auto e = policy->encode_images(b.pixels);
        emb = e.reshape({-1, e.size(2)});
      }
      std::vector<torch::Tensor> layer_out;  // only when the head reads an earlier block
      auto hidden = policy->hidden_states(b.tokens, emb, b.positions, b.key_mask,
                                          po.objectness_layer > 0 ? &layer_out : nullptr);
      auto logits = policy->logits(hidden);
      auto lg = logits.slice(1, 0, logits.size(1) - 1);
      auto lp = token_logprobs(lg, b.targets, 1.0);
      // Token mean over the whole batch: each micro-batch adds its share.
      auto loss = -(lp * b.mask).sum() / std::max(1.0, total_tokens);
      if (po.objectness_weight > 0 && b.obj_index.numel() > 0) {
        // Patch mean over the batch's sequences, likewise shared out.
        const torch::Tensor& tap =
            po.objectness_layer > 0 ? layer_out.at(po.objectness_layer - 1) : hidden;
        auto h = tap.reshape({-1, tap.size(2)}).index_select(0, b.obj_index);
        auto z = obj_head(h).squeeze(1);
        // Class-balanced: the named object covers a few percent of the
        // patches, and an unweighted loss is best served by answering "no"
        // everywhere (measured: accuracy flat at the background share).
        const double n = static_cast<double>(z.numel());
        const double pos = std::max(1.0, b.obj_target.sum().item<double>());
        const double other = b.obj_other.sum().item<double>();
        const ObjectnessWeights cw =
            objectness_weights(n, pos, other, po.objectness_hard_negative_share);
        auto w = b.obj_target * cw.target + b.obj_other * cw.other +
                 (1 - b.obj_target - b.obj_other) * cw.background;
        auto bce = torch::binary_cross_entropy_with_logits(z, b.obj_target, w);
        auto obj = bce * (static_cast<double>(mb.size()) / batch.size());
        loss = loss + po.objectness_weight * obj;
        torch::NoGradGuard ng;
        obj_loss_acc += obj.item<double>();
        const auto hit = (z > 0).to(torch::kFloat32) == b.obj_target;
        obj_tp += (hit.to(torch::kFloat32) * b.obj_target).sum().item<double>();
        obj_pos += b.obj_target.sum().item<double>();
        obj_tn += (hit.to(torch::kFloat32) * (1 - b.obj_target)).sum().item<double>();
        obj_neg += (1 - b.obj_target).sum().item<double>();
        obj_other_tn += (hit.to(torch::kFloat32) * b.obj_other).sum().item<double>();
        obj_other_n += other;
      }
      loss.backward();
      torch::NoGradGuard ng;
      loss_acc += loss.item<double>();
      correct_acc +=
          ((lg.argmax(-1) == b.targets).to(torch::kFloat32) * b.mask).sum().item<double>();
      seq_tokens += b.key_mask.sum().item<int64_t>();
    }
    tokens_acc += total_tokens;
    if (Status s = dp.sum_gradients(params); !s.ok()) {
      std::cerr << "gr1 pretrain: step " << step << ": " << s.message() << "\n";
      return 2;
    }
    torch::nn::utils::clip_grad_norm_(params, po.grad_clip);
    opt.step();

    if (step % po.log_every == 0 || step == po.steps) {
      const int k = step % po.log_every == 0 ? po.log_every : step % po.log_every;
      const double secs = seconds_since(t0);
      if (dp.world() > 1) {
        // Each rank counted its own micro-batches: the batch's figures are the sums.
        std::vector<double> v{loss_acc, correct_acc, obj_loss_acc, obj_tp,       obj_pos,
                              obj_tn,   obj_neg,     obj_other_tn, obj_other_n,
                              static_cast<double>(seq_tokens - seq_tokens_logged)};
        if (Status s = dp.sum(v); !s.ok()) {
          std::cerr << "gr1 pretrain: step " << step << ": " << s.message() << "\n";
          return 2;
        }
        loss_acc = v[0], correct_acc = v[1], obj_loss_acc = v[2], obj_tp = v[3], obj_pos = v[4];
        obj_tn = v[5], obj_neg = v[6], obj_other_tn = v[7], obj_other_n = v[8];
        seq_tokens = seq_tokens_logged + static_cast<int64_t>(v[9]);
      }
      // Balanced accuracy: the mean of the per-class hit rates (0.5 = chance).
      const double obj_bal =
          0.5 * (obj_tp / std::max(1.0, obj_pos) + obj_tn / std::max(1.0, obj_neg));
      nlohmann::json row = {{"step", step},
                            {"loss", loss_acc / k},
                            {"token_accuracy", correct_acc / std::max(1.0, tokens_acc)},
                            {"objectness_loss", obj_loss_acc / k},
                            {"objectness_balanced_accuracy", obj_bal},
                            // Share of the other shapes' patches called "not
                            // the named one": what telling shapes apart takes.
                            {"objectness_other_shapes_accuracy",
                             obj_other_tn / std::max(1.0, obj_other_n)},
                            {"lr", lr},
                            {"wall_s", secs},
                            {"tokens_per_s", seq_tokens / std::max(1e-9, secs)},
                            {"sequence_tokens", seq_tokens - seq_tokens_logged}};
      seq_tokens_logged = seq_tokens;
      log.push_back(row);
      if (leader) std::printf(
          "pretrain step %5d  loss %.4f  token acc %.3f  objectness balanced acc %.3f (other shapes "
          "%.3f)  lr %.2e  %.0f tok/s  %.0f s\n",
          step, loss_acc / k, correct_acc / std::max(1.0, tokens_acc), obj_bal,
          obj_other_tn / std::max(1.0, obj_other_n), lr,
          seq_tokens / std::max(1e-9, secs), secs);
      std::fflush(stdout);
      loss_acc = correct_acc = tokens_acc = 0;
      obj_loss_acc = obj_tp = obj_pos = obj_tn = obj_neg = obj_other_tn = obj_other_n = 0;
    }

    // Phase boundaries (the last phase's end is the run's end: the report
    // below): the locate curve's extra points and the phase checkpoints.
    const bool phase_end = step < po.steps && phase_of(po, step + 1) != phase;
    if (phase_end && po.phase_checkpoints && leader) {
      const std::string path = out + "." + phase_name(phase) + ".safetensors";
      if (!write_checkpoint(path, policy, cfg.model)) return 2;
      std::printf("pretrain step %5d  end of %s: weights -> %s\n", step, phase_name(phase), path.c_str());
    }
    const bool curve_point = po.locate_curve_every > 0 && po.report_items > 0 &&
                             (step % po.locate_curve_every == 0 || phase_end) && step < po.steps;
    if (curve_point) {
      const auto r0 = std::chrono::steady_clock::now();
      auto rep = policy_report(cfg, policy, cfg.model, /*locate_only=*/true, &dp);
      if (!rep.ok()) {
        std::cerr << "gr1 pretrain: step " << step << ": locate curve: " << rep.error() << "\n";
        return 2;
      }
      const double secs = seconds_since(r0);
      // Kept out of the training time: t0 moves forward by the report's time.
      t0 += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(secs));
      curve_s += secs;
      const double score = rep->value("locate_box_score", 0.0),
                   right = rep->value("locate_right_shape_rate", 0.0);
      curve.push_back({{"step", step},
                       {"phase", phase_name(phase)},
                       {"phase_end", phase_end},
                       {"locate_box_score", score},
                       {"locate_right_shape_rate", right},
                       {"seconds", secs}});
      if (leader) {
        std::printf("pretrain step %5d  held-out locate box score %.3f, right shape %.3f (%s%s, %.0f s)\n",
                    step, score, right, phase_name(phase), phase_end ? ", its last step" : "", secs);
        std::fflush(stdout);
      }
    }
  }
  const double train_s = seconds_since(t0);
  if (Status s = dp.check_in_sync(params, "parameters after the decoder stage"); !s.ok()) {
    std::cerr << "gr1 pretrain: " << s.message() << "\n";
    return 2;
  }
  // The held-out report of the final weights, its items shared out over the
  // ranks (they hold equal weights: checked above); rank 0 then writes the
  // checkpoint and the report.
  auto rep = policy_report(cfg, policy, cfg.model, /*locate_only=*/false, &dp);
  if (!rep.ok()) {
    std::cerr << "gr1 pretrain: report: " << rep.error() << "\n";
    return 2;
  }
  if (!leader) return 0;
  if (!write_checkpoint(out, policy, cfg.model)) return 2;
  nlohmann::json report = *rep;
  report["train_seconds"] = train_s;
  report["skipped_too_long"] = too_long;
  report["report_seconds"] = seconds_since(t0) - train_s;
  report["steps"] = po.steps;
  report["skills"] = po.skills;
  report["phase0_steps"] = po.phase0_steps;
  report["phase0_skills"] = po.phase0_skills;
  report["reset_optimizer_after_phase0"] = po.reset_optimizer_after_phase0;
  report["phase1_steps"] = po.phase1_steps;
  report["phase1_skills"] = po.phase1_skills;
  report["phase2_steps"] = po.phase2_steps;
  report["phase2_skills"] = po.phase2_skills;
  report["final_steps"] = po.final_steps;
  report["final_skills"] = final_skills;
  report["final_lr"] = po.final_lr;
  report["crop_jitter_share"] = po.crop_jitter_share;
  report["crop_jitter_cells"] = po.crop_jitter_cells;
  report["crop_jitter_text"] = po.crop_jitter_text;
  report["crop_jitter_final_only"] = po.crop_jitter_final_only;
  report["checkpoint"] = out;
  report["log"] = log;
  if (po.locate_curve_every > 0) {
    // The curve ends at the final weights: the report's own locate figures.
    if (po.report_items > 0)
      curve.push_back({{"step", po.steps},
                       {"phase", phase_name(phase_of(po, po.steps))},
                       {"phase_end", true},
                       {"locate_box_score", report.value("locate_box_score", 0.0)},
                       {"locate_right_shape_rate", report.value("locate_right_shape_rate", 0.0)},
                       {"seconds", 0.0}});
    report["locate_curve_every"] = po.locate_curve_every;
    report["locate_curve"] = curve;
    report["locate_curve_seconds"] = curve_s;
  }
  if (!vision_report.is_null()) report["vision"] = vision_report;
  const std::string rpath = out + ".report.json";
  std::ofstream(rpath) << report.dump(2) << "\n";
  std::printf(
      "pretrain done in %.0f s: locate box score %.3f, zoom-read accuracy %.3f (given the box "
      "%.3f), box choice %.3f (held-out, %d items each) -> %s, %s\n",
      train_s, report.value("locate_box_score", 0.0), report.value("zoom_read_accuracy", 0.0),
      report.value("read_given_box_accuracy", 0.0), report.value("box_choice_rate", 0.0),
      po.report_items, out.c_str(), rpath.c_str());
  return 0;
}

}  // namespace gr1
