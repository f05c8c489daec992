#include "learner/data_parallel.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

namespace gr1 {

struct DataParallel::Impl {
  DataParallelOptions options;
  c10::intrusive_ptr<c10d::FileStore> store;  // null for world 1
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;

  std::string where() const {
    return "rank " + std::to_string(options.rank) + " of " + std::to_string(options.world);
  }
  // Runs one collective on `t` (in place), turning Gloo's exceptions into a
  // Status that names the operation and this rank.
  Status all_reduce(at::Tensor& t, c10d::ReduceOp op, const char* what) {
    try {
      std::vector<at::Tensor> v{t};
      c10d::AllreduceOptions o;
      o.reduceOp = op;
      group->allreduce(v, o)->wait();
      return Status::Ok();
    } catch (const std::exception& e) {
      return Status::Error(std::string("data parallel ") + what + " (" + where() +
                           "): " + e.what());
    }
  }
};

DataParallel::DataParallel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataParallel::~DataParallel() = default;

int DataParallel::rank() const { return impl_->options.rank; }
int DataParallel::world() const { return impl_->options.world; }

Result<std::unique_ptr<DataParallel>> DataParallel::connect(const DataParallelOptions& o) {
  if (o.world < 1) return Status::Error("data parallel: world must be >= 1");
  if (o.rank < 0 || o.rank >= o.world)
    return Status::Error("data parallel: rank " + std::to_string(o.rank) + " is not in 0.." +
                         std::to_string(o.world - 1));
  if (o.timeout_s < 1) return Status::Error("data parallel: timeout_s must be >= 1");
  auto impl = std::make_unique<Impl>();
  impl->options = o;
  if (o.world > 1) {
    if (o.store_path.empty()) return Status::Error("data parallel: no store path for world > 1");
    try {
      const std::chrono::milliseconds timeout(static_cast<int64_t>(o.timeout_s) * 1000);
      impl->store = c10::make_intrusive<c10d::FileStore>(o.store_path, o.world);
      impl->store->setTimeout(timeout);
      auto go = c10d::ProcessGroupGloo::Options::create(timeout);
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(o.host));
      go->threads = 1;  // one collective at a time; compute keeps the cores
      impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, o.rank, o.world, go);
    } catch (const std::exception& e) {
      return Status::Error("data parallel: joining " + std::to_string(o.world) +
                           " ranks through " + o.store_path + " (" + impl->where() +
                           "): " + e.what());
    }
  }
  return std::unique_ptr<DataParallel>(new DataParallel(std::move(impl)));
}

Status DataParallel::sum_gradients(const std::vector<at::Tensor>& params, double scale) {
  if (world() == 1 && scale == 1.0) return Status::Ok();
  torch::NoGradGuard ng;
  int64_t n = 0;
  for (const auto& p : params) n += p.numel();
  const int64_t k = static_cast<int64_t>(params.size());
  // [gradients..., one "defined here" flag per tensor]
  auto buf = torch::zeros({n + k}, torch::kFloat32);
  int64_t off = 0;
  for (int64_t i = 0; i < k; ++i) {
    const auto& p = params[i];
    const auto& g = p.grad();
    if (g.defined()) {
      buf.slice(0, off, off + p.numel()).copy_(g.reshape({-1}));
      buf[n + i] = 1.0f;
    }
    off += p.numel();
  }
  if (world() > 1)
    if (Status s = impl_->all_reduce(buf, c10d::ReduceOp::SUM, "gradient all-reduce"); !s.ok())
      return s;
  if (scale != 1.0) buf.slice(0, 0, n).mul_(scale);
  const auto flags = buf.slice(0, n, n + k).contiguous();
  const float* f = flags.data_ptr<float>();
  off = 0;
  for (int64_t i = 0; i < k; ++i) {
    auto p = params[i];
    if (f[i] > 0) {
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      p.mutable_grad().copy_(buf.slice(0, off, off + p.numel()).view(p.sizes()));
    }
    off += p.numel();
  }
  return Status::Ok();
}

Status DataParallel::sum(std::vector<double>& values) {
  if (world() == 1 || values.empty()) return Status::Ok();
  auto t = torch::tensor(values, torch::kFloat64);
  if (Status s = impl_->all_reduce(t, c10d::ReduceOp::SUM, "sum"); !s.ok()) return s;
  const double* d = t.data_ptr<double>();
  for (size_t i = 0; i < values.size(); ++i) values[i] = d[i];
  return Status::Ok();
}

Status DataParallel::broadcast(const std::vector<at::Tensor>& tensors) {
  if (world() == 1 || tensors.empty()) return Status::Ok();
  torch::NoGradGuard ng;
  std::vector<at::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}).to(torch::kFloat64));
  auto buf = torch::cat(flat);
  try {
    std::vector<at::Tensor> v{buf};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    impl_->group->broadcast(v, o)->wait();
  } catch (const std::exception& e) {
    return Status::Error("data parallel broadcast (" + impl_->where() + "): " + e.what());
  }
  int64_t off = 0;
  for (auto t : tensors) {
    t.copy_(buf.slice(0, off, off + t.numel()).view(t.sizes()));
    off += t.numel();
  }
  return Status::Ok();
}

std::vector<double> tensor_fingerprint(const std::vector<at::Tensor>& tensors) {
  torch::NoGradGuard ng;
  double a = 0, b = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto x = tensors[i].detach().reshape({-1}).to(torch::kFloat64);
    const auto w =
        torch::cos(torch::arange(x.numel(), torch::kFloat64) * 0.7071 + static_cast<double>(i));
    a += (x * w).sum().item<double>();
    b += x.abs().sum().item<double>() * (1.0 + 0.001 * static_cast<double>(i));
  }
  return {a, b};
}

Status DataParallel::check_in_sync(const std::vector<at::Tensor>& tensors, const std::string& what) {
  if (world() == 1) return Status::Ok();
  const auto fp = tensor_fingerprint(tensors);
  auto lo = torch::tensor(fp, torch::kFloat64), hi = lo.clone();
  if (Status s = impl_->all_reduce(lo, c10d::ReduceOp::MIN, "sync check"); !s.ok()) return s;
  if (Status s = impl_->all_reduce(hi, c10d::ReduceOp::MAX, "sync check"); !s.ok()) return s;
  if (!torch::equal(lo, hi))
    return Status::Error("data parallel: the ranks' " + what + " differ (" + impl_->where() +
                         "; fingerprint min " + std::to_string(lo[0].item<double>()) + " max " +
                         std::to_string(hi[0].item<double>()) + ")");
  return Status::Ok();
}

}  // namespace gr1
