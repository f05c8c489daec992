#include "common/synth_data.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "common/record.h"
#include "common/task.h"

namespace gr1 {

Status write_synthetic_split(const TaskOptions& task, const std::string& split, int64_t n,
                             const std::string& dir) {
  namespace fs = std::filesystem;
  if (n <= 0) return Status::Error("--n: must be positive, got " + std::to_string(n));
  TaskOptions opts = task;
  opts.split = split;
  auto t = SyntheticTask::create(opts);
  if (!t.ok()) return t.status();

  std::error_code ec;
  fs::create_directories(fs::path(dir) / "images", ec);
  if (ec) return Status::Error("--out: cannot create '" + dir + "/images': " + ec.message());
  // Written to a temporary name and renamed at the end: a reader never sees
  // a half-written data.jsonl, and a failed run leaves the old one intact.
  const fs::path final_path = fs::path(dir) / "data.jsonl";
  const fs::path tmp_path = fs::path(dir) / "data.jsonl.tmp";
  std::ofstream out(tmp_path, std::ios::trunc);
  if (!out) return Status::Error("--out: cannot write '" + tmp_path.string() + "'");
  for (int64_t i = 0; i < n; ++i) {
    Sample s = t->get(static_cast<uint64_t>(i));
    char name[64];
    std::snprintf(name, sizeof(name), "images/%s_%06lld.png", split.c_str(),
                  static_cast<long long>(i));
    const fs::path png = fs::path(dir) / name;
    if (!cv::imwrite(png.string(), s.image)) {
      return Status::Error("cannot write image '" + png.string() + "'");
    }
    s.image_path = name;
    out << to_record(s).dump() << "\n";
  }
  out.close();
  if (!out) return Status::Error("write failed: '" + tmp_path.string() + "'");
  fs::rename(tmp_path, final_path, ec);
  if (ec) return Status::Error("cannot rename to '" + final_path.string() + "': " + ec.message());
  return Status::Ok();
}

}  // namespace gr1
