// The reference's JSON-lines record <-> Sample.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "common/sample.h"
#include "common/status.h"

namespace gr1 {

// The reference JSON-lines record: image (image_path), width, height, bboxs
// ([[x1,y1,x2,y2], ...], integral values written as integers), dataset,
// problem, solution, problem_id; split, input_width and input_height when
// set. Pixels are not written.
nlohmann::json to_record(const Sample& sample);

// Reads one record of that schema (unknown extra keys are ignored; "bboxs",
// "split", "input_width", "input_height" may be absent). The image is not
// loaded. Errors name the key.
Result<Sample> sample_from_record(const nlohmann::json& record);

}  // namespace gr1
