// Prefix-tree packing of a trajectory group for the learner's forward pass.
//
// The G1 x G2 trajectories of one question share long prefixes: all share the
// prompt (instruction + image, ~270 tokens here), the G2 continuations of a
// root share its grounding turn and the next user turn (instruction + crop).
// Recomputing every trajectory separately repeats those tokens G or G2
// times; packing the group's token trie into ONE sequence computes each
// distinct prefix once (measured: ~4x fewer tokens for two-turn groups,
// docs/benchmarks.md). A node attends exactly to its ancestors (and itself)
// and sits at its depth as position, so every node's hidden state is the one
// the unpacked forward computes at that position of any trajectory through
// it (to float rounding); a trajectory's log-probs are gathered back from
// its nodes, so the GRPO loss and its gradients are those of the unpacked
// batch.
//
// Two trajectories share a node only if their whole token prefixes are equal;
// an image block is fixed by the tokens before it (the crop of the box just
// written, or the full image), so shared image slots hold the same pixels.
// No LibTorch here: the trainer turns a PackedGroup into tensors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/trajectory.h"

namespace gr1 {

struct PackedGroup {
  // Nodes in depth-first order (a parent precedes its children, and every
  // subtree is contiguous).
  std::vector<int32_t> tokens;
  std::vector<int32_t> parent;  // node index, -1 for the first token
  std::vector<int32_t> depth;   // position in every trajectory through the node
  // Per node: for an image slot, its index within its block (0 ..
  // image_tokens-1), else -1; for a non-slot node, the node of the summary
  // slot (last slot) of the latest complete image block on its path, else -1.
  std::vector<int32_t> slot_index;
  std::vector<int32_t> context_node;
  // Per node: 1 if it lies in an answer span on its path (from a <answer>
  // token up to, not including, the next </answer>: PolicyImpl::
  // add_image_terms' rule), else 0. With model.answer_image_context false
  // such nodes get no image context.
  std::vector<uint8_t> in_answer;
  // The image of each block, in node order: (trajectory, index into its
  // images) of the trajectory that first reached the block.
  struct ImageSource {
    int32_t trajectory = 0;
    int32_t image = 0;
  };
  std::vector<ImageSource> images;
  // node_of[t][p]: the node of token p of trajectory t.
  std::vector<std::vector<int32_t>> node_of;

  size_t size() const { return tokens.size(); }
};

// Packs `trajs` (one group: all start with the same first token). Image
// slots are tokens equal to `image_token`, in blocks of `image_tokens`
// (each trajectory's slot count must be a multiple of it, and it must hold
// exactly that many images; else an empty PackedGroup is returned with
// `error` set). Deterministic.
PackedGroup pack_group(const std::vector<const Trajectory*>& trajs, int32_t image_token,
                       int image_tokens, std::string* error);

}  // namespace gr1
