// Pictures of runs: Figure-3-style training curves and trajectory galleries,
// drawn with OpenCV into PNG files. No LibTorch.
//
//   metrics.jsonl -> read_metrics_jsonl -> rows -> write_curves_png  -> curves.png
//   trajectories  -> GalleryItem (learner/run_pictures.h, gr1 eval) -> write_gallery_png
//
// PNG files are written whole or not at all: encoded in memory, written to
// "<path>.tmp" and renamed over <path>, so a person watching a run never opens
// half a file. All functions are pure apart from that file and are
// thread-safe.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/trajectory.h"

namespace gr1 {

// Reads <run-dir>/metrics.jsonl rows (bad lines are skipped and counted in
// *skipped when given). A bad line is one that is not a JSON object (e.g. the
// half-written last line of a running learner); blank lines are ignored and
// not counted. Error when the file cannot be opened.
Result<std::vector<nlohmann::json>> read_metrics_jsonl(const std::string& path,
                                                       int* skipped = nullptr);

// Four panels against "step", like the paper's Figure 3: format reward
// (format_reward_mean), accuracy reward (accuracy_reward_mean), mean policy
// tokens per trajectory (policy_tokens_mean) and box score (box_score_mean;
// null values are gaps). Errors when `rows` has no step or the file cannot
// be written.
//
// Each panel draws the raw series (thin, light) and its trailing moving
// average over kCurvesSmoothing(n) rows (thick); a missing, null or
// non-numeric value, or a non-finite one, is a gap in both. Rows without a
// numeric "step" are ignored; rows are drawn in step order.
//
// Geometry (fixed, so pixels can be mapped back to values):
//   canvas kCurvesWidth x kCurvesHeight; a kCurvesHeader-pixel title strip;
//   then 2 x 2 panels of kCurvesPanelW x kCurvesPanelH: panel 0 format (top
//   left), 1 accuracy (top right), 2 tokens (bottom left), 3 box score
//   (bottom right). Panel (r, c) has its top-left corner at
//   (c * kCurvesPanelW, kCurvesHeader + r * kCurvesPanelH) and its plot area
//   is curves_plot_rect(2 * r + c): offset (80, 40), size 490 x 310.
//   y range: format [0, 2], accuracy [0, 1], box score [0, 1], each widened
//   to "nice" tick multiples when data fall outside; tokens: the data range
//   padded by 8% and widened to nice tick multiples.
//   value v -> row    plot.y + round((y_max - v) / (y_max - y_min) * (plot.height - 1))
//   step  s -> column plot.x + round((s - s_min) / (s_max - s_min) * (plot.width - 1)),
//   the centre column when all steps are equal.
Status write_curves_png(const std::vector<nlohmann::json>& rows, const std::string& path);

constexpr int kCurvesWidth = 1200;
constexpr int kCurvesHeight = 830;
constexpr int kCurvesHeader = 30;
constexpr int kCurvesPanelW = 600;
constexpr int kCurvesPanelH = 400;
// Plot area of panel 0..3 (see write_curves_png).
cv::Rect curves_plot_rect(int panel);
// Colour (BGR) of the moving average in panel 0..3; the raw series is the
// same colour blended 60% towards white.
cv::Scalar curves_colour(int panel);
// Moving-average window for n drawn rows: clamp(n / 10, 1, 50).
int curves_smoothing(int n);

// One trajectory to draw.
struct GalleryItem {
  cv::Mat image;      // the ORIGINAL image, BGR uint8
  std::string title;  // e.g. "#17 synth_text"
  std::string question;
  std::vector<std::string> turns;              // each assistant turn's text
  std::vector<std::optional<Box>> boxes_orig;  // per turn: crop region in ORIGINAL pixels, if any
  std::vector<Box> evidence;                   // ground-truth evidence (drawn in its own colour)
  std::string answer;                          // extracted answer, "" when none
  std::string truth;                           // the solution's answer text
  double accuracy = 0;                         // the accuracy reward
};

// One row per item: the image with every box (numbered by turn) and the
// evidence drawn, each box's crop, each turn's text (wrapped), and the
// answer with the truth and the accuracy reward (green when 1, red when 0,
// amber between). Errors when `items` is empty, an image is empty or the
// file cannot be written.
//
// Geometry: a kGalleryHeader-pixel legend strip, then one row per item, each
// at least kGalleryImageSide + 2 * kGalleryPad high. The first item's image is
// scaled by s = kGalleryImageSide / max(width, height) (nearest neighbour
// when enlarging, so pixels stay pixels) and drawn with its top-left corner
// at (kGalleryPad, kGalleryHeader + kGalleryPad); an ORIGINAL-pixel point
// (x, y) lands on (kGalleryPad + round(x * s), kGalleryHeader + kGalleryPad +
// round(y * s)). Turn k's box (k = 0, 1, ...) is a 2-pixel rectangle in
// gallery_turn_colour(k) on a 4-pixel black outline, with corners exactly
// there; evidence boxes are dashed in kGalleryEvidence and black, 2 pixels
// outside the scaled box so the dashes never cover the evidence. Each box's
// crop (crop_and_resize of the original) is shown at most
// kGalleryCropSide pixels on its longer side. Turn texts are wrapped to
// the text column and capped at kGalleryMaxLinesPerTurn lines (the last one
// says how many were cut). Text is drawn in ASCII: see ascii_for_drawing.
// Images may be 8-bit grey, BGR or BGRA; other types are errors.
Status write_gallery_png(const std::vector<GalleryItem>& items, const std::string& path);

constexpr int kGalleryHeader = 40;
constexpr int kGalleryPad = 12;
constexpr int kGalleryImageSide = 320;
constexpr int kGalleryCropSide = 150;
constexpr int kGalleryTextWidth = 620;
constexpr int kGalleryMaxLinesPerTurn = 6;
inline const cv::Scalar kGalleryEvidence(0, 230, 255);  // yellow (BGR)
// Distinct, saturated colours for turn k's box (cycles after 6).
cv::Scalar gallery_turn_colour(int turn);

// Text as the Hershey fonts can draw it: printable ASCII and '\n' are kept,
// a tab becomes a space, '\r' is dropped, each UTF-8 sequence (or other
// byte) becomes one '?'.
std::string ascii_for_drawing(std::string_view text);

// Greedy word wrap of ascii_for_drawing(text) for cv::FONT_HERSHEY_SIMPLEX at
// `font_scale` / `thickness`: every returned line measures at most
// max_width_px (cv::getTextSize); '\n' forces a break; a word wider than the
// line is split between characters. Empty text gives no lines.
std::vector<std::string> wrap_for_drawing(std::string_view text, int max_width_px,
                                          double font_scale, int thickness);

}  // namespace gr1
