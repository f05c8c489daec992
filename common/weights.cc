#include "common/weights.h"

#include <xxhash.h>

namespace gr1 {

uint64_t global_offset(const WeightsSnapshot& s, const TensorEntry& e) {
  uint64_t off = 0;
  for (uint32_t b = 0; b < e.bucket && b < s.buckets.size(); ++b) off += s.buckets[b].size();
  return off + e.offset;
}

Status verify_snapshot(const WeightsSnapshot& s) {
  uint64_t total = 0;
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  for (const auto& b : s.buckets) {
    total += b.size();
    XXH3_64bits_update(st, b.data(), b.size());
  }
  const uint64_t sum = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  if (total != s.total_bytes)
    return Status::Error("weights v" + std::to_string(s.version) + ": received " +
                         std::to_string(total) + " bytes, header says " +
                         std::to_string(s.total_bytes));
  if (sum != s.checksum)
    return Status::Error("weights v" + std::to_string(s.version) + ": checksum mismatch");
  for (const auto& e : s.manifest) {
    if (e.bucket >= s.buckets.size())
      return Status::Error("weights manifest: " + e.name + " names bucket " +
                           std::to_string(e.bucket) + " of " + std::to_string(s.buckets.size()));
    if (global_offset(s, e) + e.nbytes > total)
      return Status::Error("weights manifest: " + e.name + " extends past the end of the data");
  }
  return Status::Ok();
}

}  // namespace gr1
