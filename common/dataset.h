// Loading the reference's JSON-lines data (docs: ground-r1-algorithm.md,
// "Data format of the reference"): one record per line, bad lines reported
// with their line number and skipped, never a crash.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <opencv2/core.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common/sample.h"
#include "common/status.h"

namespace gr1 {

struct LoadOptions {
  // "OLD=NEW" rewrites of the image path prefix, tried in order; the first
  // whose OLD is a prefix of the record's path applies.
  std::vector<std::pair<std::string, std::string>> prefix_rewrites;
  bool check_images = false;  // decode every image; unreadable / size mismatch = bad line
  bool keep_images = false;   // keep decoded pixels in Sample::image (implies decoding)
  // The reference's resize rule (Qwen2-VL smart_resize) for the shown size
  // when a record has no input_width / input_height.
  int resize_factor = 28;
  int64_t min_pixels = 4 * 28 * 28;
  int64_t max_pixels = 16384 * 28 * 28;
};

struct LineError {
  int64_t line = 0;  // 1-based physical line number
  std::string error;
};

struct LoadReport {
  int64_t lines = 0;                           // non-blank lines read
  std::vector<Sample> samples;                 // the valid ones, in file order
  std::map<std::string, int64_t> per_dataset;  // valid samples per dataset name
  std::vector<LineError> errors;               // one per bad line, in file order
};

// Parses `in`; relative image paths (after rewriting) are resolved against
// `base_dir` (the JSONL file's directory).
LoadReport load_jsonl(std::istream& in, const std::string& base_dir, const LoadOptions& opts);
// Opens `path`; an unreadable file is an error naming it.
Result<LoadReport> load_jsonl_file(const std::string& path, const LoadOptions& opts);
// {"lines", "valid", "per_dataset": {name: count}, "errors": [{"line", "error"}]}
nlohmann::json report_json(const LoadReport& report);

// The reference's shown size for a width x height original (Qwen2-VL
// smart_resize, exactly; Python's round-half-to-even in round_by_factor):
// (shown_width, shown_height), both multiples of opts.resize_factor.
//   h' = max(f, round(h/f)*f), w' likewise;
//   h'w' > max_pixels: beta = sqrt(hw/max_pixels), h' = floor(h/beta/f)*f, w' likewise;
//   h'w' < min_pixels: beta = sqrt(min_pixels/hw),  h' = ceil(h*beta/f)*f,  w' likewise.
// Errors name bad sizes / options and an aspect ratio max/min > 200 (which
// the reference rejects). E.g. 500x333 -> (504, 336).
Result<std::pair<int, int>> reference_shown_size(int width, int height, const LoadOptions& opts);

// Decodes sample.image_path (BGR uint8); errors name the path and the reason
// (missing, not an image, size differs from the record's width x height).
Result<cv::Mat> load_sample_image(const Sample& sample);

// `gr1 data check --in FILE [--image-prefix OLD=NEW]... [--check-images]`:
// prints report_json to stdout. Returns 0 when every line is valid, 1 when
// some are bad, 2 when the file cannot be read or an argument is malformed.
int run_data_check(const std::string& path, const std::vector<std::string>& image_prefix_rewrites,
                   bool check_images);

}  // namespace gr1
