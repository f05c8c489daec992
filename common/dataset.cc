// Per line:  bytes -> JSON -> sample_from_record -> accuracy rule -> path
// rewrite/resolve -> shown size -> (optional) decode.  The first failing step
// makes the line bad: it is recorded with its physical line number and the
// reason, and loading goes on with the next line.
#include "common/dataset.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <istream>
#include <limits>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "common/record.h"
#include "common/reward.h"

namespace gr1 {
namespace {

namespace fs = std::filesystem;

// Error texts can quote arbitrary input (nlohmann's "last read: '...'",
// paths): cap their length and make them valid UTF-8, so report_json(...)
// .dump() can never throw on a report of a binary file.
constexpr size_t kMaxErrorBytes = 400;

std::string printable_error(std::string s) {
  if (s.size() > kMaxErrorBytes) s = s.substr(0, kMaxErrorBytes) + "...";
  // Round trip through a JSON string with the "replace" handler: invalid
  // UTF-8 (including a sequence cut by the truncation above) becomes U+FFFD.
  const std::string dumped =
      nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return nlohmann::json::parse(dumped).get<std::string>();
}

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n\f\v") == std::string::npos;
}

// nlohmann's message reads "[json.exception.parse_error.101] parse error at
// line 1, column N: <reason>"; "line 1" is the line's own text and would
// mislead next to our file line number, so only the byte offset and the
// reason are kept. Numbers too large for a double ("1e400") come as
// out_of_range.406, also from the parser.
std::string parse_error_text(const nlohmann::json::exception& e) {
  std::string what = e.what();
  if (what.rfind("[json.exception.", 0) == 0) {
    if (size_t at = what.find("] "); at != std::string::npos) what = what.substr(at + 2);
  }
  if (const auto* pe = dynamic_cast<const nlohmann::json::parse_error*>(&e)) {
    if (what.rfind("parse error", 0) == 0) {
      if (size_t colon = what.find(": "); colon != std::string::npos) what = what.substr(colon + 2);
    }
    return "not JSON at byte " + std::to_string(pe->byte) + ": " + what;
  }
  return "not JSON: " + what;
}

std::string rewrite_prefix(const std::string& path, const LoadOptions& opts) {
  for (const auto& [old_prefix, new_prefix] : opts.prefix_rewrites) {
    if (!old_prefix.empty() && path.compare(0, old_prefix.size(), old_prefix) == 0) {
      return new_prefix + path.substr(old_prefix.size());
    }
  }
  return path;
}

std::string resolve(const std::string& path, const std::string& base_dir) {
  if (base_dir.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(base_dir) / path).string();
}

// Python's round(n / f) for integers n >= 0, f > 0: nearest integer, ties to
// even. Exact integer arithmetic; it agrees with Python's float division
// because a non-tie n/f is at least 1/(2f) away from a half, far more than
// a double's rounding error for n < 2^52.
int64_t round_half_even_div(int64_t n, int64_t f) {
  const int64_t q = n / f, r = n % f;
  if (2 * r > f) return q + 1;
  if (2 * r < f) return q;
  return q % 2 == 0 ? q : q + 1;
}

// Validates one parsed record into a Sample (everything after JSON parsing).
Result<Sample> to_sample(const nlohmann::json& j, const std::string& base_dir,
                         const LoadOptions& opts) {
  Result<Sample> parsed = sample_from_record(j);
  if (!parsed.ok()) return parsed;
  Sample s = std::move(parsed).value();

  if (Result<AccuracyRule> rule = accuracy_rule_for(s.dataset); !rule.ok()) {
    return Result<Sample>::Error("record.dataset: " + rule.error());
  }
  s.image_path = resolve(rewrite_prefix(s.image_path, opts), base_dir);

  if (s.shown_width == 0) {  // sample_from_record gives both or neither
    Result<std::pair<int, int>> shown = reference_shown_size(s.width, s.height, opts);
    if (!shown.ok()) return Result<Sample>::Error("record.width/height: " + shown.error());
    s.shown_width = shown->first;
    s.shown_height = shown->second;
  }

  if (opts.check_images || opts.keep_images) {
    Result<cv::Mat> image = load_sample_image(s);
    if (!image.ok()) return image.status();
    // Without keep_images the pixels are dropped here: checking a large data
    // set must not hold every decoded image in memory.
    if (opts.keep_images) s.image = std::move(image).value();
  }
  return s;
}

}  // namespace

LoadReport load_jsonl(std::istream& in, const std::string& base_dir, const LoadOptions& opts) {
  LoadReport report;
  std::string line;
  int64_t line_no = 0;
  auto bad = [&](std::string error) {
    report.errors.push_back(LineError{line_no, printable_error(std::move(error))});
  };
  // getline also returns a final line that has no trailing '\n'.
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // CRLF files
    if (is_blank(line)) continue;
    ++report.lines;
    // Nothing in one line may stop the loader: parse errors are expected,
    // anything else (allocation, OpenCV) is reported against the line too.
    try {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        bad(parse_error_text(e));
        continue;
      }
      Result<Sample> s = to_sample(j, base_dir, opts);
      if (!s.ok()) {
        bad(s.error());
        continue;
      }
      ++report.per_dataset[s->dataset];
      report.samples.push_back(std::move(s).value());
    } catch (const std::exception& e) {
      bad(std::string("internal error while reading the line: ") + e.what());
    }
  }
  return report;
}

Result<LoadReport> load_jsonl_file(const std::string& path, const LoadOptions& opts) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    return Result<LoadReport>::Error("cannot read data file \"" + path + "\": is a directory");
  }
  // Binary mode: line endings are handled by load_jsonl, bytes pass as-is.
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Result<LoadReport>::Error("cannot open data file \"" + path +
                                     "\": " + std::strerror(errno));
  }
  LoadReport report = load_jsonl(in, fs::path(path).parent_path().string(), opts);
  if (in.bad()) {
    return Result<LoadReport>::Error("read error in data file \"" + path + "\"");
  }
  return report;
}

nlohmann::json report_json(const LoadReport& report) {
  nlohmann::json per_dataset = nlohmann::json::object();
  for (const auto& [name, count] : report.per_dataset) per_dataset[name] = count;
  nlohmann::json errors = nlohmann::json::array();
  for (const LineError& e : report.errors) errors.push_back({{"line", e.line}, {"error", e.error}});
  return nlohmann::json{{"lines", report.lines},
                        {"valid", static_cast<int64_t>(report.samples.size())},
                        {"per_dataset", per_dataset},
                        {"errors", errors}};
}

Result<std::pair<int, int>> reference_shown_size(int width, int height, const LoadOptions& opts) {
  using R = Result<std::pair<int, int>>;
  const int64_t f = opts.resize_factor;
  if (f <= 0) return R::Error("resize_factor must be positive, got " + std::to_string(f));
  if (opts.min_pixels <= 0 || opts.max_pixels < opts.min_pixels) {
    return R::Error("need 0 < min_pixels <= max_pixels, got min_pixels " +
                    std::to_string(opts.min_pixels) + ", max_pixels " +
                    std::to_string(opts.max_pixels));
  }
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (width <= 0 || height <= 0) return R::Error("image size " + size + " is not positive");
  const int64_t w = width, h = height;
  // The reference: max(h, w) / min(h, w) > MAX_RATIO (200), a float division.
  if (static_cast<double>(std::max(w, h)) / static_cast<double>(std::min(w, h)) > 200.0) {
    return R::Error("image size " + size +
                    ": aspect ratio over 200 (the reference's smart_resize rejects it)");
  }
  int64_t h_bar = std::max(f, round_half_even_div(h, f) * f);
  int64_t w_bar = std::max(f, round_half_even_div(w, f) * f);
  // The floating-point steps below repeat the reference's Python operations
  // in the same order on doubles, so floor/ceil see the same values.
  if (h_bar * w_bar > opts.max_pixels) {
    const double beta =
        std::sqrt(static_cast<double>(h * w) / static_cast<double>(opts.max_pixels));
    // max(f, ...) as the current qwen_vl_utils; it only binds for extreme
    // option values (never for the defaults, given the ratio limit).
    h_bar = std::max(f, static_cast<int64_t>(std::floor(static_cast<double>(h) / beta / f)) * f);
    w_bar = std::max(f, static_cast<int64_t>(std::floor(static_cast<double>(w) / beta / f)) * f);
  } else if (h_bar * w_bar < opts.min_pixels) {
    const double beta =
        std::sqrt(static_cast<double>(opts.min_pixels) / static_cast<double>(h * w));
    h_bar = static_cast<int64_t>(std::ceil(static_cast<double>(h) * beta / f)) * f;
    w_bar = static_cast<int64_t>(std::ceil(static_cast<double>(w) * beta / f)) * f;
  }
  if (h_bar > std::numeric_limits<int>::max() || w_bar > std::numeric_limits<int>::max()) {
    return R::Error("image size " + size + ": shown size does not fit in an int");
  }
  return std::make_pair(static_cast<int>(w_bar), static_cast<int>(h_bar));
}

Result<cv::Mat> load_sample_image(const Sample& sample) {
  const std::string& path = sample.image_path;
  const std::string name = "image \"" + path + "\"";
  if (path.empty()) return Result<cv::Mat>::Error("image: empty path");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) return Result<cv::Mat>::Error(name + ": file not found");
  if (fs::is_directory(st)) return Result<cv::Mat>::Error(name + ": is a directory");
  cv::Mat image;
  try {
    image = cv::imread(path, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    return Result<cv::Mat>::Error(name + ": cannot be decoded: " + e.what());
  }
  if (image.empty()) {
    return Result<cv::Mat>::Error(name + ": cannot be read or decoded as an image");
  }
  if (image.cols != sample.width || image.rows != sample.height) {
    return Result<cv::Mat>::Error(name + ": decoded size " + std::to_string(image.cols) + "x" +
                                  std::to_string(image.rows) + " differs from the record's " +
                                  std::to_string(sample.width) + "x" +
                                  std::to_string(sample.height) + " (width x height)");
  }
  return image;
}

int run_data_check(const std::string& path, const std::vector<std::string>& image_prefix_rewrites,
                   bool check_images) {
  LoadOptions opts;
  opts.check_images = check_images;
  for (const std::string& rewrite : image_prefix_rewrites) {
    const size_t eq = rewrite.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "gr1 data check: --image-prefix \"" << rewrite
                << "\": expected OLD=NEW with a non-empty OLD\n";
      return 2;
    }
    opts.prefix_rewrites.emplace_back(rewrite.substr(0, eq), rewrite.substr(eq + 1));
  }
  try {
    Result<LoadReport> report = load_jsonl_file(path, opts);
    if (!report.ok()) {
      std::cerr << "gr1 data check: " << report.error() << "\n";
      return 2;
    }
    std::cout << report_json(*report).dump() << "\n" << std::flush;
    return report->errors.empty() ? 0 : 1;
  } catch (const std::exception& e) {  // e.g. out of memory: report, do not abort
    std::cerr << "gr1 data check: " << path << ": " << e.what() << "\n";
    return 2;
  }
}

}  // namespace gr1
