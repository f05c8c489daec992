#include "common/messages.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <set>
#include <type_traits>

#include "common/log.h"
#include "schemas/envelope_generated.h"

namespace gr1 {
namespace {

static_assert(FLATBUFFERS_LITTLEENDIAN, "the codec copies scalar vectors raw");
static_assert(std::variant_size_v<Payload> == static_cast<size_t>(fb::Payload::MAX),
              "Payload alternatives and the wire union must match one to one");

using fbb_t = flatbuffers::FlatBufferBuilder;
template <class T> using Off = flatbuffers::Offset<T>;

// ---------------------------------------------------------------- encoding

std::string finish(fbb_t& fbb, const std::string& sender, fb::Payload type, Off<void> payload,
                   int64_t t) {
  const auto s = fbb.CreateString(sender);
  fb::EnvelopeBuilder eb(fbb);
  eb.add_schema_version(kSchemaVersion);
  eb.add_sender(s);
  eb.add_send_time_ns(t ? t : unix_time_ns());
  eb.add_payload_type(type);
  eb.add_payload(payload);
  // Size-prefixed: the 4-byte length must equal the frame, so any truncation
  // (even of trailing padding) or appended junk is detected.
  fb::FinishSizePrefixedEnvelopeBuffer(fbb, eb.Finish());
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

Off<flatbuffers::Vector<Off<fb::Counter>>> put_counters(fbb_t& fbb, const Counters& c) {
  std::vector<Off<fb::Counter>> v;
  v.reserve(c.size());
  for (const auto& [k, val] : c) v.push_back(fb::CreateCounter(fbb, fbb.CreateString(k), val));
  return fbb.CreateVector(v);
}

fb::Box put_box(const Box& b) { return fb::Box(b.x1, b.y1, b.x2, b.y2); }
Box get_box(const fb::Box& b) { return Box{b.x1(), b.y1(), b.x2(), b.y2()}; }

Off<void> put(fbb_t& fbb, const RegisterMsg& m) {
  return fb::CreateRegister(fbb, fbb.CreateString(m.actor_id), m.pid,
                            fbb.CreateString(m.hostname), fbb.CreateVectorOfStrings(m.capabilities),
                            fbb.CreateVectorOfStrings(m.settings))
      .Union();
}
Off<void> put(fbb_t& fbb, const RegisterAckMsg& m) {
  return fb::CreateRegisterAck(fbb, m.accepted, fbb.CreateString(m.reason),
                               fbb.CreateString(m.run_id), m.weights_version)
      .Union();
}
Off<void> put(fbb_t& fbb, const HeartbeatMsg& m) {
  return fb::CreateHeartbeat(fbb, static_cast<fb::Role>(m.role), m.seq, m.weights_version,
                             m.inflight_groups, put_counters(fbb, m.counters))
      .Union();
}
Off<void> put(fbb_t& fbb, const WorkGrantMsg& m) {
  return fb::CreateWorkGrant(fbb, fbb.CreateVector(m.prompt_ids),
                             m.weights_versions.empty() ? 0 : fbb.CreateVector(m.weights_versions))
      .Union();
}
Off<void> put(fbb_t& fbb, const AckMsg& m) {
  return fb::CreateAck(fbb, m.group_id, m.prompt_id, static_cast<fb::AckOutcome>(m.outcome),
                       fbb.CreateString(m.reason))
      .Union();
}
Off<void> put(fbb_t& fbb, const WeightsAvailableMsg& m) {
  return fb::CreateWeightsAvailable(fbb, m.version, m.total_bytes).Union();
}
Off<void> put(fbb_t& fbb, const ShutdownMsg& m) {
  return fb::CreateShutdown(fbb, fbb.CreateString(m.reason)).Union();
}
Off<void> put(fbb_t& fbb, const MetricsMsg& m) {
  return fb::CreateMetrics(fbb, put_counters(fbb, m.values)).Union();
}
Off<void> put(fbb_t& fbb, const TrajectoryGroup& g) {
  std::vector<Off<fb::Trajectory>> trajs;
  trajs.reserve(g.trajectories.size());
  for (const auto& t : g.trajectories) {
    const auto tokens = fbb.CreateVector(t.tokens);
    const auto logprobs = fbb.CreateVector(t.logprobs);
    const auto mask = fbb.CreateVector(t.policy_mask);
    std::vector<fb::TurnSpan> turns;
    turns.reserve(t.turns.size());
    for (const auto& s : t.turns) turns.emplace_back(s.begin, s.end);
    const auto turns_v = fbb.CreateVectorOfStructs(turns);
    std::vector<Off<fb::ImageRef>> images;
    images.reserve(t.images.size());
    for (const auto& im : t.images) {
      const fb::Box b = put_box(im.box_orig);
      images.push_back(fb::CreateImageRef(fbb, im.is_crop, &b));
    }
    const auto images_v = fbb.CreateVector(images);
    std::vector<fb::ShownBox> boxes;
    boxes.reserve(t.boxes_shown.size());
    for (const auto& b : t.boxes_shown)
      boxes.emplace_back(b.has_value(), b ? put_box(*b) : fb::Box());
    const auto boxes_v = fbb.CreateVectorOfStructs(boxes);
    trajs.push_back(fb::CreateTrajectory(fbb, t.root, tokens, logprobs, mask, turns_v, images_v,
                                         boxes_v, t.finished));
  }
  const auto trajs_v = fbb.CreateVector(trajs);
  return fb::CreateTrajectoryGroup(fbb, fbb.CreateString(g.actor_id), g.group_id, g.prompt_id,
                                   g.weights_version, fbb.CreateString(g.dataset),
                                   g.gen_seconds, trajs_v)
      .Union();
}
Off<void> put(fbb_t& fbb, const WeightsRequestMsg& m) {
  return fb::CreateWeightsRequest(fbb, m.version).Union();
}
Off<void> put(fbb_t& fbb, const WeightsHeaderMsg& m) {
  std::vector<Off<fb::TensorEntry>> entries;
  entries.reserve(m.manifest.size());
  for (const auto& e : m.manifest)
    entries.push_back(fb::CreateTensorEntry(fbb, fbb.CreateString(e.name),
                                            fbb.CreateString(e.dtype), fbb.CreateVector(e.shape),
                                            e.bucket, e.offset, e.nbytes));
  const auto manifest = fbb.CreateVector(entries);
  return fb::CreateWeightsHeader(fbb, m.version, manifest, m.num_buckets, m.total_bytes,
                                 m.checksum, m.bucket_bytes)
      .Union();
}
Off<void> put_bucket(fbb_t& fbb, uint64_t version, uint32_t index, const void* data, size_t n) {
  const auto v = fbb.CreateVector(static_cast<const uint8_t*>(data), n);
  return fb::CreateWeightsBucket(fbb, version, index, v).Union();
}
Off<void> put(fbb_t& fbb, const WeightsBucketMsg& m) {
  return put_bucket(fbb, m.version, m.index, m.data.data(), m.data.size());
}

template <class T, size_t I = 0>
constexpr size_t index_of() {
  if constexpr (std::is_same_v<T, std::variant_alternative_t<I, Payload>>) return I;
  else return index_of<T, I + 1>();
}

template <class T>
std::string encode_any(const std::string& sender, const T& m, int64_t t, size_t hint = 256) {
  fbb_t fbb(hint + sender.size() + 128);
  const auto off = put(fbb, m);
  return finish(fbb, sender, static_cast<fb::Payload>(index_of<T>() + 1), off, t);
}

size_t size_hint(const TrajectoryGroup& g) {
  size_t n = 256;
  for (const auto& t : g.trajectories)
    n += 128 + t.tokens.size() * 9 + t.turns.size() * 8 + t.images.size() * 40 +
         t.boxes_shown.size() * 20;
  return n;
}

// ---------------------------------------------------------------- decoding

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }
template <class V> size_t len(const V* v) { return v ? v->size() : 0; }

std::string quoted(const std::string& s) {
  constexpr size_t kMax = 64;
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMax; ++i)
    out += (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
  if (s.size() > kMax) out += "...";
  return out + "'";
}

bool finite_box(const fb::Box& b) {
  return std::isfinite(b.x1()) && std::isfinite(b.y1()) && std::isfinite(b.x2()) &&
         std::isfinite(b.y2());
}

Result<Counters> get_counters(const flatbuffers::Vector<Off<fb::Counter>>* v, const char* what) {
  Counters out;
  if (!v) return out;
  if (v->size() > WireLimits::kMaxCounters)
    return Result<Counters>::Error(std::string(what) + ": " + std::to_string(v->size()) +
                                   " entries (limit " + std::to_string(WireLimits::kMaxCounters) +
                                   ")");
  for (flatbuffers::uoffset_t i = 0; i < v->size(); ++i) {
    const fb::Counter* c = v->Get(i);
    const std::string name = str(c->name());
    if (name.empty())
      return Result<Counters>::Error(std::string(what) + ": entry " + std::to_string(i) +
                                     " has an empty name");
    if (!std::isfinite(c->value()))
      return Result<Counters>::Error(std::string(what) + ": " + quoted(name) + " is not finite");
    if (!out.emplace(name, c->value()).second)
      return Result<Counters>::Error(std::string(what) + ": duplicate name " + quoted(name));
  }
  return out;
}

using Err = Status;
Err bad(std::string m) { return Status::Error(std::move(m)); }

Result<Payload> get(const fb::Register& r, const std::string& sender) {
  RegisterMsg m;
  m.actor_id = str(r.actor_id());
  if (m.actor_id != sender)
    return bad("actor_id " + quoted(m.actor_id) + " != sender " + quoted(sender));
  m.pid = r.pid();
  m.hostname = str(r.hostname());
  if (len(r.capabilities()) > WireLimits::kMaxCounters)
    return bad(std::to_string(len(r.capabilities())) + " capabilities");
  if (r.capabilities())
    for (const auto* c : *r.capabilities()) m.capabilities.push_back(str(c));
  if (len(r.settings()) > WireLimits::kMaxSettings)
    return bad(std::to_string(len(r.settings())) + " settings");
  if (r.settings())
    for (const auto* kv : *r.settings()) m.settings.push_back(str(kv));
  return Payload(std::move(m));
}

Result<Payload> get(const fb::RegisterAck& r, const std::string&) {
  RegisterAckMsg m;
  m.accepted = r.accepted();
  m.reason = str(r.reason());
  m.run_id = str(r.run_id());
  m.weights_version = r.weights_version();
  return Payload(std::move(m));
}

Result<Payload> get(const fb::Heartbeat& h, const std::string&) {
  const auto role = static_cast<uint8_t>(h.role());
  if (role > static_cast<uint8_t>(PeerRole::kActor))
    return bad("unknown role " + std::to_string(role));
  auto counters = get_counters(h.counters(), "counters");
  if (!counters) return counters.status();
  HeartbeatMsg m;
  m.role = static_cast<PeerRole>(role);
  m.seq = h.seq();
  m.weights_version = h.weights_version();
  m.inflight_groups = h.inflight_groups();
  m.counters = std::move(counters).value();
  return Payload(std::move(m));
}

Result<Payload> get(const fb::WorkGrant& w, const std::string&) {
  WorkGrantMsg m;
  const auto* ids = w.prompt_ids();
  if (len(ids) > WireLimits::kMaxPromptsPerGrant)
    return bad(std::to_string(len(ids)) + " prompt ids (limit " +
               std::to_string(WireLimits::kMaxPromptsPerGrant) + ")");
  if (ids) m.prompt_ids.assign(ids->data(), ids->data() + ids->size());
  std::vector<uint64_t> sorted = m.prompt_ids;
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end()) return bad("duplicate prompt id " + std::to_string(*dup));
  if (const auto* vs = w.weights_versions(); len(vs) > 0) {
    if (len(vs) != m.prompt_ids.size())
      return bad(std::to_string(len(vs)) + " weights versions for " +
                 std::to_string(m.prompt_ids.size()) + " prompt ids (expected one per prompt)");
    m.weights_versions.assign(vs->data(), vs->data() + vs->size());
  }
  return Payload(std::move(m));
}

Result<Payload> get(const fb::Ack& a, const std::string&) {
  const auto outcome = static_cast<uint8_t>(a.outcome());
  if (outcome > static_cast<uint8_t>(AckOutcome::kRejected))
    return bad("unknown outcome " + std::to_string(outcome));
  AckMsg m;
  m.group_id = a.group_id();
  m.prompt_id = a.prompt_id();
  m.outcome = static_cast<AckOutcome>(outcome);
  m.reason = str(a.reason());
  return Payload(std::move(m));
}

Result<Payload> get(const fb::WeightsAvailable& w, const std::string&) {
  return Payload(WeightsAvailableMsg{w.version(), w.total_bytes()});
}

Result<Payload> get(const fb::Shutdown& s, const std::string&) {
  return Payload(ShutdownMsg{str(s.reason())});
}

Result<Payload> get(const fb::Metrics& mt, const std::string&) {
  auto values = get_counters(mt.values(), "values");
  if (!values) return values.status();
  return Payload(MetricsMsg{std::move(values).value()});
}

// Structural checks of one trajectory, on the verified flatbuffer.
Status check_trajectory(const fb::Trajectory& t) {
  const size_t n = len(t.tokens());
  if (n == 0) return bad("no tokens");
  if (n > WireLimits::kMaxTokensPerTrajectory)
    return bad(std::to_string(n) + " tokens (limit " +
               std::to_string(WireLimits::kMaxTokensPerTrajectory) + ")");
  if (len(t.logprobs()) != n)
    return bad("logprobs length " + std::to_string(len(t.logprobs())) + " != tokens length " +
               std::to_string(n));
  if (len(t.policy_mask()) != n)
    return bad("policy_mask length " + std::to_string(len(t.policy_mask())) +
               " != tokens length " + std::to_string(n));
  if (t.root() < 0) return bad("root " + std::to_string(t.root()) + " < 0");
  const float* lp = t.logprobs()->data();
  const uint8_t* mask = t.policy_mask()->data();
  for (size_t i = 0; i < n; ++i) {
    if (mask[i] > 1)
      return bad("policy_mask[" + std::to_string(i) + "] = " + std::to_string(mask[i]) +
                 " (expected 0 or 1)");
    if (!std::isfinite(lp[i])) return bad("logprobs[" + std::to_string(i) + "] is not finite");
  }
  const size_t nturns = len(t.turns());
  int64_t prev_end = 0;
  for (size_t i = 0; i < nturns; ++i) {
    const fb::TurnSpan* s = t.turns()->Get(static_cast<flatbuffers::uoffset_t>(i));
    if (s->begin() < prev_end || s->begin() > s->end() || static_cast<size_t>(s->end()) > n)
      return bad("turn " + std::to_string(i) + " [" + std::to_string(s->begin()) + ", " +
                 std::to_string(s->end()) + ") out of order or outside tokens [0, " +
                 std::to_string(n) + ")");
    prev_end = s->end();
  }
  if (len(t.boxes_shown()) != nturns)
    return bad("boxes_shown length " + std::to_string(len(t.boxes_shown())) +
               " != turns length " + std::to_string(nturns));
  for (size_t i = 0; i < nturns; ++i) {
    const fb::ShownBox* b = t.boxes_shown()->Get(static_cast<flatbuffers::uoffset_t>(i));
    if (b->present() && !finite_box(b->box()))
      return bad("boxes_shown[" + std::to_string(i) + "] is not finite");
  }
  const size_t nimages = len(t.images());
  if (nimages > n)
    return bad(std::to_string(nimages) + " images for " + std::to_string(n) + " tokens");
  for (size_t i = 0; i < nimages; ++i) {
    const fb::ImageRef* im = t.images()->Get(static_cast<flatbuffers::uoffset_t>(i));
    if (im->is_crop() && (!im->box_orig() || !finite_box(*im->box_orig())))
      return bad("image " + std::to_string(i) + ": crop without a finite box");
  }
  return Status::Ok();
}

Result<Payload> get(const fb::TrajectoryGroup& g, const std::string& sender) {
  const std::string actor_id = str(g.actor_id());
  if (actor_id != sender)
    return bad("actor_id " + quoted(actor_id) + " != sender " + quoted(sender));
  const size_t ntraj = len(g.trajectories());
  if (ntraj == 0) return bad("group " + std::to_string(g.group_id()) + " has no trajectories");
  if (ntraj > WireLimits::kMaxTrajectoriesPerGroup)
    return bad(std::to_string(ntraj) + " trajectories (limit " +
               std::to_string(WireLimits::kMaxTrajectoriesPerGroup) + ")");
  if (!std::isfinite(g.gen_seconds()) || g.gen_seconds() < 0)
    return bad("gen_seconds " + std::to_string(g.gen_seconds()) + " is not a duration");
  for (size_t i = 0; i < ntraj; ++i) {
    const Status s = check_trajectory(*g.trajectories()->Get(static_cast<flatbuffers::uoffset_t>(i)));
    if (!s.ok()) return bad("trajectory " + std::to_string(i) + ": " + s.message());
  }

  // Checked: convert.
  TrajectoryGroup out;
  out.actor_id = actor_id;
  out.group_id = g.group_id();
  out.prompt_id = g.prompt_id();
  out.weights_version = g.weights_version();
  out.dataset = str(g.dataset());
  out.gen_seconds = g.gen_seconds();
  out.trajectories.resize(ntraj);
  for (size_t i = 0; i < ntraj; ++i) {
    const fb::Trajectory& t = *g.trajectories()->Get(static_cast<flatbuffers::uoffset_t>(i));
    Trajectory& o = out.trajectories[i];
    o.root = t.root();
    o.tokens.assign(t.tokens()->data(), t.tokens()->data() + t.tokens()->size());
    o.logprobs.assign(t.logprobs()->data(), t.logprobs()->data() + t.logprobs()->size());
    o.policy_mask.assign(t.policy_mask()->data(), t.policy_mask()->data() + t.policy_mask()->size());
    if (t.turns()) {
      o.turns.reserve(t.turns()->size());
      for (const fb::TurnSpan* s : *t.turns()) o.turns.push_back(TurnSpan{s->begin(), s->end()});
    }
    if (t.images()) {
      o.images.reserve(t.images()->size());
      for (const fb::ImageRef* im : *t.images())
        o.images.push_back(ImageRef{im->is_crop(), im->box_orig() ? get_box(*im->box_orig()) : Box{}});
    }
    if (t.boxes_shown()) {
      o.boxes_shown.reserve(t.boxes_shown()->size());
      for (const fb::ShownBox* b : *t.boxes_shown())
        o.boxes_shown.push_back(b->present() ? std::optional<Box>(get_box(b->box()))
                                             : std::nullopt);
    }
    o.finished = t.finished();
  }
  return Payload(std::move(out));
}

Result<Payload> get(const fb::WeightsRequest& w, const std::string&) {
  return Payload(WeightsRequestMsg{w.version()});
}

// a * b, or nullopt on uint64 overflow.
std::optional<uint64_t> mul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
std::optional<uint64_t> add(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

Result<Payload> get(const fb::WeightsHeader& h, const std::string&) {
  const uint64_t total = h.total_bytes(), bb = h.bucket_bytes();
  const uint32_t nb = h.num_buckets();
  if (nb > WireLimits::kMaxBuckets) return bad(std::to_string(nb) + " buckets");
  if ((nb == 0) != (total == 0))
    return bad("num_buckets " + std::to_string(nb) + " with total_bytes " + std::to_string(total));
  if (bb > 0) {
    const uint64_t want = total / bb + (total % bb ? 1 : 0);
    if (want != nb)
      return bad("num_buckets " + std::to_string(nb) + " != ceil(total_bytes " +
                 std::to_string(total) + " / bucket_bytes " + std::to_string(bb) + ") = " +
                 std::to_string(want));
  }
  const size_t ne = len(h.manifest());
  if (ne > WireLimits::kMaxManifestEntries) return bad(std::to_string(ne) + " manifest entries");
  WeightsHeaderMsg m;
  m.version = h.version();
  m.num_buckets = nb;
  m.total_bytes = total;
  m.checksum = h.checksum();
  m.bucket_bytes = bb;
  m.manifest.reserve(ne);
  std::set<std::string> names;
  uint64_t sum = 0;
  for (size_t i = 0; i < ne; ++i) {
    const fb::TensorEntry* e = h.manifest()->Get(static_cast<flatbuffers::uoffset_t>(i));
    TensorEntry t;
    t.name = str(e->name());
    t.dtype = str(e->dtype());
    t.bucket = e->bucket();
    t.offset = e->offset();
    t.nbytes = e->nbytes();
    const std::string where = "manifest entry " + std::to_string(i) + " " + quoted(t.name);
    if (t.name.empty()) return bad("manifest entry " + std::to_string(i) + " has no name");
    if (!names.insert(t.name).second) return bad(where + ": duplicate name");
    if (t.dtype.empty()) return bad(where + ": no dtype");
    if (len(e->shape()) > WireLimits::kMaxTensorRank)
      return bad(where + ": rank " + std::to_string(len(e->shape())));
    std::optional<uint64_t> numel = 1;
    if (e->shape())
      for (const int64_t d : *e->shape()) {
        if (d < 0) return bad(where + ": negative dimension " + std::to_string(d));
        t.shape.push_back(d);
        if (numel) numel = mul(*numel, static_cast<uint64_t>(d));
      }
    if (const size_t es = dtype_size(t.dtype); es > 0) {
      const auto want = numel ? mul(*numel, es) : std::nullopt;
      if (!want || *want != t.nbytes)
        return bad(where + ": nbytes " + std::to_string(t.nbytes) + " does not match " +
                   t.dtype + " shape");
    }
    if (t.nbytes > 0 && t.bucket >= nb)
      return bad(where + ": bucket " + std::to_string(t.bucket) + " >= num_buckets " +
                 std::to_string(nb));
    if (bb > 0 && t.nbytes > 0) {
      if (t.offset >= bb)
        return bad(where + ": offset " + std::to_string(t.offset) + " >= bucket_bytes " +
                   std::to_string(bb));
      const auto start = add(t.bucket * bb, t.offset);  // bucket < nb <= 2^24, bb*nb ~ total
      const auto end = start ? add(*start, t.nbytes) : std::nullopt;
      if (!end || *end > total)
        return bad(where + ": extends past total_bytes " + std::to_string(total));
    }
    const auto s = add(sum, t.nbytes);
    if (!s || *s > total)
      return bad("manifest sizes exceed total_bytes " + std::to_string(total));
    sum = *s;
    m.manifest.push_back(std::move(t));
  }
  return Payload(std::move(m));
}

Result<Payload> get(const fb::WeightsBucket& b, const std::string&) {
  WeightsBucketMsg m;
  m.version = b.version();
  m.index = b.index();
  if (b.data()) m.data.assign(reinterpret_cast<const char*>(b.data()->data()), b.data()->size());
  return Payload(std::move(m));
}

Result<Payload> get_payload(const fb::Envelope& env, const std::string& sender) {
  switch (env.payload_type()) {
    case fb::Payload::Register: return get(*env.payload_as_Register(), sender);
    case fb::Payload::RegisterAck: return get(*env.payload_as_RegisterAck(), sender);
    case fb::Payload::Heartbeat: return get(*env.payload_as_Heartbeat(), sender);
    case fb::Payload::WorkGrant: return get(*env.payload_as_WorkGrant(), sender);
    case fb::Payload::Ack: return get(*env.payload_as_Ack(), sender);
    case fb::Payload::WeightsAvailable: return get(*env.payload_as_WeightsAvailable(), sender);
    case fb::Payload::Shutdown: return get(*env.payload_as_Shutdown(), sender);
    case fb::Payload::Metrics: return get(*env.payload_as_Metrics(), sender);
    case fb::Payload::TrajectoryGroup: return get(*env.payload_as_TrajectoryGroup(), sender);
    case fb::Payload::WeightsRequest: return get(*env.payload_as_WeightsRequest(), sender);
    case fb::Payload::WeightsHeader: return get(*env.payload_as_WeightsHeader(), sender);
    case fb::Payload::WeightsBucket: return get(*env.payload_as_WeightsBucket(), sender);
    case fb::Payload::NONE: break;
  }
  return bad("no payload");  // unreachable: kinds are checked by the caller
}

}  // namespace

const char* kind_name(MessageKind kind) {
  const auto i = static_cast<size_t>(kind);
  if (i == 0 || i > static_cast<size_t>(fb::Payload::MAX)) return "Unknown";
  return fb::EnumNamesPayload()[i];
}

const char* outcome_name(AckOutcome outcome) {
  switch (outcome) {
    case AckOutcome::kConsumed: return "consumed";
    case AckOutcome::kDiscardedStale: return "discarded_stale";
    case AckOutcome::kRejected: return "rejected";
  }
  return "unknown";
}

bool kind_allowed(MessageKind kind, Channel channel, PeerRole receiver) {
  using K = MessageKind;
  const bool at_learner = receiver == PeerRole::kLearner;
  const bool at_actor = receiver == PeerRole::kActor;
  switch (channel) {
    case Channel::kControl:
      switch (kind) {
        case K::kRegister:
        case K::kMetrics: return at_learner;
        case K::kRegisterAck:
        case K::kWorkGrant:
        case K::kAck:
        case K::kWeightsAvailable: return at_actor;
        case K::kHeartbeat:
        case K::kShutdown: return at_learner || at_actor;
        default: return false;
      }
    case Channel::kTrajectories: return at_learner && kind == K::kTrajectoryGroup;
    case Channel::kWeights:
      if (kind == K::kWeightsRequest) return at_learner;
      return at_actor && (kind == K::kWeightsHeader || kind == K::kWeightsBucket);
  }
  return false;
}

int64_t unix_time_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

#define GR1_ENCODE(T)                                                                  \
  std::string encode_message(const std::string& sender, const T& m, int64_t t) {       \
    return encode_any(sender, m, t);                                                   \
  }
GR1_ENCODE(RegisterMsg)
GR1_ENCODE(RegisterAckMsg)
GR1_ENCODE(HeartbeatMsg)
GR1_ENCODE(WorkGrantMsg)
GR1_ENCODE(AckMsg)
GR1_ENCODE(WeightsAvailableMsg)
GR1_ENCODE(ShutdownMsg)
GR1_ENCODE(MetricsMsg)
GR1_ENCODE(WeightsRequestMsg)
GR1_ENCODE(WeightsHeaderMsg)
#undef GR1_ENCODE

std::string encode_message(const std::string& sender, const TrajectoryGroup& m, int64_t t) {
  return encode_any(sender, m, t, size_hint(m));
}
std::string encode_message(const std::string& sender, const WeightsBucketMsg& m, int64_t t) {
  return encode_any(sender, m, t, m.data.size() + 64);
}
std::string encode_message(const std::string& sender, const Payload& p, int64_t t) {
  return std::visit([&](const auto& m) { return encode_message(sender, m, t); }, p);
}

std::string encode_weights_bucket(const std::string& sender, uint64_t version, uint32_t index,
                                  const void* data, size_t size, int64_t t) {
  fbb_t fbb(size + sender.size() + 192);
  const auto off = put_bucket(fbb, version, index, data, size);
  return finish(fbb, sender, fb::Payload::WeightsBucket, off, t);
}

WeightsHeaderMsg weights_header_of(const WeightsSnapshot& s) {
  WeightsHeaderMsg h;
  h.version = s.version;
  h.manifest = s.manifest;
  h.num_buckets = static_cast<uint32_t>(s.buckets.size());
  h.total_bytes = s.total_bytes;
  h.checksum = s.checksum;
  // State the nominal bucket size only when the buckets really are uniform.
  if (!s.buckets.empty()) {
    const uint64_t first = s.buckets.front().size();
    bool uniform = first > 0;
    for (size_t i = 0; i + 1 < s.buckets.size() && uniform; ++i)
      uniform = s.buckets[i].size() == first;
    uniform = uniform && s.buckets.back().size() <= first;
    h.bucket_bytes = uniform ? first : 0;
  }
  return h;
}

std::vector<std::string> encode_weights_reply(const std::string& sender, const WeightsSnapshot& s) {
  std::vector<std::string> frames;
  frames.reserve(s.buckets.size() + 1);
  const int64_t t = unix_time_ns();
  frames.push_back(encode_message(sender, weights_header_of(s), t));
  for (size_t i = 0; i < s.buckets.size(); ++i)
    frames.push_back(encode_weights_bucket(sender, s.version, static_cast<uint32_t>(i),
                                           s.buckets[i].data(), s.buckets[i].size(), t));
  return frames;
}

Result<Message> decode_message(const void* data, size_t size, size_t max_bytes) {
  using R = Result<Message>;
  if (!data || size == 0) return R::Error("empty message");
  if (size > max_bytes)
    return R::Error("message of " + std::to_string(size) + " bytes exceeds the limit of " +
                    std::to_string(max_bytes));
  if (size >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return R::Error("message of " + std::to_string(size) + " bytes is too large for flatbuffers");
  if (size < 12) return R::Error("message of " + std::to_string(size) + " bytes is truncated");

  // The verifier requires scalars aligned to their size (8 at most); zmq
  // frames may start anywhere, so realign by copying when needed.
  std::unique_ptr<uint64_t[]> aligned;
  const uint8_t* buf = static_cast<const uint8_t*>(data);
  if (reinterpret_cast<uintptr_t>(buf) % alignof(uint64_t) != 0) {
    aligned.reset(new uint64_t[(size + 7) / 8]);
    std::memcpy(aligned.get(), data, size);
    buf = reinterpret_cast<const uint8_t*>(aligned.get());
  }

  const uint32_t declared = flatbuffers::ReadScalar<uint32_t>(buf);
  if (size_t{declared} + sizeof(uint32_t) != size)
    return R::Error("length prefix says " + std::to_string(declared) + " bytes, frame has " +
                    std::to_string(size - sizeof(uint32_t)) + " (truncated or corrupt)");
  if (!fb::SizePrefixedEnvelopeBufferHasIdentifier(buf))
    return R::Error("not a Ground-R1 message (file identifier is not \"" +
                    std::string(fb::EnvelopeIdentifier()) + "\")");
  flatbuffers::Verifier::Options vopts;
  vopts.max_depth = 16;
  vopts.max_tables = 4u << 20;
  vopts.check_alignment = true;
  flatbuffers::Verifier verifier(buf, size, vopts);
  if (!fb::VerifySizePrefixedEnvelopeBuffer(verifier))
    return R::Error("flatbuffer verification failed (" + std::to_string(size) + " bytes)");

  const fb::Envelope* env = fb::GetSizePrefixedEnvelope(buf);
  if (env->schema_version() != kSchemaVersion)
    return R::Error("schema version " + std::to_string(env->schema_version()) +
                    " unsupported (expected " + std::to_string(kSchemaVersion) + ")");
  const std::string sender = str(env->sender());
  if (sender.empty()) return R::Error("empty sender");
  if (sender.size() > WireLimits::kMaxIdBytes)
    return R::Error("sender of " + std::to_string(sender.size()) + " bytes (limit " +
                    std::to_string(WireLimits::kMaxIdBytes) + ")");
  const auto kind = static_cast<uint8_t>(env->payload_type());
  if (kind == 0) return R::Error("message from " + quoted(sender) + " has no kind");
  if (kind > static_cast<uint8_t>(fb::Payload::MAX))
    return R::Error("unknown message kind " + std::to_string(kind) + " from " + quoted(sender) +
                    " (newer schema?)");
  const char* kname = fb::EnumNamesPayload()[kind];
  if (!env->payload())
    return R::Error(std::string(kname) + " from " + quoted(sender) + " has no payload");

  auto payload = get_payload(*env, sender);
  if (!payload)
    return R::Error(std::string(kname) + " from " + quoted(sender) + ": " + payload.error());
  Message m;
  m.schema_version = env->schema_version();
  m.sender = sender;
  m.send_time_ns = env->send_time_ns();
  m.payload = std::move(payload).value();
  return m;
}

bool RejectCounter::note(const Result<Message>& r, const std::string& source) {
  if (r.ok()) {
    ++accepted_;
    return true;
  }
  reject(source, r.error());
  return false;
}

void RejectCounter::reject(const std::string& source, const std::string& error) {
  ++rejected_;
  const uint64_t n = ++by_source_[source];
  last_error_ = error;
  // First 10 per source verbatim, then every 1000th (with the count).
  if (n <= 10 || n % 1000 == 0)
    log_warn(component_, "rejected message #" + std::to_string(n) + " from " + source + ": " +
                             error + " (total rejected " + std::to_string(rejected_) + ")");
}

void WeightsAssembler::reset() {
  started_ = false;
  header_ = WeightsHeaderMsg();
  buckets_.clear();
  received_bytes_ = 0;
}

Status WeightsAssembler::begin(WeightsHeaderMsg header) {
  reset();
  header_ = std::move(header);
  started_ = true;
  buckets_.reserve(header_.num_buckets);
  return Status::Ok();
}

Status WeightsAssembler::add(WeightsBucketMsg b) {
  const std::string v = "weights v" + std::to_string(header_.version);
  if (!started_) return Status::Error("weights bucket before its header");
  if (b.version != header_.version)
    return Status::Error(v + ": bucket " + std::to_string(b.index) + " has version " +
                         std::to_string(b.version));
  if (b.index != buckets_.size() || b.index >= header_.num_buckets)
    return Status::Error(v + ": bucket index " + std::to_string(b.index) + ", expected " +
                         std::to_string(buckets_.size()) + " of " +
                         std::to_string(header_.num_buckets));
  const uint64_t n = b.data.size();
  if (header_.bucket_bytes > 0) {
    const bool last = b.index + 1 == header_.num_buckets;
    if (last ? n > header_.bucket_bytes : n != header_.bucket_bytes)
      return Status::Error(v + ": bucket " + std::to_string(b.index) + " has " +
                           std::to_string(n) + " bytes, bucket_bytes is " +
                           std::to_string(header_.bucket_bytes));
  }
  if (n > header_.total_bytes - received_bytes_)
    return Status::Error(v + ": buckets exceed total_bytes " + std::to_string(header_.total_bytes));
  received_bytes_ += n;
  buckets_.push_back(std::move(b.data));
  return Status::Ok();
}

Result<WeightsSnapshot> WeightsAssembler::finish(uint64_t min_version) {
  using R = Result<WeightsSnapshot>;
  if (!started_) return R::Error("weights: no header received");
  const std::string v = "weights v" + std::to_string(header_.version);
  if (!complete())
    return R::Error(v + ": " + std::to_string(buckets_.size()) + " of " +
                    std::to_string(header_.num_buckets) + " buckets received");
  if (header_.version < min_version)
    return R::Error(v + " is older than the requested v" + std::to_string(min_version));
  WeightsSnapshot s;
  s.version = header_.version;
  s.manifest = std::move(header_.manifest);
  s.buckets = std::move(buckets_);
  s.total_bytes = header_.total_bytes;
  s.checksum = header_.checksum;
  reset();
  if (Status st = verify_snapshot(s); !st.ok()) return st;
  return s;
}

Result<WeightsSnapshot> decode_weights_reply(const std::vector<std::string_view>& frames,
                                             size_t max_bytes, uint64_t min_version) {
  using R = Result<WeightsSnapshot>;
  if (frames.empty()) return R::Error("weights reply: no frames");
  WeightsAssembler a;
  for (size_t i = 0; i < frames.size(); ++i) {
    auto m = decode_message(frames[i], max_bytes);
    if (!m) return R::Error("weights reply frame " + std::to_string(i) + ": " + m.error());
    if (i == 0) {
      auto* h = m->get<WeightsHeaderMsg>();
      if (!h)
        return R::Error(std::string("weights reply frame 0 is ") + kind_name(m->kind()) +
                        ", expected WeightsHeader");
      if (frames.size() != size_t{h->num_buckets} + 1)
        return R::Error("weights reply has " + std::to_string(frames.size() - 1) +
                        " bucket frames, header says " + std::to_string(h->num_buckets));
      a.begin(std::move(*h));
    } else {
      auto* b = m->get<WeightsBucketMsg>();
      if (!b)
        return R::Error("weights reply frame " + std::to_string(i) + " is " +
                        kind_name(m->kind()) + ", expected WeightsBucket");
      if (Status st = a.add(std::move(*b)); !st.ok()) return st;
    }
  }
  return a.finish(min_version);
}

}  // namespace gr1
