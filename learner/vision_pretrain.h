// Vision-encoder pretraining: the stage of `gr1 pretrain` before the decoder
// stage (learner/pretrain.h). The encoder (every parameter named "vision.*",
// projector included) learns alone, from question-free scenes, what the
// decoder will need to ground and read:
//
//   SyntheticTask::scene (families text, attribute, counting; stream 100 for
//   training, 101 held-out, 102 probe fitting: clear of pretrain.cc's 8..23)
//   -> per scene two images, exactly as rollouts show them
//      (image_block_tensor of an ImageRef, model.image_size square):
//        full   the whole scene (the rollout's first image)
//        crop   the crop the rollout cuts for one object's shape box: the box
//               in the shown frame, snapped outward to the location grid as
//               pretrain.cc snaps teacher boxes, through shown_box_to_crop
//               (rollout.min_crop_px, rollout.max_aspect)
//   -> encode_images -> small linear heads (d_model -> classes), trained with
//      the encoder and discarded afterwards:
//        per patch (every image)  colour (background + the task's colours),
//                                 shape (background, circle, square,
//                                 triangle), objectness (any object), the
//                                 detail covering the patch (none + the
//                                 detail vocabulary), and inside an object
//                                 its box (absolute, and relative to the
//                                 patch centre; smooth L1, grid units)
//        per crop                 the cropped object's detail value (glyph,
//                                 badge colour name or dot count) over the
//                                 union vocabulary, from the summary row
//                                 (summary_token) or the max over the patches
//   -> loss = sum of the five mean cross-entropies and the box loss; AdamW over the vision
//      parameters and the heads, linear warm-up over
//      min(warmup_steps, vision_steps / 10) steps, then linear decay to
//      vision_lr * lr_final_frac; global grad-norm clipping (grad_clip).
//
// Patch labels: a patch's centre in the shown S x S frame is mapped to
// original pixels through the region the image shows (whole image, or the
// crop's region as crop_and_resize cuts it); the last-drawn object whose
// shape box contains that point gives the patch's colour and shape
// (objectness 1); no object: background (class 0, objectness 0).
//
// Everything is a deterministic function of the configuration and
// cfg.run.seed (scene indices and head initialisation; the global torch
// generator is neither read nor reset). Batches are built on the calling
// thread; pretrain_vision sets the process's compute threads to
// cfg.pretrain.threads (configure_compute_threads, as run_pretrain does).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "common/options.h"
#include "common/policy.h"
#include "common/status.h"
#include "common/task.h"
#include "common/trajectory.h"

namespace gr1 {

class DataParallel;  // learner/data_parallel.h

// Scene streams of this stage (SyntheticTask::scene).
constexpr uint64_t kVisionTrainStream = 100;
constexpr uint64_t kVisionHeldOutStream = 101;
constexpr uint64_t kVisionProbeStream = 102;

// Class vocabularies (fixed copies of common/task.cc's names; a test checks
// that every scene object's colour, shape and detail value is listed).
// colour: "background", then the 8 shape colours; shape: "background",
// "circle", "square", "triangle"; detail: the union, without repeats, of the
// glyph alphabet, the badge colour names and the dot counts "1".."5" (a
// glyph "3" and three dots are the same class: the same answer text).
const std::vector<std::string>& vision_colour_classes();
const std::vector<std::string>& vision_shape_classes();
const std::vector<std::string>& vision_detail_classes();

// Units of the vision stage's box regression targets per side of the shown
// frame. 16, the location grid's cell count until it became 32: kept apart
// from the grid so that the regression's loss scale (smooth L1, weight
// pretrain.vision_box_weight) stays the one it was measured with.
inline constexpr int kVisionBoxUnits = 16;

// Per-patch targets of one shown image, patches in row-major order (the
// order of encode_images' rows).
struct PatchLabels {
  std::vector<int64_t> colour;  // index into vision_colour_classes()
  std::vector<int64_t> shape;   // index into vision_shape_classes()
  std::vector<int64_t> object;  // 1 inside some object's shape box, else 0
  // 1 + index into vision_detail_classes() of the detail whose pixels cover
  // the patch (the detail box overlaps at least a quarter of the smaller of
  // the patch's and the detail's areas, original pixels; the largest overlap
  // wins), else 0: dense reading supervision, on full views and crops alike.
  std::vector<int64_t> detail;
  // Per patch inside an object (object == 1), 8 numbers in units of
  // 1/kVisionBoxUnits of the shown frame's side: the
  // object's box x1, y1, x2, y2 (clamped to [0, units]), then the distances
  // from the patch centre to its left, top, right and bottom edges. Zeros
  // elsewhere (masked). Trains the encoder to know where its object ends, to
  // sub-patch precision: what a box needs.
  std::vector<float> box;
};

// The ORIGINAL-pixel rectangle a shown image block covers: the whole W x H
// image, or ref.box_orig rounded outward and clamped as crop_and_resize cuts
// it (floor x1/y1, ceil x2/y2).
Box shown_region(const ImageRef& ref, int W, int H);

// pretrain.tight_crop_share: from a 64-bit draw `h`, whether a training crop
// is cut tight (with probability `share`) and where: a value in [0, 1)
// (tight_object_box's `t`), or -1 for the shape's own box.
double tight_crop_draw(uint64_t h, double share);

// The box (original pixels) `t` of the way from the object's detail box
// (t = 0) to its whole box (t = 1); the object's box when it has no detail
// box.
Box tight_object_box(const SceneObject& o, double t);

// Labels of the (image_size / patch_size)^2 patches of an image showing
// `region` (original pixels) of a scene with `objects`: see the file
// comment. Errors: non-positive sizes, image_size % patch_size != 0, an
// empty region, or an object colour/shape not in the vocabularies.
Result<PatchLabels> patch_labels(const std::vector<SceneObject>& objects, const Box& region,
                                 int image_size, int patch_size);

// One training / measurement image.
struct VisionExample {
  Family family = Family::kText;  // SyntheticTask::scene(index, family, stream) is the scene
  ImageRef ref;                   // what is shown (full image or crop)
  Box region;                     // shown_region(ref)
  int object = -1;                // crop: index of the cropped object in the scene; full: -1
  int64_t detail = -1;            // crop: index into vision_detail_classes(); full: -1
  PatchLabels labels;
  torch::Tensor pixels;  // [3, S, S] float in [0, 1] (image_block_tensor)
};

// The full view (crop = false) or object crop (crop = true) of scene `index`
// of `stream`, for cfg.model and cfg.task (families text, attribute,
// counting; the family and the cropped object are drawn from (index,
// stream)). Both views of one (index, stream) show the same scene.
// `tight` (crops only): >= 0 cuts the crop that far from the detail's own
// box towards the shape's (0 = the detail's box, 1 = the shape's), snapped
// outward to the location grid; < 0 the shape's box (pretrain.tight_crop_share).
Result<VisionExample> make_vision_example(const Config& cfg, uint64_t index, uint64_t stream,
                                          bool crop, double tight = -1);

struct VisionPretrainReport {
  int steps = 0;
  double seconds = 0;       // training wall time (held-out measurement excluded)
  double initial_loss = 0;  // loss of the first step (before any update)
  double final_loss = 0;    // mean loss over the last min(log_every, steps) steps
  // Per patch, held-out full scenes; *_objects: over patches inside an
  // object only; background_share: share of background patches (the
  // majority-class baseline of objectness is max(share, 1 - share)).
  double colour_accuracy = 0, shape_accuracy = 0, object_accuracy = 0;
  double colour_accuracy_objects = 0, shape_accuracy_objects = 0;
  double background_share = 0;
  double detail_accuracy = 0;  // held-out object crops
  // Held-out crops cut at the detail's own box (snapped to the location
  // grid): reading the glyph alone, as a glyph-tight box would show it.
  double tight_detail_accuracy = 0;
  // Per patch covered by a detail (full views and crops): its detail read.
  double patch_detail_accuracy = 0;
  // Per object patch of full views: mean absolute error of the absolute box
  // edges, in location-grid cells.
  double box_error_cells = 0;
  int held_out_images = 0;     // full scenes + crops measured
  nlohmann::json to_json() const;
};

// Trains ONLY the parameters whose names start with "vision." (the encoder
// incl. projector; their requires_grad is switched on for the stage and
// restored after it, their .grad cleared) for cfg.pretrain.vision_steps steps
// of cfg.pretrain.vision_batch images (half full views, half crops), then
// measures its own heads on cfg.pretrain.report_items held-out scenes (both
// views each; 0 = no measurement). vision_steps = 0: returns at once with
// steps 0 and nothing changed. Prints a progress line every
// cfg.pretrain.log_every steps. Errors (never throws): bad pretrain options,
// task options SyntheticTask rejects, a policy whose image options differ
// from cfg.model, a rejected crop, LibTorch failures, a data-parallel peer
// that failed.
// With `dp` of world W > 1 (learner/data_parallel.h): rank r trains on the
// step's scenes k with k % W == r (both views of each), the gradients are
// averaged over the ranks (the mean of the ranks' batch means: the one-process
// step where every rank holds the same number of each label kind), only rank
// 0 prints and measures, and every rank ends with the same encoder (checked).
Result<VisionPretrainReport> pretrain_vision(Policy& policy, const Config& cfg,
                                             DataParallel* dp = nullptr);

// Held-out measurement of any policy's encoder (e.g. the checkpoint after the
// decoder stage, or a random one as a baseline), whose heads are gone: fresh
// linear probes (the same heads) are fitted on the frozen encoder's features
// of max(n, 256) probe-stream scenes (both views), then measured on `n`
// held-out scenes (both views) exactly as pretrain_vision measures its
// heads. Leaves the policy unchanged. n = 0: nothing measured.
Result<VisionPretrainReport> measure_vision(Policy& policy, const Config& cfg, int n);

}  // namespace gr1
