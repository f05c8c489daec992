#include "common/crop.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <opencv2/imgproc.hpp>

namespace gr1 {
namespace {

std::string box_str(const Box& b) {
  std::ostringstream os;
  os << "[" << b.x1 << "," << b.y1 << "," << b.x2 << "," << b.y2 << "]";
  return os.str();
}

// Widens [lo, hi] to at least min_side inside [0, extent], about its centre.
void widen(double& lo, double& hi, double min_side, double extent) {
  if (hi - lo >= min_side) return;
  if (extent <= min_side) {
    lo = 0;
    hi = extent;
    return;
  }
  const double c = 0.5 * (lo + hi);
  lo = c - 0.5 * min_side;
  hi = c + 0.5 * min_side;
  if (lo < 0) {
    hi -= lo;
    lo = 0;
  }
  if (hi > extent) {
    lo -= hi - extent;
    hi = extent;
  }
}

cv::Mat resize_to(const cv::Mat& src, int out_w, int out_h) {
  const bool shrinking = src.cols >= out_w && src.rows >= out_h;
  cv::Mat out;
  cv::resize(src, out, cv::Size(out_w, out_h), 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

}  // namespace

Result<Box> shown_box_to_crop(const Box& shown, int shown_w, int shown_h, int W, int H,
                              int min_side, double max_aspect) {
  if (shown_w <= 0 || shown_h <= 0 || W <= 0 || H <= 0) {
    std::ostringstream os;
    os << "crop: frame sizes must be positive, got shown " << shown_w << "x" << shown_h
       << ", original " << W << "x" << H;
    return Result<Box>::Error(os.str());
  }
  if (min_side < 0 || !(max_aspect > 1.0)) {
    std::ostringstream os;
    os << "crop: need min_side >= 0 and max_aspect > 1, got " << min_side << ", " << max_aspect;
    return Result<Box>::Error(os.str());
  }
  if (!std::isfinite(shown.x1) || !std::isfinite(shown.y1) || !std::isfinite(shown.x2) ||
      !std::isfinite(shown.y2)) {
    return Result<Box>::Error("crop: non-finite box " + box_str(shown));
  }
  // Double precision throughout; the result is stored as float.
  const double sx = static_cast<double>(W) / shown_w;
  const double sy = static_cast<double>(H) / shown_h;
  double x1 = std::clamp(shown.x1 * sx, 0.0, static_cast<double>(W));
  double x2 = std::clamp(shown.x2 * sx, 0.0, static_cast<double>(W));
  double y1 = std::clamp(shown.y1 * sy, 0.0, static_cast<double>(H));
  double y2 = std::clamp(shown.y2 * sy, 0.0, static_cast<double>(H));
  if (!(x2 > x1) || !(y2 > y1)) {
    Box c{static_cast<float>(x1), static_cast<float>(y1), static_cast<float>(x2),
          static_cast<float>(y2)};
    return Result<Box>::Error("crop: degenerate box " + box_str(shown) +
                              " (shown frame), clamped to " + box_str(c) +
                              " (original): needs x2 > x1 and y2 > y1");
  }
  widen(x1, x2, min_side, W);
  widen(y1, y2, min_side, H);
  const double w = x2 - x1, h = y2 - y1;
  const double aspect = std::max(w, h) / std::min(w, h);
  if (aspect >= max_aspect) {
    std::ostringstream os;
    os << "crop: aspect ratio " << aspect << " >= " << max_aspect << " for box " << box_str(shown)
       << " (shown frame), " << w << "x" << h << " original pixels";
    return Result<Box>::Error(os.str());
  }
  return Box{static_cast<float>(x1), static_cast<float>(y1), static_cast<float>(x2),
             static_cast<float>(y2)};
}

cv::Mat crop_and_resize(const cv::Mat& original, const Box& orig_box, int out_w, int out_h) {
  if (original.empty() || out_w <= 0 || out_h <= 0) return {};
  if (!std::isfinite(orig_box.x1) || !std::isfinite(orig_box.y1) || !std::isfinite(orig_box.x2) ||
      !std::isfinite(orig_box.y2)) {
    return {};
  }
  const int x1 = std::clamp(static_cast<int>(std::floor(orig_box.x1)), 0, original.cols);
  const int y1 = std::clamp(static_cast<int>(std::floor(orig_box.y1)), 0, original.rows);
  const int x2 = std::clamp(static_cast<int>(std::ceil(orig_box.x2)), 0, original.cols);
  const int y2 = std::clamp(static_cast<int>(std::ceil(orig_box.y2)), 0, original.rows);
  if (x2 <= x1 || y2 <= y1) return {};
  return resize_to(original(cv::Rect(x1, y1, x2 - x1, y2 - y1)), out_w, out_h);
}

cv::Mat resize_for_policy(const cv::Mat& img, int side) {
  if (img.empty() || side <= 0) return {};
  return resize_to(img, side, side);
}

Result<std::vector<float>> to_chw_rgb(const cv::Mat& bgr) {
  if (bgr.empty() || bgr.type() != CV_8UC3) {
    std::ostringstream os;
    os << "to_chw_rgb: need a non-empty CV_8UC3 image, got type " << bgr.type() << " size "
       << bgr.cols << "x" << bgr.rows;
    return Result<std::vector<float>>::Error(os.str());
  }
  const int h = bgr.rows, w = bgr.cols;
  const size_t plane = static_cast<size_t>(h) * w;
  std::vector<float> out(3 * plane);
  constexpr float kScale = 1.0f / 255.0f;
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = bgr.ptr<uint8_t>(y);
    for (int x = 0; x < w; ++x) {
      const size_t i = static_cast<size_t>(y) * w + x;
      out[i] = row[3 * x + 2] * kScale;              // R
      out[plane + i] = row[3 * x + 1] * kScale;      // G
      out[2 * plane + i] = row[3 * x + 0] * kScale;  // B
    }
  }
  return out;
}

}  // namespace gr1
