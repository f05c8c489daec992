// One question, as the reference's JSON-lines record describes it (docs:
// ground-r1-algorithm.md, "Data format of the reference"). Plain data; no
// LibTorch, no JSON. Synthetic samples carry their pixels in `image`; loaded
// records carry a path and are decoded on demand.
#pragma once

#include <cstdint>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "common/trajectory.h"

namespace gr1 {

struct Sample {
  uint64_t problem_id = 0;
  std::string image_path;  // as resolved by the loader; empty for in-memory synthetic samples
  int width = 0;           // original image size in pixels
  int height = 0;
  // Size of the frame the reference's vision encoder was shown ("input_width"
  // / "input_height"; 0 = not given). The loader fills it with the
  // reference's resize rule when absent. This project's policy always sees a
  // square model.image_size frame; this field is kept for fidelity and tools.
  int shown_width = 0;
  int shown_height = 0;
  std::vector<Box> bboxs;  // evidence boxes, ORIGINAL pixels (evaluation/logging only)
  std::string dataset;     // selects the accuracy rule (accuracy_rule_for)
  std::string split;       // optional: "train", "test", "val", ...
  std::string problem;     // the question
  std::string solution;    // short answer, or "<answer>X</answer>" for multiple choice
  cv::Mat image;           // BGR uint8, width x height; empty when not loaded
};

}  // namespace gr1
