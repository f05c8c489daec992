// Diagnostic (docs/results.md, "The answer without the image context"): how
// many steps does a fresh decoder of configs/results.yaml's size need to learn
// that the answer repeats the value its thought just wrote,
//   <|user|>xyz...<|end|><|assistant|><think>it shows V</think><answer>V</answer>
// and, with options in the question ("\nA. V1\nB. V2 ..."), to answer V's
// letter? Text only (no image), fresh weights, the whole assistant turn
// trained, batch 16, Adam with 50 warmup steps, positions offset by 0-10.
// Prints the greedy accuracy of the answer token over each 50 steps.
//
// Not part of the build. From the repository root, after `make build`
// (Debian 12's library paths, as in build/tests/CMakeFiles/policy_test.dir/link.txt):
//   L=/usr/lib/x86_64-linux-gnu
//   c++ -O2 -DNDEBUG -D_GLIBCXX_USE_CXX11_ABI=1 -std=gnu++17 -I. -Ibuild/generated \
//     -isystem /usr/include/opencv4 -isystem /usr/include/torch/csrc/api/include \
//     docs/results/copy_probe.cc -o /tmp/copy_probe \
//     build/orchestration/libgr1_orchestration.a build/learner/libgr1_learner.a \
//     build/actors/libgr1_actors.a build/common/libgr1_common.a $L/libflatbuffers.a \
//     $L/libtorch.so.1.13.0 -Wl,--no-as-needed,$L/libtorch_cpu.so.1.13.0 -Wl,--as-needed \
//     $L/libprotobuf.so $L/libc10.so.1.13.0 $L/libglog.so.0.6.0 $L/libgflags.so.2.2.2 -lpthread \
//     $L/libopencv_imgcodecs.so.4.6.0 $L/libopencv_imgproc.so.4.6.0 $L/libopencv_core.so.4.6.0 \
//     $L/libzmq.so $L/libyaml-cpp.so.0.7.0 $L/libxxhash.so -ldl /usr/lib/libgloo.so.0.5.0
//   /tmp/copy_probe STEPS LR 0 MC [K]  # MC: 0 no options, 1 half the items, 2 every item;
//                                      # the third argument 1 trains the answer tokens alone;
//                                      # K answer turns per sequence (default 1), each with V
//                                      # drawn from the options (or the values) when K > 1
#include <torch/torch.h>
#include <cstdio>
#include <random>
#include "common/policy.h"
#include "common/tokenizer.h"
using namespace gr1;
int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 400;
  const double lr = argc > 2 ? std::atof(argv[2]) : 1e-3;
  const bool answer_only_loss = argc > 3 && std::atoi(argv[3]) == 1;
  const int with_mc = argc > 4 ? std::atoi(argv[4]) : 0;
  const int K = argc > 5 ? std::atoi(argv[5]) : 1;
  torch::set_num_threads(1);
  torch::manual_seed(1);
  ModelOptions o;
  o.d_model = 128; o.n_layers = 4; o.n_heads = 4; o.ffn_hidden = 352;
  o.image_size = 64; o.patch_size = 8; o.vision_layers = 1; o.max_seq_len = 256;
  Tokenizer tok;
  Policy p(o, tok.vocab_size());
  std::vector<torch::Tensor> dec;
  for (auto& np : p->named_parameters()) if (np.key().rfind("vision.", 0) != 0) dec.push_back(np.value());
  torch::optim::Adam opt(dec, torch::optim::AdamOptions(lr));
  std::mt19937_64 rng(7);
  std::vector<std::string> values;
  for (char c = 'A'; c <= 'Z'; ++c) values.push_back(std::string(1, c));
  for (char c = '0'; c <= '9'; ++c) values.push_back(std::string(1, c));
  for (const char* w : {"red", "blue", "green", "yellow", "circle", "square", "triangle"}) values.push_back(w);
  const int B = 16;
  double cp_right = 0, cp_n = 0, mc_right = 0, mc_n = 0;
  for (int step = 1; step <= steps; ++step) {
    std::vector<std::vector<int32_t>> seqs; std::vector<int> ans_pos, ans_seq, start; std::vector<bool> is_mc;
    for (int b = 0; b < B; ++b) {
      std::string q = "<|user|>";
      const int nq = 6 + rng() % 7;
      for (int i = 0; i < nq; ++i) q += char('a' + rng() % 26);
      const std::string v0 = values[rng() % values.size()];
      const bool mc = with_mc == 2 || (with_mc == 1 && rng() % 2 == 0);
      std::vector<std::string> opts = {v0};
      if (mc) {
        while (opts.size() < 4) {
          const std::string c = values[rng() % values.size()];
          if (std::find(opts.begin(), opts.end(), c) == opts.end()) opts.push_back(c);
        }
        std::shuffle(opts.begin(), opts.end(), rng);
        for (size_t k = 0; k < 4; ++k) q += "\n" + std::string(1, char('A' + k)) + ". " + opts[k];
      }
      is_mc.push_back(mc);
      auto pre = tok.encode(q + "<|end|><|assistant|>");
      std::vector<int32_t> s = pre;
      start.push_back(s.size());
      for (int k = 0; k < K; ++k) {
        // One lookup: the truth v0 (as the first version of this probe drew
        // it); several: V drawn from the options (or the values) each time.
        const int oi = K == 1 ? static_cast<int>(std::find(opts.begin(), opts.end(), v0) - opts.begin())
                              : (mc ? static_cast<int>(rng() % 4) : 0);
        const std::string v = K == 1 ? v0 : mc ? opts[oi] : values[rng() % values.size()];
        const std::string a = mc ? std::string(1, char('A' + oi)) : v;
        auto turn = tok.encode("<think>it shows " + v + "</think><answer>");
        auto tail = tok.encode(a + (k + 1 == K ? "</answer><|end|>" : "</answer>"));
        s.insert(s.end(), turn.begin(), turn.end());
        ans_pos.push_back(s.size() - 1); ans_seq.push_back(b);
        s.insert(s.end(), tail.begin(), tail.end());
      }
      seqs.push_back(s);
    }
    int64_t T = 0; for (auto& s : seqs) T = std::max<int64_t>(T, s.size());
    auto tokens = torch::zeros({B, T}, torch::kInt64), pos = torch::zeros({B, T}, torch::kInt64);
    auto mask = torch::zeros({B, T}, torch::kBool), w = torch::zeros({B, T - 1});
    for (int b = 0; b < B; ++b) {
      const int off = rng() % 11;
      for (size_t j = 0; j < seqs[b].size(); ++j) {
        tokens[b][j] = seqs[b][j]; pos[b][j] = off + (int64_t)j; mask[b][j] = true;
        if ((int)j >= start[b] && j + 1 < seqs[b].size() && !answer_only_loss) w[b][j] = 1;
      }
    }
    if (answer_only_loss) for (size_t i = 0; i < ans_pos.size(); ++i) w[ans_seq[i]][ans_pos[i]] = 1;
    auto logits = p->forward(tokens, torch::Tensor(), pos, mask);
    auto lp = torch::log_softmax(logits.slice(1, 0, T - 1), -1).gather(2, tokens.slice(1, 1).unsqueeze(2)).squeeze(2);
    auto loss = -(lp * w).sum() / w.sum();
    {
      torch::NoGradGuard ng;
      auto am = logits.argmax(-1);
      for (size_t i = 0; i < ans_pos.size(); ++i) {
        const int b = ans_seq[i];
        const bool r = am[b][ans_pos[i]].item<int64_t>() == seqs[b][ans_pos[i] + 1];
        (is_mc[b] ? mc_right : cp_right) += r; (is_mc[b] ? mc_n : cp_n) += 1;
      }
    }
    opt.zero_grad(); loss.backward();
    torch::nn::utils::clip_grad_norm_(dec, 1.0);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr * std::min(1.0, step / 50.0));
    opt.step();
    if (step % 50 == 0) { std::printf("step %4d loss %.3f copy acc %.3f letter acc %.3f (last 50 steps)\n", step, loss.item<double>(), cp_right / std::max(1.0, cp_n), mc_right / std::max(1.0, mc_n)); cp_right = cp_n = mc_right = mc_n = 0; std::fflush(stdout); }
  }
}
