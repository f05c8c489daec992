// The bus codec (common/messages.h) and the weight checksum (common/checksum.h).
#include "common/messages.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "common/checksum.h"
#include "schemas/envelope_generated.h"

namespace gr1 {
namespace {

constexpr size_t kMax = 256u << 20;

Trajectory make_trajectory(int n, int turns, bool boxes, int seed) {
  Trajectory t;
  t.root = seed % 3;
  for (int i = 0; i < n; ++i) {
    t.tokens.push_back(1000 * seed + i);
    const bool policy = i >= n / 2;
    t.policy_mask.push_back(policy ? 1 : 0);
    t.logprobs.push_back(policy ? -0.01f * static_cast<float>(i + 1) : 0.f);
  }
  const int per = (n - n / 2) / turns;
  for (int k = 0; k < turns; ++k) {
    t.turns.push_back(TurnSpan{n / 2 + k * per, n / 2 + (k + 1) * per});
    if (boxes && k % 2 == 0)
      t.boxes_shown.push_back(Box{1.5f + k, 2.f, 30.25f, 40.f + seed});
    else
      t.boxes_shown.push_back(std::nullopt);
  }
  t.images.push_back(ImageRef{false, {}});
  if (turns > 1) t.images.push_back(ImageRef{true, Box{10, 20, 110, 120.5f}});
  t.finished = seed % 2 == 0;
  return t;
}

TrajectoryGroup make_group(int ntraj, bool boxes) {
  TrajectoryGroup g;
  g.actor_id = "actor-7";
  g.group_id = 42;
  g.prompt_id = 1234567890123ULL;
  g.weights_version = 9;
  g.dataset = "synth";
  g.gen_seconds = 1.25;
  for (int i = 0; i < ntraj; ++i) g.trajectories.push_back(make_trajectory(12 + 4 * i, 1 + i % 3, boxes, i));
  return g;
}

void expect_same(const TrajectoryGroup& a, const TrajectoryGroup& b) {
  EXPECT_EQ(a.actor_id, b.actor_id);
  EXPECT_EQ(a.group_id, b.group_id);
  EXPECT_EQ(a.prompt_id, b.prompt_id);
  EXPECT_EQ(a.weights_version, b.weights_version);
  EXPECT_EQ(a.dataset, b.dataset);
  EXPECT_EQ(a.gen_seconds, b.gen_seconds);
  ASSERT_EQ(a.trajectories.size(), b.trajectories.size());
  for (size_t i = 0; i < a.trajectories.size(); ++i) {
    const Trajectory& x = a.trajectories[i];
    const Trajectory& y = b.trajectories[i];
    SCOPED_TRACE("trajectory " + std::to_string(i));
    EXPECT_EQ(x.root, y.root);
    EXPECT_EQ(x.tokens, y.tokens);
    EXPECT_EQ(x.logprobs, y.logprobs);
    EXPECT_EQ(x.policy_mask, y.policy_mask);
    ASSERT_EQ(x.turns.size(), y.turns.size());
    for (size_t k = 0; k < x.turns.size(); ++k) {
      EXPECT_EQ(x.turns[k].begin, y.turns[k].begin);
      EXPECT_EQ(x.turns[k].end, y.turns[k].end);
    }
    ASSERT_EQ(x.images.size(), y.images.size());
    for (size_t k = 0; k < x.images.size(); ++k) {
      EXPECT_EQ(x.images[k].is_crop, y.images[k].is_crop);
      if (x.images[k].is_crop) {
        EXPECT_EQ(x.images[k].box_orig, y.images[k].box_orig);
      }
    }
    EXPECT_EQ(x.boxes_shown, y.boxes_shown);
    EXPECT_EQ(x.finished, y.finished);
  }
}

template <class T>
T round_trip(const std::string& sender, const T& msg) {
  const std::string bytes = encode_message(sender, msg, 777);
  auto r = decode_message(bytes, kMax);
  EXPECT_TRUE(r.ok()) << r.error();
  if (!r.ok()) return T{};
  EXPECT_EQ(r->sender, sender);
  EXPECT_EQ(r->send_time_ns, 777);
  EXPECT_EQ(r->schema_version, kSchemaVersion);
  const T* out = r->template get<T>();
  EXPECT_NE(out, nullptr) << "decoded as " << kind_name(r->kind());
  return out ? *out : T{};
}

// A 3-tensor F32 snapshot cut into buckets of `bucket` bytes.
WeightsSnapshot make_snapshot(uint64_t version, size_t bucket) {
  WeightsSnapshot s;
  s.version = version;
  std::string stream;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {
      {"embed.weight", {40, 8}}, {"norm.weight", {8}}, {"head.weight", {8, 33}}};
  for (const auto& [name, shape] : tensors) {
    int64_t numel = 1;
    for (auto d : shape) numel *= d;
    TensorEntry e;
    e.name = name;
    e.dtype = "F32";
    e.shape = shape;
    e.nbytes = static_cast<uint64_t>(numel) * 4;
    e.bucket = static_cast<uint32_t>(stream.size() / bucket);
    e.offset = stream.size() % bucket;
    for (int64_t i = 0; i < numel; ++i) {
      const float v = 0.001f * static_cast<float>(i) + static_cast<float>(version);
      stream.append(reinterpret_cast<const char*>(&v), 4);
    }
    s.manifest.push_back(e);
  }
  for (size_t off = 0; off < stream.size(); off += bucket) s.buckets.push_back(stream.substr(off, bucket));
  s.total_bytes = stream.size();
  s.checksum = checksum64(stream);
  return s;
}

std::vector<std::string> all_kinds() {
  HeartbeatMsg hb;
  hb.role = PeerRole::kActor;
  hb.seq = 3;
  hb.counters = {{"groups", 5}, {"tokens", 1e6}};
  WeightsBucketMsg bucket{3, 1, std::string(300, 'x')};
  return {
      encode_message("actor-7", RegisterMsg{"actor-7", 1234, "host", {"cpu", "vlm"}}),
      encode_message("learner", RegisterAckMsg{true, "", "run-1", 4}),
      encode_message("actor-7", hb),
      encode_message("learner", WorkGrantMsg{{1, 2, 3}}),
      encode_message("learner", AckMsg{9, 2, AckOutcome::kDiscardedStale, "stale by 5"}),
      encode_message("learner", WeightsAvailableMsg{5, 1000}),
      encode_message("learner", ShutdownMsg{"done"}),
      encode_message("actor-7", MetricsMsg{{{"gen_seconds", 2.5}}}),
      encode_message("actor-7", make_group(3, true)),
      encode_message("actor-7", WeightsRequestMsg{5}),
      encode_message("learner", weights_header_of(make_snapshot(5, 512))),
      encode_message("learner", bucket),
  };
}

// ------------------------------------------------------------ round trips

TEST(MessagesTest, TrajectoryGroupWithBoxesRoundTrips) {
  const TrajectoryGroup g = make_group(5, true);
  expect_same(round_trip("actor-7", g), g);
}

TEST(MessagesTest, TrajectoryGroupWithoutBoxesRoundTrips) {
  const TrajectoryGroup g = make_group(3, false);
  const TrajectoryGroup out = round_trip("actor-7", g);
  expect_same(out, g);
  for (const auto& t : out.trajectories)
    for (const auto& b : t.boxes_shown) EXPECT_FALSE(b.has_value());
}

TEST(MessagesTest, ControlKindsRoundTrip) {
  const RegisterMsg reg =
      round_trip("a1", RegisterMsg{"a1", 4242, "node-3", {"cpu", "x"}, {"task.seed=7", "rollout.g1=4"}});
  EXPECT_EQ(reg.settings, (std::vector<std::string>{"task.seed=7", "rollout.g1=4"}));
  EXPECT_EQ(reg.actor_id, "a1");
  EXPECT_EQ(reg.pid, 4242);
  EXPECT_EQ(reg.hostname, "node-3");
  EXPECT_EQ(reg.capabilities, (std::vector<std::string>{"cpu", "x"}));

  const RegisterAckMsg ack = round_trip("learner", RegisterAckMsg{false, "duplicate id", "run-9", 17});
  EXPECT_FALSE(ack.accepted);
  EXPECT_EQ(ack.reason, "duplicate id");
  EXPECT_EQ(ack.run_id, "run-9");
  EXPECT_EQ(ack.weights_version, 17u);

  HeartbeatMsg hb;
  hb.role = PeerRole::kLearner;
  hb.seq = 99;
  hb.weights_version = 12;
  hb.inflight_groups = 2;
  hb.counters = {{"a", 1.5}, {"b", -2}};
  const HeartbeatMsg hb2 = round_trip("learner", hb);
  EXPECT_EQ(hb2.role, PeerRole::kLearner);
  EXPECT_EQ(hb2.seq, 99u);
  EXPECT_EQ(hb2.weights_version, 12u);
  EXPECT_EQ(hb2.inflight_groups, 2u);
  EXPECT_EQ(hb2.counters, hb.counters);

  EXPECT_EQ(round_trip("learner", WorkGrantMsg{{7, 1ULL << 40, 0}}).prompt_ids,
            (std::vector<uint64_t>{7, 1ULL << 40, 0}));
  EXPECT_TRUE(round_trip("learner", WorkGrantMsg{{7, 8}}).weights_versions.empty());
  const WorkGrantMsg exact = round_trip("learner", WorkGrantMsg{{7, 8}, {3, 4}});
  EXPECT_EQ(exact.prompt_ids, (std::vector<uint64_t>{7, 8}));
  EXPECT_EQ(exact.weights_versions, (std::vector<uint64_t>{3, 4}));

  const AckMsg a = round_trip("learner", AckMsg{5, 6, AckOutcome::kRejected, "bad tokens"});
  EXPECT_EQ(a.group_id, 5u);
  EXPECT_EQ(a.prompt_id, 6u);
  EXPECT_EQ(a.outcome, AckOutcome::kRejected);
  EXPECT_EQ(a.reason, "bad tokens");

  const WeightsAvailableMsg wa = round_trip("learner", WeightsAvailableMsg{8, 123456});
  EXPECT_EQ(wa.version, 8u);
  EXPECT_EQ(wa.total_bytes, 123456u);

  EXPECT_EQ(round_trip("a1", ShutdownMsg{"leaving"}).reason, "leaving");

  MetricsMsg m;
  m.values = {{"groups", 3}, {"trajectories", 24}, {"tokens", 4000}, {"gen_seconds", 1.5},
              {"weight_fetch_seconds", 0.01}, {"weights_version", 7}};
  EXPECT_EQ(round_trip("a1", m).values, m.values);

  EXPECT_EQ(round_trip("a1", WeightsRequestMsg{31}).version, 31u);
}

TEST(MessagesTest, KindMatchesPayload) {
  const auto frames = all_kinds();
  for (size_t i = 0; i < frames.size(); ++i) {
    auto r = decode_message(frames[i], kMax);
    ASSERT_TRUE(r.ok()) << i << ": " << r.error();
    EXPECT_EQ(static_cast<size_t>(r->kind()), i + 1);
    EXPECT_STRNE(kind_name(r->kind()), "Unknown");
  }
}

TEST(MessagesTest, KindsAreAllowedOnlyOnTheirChannelAndDirection) {
  using K = MessageKind;
  const auto L = PeerRole::kLearner, A = PeerRole::kActor;
  EXPECT_TRUE(kind_allowed(K::kRegister, Channel::kControl, L));
  EXPECT_FALSE(kind_allowed(K::kRegister, Channel::kControl, A));
  EXPECT_TRUE(kind_allowed(K::kHeartbeat, Channel::kControl, A));
  EXPECT_TRUE(kind_allowed(K::kHeartbeat, Channel::kControl, L));
  EXPECT_TRUE(kind_allowed(K::kWorkGrant, Channel::kControl, A));
  EXPECT_FALSE(kind_allowed(K::kWorkGrant, Channel::kControl, L));
  EXPECT_TRUE(kind_allowed(K::kTrajectoryGroup, Channel::kTrajectories, L));
  EXPECT_FALSE(kind_allowed(K::kTrajectoryGroup, Channel::kControl, L));
  EXPECT_FALSE(kind_allowed(K::kShutdown, Channel::kTrajectories, L));
  EXPECT_TRUE(kind_allowed(K::kWeightsRequest, Channel::kWeights, L));
  EXPECT_TRUE(kind_allowed(K::kWeightsBucket, Channel::kWeights, A));
  EXPECT_FALSE(kind_allowed(K::kWeightsBucket, Channel::kWeights, L));
  EXPECT_FALSE(kind_allowed(K::kWeightsHeader, Channel::kControl, A));
}

TEST(MessagesTest, WeightsHeaderAndBucketRoundTrip) {
  const WeightsSnapshot s = make_snapshot(4, 500);
  const WeightsHeaderMsg h = round_trip("learner", weights_header_of(s));
  EXPECT_EQ(h.version, 4u);
  EXPECT_EQ(h.num_buckets, s.buckets.size());
  EXPECT_EQ(h.total_bytes, s.total_bytes);
  EXPECT_EQ(h.checksum, s.checksum);
  EXPECT_EQ(h.bucket_bytes, 500u);
  ASSERT_EQ(h.manifest.size(), 3u);
  EXPECT_EQ(h.manifest[2].name, "head.weight");
  EXPECT_EQ(h.manifest[2].shape, (std::vector<int64_t>{8, 33}));
  EXPECT_EQ(h.manifest[2].bucket, s.manifest[2].bucket);
  EXPECT_EQ(h.manifest[2].offset, s.manifest[2].offset);
  EXPECT_EQ(h.manifest[2].nbytes, 8u * 33 * 4);

  const std::string bytes = encode_weights_bucket("learner", 4, 1, s.buckets[1].data(), s.buckets[1].size());
  auto r = decode_message(bytes, kMax);
  ASSERT_TRUE(r.ok()) << r.error();
  const auto* b = r->get<WeightsBucketMsg>();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->version, 4u);
  EXPECT_EQ(b->index, 1u);
  EXPECT_EQ(b->data, s.buckets[1]);
}

TEST(MessagesTest, WeightsReplyAssemblesAVerifiedSnapshot) {
  const WeightsSnapshot s = make_snapshot(6, 256);
  const auto frames = encode_weights_reply("learner", s);
  ASSERT_EQ(frames.size(), s.buckets.size() + 1);
  auto r = decode_weights_reply({frames.begin(), frames.end()}, kMax, 6);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->version, 6u);
  EXPECT_EQ(r->buckets, s.buckets);
  EXPECT_EQ(r->checksum, s.checksum);
  EXPECT_EQ(r->manifest.size(), s.manifest.size());
}

TEST(MessagesTest, WeightsReplyWithCorruptBucketFailsTheChecksum) {
  const WeightsSnapshot s = make_snapshot(6, 256);
  auto frames = encode_weights_reply("learner", s);
  std::string bad = s.buckets[2];
  bad[17] ^= 0x01;
  frames[3] = encode_weights_bucket("learner", 6, 2, bad.data(), bad.size());
  auto r = decode_weights_reply({frames.begin(), frames.end()}, kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("checksum mismatch"), std::string::npos) << r.error();
}

TEST(MessagesTest, WeightsReplyRejectsWrongVersionsAndMissingBuckets) {
  const WeightsSnapshot s = make_snapshot(6, 256);
  auto frames = encode_weights_reply("learner", s);

  auto older = decode_weights_reply({frames.begin(), frames.end()}, kMax, 7);
  ASSERT_FALSE(older.ok());
  EXPECT_NE(older.error().find("older than the requested v7"), std::string::npos) << older.error();

  auto mixed = frames;
  mixed[1] = encode_weights_bucket("learner", 5, 0, s.buckets[0].data(), s.buckets[0].size());
  auto r = decode_weights_reply({mixed.begin(), mixed.end()}, kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("bucket 0 has version 5"), std::string::npos) << r.error();

  auto missing = frames;
  missing.pop_back();
  r = decode_weights_reply({missing.begin(), missing.end()}, kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("header says"), std::string::npos) << r.error();

  WeightsAssembler a;
  ASSERT_TRUE(a.begin(weights_header_of(s)).ok());
  EXPECT_FALSE(a.add(WeightsBucketMsg{6, 1, s.buckets[1]}).ok());  // out of order
  ASSERT_TRUE(a.add(WeightsBucketMsg{6, 0, s.buckets[0]}).ok());
  EXPECT_FALSE(a.complete());
  EXPECT_FALSE(a.finish().ok());
}

TEST(MessagesTest, UnalignedBufferStillDecodes) {
  const std::string bytes = encode_message("actor-7", make_group(2, true));
  std::vector<char> storage(bytes.size() + 8);
  char* p = storage.data() + 1;
  if (reinterpret_cast<uintptr_t>(p) % 8 == 0) ++p;
  std::memcpy(p, bytes.data(), bytes.size());
  auto r = decode_message(p, bytes.size(), kMax);
  ASSERT_TRUE(r.ok()) << r.error();
  expect_same(*r->get<TrajectoryGroup>(), make_group(2, true));
}

// ------------------------------------------------------------ rejections

TEST(MessagesTest, EveryPrefixOfEveryKindIsRejected) {
  for (const std::string& full : all_kinds()) {
    for (size_t n = 0; n < full.size(); ++n) {
      const std::string prefix = full.substr(0, n);
      auto r = decode_message(prefix.data(), n, kMax);
      ASSERT_FALSE(r.ok()) << "prefix of " << n << "/" << full.size() << " bytes was accepted";
    }
  }
}

TEST(MessagesTest, RandomGarbageIsRejected) {
  int with_identifier = 0;
  for (uint32_t seed = 0; seed < 5000; ++seed) {
    std::mt19937 rng(seed);
    std::string buf(rng() % 600, '\0');
    for (auto& c : buf) c = static_cast<char>(rng());
    if (seed % 2 == 0 && buf.size() >= 12) {  // get past the length and identifier checks
      const uint32_t n = static_cast<uint32_t>(buf.size() - 4);
      std::memcpy(&buf[0], &n, 4);
      std::memcpy(&buf[8], "GR1M", 4);
      ++with_identifier;
    }
    auto r = decode_message(buf, kMax);
    EXPECT_FALSE(r.ok()) << "seed " << seed;
  }
  EXPECT_GT(with_identifier, 2000);  // most reached the flatbuffers verifier
}

TEST(MessagesTest, MutatedMessagesNeverCrashAndDecodedOnesAreConsistent) {
  const auto frames = all_kinds();
  int rejected = 0, accepted = 0;
  for (uint32_t seed = 0; seed < 20000; ++seed) {
    std::mt19937 rng(seed);
    std::string buf = frames[seed % frames.size()];
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) buf[rng() % buf.size()] = static_cast<char>(rng());
    auto r = decode_message(buf, kMax);
    if (!r.ok()) {
      ++rejected;
      continue;
    }
    ++accepted;
    if (const auto* g = r->get<TrajectoryGroup>())  // whatever passed obeys the invariants
      for (const auto& t : g->trajectories) {
        ASSERT_EQ(t.logprobs.size(), t.tokens.size());
        ASSERT_EQ(t.policy_mask.size(), t.tokens.size());
        ASSERT_EQ(t.boxes_shown.size(), t.turns.size());
        for (const auto& s : t.turns) ASSERT_LE(static_cast<size_t>(s.end), t.tokens.size());
      }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(accepted, 0);  // flips in payload bytes are not structural
}

std::string envelope_with(uint32_t version, const std::string& sender, uint8_t kind) {
  flatbuffers::FlatBufferBuilder fbb;
  const auto payload = fb::CreateShutdown(fbb, fbb.CreateString("x")).Union();
  const auto s = fbb.CreateString(sender);
  fb::EnvelopeBuilder eb(fbb);
  eb.add_schema_version(version);
  eb.add_sender(s);
  eb.add_payload_type(static_cast<fb::Payload>(kind));
  eb.add_payload(payload);
  fb::FinishSizePrefixedEnvelopeBuffer(fbb, eb.Finish());
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

TEST(MessagesTest, HandBuiltEnvelopeIsAccepted) {  // the control for the next tests
  auto r = decode_message(envelope_with(1, "learner", 7), kMax);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->get<ShutdownMsg>()->reason, "x");
}

TEST(MessagesTest, WrongSchemaVersionIsRejected) {
  auto r = decode_message(envelope_with(2, "learner", 7), kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "schema version 2 unsupported (expected 1)");
  EXPECT_FALSE(decode_message(envelope_with(0, "learner", 7), kMax).ok());
}

TEST(MessagesTest, UnknownKindIsRejected) {
  auto r = decode_message(envelope_with(1, "learner", 99), kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("unknown message kind 99"), std::string::npos) << r.error();
  r = decode_message(envelope_with(1, "learner", 0), kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("no kind"), std::string::npos) << r.error();
}

TEST(MessagesTest, KindWithoutPayloadIsRejected) {
  flatbuffers::FlatBufferBuilder fbb;
  const auto s = fbb.CreateString("learner");
  fb::EnvelopeBuilder eb(fbb);
  eb.add_schema_version(1);
  eb.add_sender(s);
  eb.add_payload_type(fb::Payload::Shutdown);
  fb::FinishSizePrefixedEnvelopeBuffer(fbb, eb.Finish());
  auto r = decode_message(fbb.GetBufferPointer(), fbb.GetSize(), kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("Shutdown from 'learner' has no payload"), std::string::npos) << r.error();
}

TEST(MessagesTest, EmptySenderIsRejected) {
  auto r = decode_message(encode_message("", ShutdownMsg{"bye"}), kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "empty sender");
  EXPECT_FALSE(decode_message(encode_message(std::string(300, 'a'), ShutdownMsg{}), kMax).ok());
}

TEST(MessagesTest, WrongIdentifierIsRejected) {
  std::string bytes = encode_message("learner", ShutdownMsg{"bye"});
  bytes[8] = 'X';  // identifier follows the 4-byte length and the root offset
  auto r = decode_message(bytes, kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("file identifier"), std::string::npos) << r.error();
}

TEST(MessagesTest, OversizeMessageIsRejectedUnread) {
  const std::string bytes = encode_message("actor-7", make_group(4, true));
  auto r = decode_message(bytes, bytes.size() - 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("exceeds the limit"), std::string::npos) << r.error();
  EXPECT_TRUE(decode_message(bytes, bytes.size()).ok());
}

// Encodes `g` (after `mutate`) from actor-7 and returns the decode error.
template <class F>
std::string group_error(F mutate) {
  TrajectoryGroup g = make_group(4, true);
  mutate(g);
  auto r = decode_message(encode_message("actor-7", g), kMax);
  return r.ok() ? std::string("accepted") : r.error();
}

TEST(MessagesTest, InconsistentTrajectoriesAreRejectedWithTheReason) {
  auto has = [](const std::string& err, const std::string& what) {
    return err.find(what) != std::string::npos;
  };
  std::string e = group_error([](TrajectoryGroup& g) {
    g.trajectories[3].tokens.resize(12);
    g.trajectories[3].policy_mask.resize(12);
    g.trajectories[3].logprobs.resize(10);
    g.trajectories[3].turns = {TurnSpan{6, 12}};
    g.trajectories[3].boxes_shown = {std::nullopt};
  });
  EXPECT_TRUE(has(e, "trajectory 3: logprobs length 10 != tokens length 12")) << e;

  e = group_error([](TrajectoryGroup& g) { g.trajectories[1].policy_mask.pop_back(); });
  EXPECT_TRUE(has(e, "trajectory 1: policy_mask length")) << e;

  e = group_error([](TrajectoryGroup& g) { g.trajectories[0].policy_mask[3] = 2; });
  EXPECT_TRUE(has(e, "trajectory 0: policy_mask[3] = 2")) << e;

  e = group_error([](TrajectoryGroup& g) {
    g.trajectories[2].logprobs[1] = std::numeric_limits<float>::quiet_NaN();
  });
  EXPECT_TRUE(has(e, "trajectory 2: logprobs[1] is not finite")) << e;

  e = group_error([](TrajectoryGroup& g) {
    g.trajectories[2].turns.back().end = static_cast<int32_t>(g.trajectories[2].tokens.size()) + 1;
  });
  EXPECT_TRUE(has(e, "trajectory 2: turn")) << e;

  e = group_error([](TrajectoryGroup& g) {
    auto& t = g.trajectories[1].turns;  // two turns, second starts before the first ends
    t = {TurnSpan{8, 12}, TurnSpan{10, 14}};
    g.trajectories[1].boxes_shown = {std::nullopt, std::nullopt};
  });
  EXPECT_TRUE(has(e, "trajectory 1: turn 1")) << e;

  e = group_error([](TrajectoryGroup& g) { g.trajectories[2].boxes_shown.pop_back(); });
  EXPECT_TRUE(has(e, "trajectory 2: boxes_shown length")) << e;

  e = group_error([](TrajectoryGroup& g) { g.trajectories[0].tokens.clear(); });
  EXPECT_TRUE(has(e, "trajectory 0: no tokens")) << e;

  e = group_error([](TrajectoryGroup& g) { g.trajectories.clear(); });
  EXPECT_TRUE(has(e, "has no trajectories")) << e;

  e = group_error([](TrajectoryGroup& g) { g.actor_id = "actor-8"; });
  EXPECT_TRUE(has(e, "actor_id 'actor-8' != sender 'actor-7'")) << e;

  e = group_error([](TrajectoryGroup& g) { g.gen_seconds = -1; });
  EXPECT_TRUE(has(e, "gen_seconds")) << e;

  EXPECT_EQ(group_error([](TrajectoryGroup&) {}), "accepted");
}

TEST(MessagesTest, InconsistentControlMessagesAreRejected) {
  EXPECT_FALSE(decode_message(encode_message("a1", RegisterMsg{"a2", 1, "h", {}}), kMax).ok());
  EXPECT_FALSE(decode_message(encode_message("l", WorkGrantMsg{{3, 4, 3}}), kMax).ok());
  // Versions, when given, come one per prompt.
  auto uneven = decode_message(encode_message("l", WorkGrantMsg{{3, 4}, {1}}), kMax);
  ASSERT_FALSE(uneven.ok());
  EXPECT_NE(uneven.error().find("1 weights versions for 2 prompt ids"), std::string::npos) << uneven.error();
  HeartbeatMsg hb;
  hb.counters = {{"x", std::nan("")}};
  EXPECT_FALSE(decode_message(encode_message("l", hb), kMax).ok());
  AckMsg ack;
  ack.outcome = static_cast<AckOutcome>(9);
  auto r = decode_message(encode_message("l", ack), kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("unknown outcome 9"), std::string::npos) << r.error();
}

TEST(MessagesTest, InconsistentWeightsHeadersAreRejected) {
  const WeightsSnapshot s = make_snapshot(2, 256);
  auto err = [](const WeightsHeaderMsg& h) {
    auto r = decode_message(encode_message("learner", h), kMax);
    return r.ok() ? std::string("accepted") : r.error();
  };
  WeightsHeaderMsg h = weights_header_of(s);
  EXPECT_EQ(err(h), "accepted");
  h.manifest[1].nbytes += 4;
  EXPECT_NE(err(h).find("does not match F32 shape"), std::string::npos) << err(h);
  h = weights_header_of(s);
  h.manifest[2].bucket = h.num_buckets;
  EXPECT_NE(err(h).find(">= num_buckets"), std::string::npos) << err(h);
  h = weights_header_of(s);
  h.num_buckets += 1;
  EXPECT_NE(err(h).find("ceil(total_bytes"), std::string::npos) << err(h);
  h = weights_header_of(s);
  h.manifest[0].shape[0] = -1;
  EXPECT_NE(err(h).find("negative dimension"), std::string::npos) << err(h);
  h = weights_header_of(s);
  h.manifest[1].name = h.manifest[0].name;
  EXPECT_NE(err(h).find("duplicate name"), std::string::npos) << err(h);
}

TEST(MessagesTest, RejectCounterCountsBySource) {
  RejectCounter c("test");
  EXPECT_TRUE(c.note(decode_message(encode_message("a", ShutdownMsg{}), kMax), "a"));
  EXPECT_FALSE(c.note(decode_message("garbage!garbage!", kMax), "b"));
  EXPECT_FALSE(c.note(decode_message("", kMax), "b"));
  c.reject("a", "TrajectoryGroup not expected on control");
  EXPECT_EQ(c.accepted(), 1u);
  EXPECT_EQ(c.rejected(), 3u);
  EXPECT_EQ(c.rejected_by_source().at("b"), 2u);
  EXPECT_EQ(c.last_error(), "TrajectoryGroup not expected on control");
}

// ------------------------------------------------------------ checksum

TEST(ChecksumTest, ChangesWhenOneByteFlips) {
  std::string data(4096, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
  const uint64_t base = checksum64(data);
  for (size_t i : {size_t{0}, size_t{1}, size_t{2047}, size_t{4095}}) {
    std::string d = data;
    d[i] ^= 0x01;
    EXPECT_NE(checksum64(d), base) << "byte " << i;
  }
  EXPECT_EQ(checksum64(data), base);
}

TEST(ChecksumTest, StreamingEqualsOneShotOfTheConcatenation) {
  const std::string a(1000, 'a'), b = "", c(3333, 'c');
  Checksum64 h;
  h.update(a);
  h.update(b);
  h.update(c);
  EXPECT_EQ(h.digest(), checksum64(a + b + c));
  EXPECT_EQ(h.bytes(), a.size() + c.size());
  h.reset();
  EXPECT_EQ(h.digest(), checksum64(nullptr, 0));
  EXPECT_NE(checksum64(a + c), checksum64(c + a));
}

}  // namespace
}  // namespace gr1
