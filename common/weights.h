// A versioned weights snapshot as it travels on the bus (torch-free).
//
// All tensors are laid end to end in one flat byte stream (manifest order),
// cut into buckets of bus.bucket_bytes (the last may be shorter); a tensor
// may span buckets. The checksum is XXH3-64 over the stream. One sync costs
// a constant number of messages: request, header (version, manifest,
// checksum), then the buckets, never one message per tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace gr1 {

struct TensorEntry {
  std::string name;
  std::string dtype;            // "F32"
  std::vector<int64_t> shape;
  uint32_t bucket = 0;          // bucket holding the first byte
  uint64_t offset = 0;          // byte offset of the first byte within that bucket
  uint64_t nbytes = 0;
};

struct WeightsSnapshot {
  uint64_t version = 0;
  std::vector<TensorEntry> manifest;
  std::vector<std::string> buckets;  // payloads in order
  uint64_t total_bytes = 0;
  uint64_t checksum = 0;             // XXH3-64 of the concatenated buckets
  double fetch_ms = 0;               // actor side: request sent -> verified
};

// Checks sizes, manifest bounds and the checksum. Errors say what differs.
Status verify_snapshot(const WeightsSnapshot& s);

// Global byte offset of a manifest entry in the concatenated stream.
uint64_t global_offset(const WeightsSnapshot& s, const TensorEntry& e);

}  // namespace gr1
