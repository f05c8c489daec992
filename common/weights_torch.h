// Policy <-> WeightsSnapshot (LibTorch).
#pragma once

#include <memory>

#include "common/policy.h"
#include "common/weights.h"

namespace gr1 {

// Copies every parameter (named_parameters order) into one stream cut into
// buckets of `bucket_bytes`, with manifest and checksum.
std::shared_ptr<const WeightsSnapshot> pack_weights(const Policy& policy, uint64_t version,
                                                    int64_t bucket_bytes);

// Loads a verified snapshot into `policy`; every parameter must be present
// with the same shape and dtype, or nothing is changed and an error names it.
Status unpack_weights(const WeightsSnapshot& s, Policy& policy);

}  // namespace gr1
