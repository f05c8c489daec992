// The bus codec: plain C++ message structs <-> FlatBuffers wire bytes
// (schemas/*.fbs, contract in docs/bus.md). Torch-free and zmq-free.
//
//   encode_message(sender, msg) -> bytes -> [zmq] -> decode_message(bytes)
//     decode: size limit -> identifier + flatbuffers Verifier -> schema
//             version -> sender -> kind/payload -> per-kind consistency
//             checks -> conversion into plain structs
//
// Every wire message is one Envelope (schema_version, sender, send time, kind,
// payload). decode_message never throws on bad input and never reads a field
// before the buffer is verified; a bad message yields an error naming what was
// wrong, which the receiver counts (RejectCounter) and logs, then carries on.
//
// All functions are thread-safe (no shared state) except RejectCounter and
// WeightsAssembler, which belong to one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/status.h"
#include "common/trajectory.h"
#include "common/weights.h"

namespace gr1 {

// Written into every Envelope; a reader refuses any other value. Bumped only
// for changes old readers must refuse (additive schema growth keeps it).
inline constexpr uint32_t kSchemaVersion = 1;

// Sanity bounds checked by decode_message (a message beyond them is rejected).
struct WireLimits {
  static constexpr size_t kMaxIdBytes = 256;                 // sender, actor_id
  static constexpr size_t kMaxTrajectoriesPerGroup = 1 << 16;
  static constexpr size_t kMaxTokensPerTrajectory = 1 << 24;
  static constexpr size_t kMaxPromptsPerGrant = 1 << 16;
  static constexpr size_t kMaxCounters = 4096;               // Heartbeat/Metrics entries
  static constexpr size_t kMaxSettings = 4096;               // Register settings entries
  static constexpr size_t kMaxManifestEntries = 1 << 20;
  static constexpr size_t kMaxBuckets = 1 << 24;
  static constexpr size_t kMaxTensorRank = 16;
};

// The wire kind: equals the Envelope payload union tag (append-only).
enum class MessageKind : uint8_t {
  kRegister = 1,          // actor -> learner, control
  kRegisterAck = 2,       // learner -> actor, control
  kHeartbeat = 3,         // both, control
  kWorkGrant = 4,         // learner -> actor, control
  kAck = 5,               // learner -> actor, control
  kWeightsAvailable = 6,  // learner -> actor, control
  kShutdown = 7,          // both, control
  kMetrics = 8,           // actor -> learner, control
  kTrajectoryGroup = 9,   // actor -> learner, trajectories (PUSH/PULL)
  kWeightsRequest = 10,   // actor -> learner, weights
  kWeightsHeader = 11,    // learner -> actor, weights (first frame of the reply)
  kWeightsBucket = 12,    // learner -> actor, weights (following frames)
};
const char* kind_name(MessageKind kind);  // "TrajectoryGroup", ...

enum class PeerRole : uint8_t { kUnknown = 0, kLearner = 1, kActor = 2 };
enum class AckOutcome : uint8_t { kConsumed = 0, kDiscardedStale = 1, kRejected = 2 };
const char* outcome_name(AckOutcome outcome);  // "consumed", "discarded_stale", "rejected"

// The three sockets of docs/bus.md.
enum class Channel : uint8_t { kControl, kTrajectories, kWeights };
// Whether `kind` may arrive on `channel` at a receiver of role `receiver`
// (the direction table of docs/bus.md). Receivers reject (and count) the rest.
bool kind_allowed(MessageKind kind, Channel channel, PeerRole receiver);

// Small string -> double table (counters, metrics). Keys are unique.
using Counters = std::map<std::string, double>;

struct RegisterMsg {
  std::string actor_id;  // must equal the envelope sender (and the DEALER routing id)
  int64_t pid = 0;
  std::string hostname;
  std::vector<std::string> capabilities;
  std::vector<std::string> settings;  // "task.seed=1234", ... (config.h rollout_contract)
};

struct RegisterAckMsg {
  bool accepted = false;
  std::string reason;
  std::string run_id;            // learner run id
  uint64_t weights_version = 0;  // newest version the learner serves
};

struct HeartbeatMsg {
  PeerRole role = PeerRole::kUnknown;
  uint64_t seq = 0;
  uint64_t weights_version = 0;
  uint32_t inflight_groups = 0;
  Counters counters;
};

struct WorkGrantMsg {
  std::vector<uint64_t> prompt_ids;
  // Empty, or one per prompt id: the weights version that prompt must be
  // rolled out with (learner.reproducible).
  std::vector<uint64_t> weights_versions;
};

struct AckMsg {
  uint64_t group_id = 0;
  uint64_t prompt_id = 0;
  AckOutcome outcome = AckOutcome::kConsumed;
  std::string reason;
};

struct WeightsAvailableMsg {
  uint64_t version = 0;
  uint64_t total_bytes = 0;
};

struct ShutdownMsg {
  std::string reason;
};

// Rollout counters (groups, trajectories, tokens, gen_seconds,
// weight_fetch_seconds, weights_version, ...); the sender is the envelope's.
struct MetricsMsg {
  Counters values;
};

struct WeightsRequestMsg {
  uint64_t version = 0;  // the version the actor was told about; the reply may be newer
};

struct WeightsHeaderMsg {
  uint64_t version = 0;
  std::vector<TensorEntry> manifest;
  uint32_t num_buckets = 0;
  uint64_t total_bytes = 0;
  uint64_t checksum = 0;      // XXH3-64 of all bucket payloads concatenated in order
  uint64_t bucket_bytes = 0;  // nominal size of every bucket but the last; 0 = not stated
};

// Decoding COPIES the payload once into `data` (one memcpy of <= bucket_bytes
// per frame); move it into WeightsSnapshot::buckets, which owns strings, so no
// further copy is made. The zmq frame may be released right after decoding.
struct WeightsBucketMsg {
  uint64_t version = 0;
  uint32_t index = 0;
  std::string data;
};

// Alternative i holds MessageKind i + 1.
using Payload = std::variant<RegisterMsg, RegisterAckMsg, HeartbeatMsg, WorkGrantMsg, AckMsg,
                             WeightsAvailableMsg, ShutdownMsg, MetricsMsg, TrajectoryGroup,
                             WeightsRequestMsg, WeightsHeaderMsg, WeightsBucketMsg>;

// One decoded, verified message.
struct Message {
  uint32_t schema_version = kSchemaVersion;
  std::string sender;
  int64_t send_time_ns = 0;  // unix ns at the sender
  Payload payload;

  MessageKind kind() const { return static_cast<MessageKind>(payload.index() + 1); }
  template <class T> const T* get() const { return std::get_if<T>(&payload); }
  template <class T> T* get() { return std::get_if<T>(&payload); }
};

int64_t unix_time_ns();

// ---- Encoding -------------------------------------------------------------
// Each returns one Envelope as bytes (a zmq frame). send_time_ns 0 = now.
// Encoders do not validate: what the struct says is what goes on the wire
// (decode_message is the single place that checks).
std::string encode_message(const std::string& sender, const RegisterMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const RegisterAckMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const HeartbeatMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const WorkGrantMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const AckMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const WeightsAvailableMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const ShutdownMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const MetricsMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const TrajectoryGroup& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const WeightsRequestMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const WeightsHeaderMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const WeightsBucketMsg& m, int64_t send_time_ns = 0);
std::string encode_message(const std::string& sender, const Payload& p, int64_t send_time_ns = 0);
// A bucket straight from a byte range (no intermediate WeightsBucketMsg copy).
std::string encode_weights_bucket(const std::string& sender, uint64_t version, uint32_t index,
                                  const void* data, size_t size, int64_t send_time_ns = 0);

// The header a snapshot is announced with (bucket_bytes = size of bucket 0
// when there are several buckets, else total_bytes).
WeightsHeaderMsg weights_header_of(const WeightsSnapshot& s);
// The learner's whole reply to a WeightsRequest, ready to send as ONE
// multipart message: frame 0 the header, frames 1..n the buckets.
std::vector<std::string> encode_weights_reply(const std::string& sender, const WeightsSnapshot& s);

// ---- Decoding -------------------------------------------------------------
// Verifies, checks and converts one frame. `max_bytes` bounds the frame size
// (pass BusOptions::max_message_bytes). The buffer is only read during the
// call; nothing in the result points into it. Unaligned buffers (possible
// for zmq frames) are copied once to an aligned one before verification.
// Errors look like "trajectory 3: logprobs length 10 != tokens length 12",
// "schema version 2 unsupported (expected 1)", "flatbuffer verification failed".
Result<Message> decode_message(const void* data, size_t size, size_t max_bytes);
inline Result<Message> decode_message(std::string_view bytes, size_t max_bytes) {
  return decode_message(bytes.data(), bytes.size(), max_bytes);
}

// Counts accepted and rejected messages on one receiver and logs rejections
// (warn, "[component] rejected <what> from <source>: <error>"), rate-limited
// per source so a garbage-spewing peer cannot flood the log. Never throws;
// a rejection never stops the receiver. Owned by one thread.
class RejectCounter {
 public:
  explicit RejectCounter(std::string component) : component_(std::move(component)) {}
  // Counts `r`; logs if it is an error. `source` names the peer or socket.
  // Returns r.ok().
  bool note(const Result<Message>& r, const std::string& source);
  // Counts a rejection found after decoding (protocol check, e.g. "kind X
  // not expected on the trajectory socket").
  void reject(const std::string& source, const std::string& error);
  void accept() { ++accepted_; }

  uint64_t accepted() const { return accepted_; }
  uint64_t rejected() const { return rejected_; }
  const std::map<std::string, uint64_t>& rejected_by_source() const { return by_source_; }
  const std::string& last_error() const { return last_error_; }

 private:
  std::string component_;
  uint64_t accepted_ = 0;
  uint64_t rejected_ = 0;
  std::map<std::string, uint64_t> by_source_;
  std::string last_error_;
};

// Actor side of one weight sync: collects the header and the buckets of ONE
// reply and yields a verified WeightsSnapshot. Buckets must arrive in index
// order (they do: one multipart message). finish() checks the version of
// every bucket against the header, the sizes, the XXH3-64 checksum and the
// manifest bounds (verify_snapshot), and that the version is >= min_version.
// Owned by one thread.
class WeightsAssembler {
 public:
  Status begin(WeightsHeaderMsg header);
  Status add(WeightsBucketMsg bucket);
  bool complete() const { return started_ && buckets_.size() == header_.num_buckets; }
  Result<WeightsSnapshot> finish(uint64_t min_version = 0);
  void reset();

 private:
  bool started_ = false;
  WeightsHeaderMsg header_;
  std::vector<std::string> buckets_;
  uint64_t received_bytes_ = 0;
};

// Decodes a whole weights reply (frame 0 header, then buckets) into a
// verified snapshot: every frame through decode_message, then WeightsAssembler.
Result<WeightsSnapshot> decode_weights_reply(const std::vector<std::string_view>& frames,
                                             size_t max_bytes, uint64_t min_version = 0);

// Bytes per element of a manifest dtype ("F32" -> 4), 0 if unknown.
size_t dtype_size(const std::string& dtype);

}  // namespace gr1
