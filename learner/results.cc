#include "learner/results.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <regex>
#include <sstream>
#include <thread>

#include "common/config.h"
#include "common/dataset.h"
#include "common/reward.h"
#include "common/task.h"
#include "common/threads.h"
#include "learner/pretrain.h"

namespace gr1 {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr double kTolerance = 1e-9;  // rounding allowed in the target comparisons

// The summary fields read here (table and targets): numbers or null.
const char* const kNumericFields[] = {"accuracy",        "format_rate", "mean_turns",
                                      "box_score",       "box_score_given", "box_rate",
                                      "acc_at_05",       "box_on_evidence_rate",
                                      "accuracy_box_on_evidence", "accuracy_box_off_evidence"};

// obj[key] as a double when obj is an object holding a number there.
std::optional<double> number_at(const json& obj, const std::string& key) {
  if (!obj.is_object()) return std::nullopt;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

json num_or_null(std::optional<double> v) { return v ? json(*v) : json(nullptr); }

// {"value", "target", "comparison", "met"} of value (>= or <=) target.
json check(std::optional<double> value, double target, const std::string& comparison) {
  bool met = false;
  if (value)
    met = comparison == ">=" ? *value >= target - kTolerance : *value <= target + kTolerance;
  return json{
      {"value", num_or_null(value)}, {"target", target}, {"comparison", comparison}, {"met", met}};
}

std::optional<double> diff(std::optional<double> a, std::optional<double> b) {
  if (!a || !b) return std::nullopt;
  return *a - *b;
}

std::string cell(const json& column, const std::string& row) {
  if (column.is_null()) return "-";
  auto v = number_at(column, row);
  if (!v) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", *v);
  return buf;
}

Result<json> read_json_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::Error(path + ": cannot open the file");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    return Status::Error(path + ": not JSON: " + e.what());
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

const std::vector<std::string>& results_arms() {
  static const std::vector<std::string> arms = {"base", "ground_r1", "direct_grpo", "srpo"};
  return arms;
}

std::string arm_checkpoint(const std::string& dir, const std::string& arm) {
  if (arm == "base") return (fs::path(dir) / "base.safetensors").string();
  return (fs::path(dir) / arm / "policy.safetensors").string();
}

Status check_eval_json(const json& eval) {
  if (!eval.is_object()) return Status::Error("not a JSON object (expected gr1 eval's output)");
  auto s = eval.find("summary");
  if (s == eval.end()) return Status::Error("no \"summary\" (expected gr1 eval's output)");
  if (!s->is_object()) return Status::Error("\"summary\" is not an object");
  for (const char* k : kNumericFields) {
    auto f = s->find(k);
    if (f != s->end() && !f->is_number() && !f->is_null())
      return Status::Error(std::string("summary.") + k + ": not a number or null (got " +
                           f->type_name() + ")");
  }
  if (auto items = eval.find("items"); items != eval.end()) {
    if (!items->is_array()) return Status::Error("\"items\" is not an array");
    for (size_t i = 0; i < items->size(); ++i)
      if (!(*items)[i].is_object())
        return Status::Error("items[" + std::to_string(i) + "]: not an object");
  }
  return Status::Ok();
}

json eval_box_score_given(const json& eval) {
  if (eval.is_object() && eval.contains("summary") && eval["summary"].is_object() &&
      eval["summary"].contains("box_score_given"))
    return eval["summary"]["box_score_given"];
  double sum = 0;
  size_t n = 0;
  if (eval.is_object() && eval.contains("items") && eval["items"].is_array()) {
    for (const auto& it : eval["items"]) {
      if (!it.is_object()) continue;
      auto boxes = it.find("boxes");
      if (boxes == it.end() || !boxes->is_array() || boxes->empty()) continue;
      auto score = number_at(it, "box_score");
      if (!score) continue;  // a box but no evidence: not scored
      sum += *score;
      ++n;
    }
  }
  return n > 0 ? json(sum / double(n)) : json(nullptr);
}

namespace {

// The dataset and problem_id of an eval item of the synthetic benchmark
// (dataset synth_*); nullopt for any other item.
std::optional<std::pair<std::string, uint64_t>> benchmark_item(const json& it) {
  if (!it.is_object()) return std::nullopt;
  std::string ds = it.value("dataset", std::string());
  if (ds.rfind("synth_", 0) != 0) return std::nullopt;
  const auto pid = it.find("problem_id");
  if (pid == it.end() || !pid->is_number_unsigned()) return std::nullopt;
  return std::make_pair(std::move(ds), pid->get<uint64_t>());
}

// all's fields plus "per_family": {family: its fields}; null when nothing was counted.
template <class Counts>
json with_families(const Counts& all, const std::map<std::string, Counts>& fam) {
  if (all.items == 0) return nullptr;
  json out = all.to_json();
  json per = json::object();
  for (const auto& [f, c] : fam) per[f] = c.to_json();
  out["per_family"] = std::move(per);
  return out;
}

// Counts of one family (or of all) for thought_naming.
struct NamingCounts {
  int items = 0, no_box = 0, named_items = 0, names_target = 0, colour_wrong = 0, shape_wrong = 0,
      other = 0, spatial_items = 0, names_anchor = 0;
  double correct_when_named = 0;

  json to_json() const {
    auto share = [](int k, int n) { return n > 0 ? json(double(k) / n) : json(nullptr); };
    return json{{"items", items},
                {"no_box", share(no_box, items)},
                {"names_target", share(names_target, named_items)},
                {"colour_wrong", share(colour_wrong, named_items)},
                {"shape_wrong", share(shape_wrong, named_items)},
                {"other", share(other, named_items)},
                {"names_anchor", share(names_anchor, spatial_items)},
                {"accuracy_when_named", names_target > 0
                                            ? json(correct_when_named / names_target)
                                            : json(nullptr)}};
  }
};

}  // namespace

json thought_naming(const json& eval, const std::vector<std::pair<uint64_t, std::string>>& questions) {
  static const std::regex phrase(R"(the ([a-z]+) (circle|square|triangle)\b)");
  static const std::regex thought(R"(^<think>the ([a-z]+) (circle|square|triangle)</think>)");
  std::map<uint64_t, std::string> q;
  for (const auto& [id, text] : questions) q[id] = text.substr(0, text.find('\n'));
  NamingCounts all;
  std::map<std::string, NamingCounts> fam;
  if (!eval.is_object() || !eval.contains("items") || !eval["items"].is_array()) return nullptr;
  for (const auto& it : eval["items"]) {
    const auto item = benchmark_item(it);
    if (!item) continue;
    const std::string& ds = item->first;
    const auto qi = q.find(item->second);
    if (qi == q.end()) continue;
    // The question's last "the <colour> <shape>".
    std::smatch m, last;
    std::string rest = qi->second;
    bool found = false;
    while (std::regex_search(rest, m, phrase)) {
      last = m;
      found = true;
      rest = m.suffix().str();
    }
    if (!found) continue;
    const std::string colour = last[1].str(), shape = last[2].str();
    const std::string family = ds.substr(6);
    const bool spatial = family.rfind("spatial", 0) == 0;
    std::string first;
    if (it.contains("turn_texts") && it["turn_texts"].is_array() && !it["turn_texts"].empty() &&
        it["turn_texts"][0].is_string())
      first = it["turn_texts"][0].get<std::string>();
    const double correct = it.value("correct", 0.0);
    for (NamingCounts* c : {&all, &fam[family]}) {
      ++c->items;
      if (first.find("<box>") == std::string::npos) {
        ++c->no_box;
        continue;
      }
      std::smatch t;
      const bool has = std::regex_search(first, t, thought);
      if (spatial) {
        ++c->spatial_items;
        if (has && t[1].str() == colour && t[2].str() == shape) ++c->names_anchor;
        continue;
      }
      ++c->named_items;
      if (!has) {
        ++c->other;
      } else if (t[1].str() == colour && t[2].str() == shape) {
        ++c->names_target;
        c->correct_when_named += correct;
      } else if (t[2].str() == shape) {
        ++c->colour_wrong;
      } else if (t[1].str() == colour) {
        ++c->shape_wrong;
      } else {
        ++c->other;
      }
    }
  }
  return with_families(all, fam);
}

namespace {

struct AgreementCounts {
  int items = 0, follows = 0, with_options = 0, not_an_option = 0, without_options = 0,
      stray_letter = 0;
  double accuracy = 0, accuracy_from_thought = 0;

  json to_json() const {
    auto share = [](double k, int n) { return n > 0 ? json(k / n) : json(nullptr); };
    return json{{"items", items},
                {"follows_thought", share(follows, items)},
                {"accuracy", share(accuracy, items)},
                {"accuracy_from_thought", share(accuracy_from_thought, items)},
                {"value_not_an_option", share(not_an_option, with_options)},
                {"letter_without_options", share(stray_letter, without_options)}};
  }
};

std::string lower_trimmed(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\n"));
  s.erase(s.find_last_not_of(" \t\n") + 1);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

json answer_vs_thought(const json& eval,
                       const std::map<uint64_t, std::pair<std::string, std::string>>& questions) {
  static const std::regex shows(R"(<think>it shows ([^<]*)</think>)");
  AgreementCounts all;
  std::map<std::string, AgreementCounts> fam;
  if (!eval.is_object() || !eval.contains("items") || !eval["items"].is_array()) return nullptr;
  for (const auto& it : eval["items"]) {
    const auto item = benchmark_item(it);
    if (!item) continue;
    const std::string& ds = item->first;
    const auto qi = questions.find(item->second);
    if (qi == questions.end()) continue;
    const auto rule = accuracy_rule_for(ds);
    if (!rule.ok()) continue;
    const auto tt = it.find("turn_texts");
    if (tt == it.end() || !tt->is_array() || tt->empty() || !tt->back().is_string()) continue;
    const std::string last = tt->back().get<std::string>();
    std::smatch m;
    if (!std::regex_search(last, m, shows)) continue;
    const std::string value = m[1].str();
    const std::string& problem = qi->second.first;
    const auto options = multiple_choice_options(problem);  // (letter, text)
    std::optional<std::string> implied;
    if (options.empty()) {
      implied = value;
    } else {
      for (const auto& [letter, text] : options)
        if (lower_trimmed(text) == lower_trimmed(value)) {
          implied = letter;
          break;
        }
    }
    const std::string written = it.value("answer", std::string());
    const double correct = it.value("correct", 0.0);
    const double from_thought =
        implied ? accuracy_reward(*rule, *implied, qi->second.second) : 0.0;
    const std::string w = lower_trimmed(written);
    const bool lone_letter = w.size() == 1 && w[0] >= 'a' && w[0] <= 'd';
    for (AgreementCounts* c : {&all, &fam[ds.substr(6)]}) {
      ++c->items;
      c->accuracy += correct;
      c->accuracy_from_thought += from_thought;
      if (implied && lower_trimmed(*implied) == w) ++c->follows;
      if (options.empty()) {
        ++c->without_options;
        if (lone_letter && w != lower_trimmed(value)) ++c->stray_letter;
      } else {
        ++c->with_options;
        if (!implied) ++c->not_an_option;
      }
    }
  }
  return with_families(all, fam);
}

json results_targets(const json& arms) {
  auto arm = [&](const std::string& name) -> json {
    return arms.is_object() && arms.contains(name) ? arms[name] : json(nullptr);
  };
  const json base = arm("base"), gr = arm("ground_r1"), direct = arm("direct_grpo"),
             srpo = arm("srpo");
  json t = json::object();
  t["accuracy_gain_over_base"] =
      check(diff(number_at(gr, "accuracy"), number_at(base, "accuracy")), 0.40, ">=");
  t["accuracy_gain_over_direct_grpo"] =
      check(diff(number_at(gr, "accuracy"), number_at(direct, "accuracy")), 0.30, ">=");
  t["box_score_given_gain_over_base"] =
      check(diff(number_at(gr, "box_score_given"), number_at(base, "box_score_given")), 0.05, ">=");
  t["box_score_gain_over_base"] =
      check(diff(number_at(gr, "box_score"), number_at(base, "box_score")), 0.30, ">=");
  t["format_rate"] = check(number_at(gr, "format_rate"), 0.97, ">=");
  std::optional<double> drift =
      diff(number_at(gr, "locate_skill"), number_at(base, "locate_skill"));
  if (drift) drift = std::fabs(*drift);
  t["locate_skill_drift"] = check(drift, 0.05, "<=");

  auto small_acc = [](const json& a) -> std::optional<double> {
    if (!a.is_object() || !a.contains("per_evidence_third")) return std::nullopt;
    const json& thirds = a["per_evidence_third"];
    if (!thirds.is_object() || !thirds.contains("small")) return std::nullopt;
    return number_at(thirds["small"], "accuracy");
  };
  const auto s = small_acc(srpo), g = small_acc(gr);
  t["srpo_vs_grpo_smallest_third"] = json{
      {"srpo", num_or_null(s)}, {"ground_r1", num_or_null(g)}, {"value", num_or_null(diff(s, g))},
      {"target", nullptr},      {"comparison", nullptr},       {"met", nullptr}};
  return t;
}

double mcnemar_exact_p(int64_t b, int64_t c) {
  const int64_t n = b + c, k = std::min(b, c);
  if (n <= 0) return 1.0;
  // P(X <= k) = sum_i C(n, i) / 2^n, each term in log space.
  const double log_half_n = n * std::log(0.5), lgn = std::lgamma(static_cast<double>(n) + 1);
  double tail = 0;
  for (int64_t i = 0; i <= k; ++i)
    tail += std::exp(lgn - std::lgamma(static_cast<double>(i) + 1) -
                     std::lgamma(static_cast<double>(n - i) + 1) + log_half_n);
  return std::min(1.0, 2 * tail);
}

json paired_comparison(const json& base_eval, const json& other_eval) {
  auto correct_by_id = [](const json& eval, std::map<uint64_t, double>& out) {
    if (!eval.is_object() || !eval.contains("items") || !eval["items"].is_array()) return false;
    for (const auto& it : eval["items"]) {
      if (!it.is_object() || !it.contains("problem_id") || !it.contains("correct")) continue;
      const json& id = it["problem_id"];
      const json& c = it["correct"];
      if (!id.is_number_integer() || !c.is_number()) continue;
      out[id.get<uint64_t>()] = c.get<double>();
    }
    return true;
  };
  std::map<uint64_t, double> base, other;
  if (!correct_by_id(base_eval, base) || !correct_by_id(other_eval, other)) return nullptr;
  auto right = [](double c) { return c >= 1.0 - 1e-9; };
  int64_t n = 0, only = 0, rw = 0, wr = 0;
  double sum = 0, sum2 = 0;
  for (const auto& [id, b] : base) {
    const auto o = other.find(id);
    if (o == other.end()) {
      ++only;
      continue;
    }
    ++n;
    rw += right(b) && !right(o->second);
    wr += !right(b) && right(o->second);
    const double d = o->second - b;
    sum += d;
    sum2 += d * d;
  }
  for (const auto& [id, o] : other) only += base.count(id) == 0;
  if (n == 0) return nullptr;
  const double mean = sum / n;
  // Sample variance of the paired differences; the interval is that of their mean.
  const double var = n > 1 ? std::max(0.0, (sum2 - n * mean * mean) / (n - 1)) : 0.0;
  const double half = 1.959963984540054 * std::sqrt(var / n);
  return json{{"items", n},
              {"only_in_one", only},
              {"right_to_wrong", rw},
              {"wrong_to_right", wr},
              {"mcnemar_p", mcnemar_exact_p(rw, wr)},
              {"accuracy_gain", mean},
              {"accuracy_gain_ci95", json::array({mean - half, mean + half})}};
}

const std::vector<std::tuple<std::string, std::string, std::string>>& results_pairs() {
  static const std::vector<std::tuple<std::string, std::string, std::string>> pairs = {
      {"ground_r1_vs_base", "ground_r1", "base"},
      {"srpo_vs_base", "srpo", "base"},
      {"direct_grpo_vs_base", "direct_grpo", "base"},
      {"ground_r1_vs_direct_grpo", "ground_r1", "direct_grpo"},
      {"srpo_vs_ground_r1", "srpo", "ground_r1"}};
  return pairs;
}

json assemble_results(const std::vector<ArmResult>& arms, const json& timings,
                      const std::vector<std::string>& warnings) {
  json out = json::object();
  for (const auto& a : arms) {
    if (!a.eval) {
      out[a.arm] = nullptr;
      continue;
    }
    json s = a.eval->is_object() && a.eval->contains("summary") && (*a.eval)["summary"].is_object()
                 ? (*a.eval)["summary"]
                 : json::object();
    s["box_score_given"] = eval_box_score_given(*a.eval);
    s["locate_skill"] = a.locate_skill.is_number() ? a.locate_skill : json(nullptr);
    if (!a.thought_naming.is_null()) s["thought_naming"] = a.thought_naming;
    if (!a.answer_vs_thought.is_null()) s["answer_vs_thought"] = a.answer_vs_thought;
    out[a.arm] = std::move(s);
  }
  out["targets"] = results_targets(out);
  auto eval_of = [&](const std::string& name) -> const json* {
    for (const auto& a : arms)
      if (a.arm == name && a.eval) return &*a.eval;
    return nullptr;
  };
  json paired = json::object();
  for (const auto& [key, other, base] : results_pairs()) {
    const json *o = eval_of(other), *b = eval_of(base);
    paired[key] = o && b ? paired_comparison(*b, *o) : json(nullptr);
  }
  out["paired"] = std::move(paired);
  out["timings"] = timings.is_null() ? json(nullptr) : timings;
  out["warnings"] = warnings;
  return out;
}

const std::vector<std::string>& results_table_rows() {
  static const std::vector<std::string> rows = {"accuracy",    "format_rate",     "mean_turns",
                                                "box_score",   "box_score_given", "acc_at_05",
                                                "box_on_evidence_rate", "locate_skill"};
  return rows;
}

std::string render_results_table(const std::vector<std::pair<std::string, json>>& columns,
                                 const std::vector<std::string>& rows, bool delta) {
  // cells[r][c]: r = 0 is the header row, c = 0 the row names.
  std::vector<std::vector<std::string>> cells;
  std::vector<std::string> header = {""};
  for (const auto& [title, obj] : columns) header.push_back(title);
  if (delta) header.push_back("change");
  cells.push_back(header);
  for (const auto& r : rows) {
    std::vector<std::string> line = {r};
    for (const auto& [title, obj] : columns) line.push_back(cell(obj, r));
    if (delta) {
      std::optional<double> d;
      if (!columns.empty())
        d = diff(number_at(columns.back().second, r), number_at(columns.front().second, r));
      char buf[64] = "n/a";
      if (d) std::snprintf(buf, sizeof buf, "%+.3f", *d);
      line.push_back(buf);
    }
    cells.push_back(line);
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& line : cells)
    for (size_t c = 0; c < line.size(); ++c) width[c] = std::max(width[c], line[c].size());
  std::ostringstream os;
  for (const auto& line : cells) {
    for (size_t c = 0; c < line.size(); ++c) {
      if (c == 0) {
        os << line[c] << std::string(width[c] - line[c].size(), ' ');
      } else {
        os << "  " << std::string(width[c] - line[c].size(), ' ') << line[c];
      }
    }
    os << "\n";
  }
  return os.str();
}

json pretrain_report_seconds(const json& report) {
  auto train = number_at(report, "train_seconds");
  if (!train) return nullptr;
  double total = *train;
  if (report.contains("vision") && report["vision"].is_object()) {
    for (const char* k : {"seconds", "train_seconds", "wall_s"}) {
      if (auto v = number_at(report["vision"], k)) {
        total += *v;
        break;
      }
    }
  }
  return total;
}

Result<std::optional<json>> load_eval_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<json>();
  auto j = read_json_file(path);
  if (!j.ok()) return j.status();
  if (Status s = check_eval_json(*j); !s.ok()) return Status::Error(path + ": " + s.message());
  return std::optional<json>(std::move(*j));
}

namespace {

constexpr const char* kPairedHeading =
    "paired, on the same questions (right = full credit; exact McNemar p):";

// One line of a paired comparison: "NAME: n items, X right->wrong, Y
// wrong->right, McNemar p P, accuracy +G (95% CI lo to hi)".
std::string paired_line(const std::string& name, const json& p) {
  if (!p.is_object()) return name + ": not measured (an evaluation or its items are missing)";
  char buf[320];
  const json& ci = p["accuracy_gain_ci95"];
  std::snprintf(buf, sizeof buf,
                "%-25s %lld items, %lld right->wrong, %lld wrong->right, McNemar p %.3f, accuracy "
                "%+.3f (95%% CI %+.3f to %+.3f)",
                (name + ":").c_str(), static_cast<long long>(p["items"].get<int64_t>()),
                static_cast<long long>(p["right_to_wrong"].get<int64_t>()),
                static_cast<long long>(p["wrong_to_right"].get<int64_t>()),
                p["mcnemar_p"].get<double>(), p["accuracy_gain"].get<double>(),
                ci[0].get<double>(), ci[1].get<double>());
  std::string line = buf;
  if (p["only_in_one"].get<int64_t>() > 0)
    line += " [" + std::to_string(p["only_in_one"].get<int64_t>()) +
            " questions in only one of them: not the same test split]";
  return line;
}

}  // namespace

int run_results_summarize(const ResultsSummarizeCli& cli) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> sets = cli.sets;
  sets.push_back("pretrain.report_items=" + std::to_string(cli.locate_items));
  auto cfg = load_config(cli.config, sets);
  if (!cfg.ok()) {
    std::cerr << "gr1 results: --config " << cli.config << ": " << cfg.error() << "\n";
    return 2;
  }
  std::error_code ec;
  if (!fs::is_directory(cli.dir, ec)) {
    std::cerr << "gr1 results: --dir " << cli.dir << ": not a directory\n";
    return 2;
  }

  std::vector<std::string> warnings;
  auto warn = [&](const std::string& w) {
    std::cerr << "gr1 results: warning: " << w << "\n";
    warnings.push_back(w);
  };

  std::vector<ArmResult> arms;
  for (const auto& arm : results_arms()) {
    ArmResult a;
    a.arm = arm;
    const std::string path = (fs::path(cli.dir) / (arm + ".eval.json")).string();
    auto ev = load_eval_file(path);
    if (!ev.ok()) {
      std::cerr << "gr1 results: " << ev.error() << "\n";
      return 2;
    }
    a.eval = *ev;
    if (!a.eval) warn(path + " is missing: arm " + arm + " is null");
    arms.push_back(std::move(a));
  }
  // The test questions, for thought_naming (bad lines are skipped and named).
  std::vector<std::pair<uint64_t, std::string>> questions;
  std::map<uint64_t, std::pair<std::string, std::string>> answered;  // for answer_vs_thought
  const std::string qpath = (fs::path(cli.dir) / "test" / "data.jsonl").string();
  if (fs::exists(qpath, ec)) {
    auto data = load_jsonl_file(qpath, LoadOptions{});
    if (!data.ok()) {
      warn(qpath + ": thought_naming not measured: " + data.error());
    } else {
      for (const auto& e : data->errors)
        warn(qpath + ":" + std::to_string(e.line) + ": skipped for thought_naming: " + e.error);
      for (const auto& smp : data->samples) {
        questions.emplace_back(smp.problem_id, smp.problem);
        answered[smp.problem_id] = {smp.problem, smp.solution};
      }
    }
  } else {
    warn(qpath + " is missing: thought_naming not measured");
  }
  for (auto& a : arms)
    if (a.eval && !questions.empty()) {
      a.thought_naming = thought_naming(*a.eval, questions);
      a.answer_vs_thought = answer_vs_thought(*a.eval, answered);
    }

  // Locate skill of every arm that was evaluated (the report is the costly
  // part): one held-out report per checkpoint, run side by side on up to
  // hardware_concurrency threads (each report runs its ops on its own thread).
  std::vector<std::pair<ArmResult*, std::string>> jobs;
  for (auto& a : arms) {
    if (!a.eval) continue;
    const std::string ckpt = arm_checkpoint(cli.dir, a.arm);
    if (!fs::exists(ckpt, ec)) {
      warn(ckpt + " is missing: " + a.arm + ".locate_skill is null");
      continue;
    }
    std::cerr << "gr1 results: locate skill of " << ckpt << " (" << cli.locate_items
              << " held-out items)\n";
    jobs.emplace_back(&a, ckpt);
  }
  std::vector<Result<json>> reports(jobs.size(), Status::Error("not run"));
  {
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t j; (j = next.fetch_add(1)) < jobs.size();)
        reports[j] = pretrain_report(*cfg, jobs[j].second, /*locate_only=*/true);
    };
    const size_t workers =
        std::min<size_t>(jobs.size(), std::max(1u, std::thread::hardware_concurrency()));
    // One LibTorch/BLAS thread per report: the reports are the parallelism.
    if (workers > 1) configure_compute_threads(1);
    std::vector<std::thread> pool;
    for (size_t w = 1; w < workers; ++w) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
  }
  for (size_t j = 0; j < jobs.size(); ++j) {
    if (!reports[j].ok()) {
      warn(jobs[j].second + ": locate skill not measured: " + reports[j].error());
      continue;
    }
    jobs[j].first->locate_skill = reports[j]->value("locate_box_score", json(nullptr));
  }

  json timings = nullptr;
  const std::string tpath = (fs::path(cli.dir) / "timings.json").string();
  if (fs::exists(tpath, ec)) {
    auto t = read_json_file(tpath);
    if (!t.ok() || !t->is_object())
      warn(tpath + ": ignored: " + (t.ok() ? std::string("not a JSON object") : t.error()));
    else
      timings = *t;
  }
  const std::string rpath = arm_checkpoint(cli.dir, "base") + ".report.json";
  if (fs::exists(rpath, ec)) {
    auto r = read_json_file(rpath);
    if (!r.ok()) {
      warn(rpath + ": ignored: " + r.error());
    } else {
      if (timings.is_null()) timings = json::object();
      timings["base_pretrain_seconds"] = pretrain_report_seconds(*r);
    }
  }
  if (timings.is_null()) timings = json::object();
  const double own = seconds_since(t0);
  timings["summarize_seconds"] = own;
  // The script's total covers the steps before this one.
  if (timings.contains("total_seconds") && timings["total_seconds"].is_number())
    timings["total_seconds"] = timings["total_seconds"].get<double>() + own;
  const bool cached = timings.contains("base_cached") && timings["base_cached"].is_boolean() &&
                      timings["base_cached"].get<bool>();
  if (cached && timings.contains("total_seconds") && timings["total_seconds"].is_number() &&
      timings.contains("base_pretrain_seconds") && timings["base_pretrain_seconds"].is_number())
    timings["total_with_base_pretrain_seconds"] =
        timings["total_seconds"].get<double>() + timings["base_pretrain_seconds"].get<double>();

  json summary = assemble_results(arms, timings, warnings);
  const std::string out = cli.out.empty() ? (fs::path(cli.dir) / "summary.json").string() : cli.out;
  {
    const std::string tmp = out + ".tmp";
    {
      std::ofstream f(tmp);
      f << summary.dump(2) << "\n";
      if (!f.good()) {
        std::cerr << "gr1 results: --out " << out << ": cannot write " << tmp << "\n";
        return 2;
      }
    }
    fs::rename(tmp, out, ec);
    if (ec) {
      std::cerr << "gr1 results: --out " << out << ": cannot rename " << tmp << ": " << ec.message()
                << "\n";
      return 2;
    }
  }

  std::vector<std::pair<std::string, json>> columns;
  for (const auto& arm : results_arms()) columns.emplace_back(arm, summary[arm]);
  std::cout << render_results_table(columns, results_table_rows());
  std::cout << "\ntargets (ground_r1 against the others):\n";
  for (const auto& [name, t] : summary["targets"].items()) {
    char buf[256];
    if (name == "srpo_vs_grpo_smallest_third") {
      std::snprintf(buf, sizeof buf, "  %-32s srpo %s vs ground_r1 %s (smallest evidence third)",
                    name.c_str(), cell(t, "srpo").c_str(), cell(t, "ground_r1").c_str());
    } else {
      const bool measured = t["value"].is_number();
      std::snprintf(buf, sizeof buf, "  %-32s %8s %s %.2f  %s", name.c_str(),
                    measured ? cell(t, "value").c_str() : "n/a",
                    t["comparison"].get<std::string>().c_str(), t["target"].get<double>(),
                    !measured              ? "not measured"
                    : t["met"].get<bool>() ? "met"
                                           : "NOT met");
    }
    std::cout << buf << "\n";
  }
  std::cout << "\n" << kPairedHeading << "\n";
  for (const auto& pair : results_pairs())
    std::cout << "  " << paired_line(std::get<0>(pair), summary["paired"][std::get<0>(pair)]) << "\n";
  // The first thought against the question, per family.
  std::set<std::string> families;
  for (const auto& arm : results_arms())
    if (summary[arm].is_object() && summary[arm].contains("thought_naming") &&
        summary[arm]["thought_naming"].is_object())
      for (const auto& [f, v] : summary[arm]["thought_naming"]["per_family"].items()) families.insert(f);
  if (!families.empty()) {
    std::cout << "\nfirst thought names the question's shape (spatial: names the anchor instead):\n";
    std::vector<std::pair<std::string, json>> cols;
    for (const auto& arm : results_arms()) {
      json col = json::object();
      const json& tn = summary[arm].is_object() && summary[arm].contains("thought_naming")
                           ? summary[arm]["thought_naming"]
                           : json(nullptr);
      if (tn.is_object()) {
        col["all"] = tn["names_target"];
        for (const auto& [f, v] : tn["per_family"].items())
          col[f] = f.rfind("spatial", 0) == 0 ? v["names_anchor"] : v["names_target"];
      }
      cols.emplace_back(arm, tn.is_object() ? col : json(nullptr));
    }
    std::vector<std::string> rows(families.begin(), families.end());
    rows.push_back("all");
    std::cout << render_results_table(cols, rows);
  }
  // The answer against what the answer turn's own thought read.
  {
    std::set<std::string> fams;
    for (const auto& arm : results_arms())
      if (summary[arm].is_object() && summary[arm].contains("answer_vs_thought") &&
          summary[arm]["answer_vs_thought"].is_object())
        for (const auto& [f, v] : summary[arm]["answer_vs_thought"]["per_family"].items()) fams.insert(f);
    if (!fams.empty()) {
      std::cout << "\nanswer follows the answer turn's thought (\"it shows V\": V, or V's option letter):\n";
      std::vector<std::pair<std::string, json>> cols;
      for (const auto& arm : results_arms()) {
        const json& av = summary[arm].is_object() && summary[arm].contains("answer_vs_thought")
                             ? summary[arm]["answer_vs_thought"]
                             : json(nullptr);
        json col = json::object();
        if (av.is_object()) {
          for (const auto& [f, v] : av["per_family"].items()) col[f] = v["follows_thought"];
          col["all"] = av["follows_thought"];
          col["accuracy"] = av["accuracy"];
          col["accuracy_from_thought"] = av["accuracy_from_thought"];
        }
        cols.emplace_back(arm, av.is_object() ? col : json(nullptr));
      }
      std::vector<std::string> rows(fams.begin(), fams.end());
      for (const char* r : {"all", "accuracy", "accuracy_from_thought"}) rows.push_back(r);
      std::cout << render_results_table(cols, rows);
    }
  }
  std::cout << "\ntimings (s):";
  for (const auto& [k, v] : summary["timings"].items()) {
    if (v.is_number_float()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1f", v.get<double>());
      std::cout << " " << k << "=" << buf;
    } else if (v.is_boolean()) {  // integers (n_test, rl_steps) are not times
      std::cout << " " << k << "=" << v.dump();
    }
  }
  std::cout << "\nwrote " << out << "\n";
  return 0;
}

int run_results_compare(const std::string& base, const std::string& trained) {
  std::vector<std::pair<std::string, json>> columns;
  std::vector<std::optional<json>> evals;
  for (const auto& [title, path] :
       std::vector<std::pair<std::string, std::string>>{{"base", base}, {"trained", trained}}) {
    auto ev = load_eval_file(path);
    if (!ev.ok()) {
      std::cerr << "gr1 results compare: " << ev.error() << "\n";
      return 2;
    }
    if (!*ev) {
      std::cerr << "gr1 results compare: " << path << ": no such file\n";
      return 2;
    }
    json s = (**ev)["summary"];
    s["box_score_given"] = eval_box_score_given(**ev);
    columns.emplace_back(title, std::move(s));
    evals.push_back(std::move(*ev));
  }
  std::vector<std::string> rows;
  for (const auto& r : results_table_rows())
    if (r != "locate_skill") rows.push_back(r);
  rows.push_back("box_rate");
  std::cout << "evaluation summaries (" << base << " vs " << trained << "):\n"
            << render_results_table(columns, rows, /*delta=*/true);
  std::cout << kPairedHeading << "\n  "
            << paired_line("trained_vs_base", paired_comparison(*evals[0], *evals[1])) << "\n";
  return 0;
}

}  // namespace gr1
