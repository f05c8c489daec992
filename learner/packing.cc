#include "learner/packing.h"

#include <string>
#include <unordered_map>

#include "common/tokenizer.h"

namespace gr1 {

PackedGroup pack_group(const std::vector<const Trajectory*>& trajs, int32_t image_token,
                       int image_tokens, std::string* error) {
  PackedGroup out;
  auto fail = [&](const std::string& m) {
    if (error) *error = m;
    return PackedGroup{};
  };
  if (trajs.empty()) return out;
  if (image_tokens < 1) return fail("pack_group: image_tokens must be >= 1");
  // ---- the trie, nodes in insertion order ----
  struct Node {
    int32_t token, parent, creator_traj, creator_pos;
    std::vector<int32_t> children;  // in insertion order
  };
  std::vector<Node> nodes;
  std::unordered_map<uint64_t, int32_t> child;  // (parent + 1) << 32 | token -> node
  std::vector<std::vector<int32_t>> path(trajs.size());
  int32_t root = -1;
  for (size_t t = 0; t < trajs.size(); ++t) {
    const auto& tok = trajs[t]->tokens;
    if (tok.empty()) return fail("pack_group: trajectory " + std::to_string(t) + " is empty");
    int64_t slots = 0;
    for (int32_t v : tok) slots += v == image_token;
    if (slots % image_tokens != 0 ||
        static_cast<size_t>(slots / image_tokens) != trajs[t]->images.size())
      return fail("pack_group: trajectory " + std::to_string(t) + " has " +
                  std::to_string(slots) + " image slots for " +
                  std::to_string(trajs[t]->images.size()) + " images of " +
                  std::to_string(image_tokens) + " tokens");
    int32_t cur = -1;
    path[t].reserve(tok.size());
    for (size_t p = 0; p < tok.size(); ++p) {
      if (p == 0) {
        if (root < 0) {
          nodes.push_back({tok[0], -1, static_cast<int32_t>(t), 0, {}});
          root = 0;
        } else if (nodes[root].token != tok[0]) {
          return fail("pack_group: trajectories start with different tokens");
        }
        cur = root;
      } else {
        const uint64_t key = (static_cast<uint64_t>(cur + 1) << 32) | static_cast<uint32_t>(tok[p]);
        auto it = child.find(key);
        if (it == child.end()) {
          const int32_t id = static_cast<int32_t>(nodes.size());
          nodes.push_back({tok[p], cur, static_cast<int32_t>(t), static_cast<int32_t>(p), {}});
          nodes[cur].children.push_back(id);
          it = child.emplace(key, id).first;
        }
        cur = it->second;
      }
      path[t].push_back(cur);
    }
  }
  // ---- depth-first renumbering, with the per-path image state ----
  const size_t n = nodes.size();
  std::vector<int32_t> order_of(n, -1);
  out.tokens.reserve(n);
  struct Frame {
    int32_t node, depth, parent_new;
    int64_t slots_before;   // slots on the path before this node
    int32_t summary_before; // new index of the latest block's summary slot before it, or -1
    bool in_answer;         // the path before this node ends inside an answer span
  };
  std::vector<Frame> stack{{root, 0, -1, 0, -1, false}};
  while (!stack.empty()) {
    const Frame f = stack.back();
    stack.pop_back();
    const Node& nd = nodes[f.node];
    const int32_t id = static_cast<int32_t>(out.tokens.size());
    order_of[f.node] = id;
    out.tokens.push_back(nd.token);
    out.parent.push_back(f.parent_new);
    out.depth.push_back(f.depth);
    const bool slot = nd.token == image_token;
    const int64_t slots = f.slots_before + (slot ? 1 : 0);
    int32_t summary = f.summary_before;
    bool in_answer = f.in_answer;
    if (nd.token == Tokenizer::kAnswer) in_answer = true;
    if (nd.token == Tokenizer::kAnswerEnd) in_answer = false;
    out.in_answer.push_back(in_answer ? 1 : 0);
    if (slot) {
      const int32_t k = static_cast<int32_t>((slots - 1) % image_tokens);
      out.slot_index.push_back(k);
      out.context_node.push_back(-1);
      if (k == 0) {
        // The block's pixels: the creator trajectory's image number.
        out.images.push_back({nd.creator_traj, static_cast<int32_t>((slots - 1) / image_tokens)});
      }
      if (k == image_tokens - 1) summary = id;
    } else {
      out.slot_index.push_back(-1);
      out.context_node.push_back(f.summary_before);
    }
    // Children in reverse so the first-inserted child is visited first.
    for (auto c = nd.children.rbegin(); c != nd.children.rend(); ++c)
      stack.push_back({*c, f.depth + 1, id, slots, summary, in_answer});
  }
  out.node_of.resize(trajs.size());
  for (size_t t = 0; t < trajs.size(); ++t) {
    out.node_of[t].reserve(path[t].size());
    for (int32_t v : path[t]) out.node_of[t].push_back(order_of[v]);
  }
  return out;
}

}  // namespace gr1
