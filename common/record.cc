#include "common/record.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace gr1 {
namespace {

// Largest accepted image side. Real data tops out at a few thousand pixels;
// the bound keeps width * height (and the smart_resize arithmetic on it)
// far from int64 overflow and rejects obviously corrupt sizes early.
constexpr int64_t kMaxSide = int64_t{1} << 20;

nlohmann::json number_json(float v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15f) {
    return static_cast<int64_t>(v);
  }
  return static_cast<double>(v);
}

Status field_error(const std::string& key, const std::string& what) {
  return Status::Error("record." + key + ": " + what);
}

// A JSON value shown in an error message, kept short (a field might hold a
// megabyte of text).
std::string shown(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

Status read_string(const nlohmann::json& r, const char* key, std::string* out) {
  auto it = r.find(key);
  if (it == r.end()) return field_error(key, "missing");
  if (!it->is_string()) {
    return field_error(key, std::string("not a string (got ") + it->type_name() + ")");
  }
  *out = it->get<std::string>();
  return Status::Ok();
}

// A positive image side in [1, kMaxSide]. `optional`: absent or null leaves
// *out untouched and sets *present = false.
Status read_side(const nlohmann::json& r, const char* key, bool optional, int* out,
                 bool* present = nullptr) {
  auto it = r.find(key);
  if (present) *present = false;
  if (it == r.end() || it->is_null()) {
    return optional ? Status::Ok() : field_error(key, "missing");
  }
  if (!it->is_number_integer()) {
    return field_error(
        key, std::string("not an integer (got ") + it->type_name() + " " + shown(*it) + ")");
  }
  // An unsigned value above INT64_MAX is positive but far too large; check
  // the sign through the signed view only for signed storage.
  if (it->is_number_unsigned() ? it->get<uint64_t>() > static_cast<uint64_t>(kMaxSide)
                               : it->get<int64_t>() > kMaxSide) {
    return field_error(key,
                       shown(*it) + " pixels is over the limit of " + std::to_string(kMaxSide));
  }
  if (!it->is_number_unsigned() && it->get<int64_t>() <= 0) {
    return field_error(key, "must be a positive number of pixels, got " + shown(*it));
  }
  *out = static_cast<int>(it->get<int64_t>());
  if (present) *present = true;
  return Status::Ok();
}

// bboxs[i] = [x1, y1, x2, y2] in original pixels. Negative coordinates and
// empty boxes are errors; coordinates past the right/bottom edge are clamped
// because real annotations overshoot by a pixel (a box ending at x = width
// is already the full width: boxes are half-open pixel ranges).
Status read_boxes(const nlohmann::json& r, int width, int height, std::vector<Box>* out) {
  auto it = r.find("bboxs");
  if (it == r.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) {
    return field_error("bboxs", std::string("not an array (got ") + it->type_name() + ")");
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string key = "bboxs[" + std::to_string(i) + "]";
    const nlohmann::json& b = (*it)[i];
    if (!b.is_array() || b.size() != 4) {
      return field_error(key, "not a list of 4 numbers [x1, y1, x2, y2], got " + shown(b));
    }
    std::array<double, 4> v{};
    for (size_t k = 0; k < 4; ++k) {
      if (!b[k].is_number()) {
        return field_error(
            key, "coordinate " + std::to_string(k) + " is not a number, got " + shown(b[k]));
      }
      v[k] = b[k].get<double>();
      if (v[k] < 0) {
        return field_error(key, "negative coordinate " + std::to_string(k) + ": " + shown(b));
      }
    }
    if (v[2] <= v[0] || v[3] <= v[1]) {
      return field_error(key, "empty box, needs x2 > x1 and y2 > y1: " + shown(b));
    }
    // Clamp to the image; a box that starts at or past the far edge has
    // nothing left and is an error rather than a silent zero-area box.
    const double x1 = std::min<double>(v[0], width), y1 = std::min<double>(v[1], height);
    const double x2 = std::min<double>(v[2], width), y2 = std::min<double>(v[3], height);
    if (x2 <= x1 || y2 <= y1) {
      return field_error(key, shown(b) + " lies outside the " + std::to_string(width) + "x" +
                                  std::to_string(height) + " image");
    }
    out->push_back(Box{static_cast<float>(x1), static_cast<float>(y1), static_cast<float>(x2),
                       static_cast<float>(y2)});
  }
  return Status::Ok();
}

}  // namespace

nlohmann::json to_record(const Sample& s) {
  nlohmann::json boxes = nlohmann::json::array();
  for (const Box& b : s.bboxs) {
    boxes.push_back({number_json(b.x1), number_json(b.y1), number_json(b.x2), number_json(b.y2)});
  }
  nlohmann::json j{{"image", s.image_path},  {"width", s.width},          {"height", s.height},
                   {"bboxs", boxes},         {"dataset", s.dataset},      {"problem", s.problem},
                   {"solution", s.solution}, {"problem_id", s.problem_id}};
  if (!s.split.empty()) j["split"] = s.split;
  // Both or neither: a record with only one of them does not read back.
  if (s.shown_width > 0 && s.shown_height > 0) {
    j["input_width"] = s.shown_width;
    j["input_height"] = s.shown_height;
  }
  return j;
}

Result<Sample> sample_from_record(const nlohmann::json& r) {
  if (!r.is_object()) {
    return Result<Sample>::Error(std::string("record: not a JSON object (got ") + r.type_name() +
                                 ")");
  }
  Sample s;
  for (auto [key, out] : {std::pair<const char*, std::string*>{"image", &s.image_path},
                          {"dataset", &s.dataset},
                          {"problem", &s.problem},
                          {"solution", &s.solution}}) {
    if (Status st = read_string(r, key, out); !st.ok()) return st;
  }
  if (s.image_path.empty()) return field_error("image", "empty path");

  if (Status st = read_side(r, "width", false, &s.width); !st.ok()) return st;
  if (Status st = read_side(r, "height", false, &s.height); !st.ok()) return st;

  auto id = r.find("problem_id");
  if (id == r.end()) return field_error("problem_id", "missing");
  if (!id->is_number_integer()) {
    return field_error("problem_id", std::string("not an integer (got ") + id->type_name() + " " +
                                         shown(*id) + ")");
  }
  if (!id->is_number_unsigned() && id->get<int64_t>() < 0) {
    return field_error("problem_id", "negative: " + shown(*id));
  }
  s.problem_id = id->get<uint64_t>();

  if (auto it = r.find("split"); it != r.end() && !it->is_null()) {
    if (!it->is_string()) {
      return field_error("split", std::string("not a string (got ") + it->type_name() + ")");
    }
    s.split = it->get<std::string>();
  }

  bool has_w = false, has_h = false;
  if (Status st = read_side(r, "input_width", true, &s.shown_width, &has_w); !st.ok()) return st;
  if (Status st = read_side(r, "input_height", true, &s.shown_height, &has_h); !st.ok()) return st;
  if (has_w != has_h) {
    return field_error(has_w ? "input_height" : "input_width",
                       std::string("missing while ") + (has_w ? "input_width" : "input_height") +
                           " is given (both or neither)");
  }

  if (Status st = read_boxes(r, s.width, s.height, &s.bboxs); !st.ok()) return st;
  return s;
}

}  // namespace gr1
