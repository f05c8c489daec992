// Pixels -> model input. Includes LibTorch: only for actor/learner/eval code.
#pragma once

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "common/trajectory.h"

namespace gr1 {

// BGR uint8 image of any size -> float32 [3, side, side] RGB in [0, 1]
// (resized with crop_and_resize's rules; the same function on every process,
// so actor and learner see identical pixels).
torch::Tensor to_policy_tensor(const cv::Mat& bgr, int side);

// The pixels of image block `ref` of a trajectory whose original image is
// `original`: the whole image, or the crop of ref.box_orig.
torch::Tensor image_block_tensor(const cv::Mat& original, const ImageRef& ref, int side);

}  // namespace gr1
