#include "common/task.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <stdexcept>
#include <string_view>

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

// Question templates per family; "{}" is the object's description.
constexpr std::array<std::string_view, 3> kTextTemplates = {
    "What character is on the {}?",
    "Which letter or digit is written on the {}?",
    "Read the character on the {}.",
};
constexpr std::array<std::string_view, 2> kAttributeTemplates = {
    "What colour is the small mark on the {}?",
    "Which colour does the small square on the {} have?",
};
constexpr std::array<std::string_view, 2> kCountingTemplates = {
    "How many dots are on the {}?",
    "Count the dots on the {}.",
};
// Spatial: "{}" is "<relation> the <description>".
constexpr std::array<std::string_view, 2> kSpatialTemplates = {
    "What character is on the shape just {}?",
    "Read the character on the nearest shape {}.",
};
constexpr std::array<std::string_view, 4> kRelations = {"left of", "right of", "above", "below"};

// Strokes: one pixel for small glyphs, so that at the 4x-reduced view a
// stroke is a quarter of a pixel and blends into its shape (two-pixel strokes
// left simple letters such as H or L legible at 64x64); large glyphs get
// thicker strokes and stay legible in the full view, like VisCoT's questions
// with large evidence, which need no crop.
int glyph_thickness(int px) { return px >= 32 ? 3 : px >= 22 ? 2 : 1; }

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
  int size = 0;   // circle radius / square half side / triangle circumradius
  int bound = 0;  // radius of a circle holding the whole shape
  DetailKind detail = DetailKind::kNone;
  char glyph = 0;
  GlyphMetrics metrics;         // kGlyph
  int badge_colour = 0;         // kBadge: index into badge_palette()
  int badge_px = 0;             // kBadge: side
  int dot_radius = 0;           // kDots
  std::vector<cv::Point> dots;  // kDots: offsets from the centre
  cv::Size detail_size;         // the detail's extent (for the shape size)
};

// Badge colours: the shape palette plus black and white, by name.
struct BadgeColour {
  std::string_view name;
  cv::Scalar bgr;
};
const std::vector<BadgeColour>& badge_palette() {
  static const std::vector<BadgeColour> p = [] {
    std::vector<BadgeColour> v;
    for (const auto& c : kPalette) v.push_back({c.name, c.bgr});
    v.push_back({"black", cv::Scalar(10, 10, 10)});
    v.push_back({"white", cv::Scalar(250, 250, 250)});
    return v;
  }();
  return p;
}

double colour_distance(const cv::Scalar& a, const cv::Scalar& b) {
  const double d0 = a[0] - b[0], d1 = a[1] - b[1], d2 = a[2] - b[2];
  return std::sqrt(d0 * d0 + d1 * d1 + d2 * d2);
}

// A badge colour that stands out on shape colour `shape_colour`.
int draw_badge_colour(Rng& rng, int shape_colour) {
  const auto& p = badge_palette();
  std::vector<int> ok;
  for (int i = 0; i < static_cast<int>(p.size()); ++i) {
    if (colour_distance(p[i].bgr, kPalette[shape_colour].bgr) > 120) ok.push_back(i);
  }
  return ok[rng.below(static_cast<int>(ok.size()))];
}

// Dots: k of the six cells of a 3 x 2 grid (cell pitch 3r + 5), jittered by at
// most r/2: an anti-aliased dot spans 2r + 3 px, so at least 2 px of shape
// show between dots; the cluster is about 1.5 px x px.
void make_dots(Rng& rng, Object& o, int px, int k) {
  const int r = std::max(1, px / 6);
  const int pitch = 3 * r + 5;
  std::vector<int> cells = {0, 1, 2, 3, 4, 5};
  rng.shuffle(cells);
  o.dot_radius = r;
  o.dots.clear();
  for (int i = 0; i < k; ++i) {
    const int cx = (cells[i] % 3 - 1) * pitch, cy = (cells[i] / 3) * pitch - pitch / 2;
    const int j = std::max(0, r / 2);
    o.dots.emplace_back(cx + rng.range(-j, j), cy + rng.range(-j, j));
  }
  o.detail_size = cv::Size(2 * pitch + 2 * r + 2 * (r / 2) + 1, pitch + 2 * r + 2 * (r / 2) + 1);
}

// Log-uniform integer in [lo, hi]: small evidence is as common as large.
int log_uniform(Rng& rng, int lo, int hi) {
  if (hi <= lo) return lo;
  const double u = rng.below(1 << 20) / static_cast<double>(1 << 20);
  const int v = static_cast<int>(std::lround(lo * std::pow(static_cast<double>(hi) / lo, u)));
  return std::clamp(v, lo, hi);
}

// Shape size that holds a detail of w x h with kMargin to spare, plus extra.
int shape_size(Shape s, int w, int h, int extra) {
  const double half_diag = 0.5 * std::sqrt(static_cast<double>(w) * w + static_cast<double>(h) * h);
  switch (s) {
    case Shape::kCircle:
      return static_cast<int>(std::ceil(half_diag)) + kMargin + extra;
    case Shape::kSquare:
      return (std::max(w, h) + 1) / 2 + kMargin + extra;
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

Box shape_box(const Object& o, int W, int H) {
  const int half = o.shape == Shape::kSquare ? o.size : o.size;
  const int top = o.centre.y - o.size;
  const int bottom = o.shape == Shape::kTriangle ? o.centre.y + o.size / 2 : o.centre.y + half;
  const int dx =
      o.shape == Shape::kTriangle ? static_cast<int>(std::lround(o.size * 0.8660254)) : half;
  auto cl = [](int v, int hi) { return static_cast<float>(std::clamp(v, 0, hi)); };
  return Box{cl(o.centre.x - dx, W), cl(top, H), cl(o.centre.x + dx + 1, W), cl(bottom + 1, H)};
}

// putText origin that centres the glyph's tight box on the shape centre.
cv::Point glyph_origin(const Object& o) {
  const cv::Rect& b = o.metrics.box;
  return {o.centre.x - (b.x + b.width / 2), o.centre.y - (b.y + b.height / 2)};
}

// Draws the detail into `img` and, when `mask` is given, into it (255).
void draw_detail(cv::Mat& img, cv::Mat* mask, const Object& o) {
  const cv::Scalar ink = glyph_colour(kPalette[o.colour].bgr);
  auto both = [&](auto&& fn) {
    fn(img, false);
    if (mask) fn(*mask, true);
  };
  switch (o.detail) {
    case DetailKind::kNone:
      break;
    case DetailKind::kGlyph:
      both([&](cv::Mat& m, bool is_mask) {
        cv::putText(m, std::string(1, o.glyph), glyph_origin(o), kFont, o.metrics.scale,
                    is_mask ? cv::Scalar(255) : ink, o.metrics.thickness, cv::LINE_AA);
      });
      break;
    case DetailKind::kBadge: {
      const int h = o.badge_px / 2;
      const cv::Rect r(o.centre.x - h, o.centre.y - h, o.badge_px, o.badge_px);
      both([&](cv::Mat& m, bool is_mask) {
        cv::rectangle(m, r, is_mask ? cv::Scalar(255) : badge_palette()[o.badge_colour].bgr,
                      cv::FILLED, cv::LINE_8);
      });
      break;
    }
    case DetailKind::kDots:
      both([&](cv::Mat& m, bool is_mask) {
        for (const cv::Point& d : o.dots) {
          cv::circle(m, o.centre + d, o.dot_radius, is_mask ? cv::Scalar(255) : ink, cv::FILLED,
                     cv::LINE_AA);
        }
      });
      break;
  }
}

std::string detail_value(const Object& o) {
  switch (o.detail) {
    case DetailKind::kGlyph:
      return std::string(1, o.glyph);
    case DetailKind::kBadge:
      return std::string(badge_palette()[o.badge_colour].name);
    case DetailKind::kDots:
      return std::to_string(o.dots.size());
    case DetailKind::kNone:
      break;
  }
  return "";
}

template <size_t N>
std::string fill(Rng& rng, const std::array<std::string_view, N>& templates,
                 const std::string& what) {
  std::string s(templates[rng.below(static_cast<int>(N))]);
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

// Places `o` touching distance from placed[0] (the subject): its bounding
// circle within [kSpacing, kSpacing + 6] pixels of the subject's, free of
// every other object. Integer draws only (deterministic everywhere).
bool place_near(Rng& rng, Object& o, const std::vector<Object>& placed, int W, int H) {
  const Object& s = placed[0];
  const int lo = s.bound + o.bound + kSpacing, hi = lo + 6;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const cv::Point c(s.centre.x + rng.range(-hi, hi), s.centre.y + rng.range(-hi, hi));
    const double dx0 = c.x - s.centre.x, dy0 = c.y - s.centre.y;
    const double d0 = std::sqrt(dx0 * dx0 + dy0 * dy0);
    if (d0 < lo || d0 > hi) continue;
    if (c.x - o.bound - kSpacing < 0 || c.y - o.bound - kSpacing < 0 ||
        c.x + o.bound + kSpacing > W - 1 || c.y + o.bound + kSpacing > H - 1)
      continue;
    bool free = true;
    for (size_t i = 1; i < placed.size() && free; ++i) {
      const double dx = c.x - placed[i].centre.x, dy = c.y - placed[i].centre.y;
      free = std::sqrt(dx * dx + dy * dy) >= o.bound + placed[i].bound + kSpacing;
    }
    if (free) {
      o.centre = c;
      return true;
    }
  }
  return false;
}

// Index streams: train 0, test 1, pretraining scenes 2 + stream.
uint64_t stream_seed(uint64_t seed, uint64_t stream) {
  return stream == 0 ? seed : mix64(seed ^ mix64(0xD1B54A32D192ED03ULL * stream));
}

struct BuiltScene {
  cv::Mat image;
  std::vector<Object> objects;  // objects[0] is the question's subject
  std::vector<Box> detail_boxes;
};

// Draws a scene whose objects carry `kind` details. Object 0 always carries
// one; distractors 3 in 4 (all of them when `all_details`).
BuiltScene build_scene(Rng& rng, const TaskOptions& opts, DetailKind kind, bool all_details) {
  const int W = opts.image_width, H = opts.image_height;
  const int g = rng.range(95, 165);
  BuiltScene out;
  out.image = cv::Mat(H, W, CV_8UC3,
                      cv::Scalar(g + rng.range(-8, 8), g + rng.range(-8, 8), g + rng.range(-8, 8)));

  // (colour, shape) pairs are unique in a scene; colours are all distinct
  // while the palette lasts (up to 8 objects).
  const int n_objects = 1 + opts.distractors;
  std::vector<int> colour_order(kPalette.size());
  for (size_t i = 0; i < colour_order.size(); ++i) colour_order[i] = static_cast<int>(i);
  rng.shuffle(colour_order);
  // A same-shape scene (opts.same_shape_scenes): every shape the subject's
  // kind while the palette lasts, so only colour tells them apart. No draw
  // when the option is 0.
  const bool same_shape = opts.same_shape_scenes > 0 &&
                          rng.below(1 << 20) < static_cast<int>(opts.same_shape_scenes * (1 << 20));
  std::vector<std::pair<int, Shape>> kinds;
  for (int i = 0; i < n_objects; ++i) {
    const int colour = colour_order[i % colour_order.size()];
    const int round = i / static_cast<int>(colour_order.size());
    Shape shape = static_cast<Shape>(rng.below(3));
    if (same_shape && i > 0 && round == 0) shape = kinds[0].second;
    if (round > 0) {
      std::vector<Shape> left;
      for (int s = 0; s < 3; ++s) {
        bool used = false;
        for (const auto& k : kinds)
          used |= (k.first == colour && k.second == static_cast<Shape>(s));
        if (!used) left.push_back(static_cast<Shape>(s));
      }
      if (left.empty()) break;
      shape = left[rng.below(static_cast<int>(left.size()))];
    }
    kinds.emplace_back(colour, shape);
  }

  std::string chars(kAlphabet);
  rng.shuffle(chars);
  size_t next_char = 0;
  for (size_t i = 0; i < kinds.size(); ++i) {
    Object o;
    o.colour = kinds[i].first;
    o.shape = kinds[i].second;
    const bool subject = i == 0;
    const bool has_detail = subject || all_details || rng.below(4) != 0;
    const int px = log_uniform(rng, opts.min_glyph_px, opts.max_glyph_px);
    if (has_detail) o.detail = kind;
    switch (has_detail ? kind : DetailKind::kGlyph) {  // empty shapes keep a glyph-sized body
      case DetailKind::kNone:
      case DetailKind::kGlyph: {
        const char ch = chars[next_char % chars.size()];
        o.metrics = glyph_metrics(ch, px);
        if (has_detail) {
          o.glyph = ch;
          ++next_char;
        }
        o.detail_size = o.metrics.box.size();
        break;
      }
      case DetailKind::kBadge:
        o.badge_px = std::max(3, (px * 3) / 4);
        o.badge_colour = draw_badge_colour(rng, o.colour);
        o.detail_size = cv::Size(o.badge_px, o.badge_px);
        break;
      case DetailKind::kDots:
        make_dots(rng, o, px, rng.range(1, 5));
        break;
    }
    const int extra = rng.range(0, std::max(2, opts.max_glyph_px / 2));
    o.size = shape_size(o.shape, o.detail_size.width, o.detail_size.height, extra);
    o.bound = bounding_radius(o.shape, o.size);
    if (subject && 2 * (o.bound + kSpacing) + 1 > std::min(W, H)) {
      // Too big for a small image: the most compact shape, no extra size.
      o.shape = Shape::kCircle;
      o.size = shape_size(o.shape, o.detail_size.width, o.detail_size.height, 0);
      o.bound = o.size;
    }
    if (!subject && o.colour == out.objects[0].colour && o.shape == out.objects[0].shape) {
      continue;  // the subject fell back to a circle: keep its description unique
    }
    // A share of distractors sits right next to the subject (issue 4: a loose
    // box then takes in their details too, so box precision costs or earns
    // accuracy). No draw at all when the option is 0, so default scenes are
    // unchanged by it.
    const bool near = !subject && opts.near_distractors > 0 &&
                      rng.below(1 << 20) < static_cast<int>(opts.near_distractors * (1 << 20));
    if (near && place_near(rng, o, out.objects, W, H)) {
      out.objects.push_back(o);
      continue;
    }
    if (!place(rng, o, out.objects, W, H)) {
      if (!subject) continue;              // a crowded scene simply has fewer distractors
      o.centre = cv::Point(W / 2, H / 2);  // first object on an empty canvas
    }
    out.objects.push_back(o);
  }

  for (const Object& o : out.objects) draw_shape(out.image, o);
  cv::Mat mask(H, W, CV_8U);
  for (const Object& o : out.objects) {
    mask.setTo(0);
    draw_detail(out.image, &mask, o);
    const cv::Rect r = o.detail == DetailKind::kNone ? cv::Rect() : cv::boundingRect(mask);
    out.detail_boxes.push_back(Box{static_cast<float>(r.x), static_cast<float>(r.y),
                                   static_cast<float>(r.x + r.width),
                                   static_cast<float>(r.y + r.height)});
  }
  return out;
}

std::string describe(const Object& o) {
  return std::string(kPalette[o.colour].name) + " " +
         std::string(kShapeNames[static_cast<int>(o.shape)]);
}

int related_object(const std::vector<Object>& objs, int anchor, int dir) {
  std::vector<cv::Point> centres;
  for (const auto& o : objs) centres.push_back(o.centre);
  return gr1::related_object(centres, anchor, dir);
}

// Four options: the truth first, then `confusions`, then `pool`; shuffled.
// Returns the problem suffix and sets *letter.
std::string mc_options(Rng& rng, const std::string& truth,
                       const std::vector<std::string>& confusions,
                       const std::vector<std::string>& pool, char* letter) {
  std::vector<std::string> opts = {truth};
  auto add = [&](const std::string& v) {
    if (opts.size() < 4 && !v.empty() && std::find(opts.begin(), opts.end(), v) == opts.end())
      opts.push_back(v);
  };
  for (const auto& v : confusions) add(v);
  std::vector<std::string> shuffled = pool;
  rng.shuffle(shuffled);
  for (const auto& v : shuffled) add(v);
  rng.shuffle(opts);
  std::string out;
  for (size_t k = 0; k < opts.size(); ++k) {
    if (opts[k] == truth) *letter = static_cast<char>('A' + k);
    out += "\n" + std::string(1, static_cast<char>('A' + k)) + ". " + opts[k];
  }
  return out;
}

// Every value a detail of `kind` can take: the option pool of multiple choice.
std::vector<std::string> detail_pool(DetailKind kind) {
  std::vector<std::string> pool;
  switch (kind) {
    case DetailKind::kBadge:
      for (const auto& c : badge_palette()) pool.emplace_back(c.name);
      break;
    case DetailKind::kDots:
      for (int k = 1; k <= 6; ++k) pool.push_back(std::to_string(k));
      break;
    default:
      for (char c : kAlphabet) pool.emplace_back(1, c);
  }
  return pool;
}

DetailKind detail_of(Family f) {
  switch (f) {
    case Family::kText:
    case Family::kSpatial:
      return DetailKind::kGlyph;
    case Family::kAttribute:
      return DetailKind::kBadge;
    case Family::kCounting:
      return DetailKind::kDots;
  }
  return DetailKind::kGlyph;
}

Status resolve_rules(const TaskOptions& opts, const std::vector<Family>& families) {
  for (Family f : families) {
    for (bool mc : {false, true}) {
      const std::string name = SyntheticTask::dataset_name(opts.dataset, f, mc);
      const AccuracyRule want = mc ? AccuracyRule::kMultipleChoice : AccuracyRule::kShortAnswer;
      auto known = accuracy_rule_for(name);
      if (known.ok() && *known != want) {
        return Status::Error("task.dataset: \"" + name + "\" uses accuracy rule " +
                             std::string(accuracy_rule_name(*known)) +
                             ", the synthetic task needs " + std::string(accuracy_rule_name(want)));
      }
      if (!known.ok()) {
        if (Status s = register_accuracy_rule(name, want); !s.ok()) return s;
      }
    }
  }
  return Status::Ok();
}

}  // namespace

std::string_view family_name(Family f) {
  switch (f) {
    case Family::kText:
      return "text";
    case Family::kAttribute:
      return "attribute";
    case Family::kSpatial:
      return "spatial";
    case Family::kCounting:
      return "counting";
  }
  return "?";
}

Result<std::vector<Family>> parse_families(const std::string& list) {
  std::vector<Family> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    std::string name = list.substr(pos, end - pos);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    bool found = false;
    for (Family f : {Family::kText, Family::kAttribute, Family::kSpatial, Family::kCounting}) {
      if (name == family_name(f)) {
        if (std::find(out.begin(), out.end(), f) != out.end()) {
          return Status::Error("task.families: \"" + name + "\" listed twice");
        }
        out.push_back(f);
        found = true;
      }
    }
    if (!found) {
      return Status::Error("task.families: unknown family \"" + name +
                           "\" (known: text, attribute, spatial, counting)");
    }
    pos = end + 1;
  }
  return out;
}

std::string SyntheticTask::dataset_name(const std::string& prefix, Family family, bool mc) {
  return prefix + "_" + std::string(family_name(family)) + (mc ? "_mc" : "");
}

Status SyntheticTask::validate(const TaskOptions& o) {
  auto err = [](const char* key, const std::string& what) {
    return Status::Error(std::string("task.") + key + ": " + what);
  };
  if (o.dataset.empty()) return err("dataset", "must not be empty");
  if (o.image_width < 32 || o.image_width > 8192)
    return err("image_width", "must be in [32, 8192]");
  if (o.image_height < 32 || o.image_height > 8192)
    return err("image_height", "must be in [32, 8192]");
  if (o.min_glyph_px < 4) return err("min_glyph_px", "must be >= 4");
  if (o.max_glyph_px < o.min_glyph_px) return err("max_glyph_px", "must be >= task.min_glyph_px");
  if (4 * o.max_glyph_px > std::min(o.image_width, o.image_height)) {
    return err("max_glyph_px", "must be <= min(image_width, image_height) / 4, got " +
                                   std::to_string(o.max_glyph_px));
  }
  if (o.distractors < 0 || o.distractors > 16) return err("distractors", "must be in [0, 16]");
  if (!(o.mc_fraction >= 0 && o.mc_fraction <= 1)) return err("mc_fraction", "must be in [0, 1]");
  if (!(o.near_distractors >= 0 && o.near_distractors <= 1))
    return err("near_distractors", "must be in [0, 1]");
  if (!(o.same_shape_scenes >= 0 && o.same_shape_scenes <= 1))
    return err("same_shape_scenes", "must be in [0, 1]");
  if (o.train_questions < 0) return err("train_questions", "must be >= 0 (0 = unbounded)");
  if (o.split != "train" && o.split != "test")
    return err("split", "unknown split \"" + o.split + "\" (known: train, test)");
  if (auto f = parse_families(o.families); !f.ok()) return f.status();
  return Status::Ok();
}

Result<SyntheticTask> SyntheticTask::create(const TaskOptions& opts) {
  try {
    return SyntheticTask(opts);
  } catch (const std::invalid_argument& e) {
    return Status::Error(e.what());
  }
}

SyntheticTask::SyntheticTask(const TaskOptions& opts) : opts_(opts) {
  if (Status s = validate(opts); !s.ok()) throw std::invalid_argument(s.message());
  families_ = *parse_families(opts.families);
  if (Status s = resolve_rules(opts_, families_); !s.ok()) throw std::invalid_argument(s.message());
}

Sample SyntheticTask::get(uint64_t index) const {
  if (opts_.split == "train" && opts_.train_questions > 0)
    index %= static_cast<uint64_t>(opts_.train_questions);
  Rng rng(stream_seed(opts_.seed, opts_.split == "test" ? 1 : 0), index);
  const Family family = families_[rng.below(static_cast<int>(families_.size()))];
  const bool mc = rng.below(1 << 20) < static_cast<int>(opts_.mc_fraction * (1 << 20));
  return get_family(index, family, mc, opts_.split);
}

Sample SyntheticTask::get_family(uint64_t index, Family family, bool mc,
                                 const std::string& split) const {
  // The scene's own draws start from a sub-stream of the question index, so
  // the same index shows the same scene whichever family/variant asked.
  Rng rng(stream_seed(opts_.seed, split == "test" ? 1 : 0), index ^ 0x5CE9E5EEDULL);
  const bool spatial = family == Family::kSpatial;
  BuiltScene sc = build_scene(rng, opts_, detail_of(family), spatial);

  int target = 0;
  std::string problem;
  if (spatial) {
    // Every (anchor, relation) with a unique answer, then one at random.
    std::vector<std::pair<int, int>> options;
    for (int a = 0; a < static_cast<int>(sc.objects.size()); ++a) {
      for (int dir = 0; dir < 4; ++dir) {
        if (related_object(sc.objects, a, dir) >= 0) options.emplace_back(a, dir);
      }
    }
    if (options.empty()) {
      family = Family::kText;  // one object or no unique relation: ask about the subject itself
    } else {
      const auto [a, dir] = options[rng.below(static_cast<int>(options.size()))];
      target = related_object(sc.objects, a, dir);
      problem = fill(rng, kSpatialTemplates,
                     std::string(kRelations[dir]) + " the " + describe(sc.objects[a]));
    }
  }
  const Object& t = sc.objects[target];
  if (family == Family::kText) problem = fill(rng, kTextTemplates, describe(t));
  if (family == Family::kAttribute) problem = fill(rng, kAttributeTemplates, describe(t));
  if (family == Family::kCounting) problem = fill(rng, kCountingTemplates, describe(t));

  Sample out;
  out.problem_id = index;
  out.width = opts_.image_width;
  out.height = opts_.image_height;
  out.bboxs = {sc.detail_boxes[target]};
  out.dataset = dataset_name(opts_.dataset, family, mc);
  out.split = split;
  out.problem = problem;
  const std::string truth = detail_value(t);
  if (mc) {
    // Options: the truth, the scene's other details (the likely
    // confusions), then random values of the same kind.
    std::vector<std::string> confusions, pool;
    for (size_t i = 0; i < sc.objects.size(); ++i) {
      if (static_cast<int>(i) != target && sc.objects[i].detail == t.detail)
        confusions.push_back(detail_value(sc.objects[i]));
    }
    pool = detail_pool(t.detail);
    char letter = 'A';
    out.problem += mc_options(rng, truth, confusions, pool, &letter);
    out.solution = "<answer>" + std::string(1, letter) + "</answer>";
  } else {
    out.solution = truth;
  }
  out.image = std::move(sc.image);
  return out;
}

int related_object(const std::vector<cv::Point>& objs, int anchor, int dir) {
  int best = -1;
  double d1 = 1e18, d2 = 1e18;
  for (int i = 0; i < static_cast<int>(objs.size()); ++i) {
    if (i == anchor) continue;
    const double dx = objs[i].x - objs[anchor].x;
    const double dy = objs[i].y - objs[anchor].y;
    bool in = false;
    switch (dir) {
      case 0:
        in = -dx > std::abs(dy);
        break;  // left of
      case 1:
        in = dx > std::abs(dy);
        break;  // right of
      case 2:
        in = -dy > std::abs(dx);
        break;  // above
      case 3:
        in = dy > std::abs(dx);
        break;  // below
    }
    if (!in) continue;
    const double d = std::sqrt(dx * dx + dy * dy);
    if (d < d1) {
      d2 = d1;
      d1 = d;
      best = i;
    } else if (d < d2) {
      d2 = d;
    }
  }
  return (best >= 0 && d2 >= 1.25 * d1) ? best : -1;
}

std::string multiple_choice_suffix(DetailKind kind, const std::string& truth,
                                   const std::vector<std::string>& confusions, uint64_t seed,
                                   char* letter) {
  Rng rng(seed, 0x4D43);
  return mc_options(rng, truth, confusions, detail_pool(kind), letter);
}

std::vector<std::pair<std::string, std::string>> multiple_choice_options(const std::string& question) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t begin = 0; begin <= question.size();) {
    size_t end = question.find('\n', begin);
    if (end == std::string::npos) end = question.size();
    const std::string_view line(question.data() + begin, end - begin);
    if (line.size() >= 3 && line[0] >= 'A' && line[0] <= 'Z' && line[1] == '.' && line[2] == ' ')
      out.emplace_back(std::string(1, line[0]), std::string(line.substr(3)));
    begin = end + 1;
  }
  return out;
}

Scene SyntheticTask::scene(uint64_t index, Family family, uint64_t stream) const {
  Rng rng(stream_seed(opts_.seed, 1 + std::max<uint64_t>(1, stream)), index);
  BuiltScene sc = build_scene(rng, opts_, detail_of(family), family == Family::kSpatial);
  Scene out;
  for (size_t i = 0; i < sc.objects.size(); ++i) {
    const Object& o = sc.objects[i];
    SceneObject so;
    so.colour = std::string(kPalette[o.colour].name);
    so.shape = std::string(kShapeNames[static_cast<int>(o.shape)]);
    so.box = shape_box(o, opts_.image_width, opts_.image_height);
    so.detail = o.detail;
    so.value = detail_value(o);
    so.detail_box = sc.detail_boxes[i];
    so.centre = o.centre;
    out.objects.push_back(std::move(so));
  }
  out.image = std::move(sc.image);
  return out;
}

}  // namespace gr1
