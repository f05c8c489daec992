#include "actors/eval.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "actors/rollout.h"
#include "common/config.h"
#include "common/crop.h"
#include "common/dataset.h"
#include "common/image_tensor.h"
#include "common/pictures.h"
#include "common/policy.h"
#include "common/prompt.h"
#include "common/reward.h"
#include "common/scoring.h"
#include "common/task.h"
#include "common/threads.h"
#include "common/tokenizer.h"
#include "common/turns.h"

namespace gr1 {
namespace {

using nlohmann::json;

json box_json(const Box& b) { return json::array({b.x1, b.y1, b.x2, b.y2}); }

template <typename T>
json opt_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

// Mean of `sum` over `n`, null for an empty set.
json mean_or_null(double sum, size_t n) { return n > 0 ? json(sum / double(n)) : json(nullptr); }

// A format reward of 2 means every turn matched its pattern; 2*k/n is exact
// in double for k == n, the tolerance only guards against future rescaling.
bool format_perfect(double format) { return format >= 2.0 - 1e-9; }

// Whether box `b` contains the centre of box `e` (edges included).
bool contains_centre(const Box& b, const Box& e) {
  const float cx = 0.5f * (e.x1 + e.x2), cy = 0.5f * (e.y1 + e.y2);
  return b.x1 <= cx && cx <= b.x2 && b.y1 <= cy && cy <= b.y2;
}

}  // namespace

double box_iou(const Box& a, const Box& b) {
  const double ix = std::max(0.f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const double iy = std::max(0.f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const double inter = ix * iy;
  const double uni = double(a.area()) + double(b.area()) - inter;
  return uni > 0 ? inter / uni : 0.0;
}

Result<EvalItem> make_eval_item(const Sample& sample, const Trajectory& t, int shown_size) {
  EvalItem it;
  it.problem_id = sample.problem_id;
  it.dataset = sample.dataset;
  it.turn_texts = turn_texts(t, shown_size);
  it.turns = static_cast<int>(t.turns.size());
  it.finished = t.finished;
  // The learner scores against the record's size (score_group); records
  // built in memory may leave it 0, then the pixels tell.
  const int W = sample.width > 0 ? sample.width : sample.image.cols;
  const int H = sample.height > 0 ? sample.height : sample.image.rows;
  if (!sample.bboxs.empty()) {
    it.evidence = sample.bboxs.front();
    if (W > 0 && H > 0) it.evidence_frac = double(it.evidence->area()) / (double(W) * H);
  }
  // The contract scores against the FIRST evidence box only (score_turns
  // takes the best of those it is given).
  std::vector<Box> evidence;
  if (it.evidence) evidence.push_back(*it.evidence);
  const std::optional<Box> last = last_box_shown(t);
  auto rb = score_turns(it.turn_texts, last, sample.solution, sample.dataset, evidence, W, H,
                        shown_size, shown_size);
  if (!rb.ok()) return rb.status();
  it.correct = rb->accuracy;
  it.format = rb->format;
  it.box_score = rb->box_score;
  if (!it.turn_texts.empty()) it.answer = extract_answer(it.turn_texts.back()).value_or("");
  for (const auto& b : t.boxes_shown)
    if (b) it.boxes.push_back(shown_to_original(*b, shown_size, shown_size, W, H));
  if (last && it.evidence && W > 0 && H > 0)
    it.iou = box_iou(shown_to_original(*last, shown_size, shown_size, W, H), *it.evidence);
  // images[k + 1] is the image shown after turn k (images[0]: the original).
  it.crops.assign(t.turns.size(), std::nullopt);
  for (size_t k = 0; k < t.turns.size() && k + 1 < t.images.size(); ++k)
    if (t.images[k + 1].is_crop) it.crops[k] = t.images[k + 1].box_orig;
  return it;
}

double pass_at_k(int n, int c, int k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n)
    throw std::invalid_argument(
        "pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n=" + std::to_string(n) +
        " c=" + std::to_string(c) + " k=" + std::to_string(k));
  if (n - c < k) return 1.0;  // every k-subset holds a right try
  // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i), without large binomials.
  double miss = 1.0;
  for (int i = n - c + 1; i <= n; ++i) miss *= 1.0 - double(k) / double(i);
  return 1.0 - miss;
}

json item_json(const EvalItem& it) {
  json boxes = json::array();
  for (const auto& b : it.boxes) boxes.push_back(box_json(b));
  json j{{"problem_id", it.problem_id},
         {"dataset", it.dataset},
         {"answer", it.answer},
         {"correct", it.correct},
         {"format", it.format},
         {"boxes", boxes},
         {"turns", it.turns},
         {"turn_texts", it.turn_texts},
         {"box_score", opt_json(it.box_score)},
         {"iou", opt_json(it.iou)},
         {"evidence", it.evidence ? box_json(*it.evidence) : json(nullptr)},
         {"evidence_frac", it.evidence_frac},
         {"finished", it.finished}};
  if (!it.sampled.empty()) {
    json tries = json::array();
    for (const auto& t : it.sampled)
      tries.push_back({{"answer", t.answer},
                       {"correct", t.correct},
                       {"format", t.format},
                       {"box", t.boxed},
                       {"turn_texts", t.turn_texts}});
    j["sampled"] = tries;
  }
  return j;
}

namespace {

// An answer counts right for pass@k (and the greedy one for
// greedy_wrong_sampled_right) when its accuracy reward is full.
bool full_reward(double correct) { return correct >= 1.0 - 1e-9; }

// The summary's "sampled" object (see summarize_items); null when no item
// has tries.
json summarize_sampled(const std::vector<EvalItem>& items) {
  size_t k_min = 0;
  for (const auto& it : items)
    if (!it.sampled.empty())
      k_min = k_min == 0 ? it.sampled.size() : std::min(k_min, it.sampled.size());
  if (k_min == 0) return json(nullptr);
  const int K = static_cast<int>(k_min);
  std::vector<int> ks;
  for (int k = 1; k < K; k *= 2) ks.push_back(k);
  ks.push_back(K);
  std::vector<double> pass(ks.size(), 0.0);
  double acc = 0, best = 0, perfect = 0, boxed = 0, headroom = 0;
  size_t tries = 0, n = 0;
  for (const auto& it : items) {
    if (it.sampled.empty()) continue;
    ++n;
    int right = 0;
    double top = 0;
    for (const auto& t : it.sampled) {
      ++tries;
      acc += t.correct;
      perfect += format_perfect(t.format);
      boxed += t.boxed;
      right += full_reward(t.correct);
      top = std::max(top, t.correct);
    }
    const int m = static_cast<int>(it.sampled.size());
    for (size_t j = 0; j < ks.size(); ++j) pass[j] += pass_at_k(m, right, ks[j]);
    best += top;
    headroom += !full_reward(it.correct) && right > 0;
  }
  json pass_at = json::object();
  for (size_t j = 0; j < ks.size(); ++j) pass_at[std::to_string(ks[j])] = pass[j] / double(n);
  return json{{"k", K},
              {"items", n},
              {"accuracy", acc / double(tries)},
              {"pass_at", pass_at},
              {"best_of_k", best / double(n)},
              {"format_rate", perfect / double(tries)},
              {"box_choice_rate", boxed / double(tries)},
              {"greedy_wrong_sampled_right", headroom / double(n)}};
}

}  // namespace

json summarize_items(const std::vector<EvalItem>& items) {
  const size_t n = items.size();
  double acc = 0, turns = 0;
  size_t perfect = 0, with_box = 0, with_ev = 0, given = 0, hit05 = 0;
  double box_sum = 0, given_sum = 0;
  // Items with evidence and a box, split by whether the scored (last) box
  // contains the evidence's centre: how often the box lands on the
  // evidence at all, and what that is worth in accuracy.
  size_t on_ev = 0, off_ev = 0;
  double acc_on = 0, acc_off = 0;
  for (const auto& it : items) {
    acc += it.correct;
    turns += it.turns;
    perfect += format_perfect(it.format);
    with_box += !it.boxes.empty();
    if (!it.evidence) continue;
    ++with_ev;
    if (it.box_score) {  // a box and evidence: scored
      box_sum += *it.box_score;
      given_sum += *it.box_score;
      ++given;
    }  // evidence but no box: counts 0 in box_score, absent from box_score_given
    hit05 += it.iou && *it.iou >= 0.5;
    if (!it.boxes.empty()) {
      const bool on = contains_centre(it.boxes.back(), *it.evidence);
      ++(on ? on_ev : off_ev);
      (on ? acc_on : acc_off) += it.correct;
    }
  }
  json s{{"n", n},
         {"accuracy", mean_or_null(acc, n)},
         {"format_rate", mean_or_null(double(perfect), n)},
         {"mean_turns", mean_or_null(turns, n)},
         {"box_score", mean_or_null(box_sum, with_ev)},
         {"box_score_given", mean_or_null(given_sum, given)},
         {"box_rate", mean_or_null(double(with_box), n)},
         {"acc_at_05", mean_or_null(double(hit05), with_ev)},
         {"box_on_evidence_rate", mean_or_null(double(on_ev), on_ev + off_ev)},
         {"accuracy_box_on_evidence", mean_or_null(acc_on, on_ev)},
         {"accuracy_box_off_evidence", mean_or_null(acc_off, off_ev)}};
  if (json sampled = summarize_sampled(items); !sampled.is_null()) s["sampled"] = sampled;
  return s;
}

json summarize(const std::vector<EvalItem>& items) {
  json s = summarize_items(items);

  std::map<std::string, std::vector<EvalItem>> families;
  for (const auto& it : items) families[it.dataset].push_back(it);
  json per_family = json::object();
  for (const auto& [name, part] : families) per_family[name] = summarize_items(part);
  s["per_family"] = per_family;

  std::vector<EvalItem> ev;
  for (const auto& it : items)
    if (it.evidence) ev.push_back(it);
  std::stable_sort(ev.begin(), ev.end(), [](const EvalItem& a, const EvalItem& b) {
    return a.evidence_frac < b.evidence_frac;
  });
  const size_t m = ev.size(), base = m / 3, rem = m % 3;
  const char* names[3] = {"small", "medium", "large"};
  json thirds = json::object();
  size_t begin = 0;
  for (size_t k = 0; k < 3; ++k) {
    const size_t len = base + (k < rem ? 1 : 0);
    std::vector<EvalItem> part(ev.begin() + begin, ev.begin() + begin + len);
    json j = summarize_items(part);
    j["frac_min"] = len > 0 ? json(part.front().evidence_frac) : json(nullptr);
    j["frac_max"] = len > 0 ? json(part.back().evidence_frac) : json(nullptr);
    thirds[names[k]] = j;
    begin += len;
  }
  s["per_evidence_third"] = thirds;
  return s;
}

Result<EvalResult> evaluate_checkpoint(const std::string& checkpoint,
                                       const std::vector<Sample>& samples,
                                       const RolloutOptions& rollout, const EvalOptions& options) {
  if (!prompt_mode_from_name(options.mode))
    return Result<EvalResult>::Error("eval: unknown mode '" + options.mode +
                                     "' (known: grounded, direct)");
  if (options.batch < 1)
    return Result<EvalResult>::Error("eval: batch must be >= 1, got " +
                                     std::to_string(options.batch));
  if (!(options.forced_box_scale >= 0) || !std::isfinite(options.forced_box_scale))
    return Result<EvalResult>::Error("eval: forced-box scale must be > 0 (0 = off), got " +
                                     std::to_string(options.forced_box_scale));
  if (options.forced_box_scale > 0 && options.mode != "grounded")
    return Result<EvalResult>::Error("eval: --forced-box needs --mode grounded");
  if (options.samples < 0)
    return Result<EvalResult>::Error("eval: samples must be >= 0 (0 = greedy only), got " +
                                     std::to_string(options.samples));
  if (options.samples > 0 && options.forced_box_scale > 0)
    return Result<EvalResult>::Error("eval: --samples cannot be combined with --forced-box");
  if (options.limit < 0)
    return Result<EvalResult>::Error("eval: limit must be >= 0, got " +
                                     std::to_string(options.limit));
  auto loaded = load_policy(checkpoint);
  if (!loaded.ok())
    return Result<EvalResult>::Error("checkpoint " + checkpoint + ": " + loaded.error());
  if (Status v = check_vocab_size(loaded->vocab_size); !v.ok())
    return Result<EvalResult>::Error("checkpoint " + checkpoint + ": " + v.message());
  const ModelOptions model = loaded->options;
  const int S = model.image_size;
  Policy policy = loaded->policy;
  policy->eval();
  RolloutOptions ro = rollout;
  ro.mode = options.mode;

  EvalResult res;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  try {
    RolloutEngine engine(policy, model, ro);
    // Greedy decoding never draws from it; rollout_batch takes one anyway.
    auto gen = torch::make_generator<torch::CPUGeneratorImpl>(0);
    // --samples: a generator of its own, so the greedy items stay the same.
    auto sample_gen = torch::make_generator<torch::CPUGeneratorImpl>(options.seed);
    const size_t n =
        options.limit > 0 ? std::min(samples.size(), size_t(options.limit)) : samples.size();

    std::vector<Sample> batch;
    std::vector<int64_t> batch_index;
    auto flush = [&]() -> Status {
      if (batch.empty()) return Status::Ok();
      std::vector<Trajectory> trajs;
      if (options.forced_box_scale > 0) {
        trajs = forced_box_trajectories(policy, model, ro, batch, options.forced_box_scale);
      } else {
        auto groups = engine.rollout_batch(batch, 1, 1, gen, /*greedy=*/true, nullptr);
        for (auto& g : groups) trajs.push_back(std::move(g.trajectories.front()));
      }
      std::vector<TrajectoryGroup> sampled;
      if (options.samples > 0)
        sampled =
            engine.rollout_batch(batch, options.samples, 1, sample_gen, /*greedy=*/false, nullptr);
      for (size_t i = 0; i < batch.size(); ++i) {
        auto item = make_eval_item(batch[i], trajs[i], S);
        if (!item.ok()) return item.status();  // checked before decoding; cannot happen
        item->index = batch_index[i];
        if (options.samples > 0)
          for (const Trajectory& t : sampled.at(i).trajectories) {
            auto tried = make_eval_item(batch[i], t, S);
            if (!tried.ok()) return tried.status();
            item->sampled.push_back(EvalItem::Try{
                tried->answer, tried->correct, tried->format,
                !t.boxes_shown.empty() && t.boxes_shown.front().has_value(), tried->turn_texts});
          }
        res.items.push_back(std::move(*item));
      }
      batch.clear();
      batch_index.clear();
      if (options.progress) {
        const double s = elapsed();
        std::fprintf(stderr, "gr1 eval: %zu/%zu questions, %.2f questions/s\n", res.items.size(), n,
                     s > 0 ? res.items.size() / s : 0.0);
      }
      return Status::Ok();
    };

    for (size_t i = 0; i < n; ++i) {
      const Sample& s = samples[i];
      auto skip = [&](const std::string& why) {
        res.skipped.push_back("problem_id " + std::to_string(s.problem_id) + " (dataset " +
                              s.dataset + "): " + why);
      };
      // Checked up front so one bad record costs that record, not the run.
      if (auto rule = accuracy_rule_for(s.dataset); !rule.ok()) {
        skip(rule.error());
        continue;
      }
      if (options.forced_box_scale > 0 && s.bboxs.empty()) {
        skip("no evidence box to force (--forced-box)");
        continue;
      }
      if (const size_t p = engine.first_prompt_tokens(s); p >= size_t(model.max_seq_len)) {
        skip("prompt of " + std::to_string(p) + " tokens does not fit model.max_seq_len " +
             std::to_string(model.max_seq_len));
        continue;
      }
      Sample copy = s;  // shares the pixels (cv::Mat is reference-counted)
      if (copy.image.empty()) {
        auto img = load_sample_image(copy);
        if (!img.ok()) {
          skip(img.error());
          continue;
        }
        copy.image = *img;
      }
      batch.push_back(std::move(copy));
      batch_index.push_back(static_cast<int64_t>(i));
      if (batch.size() >= size_t(options.batch))
        if (Status st = flush(); !st.ok()) return st;
    }
    if (Status st = flush(); !st.ok()) return st;
  } catch (const std::exception& e) {
    // LibTorch errors stop here, named.
    return Result<EvalResult>::Error("eval: " + std::string(e.what()));
  }

  const double seconds = elapsed();
  res.summary = summarize(res.items);
  res.summary["mode"] = options.mode;
  if (options.forced_box_scale > 0) res.summary["forced_box_scale"] = options.forced_box_scale;
  if (options.samples > 0)
    res.summary["sampling"] = {{"samples", options.samples},
                               {"seed", options.seed},
                               {"temperature", ro.temperature},
                               {"top_k", ro.top_k},
                               {"top_p", ro.top_p},
                               {"location_temperature", ro.location_temperature}};
  if (ro.box_order) res.summary["box_order"] = true;
  res.summary["checkpoint"] = checkpoint;
  res.summary["seconds"] = seconds;
  res.summary["questions_per_s"] = seconds > 0 ? res.items.size() / seconds : 0.0;
  return res;
}

namespace {

std::string fmt(const json& v, const char* spec = "%.4f") {
  if (!v.is_number()) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v.get<double>());
  return buf;
}

// Lists at most `max_shown` entries of `what` on stderr, with the total.
template <typename Seq, typename Fn>
void report_list(const std::string& headline, const Seq& seq, Fn line, size_t max_shown = 5) {
  std::cerr << "gr1 eval: " << headline << "\n";
  size_t k = 0;
  for (const auto& e : seq) {
    if (k++ == max_shown) {
      std::cerr << "  ... and " << (seq.size() - max_shown) << " more\n";
      break;
    }
    std::cerr << "  " << line(e) << "\n";
  }
}

}  // namespace

int run_eval(const EvalCli& cli) {
  configure_compute_threads(cli.threads);

  Config cfg;
  if (!cli.config.empty()) {
    auto c = load_config(cli.config, cli.sets);
    if (!c.ok()) {
      std::cerr << "gr1 eval: --config " << cli.config << ": " << c.error() << "\n";
      return 2;
    }
    cfg = *c;
  } else if (!cli.sets.empty()) {
    for (const auto& s : cli.sets)
      if (Status st = apply_override(cfg, s); !st.ok()) {
        std::cerr << "gr1 eval: --set " << s << ": " << st.message() << "\n";
        return 2;
      }
    if (Status st = validate_config(cfg); !st.ok()) {
      std::cerr << "gr1 eval: --set: " << st.message() << "\n";
      return 2;
    }
  }
  // Synthetic benchmark files name their datasets "<prefix>_<family>[_mc]";
  // their accuracy rules exist once the task registers them. Real data does
  // not need this, so a failure is only a warning.
  if (auto task = SyntheticTask::create(cfg.task); !task.ok())
    std::cerr << "gr1 eval: warning: synthetic dataset names not registered: " << task.error()
              << "\n";

  std::filesystem::path data(cli.data);
  std::error_code ec;
  if (std::filesystem::is_directory(data, ec)) data /= "data.jsonl";
  LoadOptions lo;
  lo.keep_images = true;
  auto report = load_jsonl_file(data.string(), lo);
  if (!report.ok()) {
    std::cerr << "gr1 eval: --data: " << report.error() << "\n";
    return 2;
  }
  if (!report->errors.empty())
    report_list(std::to_string(report->errors.size()) + " of " + std::to_string(report->lines) +
                    " lines of " + data.string() + " are bad and skipped:",
                report->errors, [](const LineError& e) {
                  return "line " + std::to_string(e.line) + ": " + e.error;
                });
  if (report->samples.empty()) {
    std::cerr << "gr1 eval: no valid sample in " << data.string() << "\n";
    return 2;
  }

  EvalOptions eo;
  eo.mode = cli.mode;
  eo.batch = cli.batch;
  eo.limit = cli.limit;
  eo.forced_box_scale = cli.forced_box;
  eo.samples = cli.samples;
  eo.seed = cli.seed;
  eo.progress = true;
  auto res = evaluate_checkpoint(cli.checkpoint, report->samples, cfg.rollout, eo);
  if (!res.ok()) {
    std::cerr << "gr1 eval: " << res.error() << "\n";
    return 2;
  }
  if (!res->skipped.empty())
    report_list(std::to_string(res->skipped.size()) + " samples not evaluated:", res->skipped,
                [](const std::string& s) { return s; });
  if (res->items.empty()) {
    std::cerr << "gr1 eval: no sample could be evaluated\n";
    return 2;
  }

  json summary = res->summary;
  summary["data"] = data.string();
  summary["skipped"] = {{"bad_lines", report->errors.size()}, {"samples", res->skipped.size()}};
  json items = json::array();
  for (const auto& it : res->items) items.push_back(item_json(it));
  {
    std::ofstream f(cli.out);
    f << json{{"items", items}, {"summary", summary}}.dump(1) << "\n";
    if (!f.good()) {
      std::cerr << "gr1 eval: --out " << cli.out << ": cannot write the file\n";
      return 2;
    }
  }

  if (!cli.gallery.empty()) {
    std::vector<GalleryItem> gallery;
    for (const auto& it : res->items) {
      if (gallery.size() == 8) break;
      const Sample& s = report->samples[it.index];
      GalleryItem g;
      g.image = s.image;
      g.title = "#" + std::to_string(it.problem_id) + " " + it.dataset;
      g.question = s.problem;
      g.turns = it.turn_texts;
      g.boxes_orig = it.crops;
      g.evidence = s.bboxs;
      g.answer = it.answer;
      g.truth = solution_truth(s.solution);
      g.accuracy = it.correct;
      gallery.push_back(std::move(g));
    }
    if (Status st = write_gallery_png(gallery, cli.gallery); !st.ok()) {
      std::cerr << "gr1 eval: --gallery " << cli.gallery << ": " << st.message() << "\n";
      return 2;
    }
  }

  std::cout << "eval (" << cli.mode << "): n=" << summary["n"].get<size_t>()
            << " accuracy=" << fmt(summary["accuracy"])
            << " format_rate=" << fmt(summary["format_rate"])
            << " mean_turns=" << fmt(summary["mean_turns"], "%.2f")
            << " box_score=" << fmt(summary["box_score"])
            << " acc_at_05=" << fmt(summary["acc_at_05"])
            << " questions_per_s=" << fmt(summary["questions_per_s"], "%.2f") << "\n";
  if (summary.contains("sampled")) {
    const json& sm = summary["sampled"];
    const std::string k = std::to_string(sm["k"].get<int>());
    std::cout << "sampled (" << k << " per question, temperature "
              << fmt(summary["sampling"]["temperature"], "%.2f")
              << "): accuracy=" << fmt(sm["accuracy"]) << " pass@" << k << "="
              << fmt(sm["pass_at"][k]) << " box_choice_rate=" << fmt(sm["box_choice_rate"])
              << " greedy_wrong_sampled_right=" << fmt(sm["greedy_wrong_sampled_right"]) << "\n";
  }
  return 0;
}

}  // namespace gr1
