#include "common/weights_torch.h"

#include <xxhash.h>

#include <cstring>
#include <map>

namespace gr1 {

std::shared_ptr<const WeightsSnapshot> pack_weights(const Policy& policy, uint64_t version,
                                                    int64_t bucket_bytes) {
  auto s = std::make_shared<WeightsSnapshot>();
  s->version = version;
  std::vector<torch::Tensor> tensors;
  uint64_t total = 0;
  for (const auto& np : policy->named_parameters()) {
    auto t = np.value().detach().to(torch::kFloat32).contiguous();
    TensorEntry e;
    e.name = np.key();
    e.dtype = "F32";
    e.shape = t.sizes().vec();
    e.nbytes = static_cast<uint64_t>(t.numel()) * 4;
    e.bucket = static_cast<uint32_t>(total / bucket_bytes);
    e.offset = total % bucket_bytes;
    total += e.nbytes;
    s->manifest.push_back(std::move(e));
    tensors.push_back(t);
  }
  s->total_bytes = total;
  const size_t nb = static_cast<size_t>((total + bucket_bytes - 1) / bucket_bytes);
  s->buckets.resize(nb);
  for (size_t b = 0; b < nb; ++b)
    s->buckets[b].resize(std::min<uint64_t>(bucket_bytes, total - b * bucket_bytes));
  uint64_t pos = 0;
  for (const auto& t : tensors) {
    const char* src = static_cast<const char*>(t.data_ptr());
    uint64_t left = static_cast<uint64_t>(t.numel()) * 4;
    while (left > 0) {
      const size_t b = pos / bucket_bytes, off = pos % bucket_bytes;
      const uint64_t n = std::min<uint64_t>(left, s->buckets[b].size() - off);
      std::memcpy(&s->buckets[b][off], src, n);
      src += n;
      pos += n;
      left -= n;
    }
  }
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  for (const auto& b : s->buckets) XXH3_64bits_update(st, b.data(), b.size());
  s->checksum = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return s;
}

Status unpack_weights(const WeightsSnapshot& s, Policy& policy) {
  std::map<std::string, const TensorEntry*> by_name;
  for (const auto& e : s.manifest) by_name[e.name] = &e;
  auto params = policy->named_parameters();
  // Check everything first: a partial load would leave a mixed policy.
  for (const auto& np : params) {
    auto it = by_name.find(np.key());
    if (it == by_name.end()) return Status::Error("weights: parameter " + np.key() + " missing");
    const TensorEntry& e = *it->second;
    if (e.dtype != "F32") return Status::Error("weights: " + e.name + " has dtype " + e.dtype);
    if (e.shape != np.value().sizes().vec())
      return Status::Error("weights: " + e.name + " has a different shape");
    if (e.nbytes != static_cast<uint64_t>(np.value().numel()) * 4)
      return Status::Error("weights: " + e.name + " has a wrong byte count");
  }
  if (by_name.size() != params.size())
    return Status::Error("weights: manifest has " + std::to_string(by_name.size()) +
                         " tensors, policy has " + std::to_string(params.size()));
  torch::NoGradGuard ng;
  for (auto& np : params) {
    const TensorEntry& e = *by_name[np.key()];
    auto dst = np.value();
    char* out = static_cast<char*>(dst.data_ptr());
    uint64_t pos = global_offset(s, e), left = e.nbytes;
    size_t b = e.bucket;
    uint64_t off = e.offset;
    while (left > 0) {
      const uint64_t n = std::min<uint64_t>(left, s.buckets[b].size() - off);
      std::memcpy(out, s.buckets[b].data() + off, n);
      out += n;
      left -= n;
      pos += n;
      ++b;
      off = 0;
    }
  }
  return Status::Ok();
}

}  // namespace gr1
