#include "learner/score_tool.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

#include "common/scoring.h"

namespace gr1 {
namespace {

Result<nlohmann::json> score_line(const std::string& text) {
  using nlohmann::json;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return Status::Error(std::string("not JSON: ") + e.what());
  }
  if (!j.is_object()) return Status::Error("not a JSON object");
  if (!j.contains("turns") || !j["turns"].is_array() || j["turns"].empty())
    return Status::Error("turns: missing or not a non-empty array of strings");
  std::vector<std::string> turns;
  for (const auto& t : j["turns"]) {
    if (!t.is_string()) return Status::Error("turns: every entry must be a string");
    turns.push_back(t.get<std::string>());
  }
  for (const char* k : {"solution", "dataset"})
    if (!j.contains(k) || !j[k].is_string()) return Status::Error(std::string(k) + ": missing or not a string");
  auto get_int = [&](const char* k, int def, int* out) -> Status {
    if (!j.contains(k)) {
      *out = def;
      return Status::Ok();
    }
    if (!j[k].is_number_integer() || j[k].get<int64_t>() <= 0)
      return Status::Error(std::string(k) + ": must be a positive integer");
    *out = j[k].get<int>();
    return Status::Ok();
  };
  int W, H, sw, sh;
  if (Status s = get_int("width", 0, &W); !s.ok()) return s;
  if (Status s = get_int("height", 0, &H); !s.ok()) return s;
  if (Status s = get_int("shown_width", W, &sw); !s.ok()) return s;
  if (Status s = get_int("shown_height", H, &sh); !s.ok()) return s;
  std::vector<Box> evidence;
  if (j.contains("bboxs")) {
    if (!j["bboxs"].is_array()) return Status::Error("bboxs: not an array");
    for (const auto& b : j["bboxs"]) {
      if (!b.is_array() || b.size() != 4) return Status::Error("bboxs: each box must be [x1,y1,x2,y2]");
      for (const auto& v : b)
        if (!v.is_number()) return Status::Error("bboxs: coordinates must be numbers");
      evidence.push_back(Box{b[0].get<float>(), b[1].get<float>(), b[2].get<float>(), b[3].get<float>()});
    }
    if (!evidence.empty() && (W <= 0 || H <= 0))
      return Status::Error("width/height: required with bboxs (to map the box to original pixels)");
  }
  auto r = score_turns(turns, last_box_in_turns(turns), j["solution"].get<std::string>(),
                       j["dataset"].get<std::string>(), evidence, W, H, sw, sh);
  if (!r.ok()) return r.status();
  json out;
  out["format"] = r->format;
  out["accuracy"] = r->accuracy;
  out["box_score"] = r->box_score ? json(*r->box_score) : json(nullptr);
  out["reward"] = r->reward;
  return out;
}

}  // namespace

int score_stream(std::istream& in, std::ostream& out) {
  std::string line;
  int n = 0, bad = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto r = score_line(line);
    nlohmann::json o;
    if (r.ok()) {
      o = *r;
      o["line"] = n;
    } else {
      o["line"] = n;
      o["error"] = r.error();
      ++bad;
    }
    out << o.dump() << "\n";
  }
  return bad;
}

int run_score(const std::string& path) {
  if (path == "-") return score_stream(std::cin, std::cout) > 0 ? 1 : 0;
  std::ifstream in(path);
  if (!in) {
    std::cerr << "gr1 score: cannot open '" << path << "'\n";
    return 2;
  }
  return score_stream(in, std::cout) > 0 ? 1 : 0;
}

}  // namespace gr1
