// The learner's bus thread: admission control, rejection, lost actors.
#include "learner/coordinator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/checksum.h"
#include "common/config.h"
#include "common/messages.h"
#include "tests/test_util.h"

namespace gr1 {
namespace {

Config coordinator_config(const std::string& tag) {
  auto c = load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml");
  EXPECT_TRUE(c.ok());
  Config cfg = *c;
  test_util::use_ipc_endpoints(cfg.bus, "coord-" + tag);
  cfg.bus.heartbeat_interval_ms = 50;
  cfg.bus.peer_timeout_ms = 400;
  cfg.learner.max_inflight_groups = 2;
  return cfg;
}

// A hand-driven actor speaking the wire protocol directly.
struct FakeActor {
  FakeActor(zmq::context_t& ctx, const Config& cfg, const std::string& id)
      : id(id), ctl(ctx, zmq::socket_type::dealer), push(ctx, zmq::socket_type::push) {
    ctl.set(zmq::sockopt::routing_id, id);
    ctl.set(zmq::sockopt::linger, 0);
    push.set(zmq::sockopt::linger, 0);
    ctl.connect(cfg.bus.control_endpoint);
    push.connect(cfg.bus.trajectory_endpoint);
  }
  void send(const Payload& p) { ctl.send(zmq::buffer(encode_message(id, p))); }
  // Registers with these task/rollout settings (rollout_contract of a config).
  void register_with(std::vector<std::string> settings) {
    RegisterMsg reg;
    reg.actor_id = id;
    reg.settings = std::move(settings);
    send(reg);
  }
  // Reads control messages until `take` returns true or `wait` passed.
  template <typename Take>
  void read_control(std::chrono::milliseconds wait, Take take) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      zmq::pollitem_t it{static_cast<void*>(ctl), 0, ZMQ_POLLIN, 0};
      zmq::poll(&it, 1, std::chrono::milliseconds(50));
      zmq::message_t m;
      while (ctl.recv(m, zmq::recv_flags::dontwait)) {
        auto r = decode_message(m.data(), m.size(), 1 << 20);
        if (r.ok() && take(*r)) return;
      }
    }
  }
  // The learner's RegisterAck, if one arrives within `wait`.
  std::optional<RegisterAckMsg> ack(std::chrono::milliseconds wait = std::chrono::seconds(5)) {
    std::optional<RegisterAckMsg> out;
    read_control(wait, [&](const Message& r) {
      if (const auto* a = r.get<RegisterAckMsg>()) out = *a;
      return out.has_value();
    });
    return out;
  }
  // Collects granted prompt ids until `n` arrived or `wait` passed.
  std::vector<uint64_t> grants(size_t n, std::chrono::milliseconds wait = std::chrono::seconds(5)) {
    std::vector<uint64_t> out;
    read_control(wait, [&](const Message& r) {
      if (const auto* g = r.get<WorkGrantMsg>()) out.insert(out.end(), g->prompt_ids.begin(), g->prompt_ids.end());
      return out.size() >= n;
    });
    return out;
  }
  // Collects granted (prompt id, weights version) pairs until `n` arrived or
  // `wait` passed; a grant without versions gives version -1.
  std::vector<std::pair<uint64_t, int64_t>> grants_with_versions(
      size_t n, std::chrono::milliseconds wait = std::chrono::seconds(5)) {
    std::vector<std::pair<uint64_t, int64_t>> out;
    read_control(wait, [&](const Message& r) {
      if (const auto* g = r.get<WorkGrantMsg>())
        for (size_t k = 0; k < g->prompt_ids.size(); ++k)
          out.emplace_back(g->prompt_ids[k],
                           g->weights_versions.empty() ? -1 : static_cast<int64_t>(g->weights_versions[k]));
      return out.size() >= n;
    });
    return out;
  }
  std::string id;
  zmq::socket_t ctl, push;
};

std::shared_ptr<const WeightsSnapshot> empty_weights(uint64_t version) {
  auto w = std::make_shared<WeightsSnapshot>();
  w->version = version;
  w->checksum = checksum64("", 0);
  return w;
}

TEST(CoordinatorTest, GrantsAtMostMaxInflightAndRegrantsALostActorsPrompts) {
  Config cfg = coordinator_config("grant");
  Coordinator coord(cfg);
  ASSERT_TRUE(coord.start().ok());
  zmq::context_t ctx;
  std::vector<uint64_t> first;
  {
    FakeActor a(ctx, cfg, "a");
    a.register_with(rollout_contract(cfg));
    first = a.grants(2);
    ASSERT_EQ(first.size(), 2u);
    // No more than max_inflight_groups outstanding (checked well inside the
    // 400 ms peer timeout, while "a" is still alive).
    EXPECT_TRUE(a.grants(1, std::chrono::milliseconds(150)).empty());

    // A group for a prompt it was never granted is rejected and counted.
    TrajectoryGroup g;
    g.actor_id = "a";
    g.prompt_id = 999;
    Trajectory t;
    t.tokens = {1, 4, 20};
    t.logprobs = {0, 0, -1};
    t.policy_mask = {0, 0, 1};
    t.turns = {TurnSpan{2, 3}};
    t.boxes_shown = {std::nullopt};
    t.images = {ImageRef{}};
    g.trajectories = {t};
    a.push.send(zmq::buffer(encode_message("a", g)));
    // Garbage is rejected too, and the coordinator keeps serving.
    a.push.send(zmq::str_buffer("garbage"));
    for (int i = 0; i < 100 && coord.counters().rejected_messages < 2; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(coord.counters().rejected_messages, 2u);
    EXPECT_TRUE(coord.take_groups(1, std::chrono::milliseconds(10)).empty());
    // Actor "a" now falls silent (no heartbeats) and is declared lost.
  }
  for (int i = 0; i < 100 && coord.counters().actors_lost < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(coord.counters().actors_lost, 1u);
  EXPECT_EQ(coord.counters().prompts_requeued, 2u);
  EXPECT_TRUE(coord.alive_actors().empty());

  // The next actor gets the lost actor's prompts first: none is skipped.
  FakeActor b(ctx, cfg, "b");
  b.register_with(rollout_contract(cfg));
  auto second = b.grants(2);
  EXPECT_EQ(std::set<uint64_t>(second.begin(), second.end()),
            std::set<uint64_t>(first.begin(), first.end()));
  coord.stop();
}

// An actor whose task or rollout settings differ would roll out other
// questions (or sample otherwise) than the learner scores: it is refused with
// the keys named, gets no work and is not counted alive; a matching actor
// then registers as usual.
TEST(CoordinatorTest, RefusesAnActorWhoseTaskOrRolloutSettingsDiffer) {
  Config cfg = coordinator_config("contract");
  Coordinator coord(cfg);
  ASSERT_TRUE(coord.start().ok());
  zmq::context_t ctx;
  {
    Config other = cfg;
    other.task.train_questions = 32;
    other.rollout.temperature = 0.5;
    FakeActor a(ctx, cfg, "odd");
    a.register_with(rollout_contract(other));
    auto ack = a.ack();
    ASSERT_TRUE(ack.has_value());
    EXPECT_FALSE(ack->accepted);
    EXPECT_NE(ack->reason.find("task.train_questions: actor 32, learner 0"), std::string::npos) << ack->reason;
    EXPECT_NE(ack->reason.find("rollout.temperature: actor 0.5, learner 1"), std::string::npos) << ack->reason;
    EXPECT_EQ(ack->reason.find("task.seed"), std::string::npos) << ack->reason;
    EXPECT_TRUE(a.grants(1, std::chrono::milliseconds(200)).empty());
  }
  {
    FakeActor old(ctx, cfg, "old");
    old.register_with({});  // no settings at all
    auto ack = old.ack();
    ASSERT_TRUE(ack.has_value());
    EXPECT_FALSE(ack->accepted);
    EXPECT_NE(ack->reason.find("sent no task/rollout settings"), std::string::npos) << ack->reason;
  }
  EXPECT_EQ(coord.counters().actors_refused, 2u);
  EXPECT_EQ(coord.counters().actors_registered, 0u);
  EXPECT_TRUE(coord.alive_actors().empty());

  FakeActor good(ctx, cfg, "good");
  good.register_with(rollout_contract(cfg));
  auto ack = good.ack();
  ASSERT_TRUE(ack.has_value());
  EXPECT_TRUE(ack->accepted) << ack->reason;
  EXPECT_EQ(good.grants(2).size(), 2u);
  EXPECT_EQ(coord.counters().actors_registered, 1u);
  coord.stop();
}

TEST(ConfigContract, CoversTaskAndRolloutAndNamesEachDifference) {
  Config a;
  const auto c = rollout_contract(a);
  auto has = [&](const std::string& prefix) {
    return std::any_of(c.begin(), c.end(), [&](const std::string& kv) { return kv.rfind(prefix, 0) == 0; });
  };
  EXPECT_TRUE(has("task.seed="));
  EXPECT_TRUE(has("task.train_questions=0"));
  EXPECT_TRUE(has("rollout.temperature="));
  EXPECT_FALSE(has("learner."));
  EXPECT_FALSE(has("bus."));
  EXPECT_TRUE(contract_differences(c, c).empty());
  Config b = a;
  b.task.seed = 99;
  b.learner.lr = 0.5;  // not part of the contract
  const auto d = contract_differences(rollout_contract(b), c);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0], "task.seed: actor 99, learner " + std::to_string(a.task.seed));
  auto missing = c;
  missing.erase(missing.begin());
  missing.push_back("task.colour=red");
  const auto m = contract_differences(missing, c);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_NE(std::find(m.begin(), m.end(), "task.colour: actor red, learner (none)"), m.end());
}

// An actor that reads its control socket late still gets the learner's
// Shutdown: stop() keeps the socket open until the actor answers. (Actors
// connect with ZMQ_IMMEDIATE, which drops unread messages when the
// connection closes: before, a learner that exited right after sending left
// some actors waiting for a signal.)
TEST(CoordinatorTest, StopWaitsUntilEachActorAnswersItsShutdown) {
  Config cfg = coordinator_config("bye");
  cfg.bus.peer_timeout_ms = 5000;
  auto coord = std::make_unique<Coordinator>(cfg);
  ASSERT_TRUE(coord->start().ok());
  zmq::context_t ctx;
  zmq::socket_t ctl(ctx, zmq::socket_type::dealer);
  ctl.set(zmq::sockopt::routing_id, std::string("late"));
  ctl.set(zmq::sockopt::immediate, 1);  // as the real actor's control socket
  ctl.set(zmq::sockopt::linger, 0);
  ctl.connect(cfg.bus.control_endpoint);
  RegisterMsg reg;
  reg.actor_id = "late";
  reg.settings = rollout_contract(cfg);
  const auto registered_by = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (coord->alive_actors().empty() && std::chrono::steady_clock::now() < registered_by) {
    (void)ctl.send(zmq::buffer(encode_message("late", reg)), zmq::send_flags::dontwait);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(coord->alive_actors(), std::vector<std::string>{"late"});
  // Whatever came before the shutdown (ack, grants) is left unread.
  auto stopped = std::async(std::launch::async, [&] {
    coord->stop("training finished");
    coord.reset();  // the learner exits: its sockets close
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string reason;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (reason.empty() && std::chrono::steady_clock::now() < deadline) {
    zmq::message_t m;
    if (!ctl.recv(m, zmq::recv_flags::dontwait)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    auto r = decode_message(m.data(), m.size(), 1 << 20);
    if (r.ok())
      if (const auto* sd = r->get<ShutdownMsg>()) reason = sd->reason;
  }
  EXPECT_EQ(reason, "training finished");
  ASSERT_TRUE(ctl.send(zmq::buffer(encode_message("late", ShutdownMsg{"acknowledged"})),
                       zmq::send_flags::dontwait)
                  .has_value());
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

// learner.reproducible: a prompt goes out only once the weights version it
// must be rolled out with is published, and its grant names that version;
// an actor can still fetch an older kept version exactly.
TEST(CoordinatorTest, ReproducibleGrantsWaitForEachPromptsVersionAndNameIt) {
  Config cfg = coordinator_config("exact");
  cfg.bus.peer_timeout_ms = 10000;  // the fake actor sends no heartbeats
  cfg.learner.reproducible = true;
  cfg.learner.groups_per_step = 2;
  cfg.learner.max_inflight_groups = 8;
  Coordinator coord(cfg);
  ASSERT_TRUE(coord.start().ok());
  zmq::context_t ctx;
  FakeActor a(ctx, cfg, "a");
  a.register_with(rollout_contract(cfg));
  ASSERT_TRUE(a.ack().has_value());
  // No weights yet: nothing to roll out with, so nothing is granted.
  EXPECT_TRUE(a.grants_with_versions(1, std::chrono::milliseconds(300)).empty());

  using Grants = std::vector<std::pair<uint64_t, int64_t>>;
  // v0: steps 1 and 2 (prompts 0-3) are rolled out with it; step 3 needs v1.
  coord.publish_weights(empty_weights(0));
  EXPECT_EQ(a.grants_with_versions(5, std::chrono::milliseconds(500)),
            (Grants{{0, 0}, {1, 0}, {2, 0}, {3, 0}}));
  coord.publish_weights(empty_weights(1));
  EXPECT_EQ(a.grants_with_versions(3, std::chrono::milliseconds(500)), (Grants{{4, 1}, {5, 1}}));
  coord.publish_weights(empty_weights(2));
  EXPECT_EQ(a.grants_with_versions(3, std::chrono::milliseconds(500)), (Grants{{6, 2}, {7, 2}}));
  // Eight outstanding: the ninth waits for a slot even once v3 is out.
  coord.publish_weights(empty_weights(3));
  EXPECT_TRUE(a.grants_with_versions(1, std::chrono::milliseconds(300)).empty());

  // An exact request for an older kept version is answered with that version.
  zmq::socket_t w(ctx, zmq::socket_type::dealer);
  w.set(zmq::sockopt::routing_id, std::string("a"));
  w.set(zmq::sockopt::linger, 0);
  w.connect(cfg.bus.weights_endpoint);
  for (uint64_t asked : {1ULL, 3ULL}) {
    ASSERT_TRUE(w.send(zmq::buffer(encode_message("a", WeightsRequestMsg{asked}))).has_value());
    std::vector<zmq::message_t> frames;
    zmq::pollitem_t it{static_cast<void*>(w), 0, ZMQ_POLLIN, 0};
    ASSERT_EQ(zmq::poll(&it, 1, std::chrono::milliseconds(3000)), 1);
    ASSERT_TRUE(zmq::recv_multipart(w, std::back_inserter(frames)).has_value());
    std::vector<std::string_view> views;
    for (const auto& f : frames) views.emplace_back(static_cast<const char*>(f.data()), f.size());
    auto snap = decode_weights_reply(views, 1 << 20);
    ASSERT_TRUE(snap.ok()) << snap.error();
    EXPECT_EQ(snap->version, asked);
  }
  coord.stop();
}

}  // namespace
}  // namespace gr1
