#include "learner/vision_pretrain.h"

#include "learner/data_parallel.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/crop.h"
#include "common/image_tensor.h"
#include "common/threads.h"
#include "common/tokenizer.h"

namespace gr1 {
namespace {

// splitmix64: draws are pure functions of (index, stream, seed).
uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

constexpr Family kFamilies[] = {Family::kText, Family::kAttribute, Family::kCounting};
constexpr int kProbeMinScenes = 256;  // measure_vision: probe-fitting scenes at least
constexpr int kProbeIterations = 300;
constexpr double kProbeLr = 1e-2;
constexpr int64_t kEncodeChunk = 64;  // images per no-grad encoder call

// Whole-pixel box in the shown frame that covers `b` (original pixels), as
// learner/pretrain.cc converts teacher boxes.
Box to_shown(const Box& b, int S, int W, int H) {
  auto f = [](float v, int s, int n) { return static_cast<float>(std::floor(v * s / n)); };
  auto c = [](float v, int s, int n) { return static_cast<float>(std::ceil(v * s / n)); };
  Box o{f(b.x1, S, W), f(b.y1, S, H), c(b.x2, S, W), c(b.y2, S, H)};
  o.x1 = std::clamp(o.x1, 0.f, static_cast<float>(S));
  o.y1 = std::clamp(o.y1, 0.f, static_cast<float>(S));
  o.x2 = std::clamp(o.x2, o.x1 + 1, static_cast<float>(S));
  o.y2 = std::clamp(o.y2, o.y1 + 1, static_cast<float>(S));
  return o;
}

int64_t class_index(const std::vector<std::string>& classes, const std::string& name) {
  const auto it = std::find(classes.begin(), classes.end(), name);
  return it == classes.end() ? -1 : static_cast<int64_t>(it - classes.begin());
}

TaskOptions vision_task_options(const TaskOptions& base) {
  TaskOptions t = base;
  t.families = "text,attribute,counting";
  return t;
}

// The family of scene `index` of `stream`, and the draw that picks the
// cropped object.
std::pair<Family, uint64_t> scene_draws(uint64_t index, uint64_t stream) {
  uint64_t r = mix64(index * 0x9E37ULL + stream * 0x632BE5ULL);
  const Family family = kFamilies[r % 3];
  return {family, mix64(r)};
}

// `tight` >= 0: the crop's box lies that far from the detail's own box
// towards the shape's (0 = the detail's box), snapped outward to the
// location grid as a box the policy could write; < 0: the shape's box.
Result<VisionExample> example_from_scene(const Scene& sc, const ModelOptions& m,
                                         const RolloutOptions& ro, uint64_t pick, bool crop,
                                         double tight) {
  const int S = m.image_size, W = sc.image.cols, H = sc.image.rows;
  VisionExample ex;
  ex.ref = ImageRef{false, {}};
  if (crop) {
    std::vector<int> with_detail;
    for (int i = 0; i < static_cast<int>(sc.objects.size()); ++i)
      if (sc.objects[i].detail != DetailKind::kNone) with_detail.push_back(i);
    if (with_detail.empty()) return Status::Error("vision pretraining: a scene without details");
    ex.object = with_detail[pick % with_detail.size()];
    const SceneObject& o = sc.objects[ex.object];
    Box b = o.box;
    if (tight >= 0) {
      const Box& d = o.detail_box;
      if (!(d.width() > 0 && d.height() > 0))
        return Status::Error("vision pretraining: object \"" + o.description() +
                             "\" has a detail without a detail box");
      b = tight_object_box(o, tight);
    }
    const Box shown = snap_box_to_location_grid(to_shown(b, S, W, H), S);
    auto region = shown_box_to_crop(shown, S, S, W, H, ro.min_crop_px, ro.max_aspect);
    if (!region.ok()) return Status::Error("vision pretraining: crop rejected: " + region.error());
    ex.ref = ImageRef{true, *region};
    ex.detail = class_index(vision_detail_classes(), o.value);
    if (ex.detail < 0)
      return Status::Error("vision pretraining: detail value \"" + o.value +
                           "\" not in the detail vocabulary");
  }
  ex.region = shown_region(ex.ref, W, H);
  auto labels = patch_labels(sc.objects, ex.region, S, m.patch_size);
  if (!labels.ok()) return labels.status();
  ex.labels = std::move(*labels);
  ex.pixels = image_block_tensor(sc.image, ex.ref, S);
  return ex;
}

// Images of a batch: (scene index, crop?) in order; both views of one index
// share one scene.
struct Item {
  uint64_t index;
  bool crop;
  double tight = -1;  // crops: example_from_scene's `tight`
};

struct Batch {
  torch::Tensor pixels;                 // [N,3,S,S]
  torch::Tensor colour, shape, object;  // [N*P] int64
  torch::Tensor patch_detail;           // [N*P] int64: 0 none, else 1 + detail class
  torch::Tensor box;                    // [N*P, 8] float: PatchLabels::box
  torch::Tensor full_patch;             // [N*P] bool: the patch belongs to a full view
  torch::Tensor crop_rows;              // [K] int64: images that are crops
  torch::Tensor detail;                 // [K] int64
};

Result<Batch> make_batch(const SyntheticTask& task, const Config& cfg,
                         const std::vector<Item>& items, uint64_t stream) {
  std::vector<torch::Tensor> pixels;
  std::vector<int64_t> colour, shape, object, patch_detail, crop_rows, detail;
  std::vector<float> box;
  std::vector<uint8_t> full;
  Scene sc;
  uint64_t scene_index = 0;
  bool have_scene = false;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto [family, pick] = scene_draws(items[i].index, stream);
    if (!have_scene || scene_index != items[i].index) {
      sc = task.scene(items[i].index, family, stream);
      scene_index = items[i].index;
      have_scene = true;
    }
    auto ex = example_from_scene(sc, cfg.model, cfg.rollout, pick, items[i].crop, items[i].tight);
    if (!ex.ok()) return ex.status();
    pixels.push_back(ex->pixels);
    const auto& l = ex->labels;
    colour.insert(colour.end(), l.colour.begin(), l.colour.end());
    shape.insert(shape.end(), l.shape.begin(), l.shape.end());
    object.insert(object.end(), l.object.begin(), l.object.end());
    patch_detail.insert(patch_detail.end(), l.detail.begin(), l.detail.end());
    box.insert(box.end(), l.box.begin(), l.box.end());
    full.insert(full.end(), l.colour.size(), items[i].crop ? 0 : 1);
    if (items[i].crop) {
      crop_rows.push_back(static_cast<int64_t>(i));
      detail.push_back(ex->detail);
    }
  }
  auto vec = [](const std::vector<int64_t>& v) {
    if (v.empty()) return torch::empty({0}, torch::kInt64);
    return torch::from_blob(const_cast<int64_t*>(v.data()), {static_cast<int64_t>(v.size())},
                            torch::kInt64)
        .clone();
  };
  Batch b;
  b.pixels = torch::stack(pixels);
  b.colour = vec(colour);
  b.shape = vec(shape);
  b.object = vec(object);
  b.patch_detail = vec(patch_detail);
  b.box = torch::tensor(box, torch::kFloat32).view({-1, 8});
  b.full_patch = torch::from_blob(full.data(), {static_cast<int64_t>(full.size())}, torch::kUInt8)
                     .to(torch::kBool);
  b.crop_rows = vec(crop_rows);
  b.detail = vec(detail);
  return b;
}

// The heads: linear maps from encoder rows to classes, as plain parameters
// initialised like LibTorch's Linear (U(+-1/sqrt(d))) from a generator of
// their own: the global torch generator is neither used nor reset. An
// optional per-feature standardisation (probes on frozen features) is
// applied first.
struct HeadsImpl : torch::nn::Module {
  HeadsImpl(int64_t d, uint64_t seed) {
    auto gen = at::detail::createCPUGenerator(mix64(seed ^ 0x5EEDF00DULL));
    const double bound = 1.0 / std::sqrt(static_cast<double>(d));
    auto linear = [&](const std::string& name, int64_t out) {
      auto w = torch::empty({out, d}).uniform_(-bound, bound, gen);
      auto b = torch::empty({out}).uniform_(-bound, bound, gen);
      return std::pair{register_parameter(name + "_weight", w),
                       register_parameter(name + "_bias", b)};
    };
    colour = linear("colour", static_cast<int64_t>(vision_colour_classes().size()));
    shape = linear("shape", static_cast<int64_t>(vision_shape_classes().size()));
    object = linear("object", 2);
    detail = linear("detail", static_cast<int64_t>(vision_detail_classes().size()));
    patch_detail = linear("patch_detail", static_cast<int64_t>(vision_detail_classes().size()) + 1);
    box = linear("box", 8);
  }
  torch::Tensor apply(const std::pair<torch::Tensor, torch::Tensor>& l, torch::Tensor x) const {
    if (shift.defined()) x = (x - shift) * scale;
    return torch::addmm(l.second, x, l.first.t());
  }
  std::pair<torch::Tensor, torch::Tensor> colour, shape, object, detail, patch_detail, box;  // weight, bias
  torch::Tensor shift, scale;  // standardisation (undefined: none)
};
TORCH_MODULE(Heads);

// Encoder rows -> head inputs: patch rows [N*P,d] and the pooled rows of the
// crops [K,d] (summary row, or the max over the patch rows without one).
struct Features {
  torch::Tensor patches, pooled;
};

Features features(const torch::Tensor& emb, const torch::Tensor& crop_rows, const ModelOptions& m) {
  const int64_t P = m.patch_tokens();
  auto patches = emb.slice(1, 0, P);
  auto pooled = m.summary_token ? emb.select(1, P) : std::get<0>(patches.max(1));
  return {patches.reshape({-1, emb.size(2)}), pooled.index_select(0, crop_rows)};
}

struct Logits {
  torch::Tensor colour, shape, object, detail, patch_detail, box;
};

Logits apply_heads(Heads& h, const Features& f) {
  return {h->apply(h->colour, f.patches), h->apply(h->shape, f.patches),
          h->apply(h->object, f.patches), h->apply(h->detail, f.pooled),
          h->apply(h->patch_detail, f.patches), h->apply(h->box, f.patches)};
}

struct LossParts {
  torch::Tensor total, colour, shape, object, detail, patch_detail, box;
};

LossParts loss_of(const Logits& lg, const torch::Tensor& colour, const torch::Tensor& shape,
                  const torch::Tensor& object, const torch::Tensor& detail,
                  const torch::Tensor& patch_detail, const torch::Tensor& box, double box_weight) {
  namespace F = torch::nn::functional;
  LossParts l;
  l.colour = F::cross_entropy(lg.colour, colour);
  l.shape = F::cross_entropy(lg.shape, shape);
  l.object = F::cross_entropy(lg.object, object);
  l.detail = detail.numel() > 0 ? F::cross_entropy(lg.detail, detail) : torch::zeros({});
  l.patch_detail = F::cross_entropy(lg.patch_detail, patch_detail);
  // Smooth L1 over the object patches' 8 box numbers (grid units).
  const auto on = object.eq(1).to(torch::kFloat32).unsqueeze(1);
  const double n_on = std::max(1.0, on.sum().item<double>() * 8);
  l.box = (F::smooth_l1_loss(lg.box, box, F::SmoothL1LossFuncOptions().reduction(torch::kNone)) * on)
              .sum() /
          n_on;
  l.total = l.colour + l.shape + l.object + l.detail + l.patch_detail + box_weight * l.box;
  return l;
}

// The training / probe items of `n` scenes from index `first`: every scene
// shown whole and as a crop.
std::vector<Item> pair_items(uint64_t first, int n) {
  std::vector<Item> items;
  for (int k = 0; k < n; ++k) {
    items.push_back({first + k, false});
    items.push_back({first + k, true});
  }
  return items;
}

// Frozen-encoder features and labels of `items` (no grad, in chunks).
struct Encoded {
  Features f;
  torch::Tensor colour, shape, object, full_patch, detail, patch_detail, box;
};

Result<Encoded> encode_items(Policy& policy, const SyntheticTask& task, const Config& cfg,
                             const std::vector<Item>& items, uint64_t stream) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> patches, pooled, colour, shape, object, full, detail, patch_detail, box;
  for (size_t s = 0; s < items.size(); s += kEncodeChunk) {
    const std::vector<Item> chunk(items.begin() + s,
                                  items.begin() + std::min(items.size(), s + kEncodeChunk));
    auto b = make_batch(task, cfg, chunk, stream);
    if (!b.ok()) return b.status();
    auto f = features(policy->encode_images(b->pixels), b->crop_rows, cfg.model);
    patches.push_back(f.patches);
    pooled.push_back(f.pooled);
    colour.push_back(b->colour);
    shape.push_back(b->shape);
    object.push_back(b->object);
    full.push_back(b->full_patch);
    detail.push_back(b->detail);
    patch_detail.push_back(b->patch_detail);
    box.push_back(b->box);
  }
  return Encoded{{torch::cat(patches), torch::cat(pooled)},
                 torch::cat(colour),
                 torch::cat(shape),
                 torch::cat(object),
                 torch::cat(full),
                 torch::cat(detail),
                 torch::cat(patch_detail),
                 torch::cat(box)};
}

// Held-out accuracies of `heads` on the encoder's features of `n` scenes.
Status measure_heads(Policy& policy, Heads& heads, const SyntheticTask& task, const Config& cfg,
                     int n, VisionPretrainReport& rep) {
  rep.held_out_images = 0;
  if (n <= 0) return Status::Ok();
  auto enc = encode_items(policy, task, cfg, pair_items(0, n), kVisionHeldOutStream);
  if (!enc.ok()) return enc.status();
  torch::NoGradGuard ng;
  const Logits lg = apply_heads(heads, enc->f);
  const auto full = enc->full_patch;
  auto frac = [](const torch::Tensor& hit, const torch::Tensor& mask) {
    const double m = mask.sum().item<double>();
    return m > 0 ? (hit & mask).sum().item<double>() / m : 0.0;
  };
  const auto colour_hit = lg.colour.argmax(1) == enc->colour;
  const auto shape_hit = lg.shape.argmax(1) == enc->shape;
  const auto in_object = full & (enc->object == 1);
  rep.colour_accuracy = frac(colour_hit, full);
  rep.shape_accuracy = frac(shape_hit, full);
  rep.object_accuracy = frac(lg.object.argmax(1) == enc->object, full);
  rep.colour_accuracy_objects = frac(colour_hit, in_object);
  rep.shape_accuracy_objects = frac(shape_hit, in_object);
  rep.background_share = frac(enc->object == 0, full);
  rep.detail_accuracy =
      enc->detail.numel() > 0
          ? (lg.detail.argmax(1) == enc->detail).to(torch::kFloat64).mean().item<double>()
          : 0.0;
  {
    // The same scenes' crops cut at the detail's own box.
    std::vector<Item> tight;
    for (int k = 0; k < n; ++k) tight.push_back({static_cast<uint64_t>(k), true, 0.0});
    auto te = encode_items(policy, task, cfg, tight, kVisionHeldOutStream);
    if (!te.ok()) return te.status();
    rep.tight_detail_accuracy =
        te->detail.numel() > 0
            ? (apply_heads(heads, te->f).detail.argmax(1) == te->detail)
                  .to(torch::kFloat64)
                  .mean()
                  .item<double>()
            : 0.0;
  }
  rep.patch_detail_accuracy = frac(lg.patch_detail.argmax(1) == enc->patch_detail, enc->patch_detail > 0);
  {
    const auto m = in_object.to(torch::kFloat32);
    const auto err = (lg.box.slice(1, 0, 4) - enc->box.slice(1, 0, 4)).abs().mean(1);
    rep.box_error_cells = (err * m).sum().item<double>() / std::max(1.0, m.sum().item<double>());
  }
  rep.held_out_images = 2 * n;
  return Status::Ok();
}

Status check_model(const Policy& policy, const ModelOptions& m) {
  const ModelOptions& p = policy->options();
  auto differ = [](const char* field, double a, double b) {
    char buf[256];
    std::snprintf(buf, sizeof(buf), "vision pretraining: the policy's model.%s %g != config's %g",
                  field, a, b);
    return Status::Error(buf);
  };
  if (p.image_size != m.image_size) return differ("image_size", p.image_size, m.image_size);
  if (p.patch_size != m.patch_size) return differ("patch_size", p.patch_size, m.patch_size);
  if (p.d_model != m.d_model) return differ("d_model", p.d_model, m.d_model);
  if (p.summary_token != m.summary_token)
    return differ("summary_token", p.summary_token, m.summary_token);
  return Status::Ok();
}

Status check_options(const PretrainOptions& po) {
  auto err = [](const std::string& f, const std::string& what) {
    return Status::Error("pretrain." + f + ": " + what);
  };
  if (po.vision_batch < 1) return err("vision_batch", "must be >= 1");
  if (!(po.vision_box_weight >= 0) || !std::isfinite(po.vision_box_weight))
    return err("vision_box_weight", "must be >= 0");
  if (!(po.vision_crop_fraction >= 0 && po.vision_crop_fraction <= 1))
    return err("vision_crop_fraction", "must be in [0, 1]");
  if (!(po.vision_lr > 0) || !std::isfinite(po.vision_lr)) return err("vision_lr", "must be > 0");
  if (!(po.lr_final_frac >= 0) || !std::isfinite(po.lr_final_frac))
    return err("lr_final_frac", "must be >= 0");
  if (po.warmup_steps < 0) return err("warmup_steps", "must be >= 0");
  if (!(po.weight_decay >= 0) || !std::isfinite(po.weight_decay))
    return err("weight_decay", "must be >= 0");
  if (!(po.grad_clip > 0)) return err("grad_clip", "must be > 0");
  if (po.log_every < 1) return err("log_every", "must be >= 1");
  if (po.report_items < 0) return err("report_items", "must be >= 0");
  if (po.threads < 1) return err("threads", "must be >= 1");
  return Status::Ok();
}

// requires_grad on for the encoder during the stage, restored after it.
class VisionGradScope {
 public:
  explicit VisionGradScope(const std::vector<torch::Tensor>& params) : params_(params) {
    for (auto& p : params_) {
      flags_.push_back(p.requires_grad());
      p.requires_grad_(true);
    }
  }
  ~VisionGradScope() {
    for (size_t i = 0; i < params_.size(); ++i) {
      params_[i].mutable_grad() = torch::Tensor();
      params_[i].requires_grad_(flags_[i]);
    }
  }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<bool> flags_;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

const std::vector<std::string>& vision_colour_classes() {
  static const std::vector<std::string> v = {"background", "red",    "green", "blue", "yellow",
                                             "orange",     "purple", "cyan",  "brown"};
  return v;
}

const std::vector<std::string>& vision_shape_classes() {
  static const std::vector<std::string> v = {"background", "circle", "square", "triangle"};
  return v;
}

const std::vector<std::string>& vision_detail_classes() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> out;
    auto add = [&out](const std::string& s) {
      if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    };
    for (char c : std::string_view("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")) add(std::string(1, c));
    for (size_t i = 1; i < vision_colour_classes().size(); ++i) add(vision_colour_classes()[i]);
    add("black");
    add("white");
    for (int k = 1; k <= 5; ++k) add(std::to_string(k));
    return out;
  }();
  return v;
}

double tight_crop_draw(uint64_t h, double share) {
  if (!(share > 0)) return -1;
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  if (u >= share) return -1;
  return static_cast<double>(mix64(h) >> 11) * 0x1.0p-53;
}

Box tight_object_box(const SceneObject& o, double t) {
  const Box& d = o.detail_box;
  if (!(d.width() > 0 && d.height() > 0)) return o.box;
  const float f = static_cast<float>(std::clamp(t, 0.0, 1.0));
  return Box{d.x1 + f * (o.box.x1 - d.x1), d.y1 + f * (o.box.y1 - d.y1),
             d.x2 + f * (o.box.x2 - d.x2), d.y2 + f * (o.box.y2 - d.y2)};
}

Box shown_region(const ImageRef& ref, int W, int H) {
  if (!ref.is_crop) return Box{0, 0, static_cast<float>(W), static_cast<float>(H)};
  auto fl = [](float v, int hi) {
    return static_cast<float>(std::clamp<double>(std::floor(v), 0, hi));
  };
  auto ce = [](float v, int hi) {
    return static_cast<float>(std::clamp<double>(std::ceil(v), 0, hi));
  };
  return Box{fl(ref.box_orig.x1, W), fl(ref.box_orig.y1, H), ce(ref.box_orig.x2, W),
             ce(ref.box_orig.y2, H)};
}

Result<PatchLabels> patch_labels(const std::vector<SceneObject>& objects, const Box& region,
                                 int image_size, int patch_size) {
  if (image_size <= 0 || patch_size <= 0 || image_size % patch_size != 0)
    return Status::Error("patch_labels: image_size must be a positive multiple of patch_size");
  if (!(region.width() > 0) || !(region.height() > 0))
    return Status::Error("patch_labels: empty region");
  std::vector<int64_t> colour_of, shape_of, detail_of;
  for (const SceneObject& o : objects) {
    detail_of.push_back(o.detail == DetailKind::kNone
                            ? -1
                            : class_index(vision_detail_classes(), o.value));
    if (o.detail != DetailKind::kNone && detail_of.back() < 0)
      return Status::Error("patch_labels: detail value \"" + o.value + "\" of \"" +
                           o.description() + "\" not in the detail vocabulary");
    colour_of.push_back(class_index(vision_colour_classes(), o.colour));
    shape_of.push_back(class_index(vision_shape_classes(), o.shape));
    if (colour_of.back() <= 0 || shape_of.back() <= 0)
      return Status::Error("patch_labels: object \"" + o.description() +
                           "\" not in the colour/shape vocabularies");
  }
  const int g = image_size / patch_size;
  PatchLabels l;
  l.colour.assign(static_cast<size_t>(g) * g, 0);
  l.shape.assign(l.colour.size(), 0);
  l.object.assign(l.colour.size(), 0);
  l.detail.assign(l.colour.size(), 0);
  l.box.assign(l.colour.size() * 8, 0.f);
  const double sx = region.width() / image_size, sy = region.height() / image_size;
  // Dense detail labels: overlap of each patch's original-pixel rectangle
  // with each detail box.
  for (int r = 0; r < g; ++r) {
    for (int c = 0; c < g; ++c) {
      const double px1 = region.x1 + c * patch_size * sx, px2 = px1 + patch_size * sx;
      const double py1 = region.y1 + r * patch_size * sy, py2 = py1 + patch_size * sy;
      double best = 0;
      for (size_t i = 0; i < objects.size(); ++i) {
        if (detail_of[i] < 0) continue;
        const Box& d = objects[i].detail_box;
        const double ow = std::min<double>(px2, d.x2) - std::max<double>(px1, d.x1);
        const double oh = std::min<double>(py2, d.y2) - std::max<double>(py1, d.y1);
        if (ow <= 0 || oh <= 0) continue;
        const double area = ow * oh;
        const double small = std::min((px2 - px1) * (py2 - py1),
                                      static_cast<double>(d.width()) * d.height());
        if (area >= 0.25 * small && area > best) {
          best = area;
          l.detail[static_cast<size_t>(r) * g + c] = 1 + detail_of[i];
        }
      }
    }
  }
  for (int r = 0; r < g; ++r) {
    for (int c = 0; c < g; ++c) {
      const double x = region.x1 + (c + 0.5) * patch_size * sx;
      const double y = region.y1 + (r + 0.5) * patch_size * sy;
      for (int i = static_cast<int>(objects.size()) - 1; i >= 0; --i) {  // last drawn on top
        const Box& b = objects[i].box;
        if (x >= b.x1 && x < b.x2 && y >= b.y1 && y < b.y2) {
          const size_t k = static_cast<size_t>(r) * g + c;
          l.colour[k] = colour_of[i];
          l.shape[k] = shape_of[i];
          l.object[k] = 1;
          const double cells = kVisionBoxUnits;
          auto gx = [&](double v) {
            return std::clamp((v - region.x1) / region.width() * cells, 0.0, cells);
          };
          auto gy = [&](double v) {
            return std::clamp((v - region.y1) / region.height() * cells, 0.0, cells);
          };
          const double cx = gx(x), cy = gy(y);
          const double bx[4] = {gx(b.x1), gy(b.y1), gx(b.x2), gy(b.y2)};
          const double rel[4] = {cx - bx[0], cy - bx[1], bx[2] - cx, bx[3] - cy};
          for (int q = 0; q < 4; ++q) {
            l.box[k * 8 + q] = static_cast<float>(bx[q]);
            l.box[k * 8 + 4 + q] = static_cast<float>(rel[q]);
          }
          break;
        }
      }
    }
  }
  return l;
}

Result<VisionExample> make_vision_example(const Config& cfg, uint64_t index, uint64_t stream,
                                          bool crop, double tight) {
  auto task = SyntheticTask::create(vision_task_options(cfg.task));
  if (!task.ok()) return task.status();
  if (cfg.model.image_size <= 0 || cfg.model.patch_size <= 0 ||
      cfg.model.image_size % cfg.model.patch_size != 0)
    return Status::Error("model.image_size must be a positive multiple of model.patch_size");
  try {
    const auto [family, pick] = scene_draws(index, stream);
    const Scene sc = task->scene(index, family, stream);
    auto ex = example_from_scene(sc, cfg.model, cfg.rollout, pick, crop, tight);
    if (ex.ok()) ex->family = family;
    return ex;
  } catch (const std::exception& e) {
    return Status::Error(std::string("vision example: ") + e.what());
  }
}

nlohmann::json VisionPretrainReport::to_json() const {
  return {{"steps", steps},
          {"seconds", seconds},
          {"initial_loss", initial_loss},
          {"final_loss", final_loss},
          {"colour_accuracy", colour_accuracy},
          {"shape_accuracy", shape_accuracy},
          {"object_accuracy", object_accuracy},
          {"colour_accuracy_objects", colour_accuracy_objects},
          {"shape_accuracy_objects", shape_accuracy_objects},
          {"background_share", background_share},
          {"detail_accuracy", detail_accuracy},
          {"tight_detail_accuracy", tight_detail_accuracy},
          {"patch_detail_accuracy", patch_detail_accuracy},
          {"box_error_cells", box_error_cells},
          {"held_out_images", held_out_images}};
}

Result<VisionPretrainReport> pretrain_vision(Policy& policy, const Config& cfg, DataParallel* dp) {
  const PretrainOptions& po = cfg.pretrain;
  if (po.vision_steps < 0) return Status::Error("pretrain.vision_steps: must be >= 0");
  VisionPretrainReport rep;
  if (po.vision_steps == 0) return rep;
  if (Status s = check_options(po); !s.ok()) return s;
  if (Status s = check_model(policy, cfg.model); !s.ok()) return s;
  auto task = SyntheticTask::create(vision_task_options(cfg.task));
  if (!task.ok()) return task.status();

  try {
    configure_compute_threads(po.threads);
    const ModelOptions& m = cfg.model;
    std::vector<torch::Tensor> vision;
    for (const auto& np : policy->named_parameters())
      if (np.key().rfind("vision.", 0) == 0) vision.push_back(np.value());
    if (vision.empty()) return Status::Error("vision pretraining: no vision.* parameters");
    VisionGradScope scope(vision);
    Heads heads(m.d_model, cfg.run.seed);
    std::vector<torch::Tensor> params = vision;
    for (auto& p : heads->parameters()) params.push_back(p);
    torch::optim::AdamW opt(params,
                            torch::optim::AdamWOptions(po.vision_lr).weight_decay(po.weight_decay));
    const int world = dp ? dp->world() : 1, rank = dp ? dp->rank() : 0;
    const bool leader = rank == 0;
    if (dp)
      if (Status s = dp->broadcast(params); !s.ok()) return s;
    const bool was_training = policy->is_training();
    policy->train();

    const int steps = po.vision_steps, B = po.vision_batch;
    const int warmup = std::min(po.warmup_steps, steps / 10);
    // Per step: n_crop object crops and n_full whole views; scene k of the
    // step gives the k-th of each (both views of one scene when k is below
    // both counts).
    const int n_crop = static_cast<int>(std::floor(B * po.vision_crop_fraction));
    const int n_full = B - n_crop;
    const int scenes = std::max(n_full, n_crop);
    const uint64_t first_index = cfg.run.seed << 32;  // training scenes of this seed
    if (leader) {
      std::printf("vision pretrain: %zu encoder tensors, %d steps x %d images (%d full, %d crops)",
                  vision.size(), steps, B, n_full, n_crop);
      if (world > 1) std::printf(", shared out over %d processes", world);
      std::printf("\n");
      std::fflush(stdout);
    }

    const auto t0 = std::chrono::steady_clock::now();
    double acc_loss = 0, acc_colour = 0, acc_shape = 0, acc_object = 0, acc_detail = 0, acc_pd = 0, acc_box = 0;
    double hit_object = 0, n_object = 0, hit_detail = 0, n_detail = 0;
    int64_t images = 0;
    for (int step = 1; step <= steps; ++step) {
      double lr = po.vision_lr;
      if (step <= warmup) {
        lr = po.vision_lr * step / warmup;
      } else {
        const double f = static_cast<double>(step - warmup) / std::max(1, steps - warmup);
        lr = po.vision_lr * (1.0 - f * (1.0 - po.lr_final_frac));
      }
      for (auto& g : opt.param_groups())
        static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);

      std::vector<Item> items;
      const uint64_t base = first_index + static_cast<uint64_t>(step - 1) * scenes;
      for (int k = 0; k < scenes; ++k) {
        if (k % world != rank) continue;  // another rank's scene
        if (k < n_full) items.push_back({base + k, false});
        if (k < n_crop)
          items.push_back({base + k, true,
                           tight_crop_draw(mix64(scene_draws(base + k, kVisionTrainStream).second ^ 0x7169C7F0ULL),
                                           po.tight_crop_share)});
      }
      auto b = make_batch(*task, cfg, items, kVisionTrainStream);
      if (!b.ok()) return b.status();

      opt.zero_grad();
      const Logits lg =
          apply_heads(heads, features(policy->encode_images(b->pixels), b->crop_rows, m));
      const LossParts loss =
          loss_of(lg, b->colour, b->shape, b->object, b->detail, b->patch_detail, b->box,
                  po.vision_box_weight);
      loss.total.backward();
      if (dp)
        if (Status s = dp->sum_gradients(params, 1.0 / world); !s.ok()) return s;
      torch::nn::utils::clip_grad_norm_(params, po.grad_clip);
      opt.step();

      torch::NoGradGuard ng;
      const double l = loss.total.item<double>();
      if (step == 1) {
        std::vector<double> first{l / world};
        if (dp)
          if (Status s = dp->sum(first); !s.ok()) return s;
        rep.initial_loss = first[0];
      }
      acc_loss += l;
      acc_colour += loss.colour.item<double>();
      acc_shape += loss.shape.item<double>();
      acc_object += loss.object.item<double>();
      acc_detail += loss.detail.item<double>();
      acc_pd += loss.patch_detail.item<double>();
      acc_box += loss.box.item<double>();
      hit_object += (lg.object.argmax(1) == b->object).sum().item<double>();
      n_object += b->object.numel();
      hit_detail += (lg.detail.argmax(1) == b->detail).sum().item<double>();
      n_detail += b->detail.numel();
      images += B;
      if (step % po.log_every == 0 || step == steps) {
        const int k = step % po.log_every == 0 ? po.log_every : step % po.log_every;
        const double secs = seconds_since(t0);
        if (dp) {
          // The ranks' loss means are averaged, their hit counts summed.
          std::vector<double> v{acc_loss,   acc_colour, acc_shape,  acc_object, acc_detail,
                                acc_pd,     acc_box,    hit_object, n_object,   hit_detail,
                                n_detail};
          if (Status s = dp->sum(v); !s.ok()) return s;
          for (int i = 0; i < 7; ++i) v[i] /= world;
          acc_loss = v[0], acc_colour = v[1], acc_shape = v[2], acc_object = v[3];
          acc_detail = v[4], acc_pd = v[5], acc_box = v[6];
          hit_object = v[7], n_object = v[8], hit_detail = v[9], n_detail = v[10];
        }
        rep.final_loss = acc_loss / k;
        if (leader) std::printf(
            "vision step %5d  loss %.4f (colour %.3f shape %.3f object %.3f detail %.3f patch "
            "detail %.3f box %.3f)  acc object %.3f detail %.3f  lr %.2e  %.0f img/s  %.0f s\n",
            step, acc_loss / k, acc_colour / k, acc_shape / k, acc_object / k, acc_detail / k,
            acc_pd / k, acc_box / k,
            hit_object / std::max(1.0, n_object), hit_detail / std::max(1.0, n_detail), lr,
            images / std::max(1e-9, secs), secs);
        std::fflush(stdout);
        acc_loss = acc_colour = acc_shape = acc_object = acc_detail = acc_pd = acc_box = 0;
        hit_object = n_object = hit_detail = n_detail = 0;
      }
    }
    rep.steps = steps;
    rep.seconds = seconds_since(t0);
    if (!was_training) policy->eval();
    if (dp)
      if (Status s = dp->check_in_sync(params, "encoder and heads after the vision stage");
          !s.ok())
        return s;
    if (!leader) return rep;  // rank 0 measures and reports

    if (Status s = measure_heads(policy, heads, *task, cfg, po.report_items, rep); !s.ok())
      return s;
    if (rep.held_out_images > 0) {
      std::printf(
          "vision pretrain done in %.0f s: held-out per patch colour %.3f (objects %.3f) shape "
          "%.3f (objects %.3f) object %.3f (background %.3f), crop detail %.3f (tight crop %.3f), "
          "patch detail %.3f, box error %.2f cells, %d images\n",
          rep.seconds, rep.colour_accuracy, rep.colour_accuracy_objects, rep.shape_accuracy,
          rep.shape_accuracy_objects, rep.object_accuracy, rep.background_share,
          rep.detail_accuracy, rep.tight_detail_accuracy, rep.patch_detail_accuracy, rep.box_error_cells,
          rep.held_out_images);
      std::fflush(stdout);
    }
    return rep;
  } catch (const std::exception& e) {
    return Status::Error(std::string("vision pretraining: ") + e.what());
  }
}

Result<VisionPretrainReport> measure_vision(Policy& policy, const Config& cfg, int n) {
  if (n < 0) return Status::Error("measure_vision: n must be >= 0");
  VisionPretrainReport rep;
  if (n == 0) return rep;
  if (Status s = check_model(policy, cfg.model); !s.ok()) return s;
  auto task = SyntheticTask::create(vision_task_options(cfg.task));
  if (!task.ok()) return task.status();
  try {
    // Probe fitting: full-batch Adam on the frozen encoder's features.
    auto fit = encode_items(policy, *task, cfg, pair_items(0, std::max(n, kProbeMinScenes)),
                            kVisionProbeStream);
    if (!fit.ok()) return fit.status();
    Heads probes(cfg.model.d_model, cfg.run.seed ^ 0x9B0BEULL);
    {
      const auto all = torch::cat({fit->f.patches, fit->f.pooled});
      probes->shift = all.mean(0);
      probes->scale = 1.0 / (all.std(0) + 1e-6);
    }
    torch::optim::Adam opt(probes->parameters(), torch::optim::AdamOptions(kProbeLr));
    for (int it = 0; it < kProbeIterations; ++it) {
      opt.zero_grad();
      const Logits lg = apply_heads(probes, fit->f);
      loss_of(lg, fit->colour, fit->shape, fit->object, fit->detail, fit->patch_detail, fit->box,
              cfg.pretrain.vision_box_weight)
          .total.backward();
      opt.step();
    }
    if (Status s = measure_heads(policy, probes, *task, cfg, n, rep); !s.ok()) return s;
    return rep;
  } catch (const std::exception& e) {
    return Status::Error(std::string("measure_vision: ") + e.what());
  }
}

}  // namespace gr1
