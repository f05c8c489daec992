// Crops: from a box the policy wrote (in the SHOWN frame) to the pixels it
// is shown next (docs: ground-r1-algorithm.md, "Crops").
//
//   box in shown frame -> shown_box_to_crop (map, clamp, widen, check)
//     -> box in original pixels -> crop_and_resize -> to_chw_rgb -> model
//
// Everything here is a pure, deterministic function of its inputs. No LibTorch.
#pragma once

#include <vector>

#include <opencv2/core.hpp>

#include "common/status.h"
#include "common/trajectory.h"

namespace gr1 {

// Maps `shown` (pixels of the shown_w x shown_h frame the policy saw) to
// ORIGINAL pixels of a W x H image, in this order:
//   1. map: x * W / shown_w, y * H / shown_h;
//   2. clamp every coordinate to [0, W] x [0, H];
//   3. reject non-finite input and degenerate boxes (x2 <= x1 or y2 <= y1
//      after clamping): a zero-area box is not widened into a crop;
//   4. widen each side shorter than min_side symmetrically about its centre
//      to exactly min_side, shifted back inside the image at a border; when
//      the image side itself is <= min_side the full extent [0, W] is used;
//   5. reject aspect ratio max(w,h)/min(w,h) >= max_aspect. The check runs on
//      the widened box, i.e. on the crop the encoder would receive (as the
//      reference's resize does); with min_side > 0 it can only trigger for
//      very elongated images.
// Coordinates stay fractional (no rounding here; see crop_and_resize).
// Errors name the reason and the offending values. Bad arguments (shown or
// original size <= 0, min_side < 0, max_aspect <= 1) are errors too.
Result<Box> shown_box_to_crop(const Box& shown, int shown_w, int shown_h, int W, int H,
                              int min_side, double max_aspect);

// Cuts orig_box (ORIGINAL pixels) out of `original` and resizes it to
// out_w x out_h. Integer pixel rounding: floor(x1), floor(y1), ceil(x2),
// ceil(y2), then clamped to the image, so the cut always covers the box.
// Interpolation: INTER_AREA when the cut is at least as large as the output
// on both axes (shrinking), INTER_LINEAR otherwise (enlarging on any axis).
// Returns an empty Mat when the rounded region is empty, the image is empty
// or out_w/out_h <= 0 (callers pass boxes from shown_box_to_crop, which are
// never empty). The returned Mat owns its pixels.
cv::Mat crop_and_resize(const cv::Mat& original, const Box& orig_box, int out_w, int out_h);

// The whole image resized to side x side (aspect ratio not kept: the policy's
// shown frame is always square), same interpolation rule as crop_and_resize.
cv::Mat resize_for_policy(const cv::Mat& img, int side);

// A BGR uint8 image (CV_8UC3, any size h x w, continuous or not) as planar
// RGB float values in [0, 1]: out[c*h*w + y*w + x], c = 0 R, 1 G, 2 B.
// Any other pixel type or an empty image is an error.
Result<std::vector<float>> to_chw_rgb(const cv::Mat& bgr);

}  // namespace gr1
