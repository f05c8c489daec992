// The actor's bus thread against a hand-driven learner: what it hands over
// when it leaves, and how it leaves when the learner is not there.
#include "actors/actor_link.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <future>
#include <thread>
#include <zmq.hpp>

#include "common/config.h"
#include "common/messages.h"
#include "tests/test_util.h"

namespace gr1 {
namespace {

using Clock = std::chrono::steady_clock;

Config link_config(const std::string& tag) {
  auto c = load_config(std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml");
  EXPECT_TRUE(c.ok());
  Config cfg = *c;
  test_util::use_ipc_endpoints(cfg.bus, "link-" + tag);
  cfg.bus.heartbeat_interval_ms = 50;
  // Long timeouts: a link that waited one of them per send would be seen.
  cfg.bus.peer_timeout_ms = 60000;
  cfg.bus.send_timeout_ms = 20000;
  return cfg;
}

TrajectoryGroup group(uint64_t id) {
  TrajectoryGroup g;
  g.actor_id = "a";
  g.group_id = id;
  g.prompt_id = 100 + id;
  Trajectory t;
  t.tokens = {1, 4, 20};
  t.logprobs = {0, 0, -1};
  t.policy_mask = {0, 0, 1};
  t.turns = {TurnSpan{2, 3}};
  t.boxes_shown = {std::nullopt};
  t.images = {ImageRef{}};
  g.trajectories = {t};
  return g;
}

// The learner's three sockets, driven by hand.
struct FakeLearner {
  FakeLearner(zmq::context_t& ctx, const Config& cfg)
      : ctl(ctx, zmq::socket_type::router), pull(ctx, zmq::socket_type::pull),
        wts(ctx, zmq::socket_type::router) {
    for (auto* s : {&ctl, &pull, &wts}) s->set(zmq::sockopt::linger, 0);
    ctl.bind(cfg.bus.control_endpoint);
    pull.bind(cfg.bus.trajectory_endpoint);
    wts.bind(cfg.bus.weights_endpoint);
  }
  // Control messages until `pred` holds for one of them or `wait` passed;
  // answers a Register with an accepting ack.
  bool control_until(const std::function<bool(const Message&)>& pred,
                     std::chrono::milliseconds wait = std::chrono::seconds(10)) {
    const auto deadline = Clock::now() + wait;
    while (Clock::now() < deadline) {
      zmq::pollitem_t it{static_cast<void*>(ctl), 0, ZMQ_POLLIN, 0};
      zmq::poll(&it, 1, std::chrono::milliseconds(20));
      zmq::message_t who, body;
      while (ctl.recv(who, zmq::recv_flags::dontwait)) {
        if (!ctl.recv(body, zmq::recv_flags::dontwait)) break;
        auto r = decode_message(body.data(), body.size(), 1 << 20);
        if (!r.ok()) continue;
        if (r->get<RegisterMsg>()) {
          RegisterAckMsg ack;
          ack.accepted = true;
          ctl.send(zmq::buffer(who.to_string()), zmq::send_flags::sndmore);
          ctl.send(zmq::buffer(encode_message("learner", ack)));
        }
        if (pred(*r)) return true;
      }
    }
    return false;
  }
  // The reason of the next Shutdown on the control socket ("" if none came).
  std::string shutdown_reason() {
    std::string reason;
    control_until([&](const Message& m) {
      const auto* sd = m.get<ShutdownMsg>();
      if (sd) reason = sd->reason;
      return sd != nullptr;
    });
    return reason;
  }
  // Group ids pushed to the trajectory socket within `wait`.
  std::vector<uint64_t> groups(size_t n, std::chrono::milliseconds wait = std::chrono::seconds(10)) {
    std::vector<uint64_t> out;
    const auto deadline = Clock::now() + wait;
    while (out.size() < n && Clock::now() < deadline) {
      zmq::pollitem_t it{static_cast<void*>(pull), 0, ZMQ_POLLIN, 0};
      zmq::poll(&it, 1, std::chrono::milliseconds(20));
      zmq::message_t m;
      while (pull.recv(m, zmq::recv_flags::dontwait)) {
        auto r = decode_message(m.data(), m.size(), 1 << 20);
        if (r.ok())
          if (const auto* g = r->get<TrajectoryGroup>()) out.push_back(g->group_id);
      }
    }
    return out;
  }
  zmq::socket_t ctl, pull, wts;
};

// Starts `link` against `learner` (which answers the registration).
void register_link(ActorLink& link, FakeLearner& learner) {
  auto started = std::async(std::launch::async, [&] { return link.start(); });
  while (started.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready)
    learner.control_until([](const Message&) { return false; }, std::chrono::milliseconds(50));
  ASSERT_TRUE(started.get().ok());
}

TEST(ActorLinkTest, LeavingHandsALiveLearnerEveryQueuedGroupThenAShutdown) {
  Config cfg = link_config("live");
  zmq::context_t ctx;
  FakeLearner learner(ctx, cfg);
  ActorLink link(cfg, "a");
  ASSERT_NO_FATAL_FAILURE(register_link(link, learner));
  for (uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(link.send_group(group(i)));
  link.stop();
  EXPECT_EQ(link.undelivered_groups(), 0);
  EXPECT_EQ(learner.groups(3), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(learner.shutdown_reason(), "actor leaving");
  EXPECT_FALSE(link.send_group(group(4)));  // closed: nothing more is accepted
}

TEST(ActorLinkTest, ALearnersShutdownIsAnsweredAndEndsTheLinkWithoutAFlush) {
  Config cfg = link_config("told");
  zmq::context_t ctx;
  FakeLearner learner(ctx, cfg);
  ActorLink link(cfg, "a");
  ASSERT_NO_FATAL_FAILURE(register_link(link, learner));
  learner.ctl.send(zmq::str_buffer("a"), zmq::send_flags::sndmore);
  learner.ctl.send(zmq::buffer(encode_message("learner", ShutdownMsg{"training finished"})));
  EXPECT_EQ(learner.shutdown_reason(), "acknowledged");  // what Coordinator::stop waits for
  for (int i = 0; i < 200 && !link.closed(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(link.closed());
  EXPECT_EQ(link.close_reason(), "learner: training finished");
  EXPECT_FALSE(link.send_group(group(1)));
  link.stop();
  EXPECT_EQ(link.undelivered_groups(), 0);
  // Told to stop, the link does not say goodbye on its own.
  EXPECT_FALSE(learner.control_until([](const Message& m) { return m.get<ShutdownMsg>() != nullptr; },
                                     std::chrono::milliseconds(300)));
}

TEST(ActorLinkTest, LeavingAfterTheLearnerWentIsBoundedAndCountsWhatWasNotDelivered) {
  Config cfg = link_config("gone");
  zmq::context_t ctx;
  ActorLink link(cfg, "a");
  {
    FakeLearner learner(ctx, cfg);
    ASSERT_NO_FATAL_FAILURE(register_link(link, learner));
  }  // the learner's sockets close: nothing takes the groups any more
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(link.send_group(group(i)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto t0 = Clock::now();
  link.stop();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  // Before: each of the three groups and the goodbye waited a whole send
  // timeout (20 s each). Now all of it shares one exit budget, which is
  // shorter than a single send timeout.
  EXPECT_LT(took.count(), cfg.bus.send_timeout_ms) << took.count() << " ms";
  EXPECT_LT(ActorLink::kExitFlushMs, cfg.bus.send_timeout_ms);
  EXPECT_EQ(link.undelivered_groups(), 3);
  EXPECT_FALSE(link.learner_lost());  // gone for less than the peer timeout
}

TEST(ActorLinkTest, AnInterruptEndsTheWaitForARegistrationAck) {
  Config cfg = link_config("interrupt");  // no learner at all
  ActorLink link(cfg, "a");
  std::atomic<bool> interrupt{false};
  auto started = std::async(std::launch::async, [&] { return link.start(&interrupt); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(started.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  interrupt = true;  // what the actor's SIGTERM handler does
  // Without the interrupt the wait lasts bus.peer_timeout_ms (60 s).
  ASSERT_EQ(started.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  Status s = started.get();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("interrupted while waiting for the learner's RegisterAck at " +
                             cfg.bus.control_endpoint),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(link.closed());
}

}  // namespace
}  // namespace gr1
