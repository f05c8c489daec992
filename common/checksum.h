// XXH3-64 checksums of byte streams (the weight-sync checksum, docs/bus.md).
// Torch-free; <xxhash.h> stays in checksum.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace gr1 {

// XXH3-64 (seed 0) of one buffer. checksum64(nullptr, 0) is the empty-stream hash.
uint64_t checksum64(const void* data, size_t size);
inline uint64_t checksum64(std::string_view bytes) { return checksum64(bytes.data(), bytes.size()); }

// Incremental XXH3-64 over several buffers: the digest equals checksum64() of
// their concatenation (e.g. all weight buckets in order). Not thread-safe;
// movable, not copyable.
class Checksum64 {
 public:
  Checksum64();
  ~Checksum64();
  Checksum64(Checksum64&&) noexcept;
  Checksum64& operator=(Checksum64&&) noexcept;
  Checksum64(const Checksum64&) = delete;
  Checksum64& operator=(const Checksum64&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  uint64_t digest() const;  // does not reset; more updates may follow
  void reset();
  uint64_t bytes() const { return bytes_; }  // total bytes fed since the last reset

 private:
  struct State;
  std::unique_ptr<State> state_;
  uint64_t bytes_ = 0;
};

}  // namespace gr1
