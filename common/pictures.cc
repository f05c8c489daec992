#include "common/pictures.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/crop.h"

namespace gr1 {
namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
const cv::Scalar kBlack(0, 0, 0);
const cv::Scalar kWhite(255, 255, 255);
const cv::Scalar kInk(40, 40, 40);       // body text
const cv::Scalar kMuted(110, 110, 110);  // secondary text, tick labels
const cv::Scalar kGrid(232, 232, 232);
const cv::Scalar kFrame(170, 170, 170);

// ---- shared helpers ----------------------------------------------------------

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void put_text(cv::Mat& img, const std::string& text, cv::Point org, double scale,
              const cv::Scalar& colour, int thickness = 1) {
  cv::putText(img, text, org, kFont, scale, colour, thickness, cv::LINE_AA);
}

int text_width(const std::string& text, double scale, int thickness) {
  int baseline = 0;
  return cv::getTextSize(text, kFont, scale, thickness, &baseline).width;
}

cv::Scalar blend(const cv::Scalar& c, const cv::Scalar& towards, double t) {
  return c * (1.0 - t) + towards * t;
}

// Encodes in memory, writes "<path>.tmp" and renames it over `path`: a reader
// sees the old file or the new one, never a torn one.
Status write_png_atomically(const cv::Mat& img, const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<uchar> buf;
  try {
    if (!cv::imencode(".png", img, buf, {cv::IMWRITE_PNG_COMPRESSION, 6}))
      return Status::Error("cannot encode a PNG for '" + path + "'");
  } catch (const cv::Exception& e) {
    return Status::Error("cannot encode a PNG for '" + path + "': " + e.what());
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out)
      return Status::Error("cannot open '" + tmp + "' for writing: " + std::strerror(errno));
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
    out.close();
    if (!out) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      return Status::Error("cannot write '" + tmp + "' (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    return Status::Error("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  }
  return Status::Ok();
}

// 1, 2 or 5 times a power of ten, giving about `target` intervals over `range`.
double nice_step(double range, int target) {
  if (!(range > 0)) return 1.0;
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

// Tick label with as many decimals as the tick step needs.
std::string tick_label(double v, double step) {
  const int decimals =
      step >= 1 ? 0 : std::min(6, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, std::abs(v) < step * 1e-6 ? 0.0 : v);
  return buf;
}

// ---- curves -------------------------------------------------------------------

struct PanelSpec {
  const char* title;
  const char* field;
  bool fixed;
  double lo, hi;  // natural range when fixed
};
const PanelSpec kPanels[4] = {
    {"format reward", "format_reward_mean", true, 0.0, 2.0},
    {"accuracy reward", "accuracy_reward_mean", true, 0.0, 1.0},
    {"policy tokens per trajectory", "policy_tokens_mean", false, 0.0, 0.0},
    {"box score (GIoU+1)/2", "box_score_mean", true, 0.0, 1.0},
};

struct Axis {
  double lo = 0, hi = 1, step = 0.2;
};

Axis y_axis(const PanelSpec& p, const std::vector<std::optional<double>>& v) {
  double dmin = INFINITY, dmax = -INFINITY;
  for (const auto& x : v)
    if (x) dmin = std::min(dmin, *x), dmax = std::max(dmax, *x);
  const bool any = dmin <= dmax;
  Axis a;
  if (p.fixed) {
    a.lo = p.lo;
    a.hi = p.hi;
    a.step = nice_step(a.hi - a.lo, 5);
    // Data outside the natural range (should not happen) widen the axis
    // rather than being clipped, so a bug shows up as a visible outlier.
    if (any && dmin < a.lo) a.lo = std::floor(dmin / a.step) * a.step;
    if (any && dmax > a.hi) a.hi = std::ceil(dmax / a.step) * a.step;
    return a;
  }
  if (!any) return a;  // [0, 1]; the panel says "no data"
  double lo = dmin, hi = dmax;
  const double pad = hi - lo > 1e-9 ? 0.08 * (hi - lo) : std::max(1.0, 0.1 * std::abs(lo));
  lo -= pad;
  hi += pad;
  if (dmin >= 0) lo = std::max(0.0, lo);  // counts never go below zero
  a.step = nice_step(hi - lo, 5);
  a.lo = std::floor(lo / a.step + 1e-9) * a.step;
  a.hi = std::ceil(hi / a.step - 1e-9) * a.step;
  if (a.hi <= a.lo) a.hi = a.lo + a.step;
  return a;
}

std::optional<double> number_field(const nlohmann::json& row, const char* field) {
  auto it = row.find(field);
  if (it == row.end() || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

// Trailing mean over the last `w` rows, counting only the rows with a value;
// none where the row itself has no value (a gap stays a gap).
std::vector<std::optional<double>> moving_average(const std::vector<std::optional<double>>& v,
                                                  int w) {
  std::vector<std::optional<double>> out(v.size());
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i]) sum += *v[i], ++n;
    if (i >= static_cast<size_t>(w) && v[i - w]) sum -= *v[i - w], --n;
    if (v[i] && n > 0) out[i] = sum / n;
  }
  return out;
}

// Connects consecutive present values; a value with no present neighbour is
// a dot, so an isolated point between gaps is still visible.
void draw_series(cv::Mat& img, const std::vector<cv::Point>& pts,
                 const std::vector<std::optional<double>>& v, const cv::Scalar& colour,
                 int thickness) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i]) continue;
    const bool prev = i > 0 && v[i - 1];
    const bool next = i + 1 < v.size() && v[i + 1];
    if (next) cv::line(img, pts[i], pts[i + 1], colour, thickness, cv::LINE_AA);
    if (!prev && !next) cv::circle(img, pts[i], thickness + 1, colour, cv::FILLED, cv::LINE_AA);
  }
}

void draw_panel(cv::Mat& img, int panel, const PanelSpec& p, const std::vector<double>& steps,
                const std::vector<std::optional<double>>& raw, int window) {
  const cv::Rect r = curves_plot_rect(panel);
  const cv::Point corner(r.x - 80, r.y - 40);
  const Axis ya = y_axis(p, raw);
  const double smin = steps.front(), smax = steps.back();
  auto row_of = [&](double v) {
    return r.y + static_cast<int>(std::lround((ya.hi - v) / (ya.hi - ya.lo) * (r.height - 1)));
  };
  auto col_of = [&](double s) {
    if (smax <= smin) return r.x + (r.width - 1) / 2;
    return r.x + static_cast<int>(std::lround((s - smin) / (smax - smin) * (r.width - 1)));
  };

  // Grid and y tick labels.
  for (int k = 0;; ++k) {
    const double v = ya.lo + k * ya.step;
    if (v > ya.hi + ya.step * 1e-6) break;
    const int y = row_of(v);
    cv::line(img, {r.x, y}, {r.x + r.width - 1, y}, kGrid, 1);
    const std::string s = tick_label(v, ya.step);
    put_text(img, s, {r.x - 8 - text_width(s, 0.42, 1), y + 5}, 0.42, kMuted);
  }
  // x ticks on whole steps.
  const double xstep = std::max(1.0, nice_step(smax - smin, 6));
  for (double s = std::ceil(smin / xstep) * xstep; s <= smax + 1e-9; s += xstep) {
    const int x = col_of(s);
    cv::line(img, {x, r.y}, {x, r.y + r.height - 1}, kGrid, 1);
    cv::line(img, {x, r.y + r.height}, {x, r.y + r.height + 4}, kFrame, 1);
    const std::string t = tick_label(s, 1.0);
    put_text(img, t, {x - text_width(t, 0.42, 1) / 2, r.y + r.height + 20}, 0.42, kMuted);
  }
  if (smax <= smin) {  // one step: label the centre column
    const std::string t = tick_label(smin, 1.0);
    put_text(img, t, {col_of(smin) - text_width(t, 0.42, 1) / 2, r.y + r.height + 20}, 0.42,
             kMuted);
  }
  cv::rectangle(img, {r.x - 1, r.y - 1}, {r.x + r.width, r.y + r.height}, kFrame, 1);
  put_text(img, "step", {r.x + r.width / 2 - 15, r.y + r.height + 42}, 0.45, kMuted);

  // Title, last value and smoothing.
  put_text(img, p.title, {corner.x + 20, corner.y + 26}, 0.62, kInk, 2);
  std::optional<double> last;
  for (auto it = raw.rbegin(); it != raw.rend() && !last; ++it) last = *it;
  const double mag = last ? std::abs(*last) : 0;
  std::string info = last ? "last " + fmt(mag >= 100  ? "%.0f"
                                          : mag >= 10 ? "%.1f"
                                                      : "%.3f",
                                          *last)
                          : "no data";
  info += "   avg " + std::to_string(window);
  put_text(img, info, {r.x + r.width - text_width(info, 0.42, 1), corner.y + 26}, 0.42, kMuted);

  std::vector<cv::Point> pts(steps.size());
  bool any = false;
  for (size_t i = 0; i < steps.size(); ++i) {
    pts[i] = {col_of(steps[i]), raw[i] ? row_of(*raw[i]) : 0};
    any = any || raw[i].has_value();
  }
  if (!any) {
    put_text(img, "no values (null or missing)", {r.x + r.width / 2 - 110, r.y + r.height / 2},
             0.55, kMuted);
    return;
  }
  const cv::Scalar colour = curves_colour(panel);
  draw_series(img, pts, raw, blend(colour, kWhite, 0.6), 1);
  const auto avg = moving_average(raw, window);
  std::vector<cv::Point> apts(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) apts[i] = {pts[i].x, avg[i] ? row_of(*avg[i]) : 0};
  draw_series(img, apts, avg, colour, 3);
}

// ---- gallery --------------------------------------------------------------------

// One line of the text column.
struct TextLine {
  std::string text;
  cv::Scalar colour;
  double scale = 0.48;
  int thickness = 1;
  int indent = 0;
  int height = 19;  // advance to the next line
  int badge = -1;   // turn index: draw a numbered square in its colour
};

constexpr double kBody = 0.48;
constexpr int kBadge = 17;  // badge side; turn text is indented past it
constexpr int kTurnIndent = kBadge + 8;
constexpr int kCropCellW = kGalleryCropSide + 12;
constexpr int kCropLabelH = 20;
constexpr int kCropCellH = kCropLabelH + kGalleryCropSide + 12;
constexpr int kCropCols = 2;
constexpr int kImageCaptionH = 22;
constexpr int kCropX = kGalleryPad + kGalleryImageSide + 2 * kGalleryPad;
constexpr int kTextX = kCropX + kCropCols * kCropCellW + kGalleryPad;
constexpr int kGalleryWidth = kTextX + kGalleryTextWidth + kGalleryPad;

cv::Scalar accuracy_colour(double acc) {
  if (acc >= 1.0 - 1e-9) return cv::Scalar(40, 150, 30);  // green
  if (acc <= 1e-9) return cv::Scalar(40, 40, 210);        // red
  return cv::Scalar(0, 150, 235);                         // amber
}

std::string box_str(const Box& b) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "[%.0f,%.0f,%.0f,%.0f]", b.x1, b.y1, b.x2, b.y2);
  return buf;
}

// Adds the wrapped lines of `text`, at most `cap` of them; when lines were
// cut the last kept line says how many.
void add_wrapped(std::vector<TextLine>& out, const std::string& text, const cv::Scalar& colour,
                 int indent, int cap, int badge = -1) {
  auto lines = wrap_for_drawing(text, kGalleryTextWidth - indent, kBody, 1);
  if (lines.empty()) lines.push_back("(empty)");
  const int total = static_cast<int>(lines.size());
  if (total > cap) {
    lines.resize(cap);
    lines.back() = "... (" + std::to_string(total - cap + 1) + " more lines not shown)";
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    TextLine l;
    l.text = lines[i];
    l.colour = (total > cap && i + 1 == lines.size()) ? kMuted : colour;
    l.indent = indent;
    l.badge = i == 0 ? badge : -1;
    out.push_back(std::move(l));
  }
}

std::vector<TextLine> layout_text(const GalleryItem& it) {
  std::vector<TextLine> out;
  auto title = wrap_for_drawing(it.title, kGalleryTextWidth, 0.62, 2);
  if (title.size() > 2) title.resize(2), title.back() += " ...";
  for (const auto& line : title) {
    TextLine t;
    t.text = line;
    t.colour = kBlack;
    t.scale = 0.62;
    t.thickness = 2;
    t.height = 26;
    out.push_back(t);
  }
  add_wrapped(out, "Q: " + it.question, kInk, 0, 6);  // room for A-D options
  out.back().height += 6;
  for (size_t k = 0; k < it.turns.size(); ++k) {
    add_wrapped(out, it.turns[k], kInk, kTurnIndent, kGalleryMaxLinesPerTurn, static_cast<int>(k));
    out.back().height += 5;
  }
  if (it.turns.empty()) add_wrapped(out, "(no turns)", kMuted, 0, 1);
  out.back().height += 3;
  const cv::Scalar c = accuracy_colour(it.accuracy);
  const char* verdict = it.accuracy >= 1.0 - 1e-9 ? "right"
                        : it.accuracy <= 1e-9     ? "wrong"
                                                  : "partly right";
  const std::string answer = it.answer.empty() ? "(none)" : it.answer;
  add_wrapped(out, "answer: " + answer, c, 0, 2);
  out.back().thickness = 2;
  add_wrapped(out, "truth: " + it.truth, kInk, 0, 2);
  TextLine v;
  v.text = "accuracy " + fmt("%.2f", it.accuracy) + "  (" + verdict + ")";
  v.colour = c;
  v.thickness = 2;
  out.push_back(v);
  return out;
}

int text_height(const std::vector<TextLine>& lines) {
  int h = 0;
  for (const auto& l : lines) h += l.height;
  return h;
}

void draw_badge(cv::Mat& img, cv::Point top_left, int turn) {
  const cv::Rect r(top_left.x, top_left.y, kBadge, kBadge);
  cv::rectangle(img, r, gallery_turn_colour(turn), cv::FILLED);
  cv::rectangle(img, r, kBlack, 1);
  const std::string n = std::to_string(turn + 1);
  put_text(img, n, {r.x + (kBadge - text_width(n, 0.45, 1)) / 2, r.y + kBadge - 4}, 0.45, kBlack);
}

void draw_dashed_rect(cv::Mat& img, cv::Point a, cv::Point b) {
  const cv::Point corners[5] = {a, {b.x, a.y}, b, {a.x, b.y}, a};
  constexpr int kDash = 7;
  for (int e = 0; e < 4; ++e) {
    const cv::Point p = corners[e], q = corners[e + 1];
    const double len = std::hypot(q.x - p.x, q.y - p.y);
    const int n = std::max(1, static_cast<int>(std::ceil(len / kDash)));
    for (int i = 0; i < n; ++i) {
      const double t0 = double(i) / n, t1 = double(i + 1) / n;
      const cv::Point s(static_cast<int>(std::lround(p.x + (q.x - p.x) * t0)),
                        static_cast<int>(std::lround(p.y + (q.y - p.y) * t0)));
      const cv::Point f(static_cast<int>(std::lround(p.x + (q.x - p.x) * t1)),
                        static_cast<int>(std::lround(p.y + (q.y - p.y) * t1)));
      cv::line(img, s, f, i % 2 ? kBlack : kGalleryEvidence, 2);
    }
  }
}

Box clamp_box(const Box& b, int w, int h) {
  auto c = [](float v, int hi) { return std::min<float>(std::max<float>(v, 0.f), float(hi)); };
  return Box{c(b.x1, w), c(b.y1, h), c(b.x2, w), c(b.y2, h)};
}

Result<cv::Mat> to_bgr(const cv::Mat& img, size_t index) {
  const std::string who = "gallery item " + std::to_string(index);
  if (img.empty()) return Result<cv::Mat>::Error(who + ": the image is empty");
  if (img.depth() != CV_8U)
    return Result<cv::Mat>::Error(who + ": the image is not 8-bit (OpenCV depth " +
                                  std::to_string(img.depth()) + ")");
  cv::Mat bgr;
  switch (img.channels()) {
    case 1:
      cv::cvtColor(img, bgr, cv::COLOR_GRAY2BGR);
      break;
    case 3:
      bgr = img;
      break;
    case 4:
      cv::cvtColor(img, bgr, cv::COLOR_BGRA2BGR);
      break;
    default:
      return Result<cv::Mat>::Error(who + ": the image has " + std::to_string(img.channels()) +
                                    " channels (1, 3 or 4 expected)");
  }
  return bgr;
}

// Draws one item's row with its top at y0 on `canvas` (already tall enough).
void draw_item(cv::Mat& canvas, const GalleryItem& it, const cv::Mat& bgr, int y0,
               const std::vector<TextLine>& lines) {
  // ---- the image with its boxes ----
  const double s = double(kGalleryImageSide) / std::max(bgr.cols, bgr.rows);
  const int sw = std::max(1, static_cast<int>(std::lround(bgr.cols * s)));
  const int sh = std::max(1, static_cast<int>(std::lround(bgr.rows * s)));
  cv::Mat view = canvas(cv::Rect(kGalleryPad, y0 + kGalleryPad, sw, sh));
  cv::resize(bgr, view, view.size(), 0, 0, s >= 1 ? cv::INTER_NEAREST : cv::INTER_AREA);
  auto at = [&](float x, float y) {
    return cv::Point(static_cast<int>(std::lround(x * s)), static_cast<int>(std::lround(y * s)));
  };
  // Drawing into `view` clips every mark to the image.
  for (const auto& e : it.evidence) {
    const Box b = clamp_box(e, bgr.cols, bgr.rows);
    // 2 pixels outside the box: the dashes must not hide the evidence itself.
    draw_dashed_rect(view, at(b.x1, b.y1) - cv::Point(2, 2), at(b.x2, b.y2) + cv::Point(2, 2));
  }
  std::vector<cv::Rect> badges;
  for (size_t k = 0; k < it.boxes_orig.size(); ++k) {
    if (!it.boxes_orig[k]) continue;
    const Box b = clamp_box(*it.boxes_orig[k], bgr.cols, bgr.rows);
    cv::rectangle(view, at(b.x1, b.y1), at(b.x2, b.y2), kBlack, 4);
    cv::rectangle(view, at(b.x1, b.y1), at(b.x2, b.y2), gallery_turn_colour(int(k)), 2);
  }
  // Numbers go on top of all boxes, inside each box's top-left corner, moved
  // right past any number already placed there.
  for (size_t k = 0; k < it.boxes_orig.size(); ++k) {
    if (!it.boxes_orig[k]) continue;
    const Box b = clamp_box(*it.boxes_orig[k], bgr.cols, bgr.rows);
    cv::Point p = at(b.x1, b.y1) + cv::Point(3, 3);
    p.x = std::min(p.x, sw - kBadge);
    p.y = std::min(p.y, sh - kBadge);
    cv::Rect r(p.x, p.y, kBadge, kBadge);
    for (bool moved = true; moved;) {
      moved = false;
      for (const auto& o : badges)
        if ((r & o).area() > 0 && r.x + 2 * kBadge + 2 <= sw) r.x = o.x + kBadge + 2, moved = true;
    }
    badges.push_back(r);
    draw_badge(view, r.tl(), static_cast<int>(k));
  }
  put_text(
      canvas,
      std::to_string(bgr.cols) + " x " + std::to_string(bgr.rows) + " px, shown x" + fmt("%.3g", s),
      {kGalleryPad, y0 + kGalleryPad + sh + 16}, 0.42, kMuted);

  // ---- crops ----
  int n = 0;
  for (size_t k = 0; k < it.boxes_orig.size(); ++k) {
    if (!it.boxes_orig[k]) continue;
    const Box& b = *it.boxes_orig[k];
    const int cx = kCropX + (n % kCropCols) * kCropCellW;
    const int cy = y0 + kGalleryPad + (n / kCropCols) * kCropCellH;
    ++n;
    draw_badge(canvas, {cx, cy}, static_cast<int>(k));
    put_text(canvas, box_str(b), {cx + kBadge + 5, cy + 14}, 0.4, kInk);
    const double cs = double(kGalleryCropSide) / std::max(1.f, std::max(b.width(), b.height()));
    const int ow = std::clamp(static_cast<int>(std::lround(b.width() * cs)), 1, kGalleryCropSide);
    const int oh = std::clamp(static_cast<int>(std::lround(b.height() * cs)), 1, kGalleryCropSide);
    const cv::Mat crop = crop_and_resize(bgr, b, ow, oh);
    const cv::Rect dst(cx, cy + kCropLabelH, ow, oh);
    if (crop.empty()) {
      put_text(canvas, "(empty crop)", {cx, cy + kCropLabelH + 20}, 0.42, kMuted);
      continue;
    }
    crop.copyTo(canvas(dst));
    cv::rectangle(canvas, {dst.x - 2, dst.y - 2}, {dst.x + dst.width + 1, dst.y + dst.height + 1},
                  gallery_turn_colour(static_cast<int>(k)), 2);
  }
  if (n == 0) put_text(canvas, "(no boxes)", {kCropX, y0 + kGalleryPad + 16}, 0.45, kMuted);

  // ---- text ----
  int y = y0 + kGalleryPad;
  for (const auto& l : lines) {
    if (l.badge >= 0) draw_badge(canvas, {kTextX, y}, l.badge);
    put_text(canvas, l.text, {kTextX + l.indent, y + 14}, l.scale, l.colour, l.thickness);
    y += l.height;
  }
}

int crop_rows(const GalleryItem& it) {
  int n = 0;
  for (const auto& b : it.boxes_orig) n += b.has_value();
  return (n + kCropCols - 1) / kCropCols;
}

void draw_gallery_legend(cv::Mat& canvas) {
  int x = kGalleryPad;
  const int y = 26;
  put_text(canvas, "Ground-R1 trajectories.", {x, y}, 0.55, kBlack, 2);
  x += text_width("Ground-R1 trajectories.", 0.55, 2) + 14;
  put_text(canvas, "Boxes by turn:", {x, y}, 0.48, kInk);
  x += text_width("Boxes by turn:", 0.48, 1) + 8;
  for (int k = 0; k < 5; ++k) {
    draw_badge(canvas, {x, y - 13}, k);
    x += kBadge + 5;
  }
  x += 10;
  draw_dashed_rect(canvas, {x, y - 13}, {x + 30, y + 2});
  x += 38;
  put_text(
      canvas,
      "evidence.  Crops are cut from the original.  Answer: green right, amber partly, red wrong.",
      {x, y}, 0.48, kInk);
}

}  // namespace

// ---- public: metrics ------------------------------------------------------------

Result<std::vector<nlohmann::json>> read_metrics_jsonl(const std::string& path, int* skipped) {
  std::ifstream in(path);
  if (!in)
    return Result<std::vector<nlohmann::json>>::Error("cannot open metrics file '" + path +
                                                      "': " + std::strerror(errno));
  std::vector<nlohmann::json> rows;
  int bad = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      ++bad;
      continue;
    }
    rows.push_back(std::move(j));
  }
  if (skipped) *skipped = bad;
  return rows;
}

// ---- public: curves ---------------------------------------------------------------

cv::Rect curves_plot_rect(int panel) {
  const int r = panel / 2, c = panel % 2;
  return cv::Rect(c * kCurvesPanelW + 80, kCurvesHeader + r * kCurvesPanelH + 40, 490, 310);
}

cv::Scalar curves_colour(int panel) {
  static const cv::Scalar kColours[4] = {
      cv::Scalar(180, 100, 20),  // blue: format
      cv::Scalar(40, 150, 30),   // green: accuracy
      cv::Scalar(20, 120, 230),  // orange: tokens
      cv::Scalar(150, 40, 140),  // purple: box score
  };
  return kColours[((panel % 4) + 4) % 4];
}

int curves_smoothing(int n) { return std::clamp(n / 10, 1, 50); }

Status write_curves_png(const std::vector<nlohmann::json>& rows, const std::string& path) {
  // (step, row index) in step order; stable for repeated steps.
  std::vector<std::pair<double, size_t>> order;
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i].is_object())
      if (auto s = number_field(rows[i], "step")) order.emplace_back(*s, i);
  if (order.empty())
    return Status::Error("no curves for '" + path + "': none of the " +
                         std::to_string(rows.size()) + " metrics rows has a numeric \"step\"");
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<double> steps;
  for (const auto& o : order) steps.push_back(o.first);
  const int n = static_cast<int>(steps.size());
  const int window = curves_smoothing(n);

  cv::Mat img(kCurvesHeight, kCurvesWidth, CV_8UC3, kWhite);
  try {
    const std::string head =
        "Ground-R1 training: " + std::to_string(n) + " steps (" + tick_label(steps.front(), 1) +
        " to " + tick_label(steps.back(), 1) + ").  Thin: each step.  " +
        (window == 1 ? std::string("Thick: each step (too few steps to smooth).")
                     : "Thick: mean of the last " + std::to_string(window) + " steps.");
    put_text(img, head, {20, 21}, 0.5, kInk);
    for (int p = 0; p < 4; ++p) {
      std::vector<std::optional<double>> v;
      v.reserve(order.size());
      for (const auto& o : order) v.push_back(number_field(rows[o.second], kPanels[p].field));
      draw_panel(img, p, kPanels[p], steps, v, window);
    }
  } catch (const cv::Exception& e) {
    return Status::Error("cannot draw curves for '" + path + "': " + e.what());
  }
  return write_png_atomically(img, path);
}

// ---- public: gallery -----------------------------------------------------------------

cv::Scalar gallery_turn_colour(int turn) {
  static const cv::Scalar kColours[6] = {
      cv::Scalar(255, 0, 255),  // magenta
      cv::Scalar(0, 255, 0),    // lime
      cv::Scalar(255, 160, 0),  // azure
      cv::Scalar(0, 0, 255),    // red
      cv::Scalar(255, 255, 0),  // cyan
      cv::Scalar(0, 128, 255),  // orange
  };
  return kColours[((turn % 6) + 6) % 6];
}

std::string ascii_for_drawing(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n' || (c >= 32 && c < 127)) {
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out.push_back(' ');
    } else if (c == '\r') {
      continue;
    } else {
      out.push_back('?');
      if (c >= 0xC0)  // UTF-8 lead byte: swallow its continuation bytes
        while (i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80) ++i;
    }
  }
  return out;
}

std::vector<std::string> wrap_for_drawing(std::string_view text, int max_width_px,
                                          double font_scale, int thickness) {
  const std::string clean = ascii_for_drawing(text);
  std::vector<std::string> out;
  if (clean.empty()) return out;
  auto width = [&](const std::string& s) { return text_width(s, font_scale, thickness); };
  size_t start = 0;
  while (start <= clean.size()) {
    const size_t nl = clean.find('\n', start);
    const std::string para =
        clean.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    // Greedy fill, word by word; spaces between words are kept as written.
    std::string line;
    size_t i = 0;
    while (i < para.size()) {
      size_t j = para.find(' ', i);
      if (j == std::string::npos) j = para.size();
      std::string word = para.substr(i, j - i);
      const std::string sep = line.empty() ? "" : " ";
      if (width(line + sep + word) <= max_width_px) {
        line += sep + word;
      } else {
        if (!line.empty()) out.push_back(line), line.clear();
        // A word wider than the line: split between characters.
        while (width(word) > max_width_px && word.size() > 1) {
          size_t k = 1;
          while (k < word.size() && width(word.substr(0, k + 1)) <= max_width_px) ++k;
          out.push_back(word.substr(0, k));
          word.erase(0, k);
        }
        line = word;
      }
      i = j + 1;
    }
    out.push_back(line);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

Status write_gallery_png(const std::vector<GalleryItem>& items, const std::string& path) {
  if (items.empty()) return Status::Error("no gallery for '" + path + "': no items given");
  std::vector<cv::Mat> images;
  std::vector<std::vector<TextLine>> texts;
  std::vector<int> heights;
  int total = kGalleryHeader;
  for (size_t i = 0; i < items.size(); ++i) {
    auto bgr = to_bgr(items[i].image, i);
    if (!bgr.ok())
      return Status::Error("no gallery for '" + path + "': " + bgr.error() + " (\"" +
                           items[i].title + "\")");
    images.push_back(*bgr);
    texts.push_back(layout_text(items[i]));
    const int h = std::max({kGalleryImageSide + kImageCaptionH, crop_rows(items[i]) * kCropCellH,
                            text_height(texts.back())}) +
                  2 * kGalleryPad;
    heights.push_back(h);
    total += h;
  }
  cv::Mat canvas(total, kGalleryWidth, CV_8UC3, kWhite);
  try {
    draw_gallery_legend(canvas);
    int y = kGalleryHeader;
    for (size_t i = 0; i < items.size(); ++i) {
      cv::line(canvas, {0, y}, {kGalleryWidth - 1, y}, kFrame, 1);
      draw_item(canvas, items[i], images[i], y, texts[i]);
      y += heights[i];
    }
  } catch (const cv::Exception& e) {
    return Status::Error("cannot draw the gallery for '" + path + "': " + e.what());
  }
  return write_png_atomically(canvas, path);
}

}  // namespace gr1
