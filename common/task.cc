#include "common/task.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

namespace gr1 {
namespace {

// ---- Deterministic randomness ----------------------------------------------
// splitmix64; every draw below is integer arithmetic on its output, so the
// same (seed, index) gives the same scene everywhere.
uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  Rng(uint64_t seed, uint64_t index) : s_(mix64(seed ^ mix64(index ^ 0x632BE59BD9B4E019ULL))) {}
  uint64_t next() {
    s_ += 0x9E3779B97F4A7C15ULL;
    return mix64(s_);
  }
  // Uniform in [0, n) (modulo bias < n / 2^64, irrelevant here).
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  // Uniform in [lo, hi].
  int range(int lo, int hi) { return lo + below(hi - lo + 1); }
  template <typename Seq>  // std::vector or std::string
  void shuffle(Seq& v) {
    for (int i = static_cast<int>(v.size()) - 1; i > 0; --i) std::swap(v[i], v[below(i + 1)]);
  }

 private:
  uint64_t s_;
};

// ---- Scene vocabulary ---------------------------------------------------------

struct NamedColour {
  std::string_view name;
  cv::Scalar bgr;
};
// Distinct at the policy's 64x64 view; none is near black or white (the
// glyph colours) and none is grey (the background).
const std::array<NamedColour, 8> kPalette = {{
    {"red", cv::Scalar(30, 30, 220)},
    {"green", cv::Scalar(40, 160, 30)},
    {"blue", cv::Scalar(220, 70, 40)},
    {"yellow", cv::Scalar(40, 210, 235)},
    {"orange", cv::Scalar(20, 140, 240)},
    {"purple", cv::Scalar(180, 50, 140)},
    {"cyan", cv::Scalar(210, 200, 40)},
    {"brown", cv::Scalar(40, 90, 140)},
}};

enum class Shape { kCircle = 0, kSquare = 1, kTriangle = 2 };
constexpr std::array<std::string_view, 3> kShapeNames = {"circle", "square", "triangle"};

// Glyph alphabet: no I/O/0/1, which are ambiguous even when readable.
constexpr std::string_view kAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
constexpr int kMargin = 3;   // free pixels between a glyph and its shape's edge
constexpr int kSpacing = 4;  // free pixels between shapes / to the image border

constexpr std::array<std::string_view, 3> kTemplates = {
    "What character is on the {}?",
    "Which letter or digit is written on the {}?",
    "Read the character on the {}.",
};

// One-pixel strokes: at the 4x-reduced view a stroke is a quarter of a pixel
// and blends into its shape (two-pixel strokes left simple letters such as
// H or L legible at 64x64); in a crop enlarged to 64x64 it is 2-3 pixels.
int glyph_thickness(int /*px*/) { return 1; }

// Black on light shapes, white on dark ones.
cv::Scalar glyph_colour(const cv::Scalar& bgr) {
  const double luma = 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2];
  return luma > 140 ? cv::Scalar(0, 0, 0) : cv::Scalar(255, 255, 255);
}

// A glyph rendered at a font scale chosen so that its tight pixel box is
// `px` tall (at most px, as close as the rasteriser allows).
struct GlyphMetrics {
  double scale = 1;
  int thickness = 1;
  cv::Rect box;  // tight pixel box relative to the putText origin
};

cv::Rect rendered_box(char ch, double scale, int thickness) {
  const std::string s(1, ch);
  int baseline = 0;
  const cv::Size sz = cv::getTextSize(s, kFont, scale, thickness, &baseline);
  const int pad = 4 + thickness;
  cv::Mat mask = cv::Mat::zeros(sz.height + baseline + 2 * pad, sz.width + 2 * pad, CV_8U);
  const cv::Point org(pad, pad + sz.height);
  cv::putText(mask, s, org, kFont, scale, cv::Scalar(255), thickness, cv::LINE_AA);
  cv::Rect r = cv::boundingRect(mask);
  r.x -= org.x;
  r.y -= org.y;
  return r;
}

GlyphMetrics glyph_metrics(char ch, int px) {
  GlyphMetrics g;
  g.thickness = glyph_thickness(px);
  g.scale = 1.0;
  g.box = rendered_box(ch, g.scale, g.thickness);
  for (int it = 0; it < 4 && g.box.height != px; ++it) {
    g.scale *= static_cast<double>(px) / std::max(1, g.box.height);
    g.box = rendered_box(ch, g.scale, g.thickness);
  }
  // Never taller than asked: shrink in small steps if rounding overshot.
  for (int it = 0; it < 8 && g.box.height > px; ++it) {
    g.scale *= 0.97;
    g.box = rendered_box(ch, g.scale, g.thickness);
  }
  return g;
}

struct Object {
  int colour = 0;
  Shape shape = Shape::kCircle;
  cv::Point centre;
  int size = 0;         // circle radius / square half side / triangle circumradius
  int bound = 0;        // radius of a circle holding the whole shape
  char glyph = 0;       // 0: none
  GlyphMetrics metrics;
};

// Shape size that holds a glyph box of w x h with kMargin to spare, plus extra.
int shape_size(Shape s, int w, int h, int extra) {
  const double half_diag = 0.5 * std::sqrt(static_cast<double>(w) * w + static_cast<double>(h) * h);
  switch (s) {
    case Shape::kCircle: return static_cast<int>(std::ceil(half_diag)) + kMargin + extra;
    case Shape::kSquare: return (std::max(w, h) + 1) / 2 + kMargin + extra;
    case Shape::kTriangle:  // inscribed radius = circumradius / 2
      return 2 * (static_cast<int>(std::ceil(half_diag)) + kMargin) + extra;
  }
  return 0;
}

int bounding_radius(Shape s, int size) {
  return s == Shape::kSquare ? static_cast<int>(std::ceil(size * std::sqrt(2.0))) : size;
}

void draw_shape(cv::Mat& img, const Object& o) {
  const cv::Scalar& c = kPalette[o.colour].bgr;
  switch (o.shape) {
    case Shape::kCircle:
      cv::circle(img, o.centre, o.size, c, cv::FILLED, cv::LINE_AA);
      break;
    case Shape::kSquare:
      cv::rectangle(img, cv::Point(o.centre.x - o.size, o.centre.y - o.size),
                    cv::Point(o.centre.x + o.size, o.centre.y + o.size), c, cv::FILLED, cv::LINE_8);
      break;
    case Shape::kTriangle: {
      const double r = o.size;
      const cv::Point pts[3] = {
          {o.centre.x, o.centre.y - o.size},
          {o.centre.x + static_cast<int>(std::lround(r * 0.8660254)), o.centre.y + o.size / 2},
          {o.centre.x - static_cast<int>(std::lround(r * 0.8660254)), o.centre.y + o.size / 2},
      };
      cv::fillConvexPoly(img, pts, 3, c, cv::LINE_AA);
      break;
    }
  }
}

// putText origin that centres the glyph's tight box on the shape centre.
cv::Point glyph_origin(const Object& o) {
  const cv::Rect& b = o.metrics.box;
  return {o.centre.x - (b.x + b.width / 2), o.centre.y - (b.y + b.height / 2)};
}

std::string replace_brace(std::string_view tmpl, const std::string& what) {
  std::string s(tmpl);
  const size_t p = s.find("{}");
  return s.replace(p, 2, what);
}

// Tries to place `o` (size/bound set) without overlapping `placed`.
bool place(Rng& rng, Object& o, const std::vector<Object>& placed, int W, int H) {
  const int lo_x = o.bound + kSpacing, hi_x = W - 1 - o.bound - kSpacing;
  const int lo_y = o.bound + kSpacing, hi_y = H - 1 - o.bound - kSpacing;
  if (lo_x > hi_x || lo_y > hi_y) return false;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const cv::Point c(rng.range(lo_x, hi_x), rng.range(lo_y, hi_y));
    bool free = true;
    for (const Object& p : placed) {
      const double dx = c.x - p.centre.x, dy = c.y - p.centre.y;
      if (std::sqrt(dx * dx + dy * dy) < o.bound + p.bound + kSpacing) {
        free = false;
        break;
      }
    }
    if (free) {
      o.centre = c;
      return true;
    }
  }
  return false;
}

Status resolve_rule(const TaskOptions& opts, AccuracyRule& rule) {
  if (Status s = SyntheticTask::validate(opts); !s.ok()) return s;
  auto known = accuracy_rule_for(opts.dataset);
  if (!known.ok()) {
    rule = AccuracyRule::kShortAnswer;
    return register_accuracy_rule(opts.dataset, rule);
  }
  if (*known != AccuracyRule::kShortAnswer && *known != AccuracyRule::kMultipleChoice) {
    return Status::Error("task.dataset: \"" + opts.dataset + "\" uses accuracy rule " +
                         std::string(accuracy_rule_name(*known)) +
                         "; the synthetic task needs short_answer or multiple_choice");
  }
  rule = *known;
  return Status::Ok();
}

nlohmann::json number_json(float v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15f) {
    return static_cast<int64_t>(v);
  }
  return static_cast<double>(v);
}

}  // namespace

Status SyntheticTask::validate(const TaskOptions& o) {
  auto err = [](const char* key, const std::string& what) {
    return Status::Error(std::string("task.") + key + ": " + what);
  };
  if (o.dataset.empty()) return err("dataset", "must not be empty");
  if (o.image_width < 32 || o.image_width > 8192) return err("image_width", "must be in [32, 8192]");
  if (o.image_height < 32 || o.image_height > 8192)
    return err("image_height", "must be in [32, 8192]");
  if (o.min_glyph_px < 4) return err("min_glyph_px", "must be >= 4");
  if (o.max_glyph_px < o.min_glyph_px) return err("max_glyph_px", "must be >= task.min_glyph_px");
  if (4 * o.max_glyph_px > std::min(o.image_width, o.image_height)) {
    return err("max_glyph_px", "must be <= min(image_width, image_height) / 4, got " +
                                   std::to_string(o.max_glyph_px));
  }
  if (o.distractors < 0 || o.distractors > 16) return err("distractors", "must be in [0, 16]");
  return Status::Ok();
}

Result<SyntheticTask> SyntheticTask::create(const TaskOptions& opts) {
  AccuracyRule rule = AccuracyRule::kShortAnswer;
  if (Status s = resolve_rule(opts, rule); !s.ok()) return s;
  return SyntheticTask(opts, rule);
}

SyntheticTask::SyntheticTask(const TaskOptions& opts) : opts_(opts) {
  if (Status s = resolve_rule(opts, rule_); !s.ok()) throw std::invalid_argument(s.message());
}

Sample SyntheticTask::get(uint64_t index) const {
  const int W = opts_.image_width, H = opts_.image_height;
  Rng rng(opts_.seed, index);

  // Background: a flat mid grey, slightly tinted.
  const int g = rng.range(95, 165);
  cv::Mat img(H, W, CV_8UC3,
              cv::Scalar(g + rng.range(-8, 8), g + rng.range(-8, 8), g + rng.range(-8, 8)));

  // (colour, shape) pairs are unique in a scene; colours are all distinct
  // while the palette lasts (up to 8 objects).
  const int n_objects = 1 + opts_.distractors;
  std::vector<int> colour_order(kPalette.size());
  for (size_t i = 0; i < colour_order.size(); ++i) colour_order[i] = static_cast<int>(i);
  rng.shuffle(colour_order);
  std::vector<std::pair<int, Shape>> kinds;
  for (int i = 0; i < n_objects; ++i) {
    const int colour = colour_order[i % colour_order.size()];
    const int round = i / static_cast<int>(colour_order.size());  // 0, 1, 2: shapes differ
    Shape shape = static_cast<Shape>(rng.below(3));
    if (round > 0) {
      // Same colour again: take a shape no earlier object of that colour has.
      std::vector<Shape> left;
      for (int s = 0; s < 3; ++s) {
        bool used = false;
        for (const auto& k : kinds) used |= (k.first == colour && k.second == static_cast<Shape>(s));
        if (!used) left.push_back(static_cast<Shape>(s));
      }
      if (left.empty()) break;  // > 24 objects cannot be unique (not reachable: distractors <= 16)
      shape = left[rng.below(static_cast<int>(left.size()))];
    }
    kinds.emplace_back(colour, shape);
  }

  // Glyphs: the target's, then distinct others for distractors (3 in 4 carry one).
  std::string chars(kAlphabet);
  rng.shuffle(chars);
  size_t next_char = 0;

  std::vector<Object> objects;
  for (size_t i = 0; i < kinds.size(); ++i) {
    Object o;
    o.colour = kinds[i].first;
    o.shape = kinds[i].second;
    const bool target = i == 0;
    const bool has_glyph = target || rng.below(4) != 0;
    const int px = rng.range(opts_.min_glyph_px, opts_.max_glyph_px);
    const char ch = chars[next_char % chars.size()];
    o.metrics = glyph_metrics(ch, px);
    if (has_glyph) {
      o.glyph = ch;
      ++next_char;
    }
    const int extra = rng.range(0, std::max(2, opts_.max_glyph_px / 2));
    o.size = shape_size(o.shape, o.metrics.box.width, o.metrics.box.height, extra);
    o.bound = bounding_radius(o.shape, o.size);
    if (target && 2 * (o.bound + kSpacing) + 1 > std::min(W, H)) {
      // Too big for a small image: the most compact shape, no extra size.
      o.shape = Shape::kCircle;
      o.size = shape_size(o.shape, o.metrics.box.width, o.metrics.box.height, 0);
      o.bound = o.size;
    }
    if (!target && o.colour == objects[0].colour && o.shape == objects[0].shape) {
      continue;  // the target fell back to a circle: keep its description unique
    }
    if (!place(rng, o, objects, W, H)) {
      if (!target) continue;  // a crowded scene simply has fewer distractors
      o.centre = cv::Point(W / 2, H / 2);  // first object on an empty canvas
    }
    objects.push_back(o);
  }

  for (const Object& o : objects) draw_shape(img, o);
  Box evidence;
  for (size_t i = 0; i < objects.size(); ++i) {
    const Object& o = objects[i];
    if (!o.glyph) continue;
    const std::string s(1, o.glyph);
    const cv::Point org = glyph_origin(o);
    cv::putText(img, s, org, kFont, o.metrics.scale, glyph_colour(kPalette[o.colour].bgr),
                o.metrics.thickness, cv::LINE_AA);
    if (i == 0) {
      cv::Mat mask = cv::Mat::zeros(H, W, CV_8U);
      cv::putText(mask, s, org, kFont, o.metrics.scale, cv::Scalar(255), o.metrics.thickness,
                  cv::LINE_AA);
      const cv::Rect r = cv::boundingRect(mask);
      evidence = Box{static_cast<float>(r.x), static_cast<float>(r.y),
                     static_cast<float>(r.x + r.width), static_cast<float>(r.y + r.height)};
    }
  }

  const Object& t = objects[0];
  const std::string what =
      std::string(kPalette[t.colour].name) + " " + std::string(kShapeNames[static_cast<int>(t.shape)]);
  Sample out;
  out.problem_id = index;
  out.width = W;
  out.height = H;
  out.bboxs = {evidence};
  out.dataset = opts_.dataset;
  out.problem = replace_brace(kTemplates[rng.below(static_cast<int>(kTemplates.size()))], what);
  if (rule_ == AccuracyRule::kMultipleChoice) {
    // Options: the truth, the scene's other glyphs (the likely confusions),
    // then random characters; shuffled.
    std::string options(1, t.glyph);
    for (size_t i = 1; i < objects.size() && options.size() < 4; ++i) {
      if (objects[i].glyph) options.push_back(objects[i].glyph);
    }
    for (char c : chars) {
      if (options.size() >= 4) break;
      if (options.find(c) == std::string::npos) options.push_back(c);
    }
    rng.shuffle(options);
    const char letter = static_cast<char>('A' + options.find(t.glyph));
    for (size_t k = 0; k < options.size(); ++k) {
      out.problem += "\n" + std::string(1, static_cast<char>('A' + k)) + ". " + options[k];
    }
    out.solution = "<answer>" + std::string(1, letter) + "</answer>";
  } else {
    out.solution = std::string(1, t.glyph);
  }
  out.image = std::move(img);
  return out;
}

nlohmann::json to_record(const Sample& s) {
  nlohmann::json boxes = nlohmann::json::array();
  for (const Box& b : s.bboxs) {
    boxes.push_back({number_json(b.x1), number_json(b.y1), number_json(b.x2), number_json(b.y2)});
  }
  return nlohmann::json{{"image", s.image_path}, {"width", s.width},         {"height", s.height},
                        {"bboxs", boxes},        {"dataset", s.dataset},    {"problem", s.problem},
                        {"solution", s.solution}, {"problem_id", s.problem_id}};
}

Result<Sample> sample_from_record(const nlohmann::json& r) {
  auto err = [](const std::string& key, const std::string& what) {
    return Result<Sample>::Error("record." + key + ": " + what);
  };
  if (!r.is_object()) return Result<Sample>::Error("record: not a JSON object");
  Sample s;
  for (const char* key : {"image", "dataset", "problem", "solution"}) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_string()) return err(key, "missing or not a string");
  }
  for (const char* key : {"width", "height", "problem_id"}) {
    auto it = r.find(key);
    if (it == r.end() || !it->is_number_integer()) return err(key, "missing or not an integer");
    if (it->get<int64_t>() < 0 || (std::string(key) != "problem_id" && it->get<int64_t>() == 0)) {
      return err(key, "out of range: " + it->dump());
    }
  }
  if (r["width"].get<int64_t>() > (1 << 20) || r["height"].get<int64_t>() > (1 << 20)) {
    return err("width", "image side over 2^20 pixels");
  }
  s.image_path = r["image"].get<std::string>();
  s.dataset = r["dataset"].get<std::string>();
  s.problem = r["problem"].get<std::string>();
  s.solution = r["solution"].get<std::string>();
  s.width = static_cast<int>(r["width"].get<int64_t>());
  s.height = static_cast<int>(r["height"].get<int64_t>());
  s.problem_id = r["problem_id"].get<uint64_t>();
  if (auto it = r.find("bboxs"); it != r.end() && !it->is_null()) {
    if (!it->is_array()) return err("bboxs", "not an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& b = (*it)[i];
      if (!b.is_array() || b.size() != 4) {
        return err("bboxs[" + std::to_string(i) + "]", "not a list of 4 numbers");
      }
      std::array<float, 4> v{};
      for (size_t k = 0; k < 4; ++k) {
        if (!b[k].is_number()) return err("bboxs[" + std::to_string(i) + "]", "not a number");
        v[k] = b[k].get<float>();
      }
      s.bboxs.push_back(Box{v[0], v[1], v[2], v[3]});
    }
  }
  return s;
}

}  // namespace gr1
