#include "common/image_tensor.h"

#include <opencv2/imgproc.hpp>

#include "common/crop.h"

namespace gr1 {

torch::Tensor to_policy_tensor(const cv::Mat& bgr, int side) {
  cv::Mat resized = resize_for_policy(bgr, side);
  cv::Mat rgb;
  cv::cvtColor(resized, rgb, cv::COLOR_BGR2RGB);
  cv::Mat f;
  rgb.convertTo(f, CV_32FC3, 1.0 / 255.0);
  auto t = torch::from_blob(f.data, {side, side, 3}, torch::kFloat32).clone();
  return t.permute({2, 0, 1}).contiguous();
}

torch::Tensor image_block_tensor(const cv::Mat& original, const ImageRef& ref, int side) {
  if (!ref.is_crop) return to_policy_tensor(original, side);
  cv::Mat crop = crop_and_resize(original, ref.box_orig, side, side);
  return to_policy_tensor(crop, side);
}

}  // namespace gr1
