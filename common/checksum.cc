#include "common/checksum.h"

#include <xxhash.h>

#include <new>

namespace gr1 {

uint64_t checksum64(const void* data, size_t size) {
  return XXH3_64bits(size ? data : nullptr, size);
}

struct Checksum64::State {
  XXH3_state_t* s = nullptr;
  State() : s(XXH3_createState()) {
    if (!s) throw std::bad_alloc();
    XXH3_64bits_reset(s);
  }
  ~State() { XXH3_freeState(s); }
};

Checksum64::Checksum64() : state_(std::make_unique<State>()) {}
Checksum64::~Checksum64() = default;
Checksum64::Checksum64(Checksum64&&) noexcept = default;
Checksum64& Checksum64::operator=(Checksum64&&) noexcept = default;

void Checksum64::update(const void* data, size_t size) {
  if (size == 0) return;
  XXH3_64bits_update(state_->s, data, size);
  bytes_ += size;
}

uint64_t Checksum64::digest() const { return XXH3_64bits_digest(state_->s); }

void Checksum64::reset() {
  XXH3_64bits_reset(state_->s);
  bytes_ = 0;
}

}  // namespace gr1
