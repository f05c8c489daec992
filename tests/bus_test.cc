// ZeroMQ plumbing (common/bus.h) over real sockets on loopback / inproc.
#include "common/bus.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/checksum.h"
#include "common/messages.h"

namespace gr1 {
namespace {

using namespace std::chrono_literals;

BusOptions test_options() {
  BusOptions o;
  o.send_timeout_ms = 2000;
  o.max_message_bytes = 1 << 20;
  return o;
}

BusSocket make(zmq::context_t& ctx, SocketKind kind, const std::string& name,
               const std::string& id = {}, const BusOptions& opt = test_options()) {
  auto s = BusSocket::create(ctx, kind, opt, name, id);
  EXPECT_TRUE(s.ok()) << s.error();
  return std::move(s).value();
}

// Receives one message within `timeout` or fails the test.
Incoming recv_one(BusSocket& s, std::chrono::milliseconds timeout = 3000ms) {
  auto r = s.recv(timeout);
  EXPECT_TRUE(r.ok()) << r.error();
  if (!r.ok() || !r->has_value()) {
    ADD_FAILURE() << "nothing received on " << s.describe();
    return {};
  }
  return std::move(**r);
}

TEST(BusTest, BindToPortZeroReportsTheChosenPort) {
  zmq::context_t ctx;
  BusSocket router = make(ctx, SocketKind::kRouter, "control");
  auto ep = router.bind("tcp://127.0.0.1:0");
  ASSERT_TRUE(ep.ok()) << ep.error();
  EXPECT_EQ(ep->rfind("tcp://127.0.0.1:", 0), 0u) << *ep;
  EXPECT_NE(*ep, "tcp://127.0.0.1:0");
  EXPECT_EQ(router.endpoint(), *ep);
}

TEST(BusTest, RouterDealerExchangeOverTcp) {
  zmq::context_t ctx;
  BusSocket router = make(ctx, SocketKind::kRouter, "control");
  auto ep = router.bind("tcp://127.0.0.1:0");
  ASSERT_TRUE(ep.ok()) << ep.error();
  BusSocket dealer = make(ctx, SocketKind::kDealer, "control", "actor-1");
  ASSERT_TRUE(dealer.connect(*ep).ok());

  ASSERT_TRUE(dealer.send(encode_message("actor-1", RegisterMsg{"actor-1", 77, "h", {}})).ok());
  Incoming in = recv_one(router);
  EXPECT_EQ(in.peer, "actor-1");
  ASSERT_EQ(in.frames.size(), 1u);
  auto reg = decode_message(in.frames[0].data(), in.frames[0].size(), 1 << 20);
  ASSERT_TRUE(reg.ok()) << reg.error();
  ASSERT_NE(reg->get<RegisterMsg>(), nullptr);
  EXPECT_EQ(reg->get<RegisterMsg>()->pid, 77);

  ASSERT_TRUE(router.send_to("actor-1", encode_message("learner", RegisterAckMsg{true, "", "run", 3})).ok());
  Incoming back = recv_one(dealer);
  EXPECT_TRUE(back.peer.empty());
  ASSERT_EQ(back.frames.size(), 1u);
  auto ack = decode_message(back.frames[0].data(), back.frames[0].size(), 1 << 20);
  ASSERT_TRUE(ack.ok()) << ack.error();
  ASSERT_NE(ack->get<RegisterAckMsg>(), nullptr);
  EXPECT_TRUE(ack->get<RegisterAckMsg>()->accepted);
  EXPECT_EQ(ack->get<RegisterAckMsg>()->weights_version, 3u);
}

TEST(BusTest, PushPullCarriesATrajectoryGroupOverInproc) {
  zmq::context_t ctx;
  BusSocket pull = make(ctx, SocketKind::kPull, "trajectories");
  ASSERT_TRUE(pull.bind("inproc://traj-test").ok());
  BusSocket push = make(ctx, SocketKind::kPush, "trajectories");
  ASSERT_TRUE(push.connect("inproc://traj-test").ok());

  TrajectoryGroup g;
  g.actor_id = "a9";
  g.group_id = 5;
  Trajectory t;
  t.tokens = {1, 2, 3};
  t.logprobs = {0, -0.5f, -0.25f};
  t.policy_mask = {0, 1, 1};
  t.turns = {TurnSpan{1, 3}};
  t.boxes_shown = {Box{1, 2, 3, 4}};
  g.trajectories = {t, t};
  ASSERT_TRUE(push.send(encode_message("a9", g)).ok());
  Incoming in = recv_one(pull);
  ASSERT_EQ(in.frames.size(), 1u);
  auto m = decode_message(in.frames[0].data(), in.frames[0].size(), 1 << 20);
  ASSERT_TRUE(m.ok()) << m.error();
  const auto* out = m->get<TrajectoryGroup>();
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->group_id, 5u);
  ASSERT_EQ(out->trajectories.size(), 2u);
  EXPECT_EQ(out->trajectories[1].logprobs, t.logprobs);
  EXPECT_EQ(out->trajectories[1].boxes_shown, t.boxes_shown);
}

TEST(BusTest, WeightsReplyTravelsAsOneMultipartMessage) {
  zmq::context_t ctx;
  BusSocket router = make(ctx, SocketKind::kRouter, "weights");
  auto ep = router.bind("tcp://127.0.0.1:0");
  ASSERT_TRUE(ep.ok()) << ep.error();
  BusSocket dealer = make(ctx, SocketKind::kDealer, "weights", "actor-2");
  ASSERT_TRUE(dealer.connect(*ep).ok());

  WeightsSnapshot s;
  s.version = 11;
  std::string stream(10000, '\0');
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<char>(i * 7);
  s.manifest = {TensorEntry{"w", "F32", {2500}, 0, 0, 10000}};
  for (size_t off = 0; off < stream.size(); off += 4096) s.buckets.push_back(stream.substr(off, 4096));
  s.total_bytes = stream.size();
  s.checksum = checksum64(stream);  // XXH3-64 over the concatenated buckets

  ASSERT_TRUE(dealer.send(encode_message("actor-2", WeightsRequestMsg{11})).ok());
  Incoming req = recv_one(router);
  EXPECT_EQ(req.peer, "actor-2");
  ASSERT_TRUE(router.send_to(req.peer, encode_weights_reply("learner", s)).ok());

  Incoming reply = recv_one(dealer);
  ASSERT_EQ(reply.frames.size(), 1u + s.buckets.size());
  std::vector<std::string_view> views;
  for (const auto& f : reply.frames) views.emplace_back(static_cast<const char*>(f.data()), f.size());
  auto snap = decode_weights_reply(views, 1 << 20, 11);
  ASSERT_TRUE(snap.ok()) << snap.error();
  EXPECT_EQ(snap->version, 11u);
  EXPECT_EQ(snap->buckets, s.buckets);
}

TEST(BusTest, RecvTimeoutReturnsEmptyNotAnError) {
  zmq::context_t ctx;
  BusSocket pull = make(ctx, SocketKind::kPull, "trajectories");
  ASSERT_TRUE(pull.bind("inproc://quiet").ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto r = pull.recv(60ms);
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_FALSE(r->has_value());
  EXPECT_GE(waited, 50ms);
  EXPECT_LT(waited, 2000ms);
}

TEST(BusTest, SendToUnknownPeerIsAnErrorNotASilentDrop) {
  zmq::context_t ctx;
  BusSocket router = make(ctx, SocketKind::kRouter, "control");
  ASSERT_TRUE(router.bind("tcp://127.0.0.1:0").ok());
  Status s = router.send_to("ghost-actor", encode_message("learner", ShutdownMsg{"bye"}));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("ghost-actor"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("control ROUTER"), std::string::npos) << s.message();
}

TEST(BusTest, SendWithNoPeerTimesOutAndSaysSo) {
  zmq::context_t ctx;
  BusSocket push = make(ctx, SocketKind::kPush, "trajectories");
  ASSERT_TRUE(push.connect("tcp://127.0.0.1:1").ok());  // nothing listens there
  const auto t0 = std::chrono::steady_clock::now();
  Status s = push.send(std::string("hello"), 100);
  ASSERT_FALSE(s.ok());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 90ms);
  EXPECT_NE(s.message().find("timed out after 100 ms sending to trajectories PUSH (tcp://127.0.0.1:1)"),
            std::string::npos)
      << s.message();
}

TEST(BusTest, OversizeMessageIsNotDeliveredAndTheReceiverCarriesOn) {
  zmq::context_t ctx;
  BusOptions small = test_options();
  small.max_message_bytes = 1024;
  BusSocket pull = make(ctx, SocketKind::kPull, "trajectories", {}, small);
  auto ep = pull.bind("tcp://127.0.0.1:0");
  ASSERT_TRUE(ep.ok()) << ep.error();
  BusSocket push = make(ctx, SocketKind::kPush, "trajectories", {}, small);
  ASSERT_TRUE(push.connect(*ep).ok());

  ASSERT_TRUE(push.send(std::string(4096, 'x')).ok());
  auto r = pull.recv(300ms);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_FALSE(r->has_value()) << "an oversize frame was delivered";

  // zmq dropped the offending connection; the pusher reconnects and a normal
  // message gets through.
  ASSERT_TRUE(push.send(std::string(100, 'y')).ok());
  Incoming in = recv_one(pull);
  ASSERT_EQ(in.frames.size(), 1u);
  EXPECT_EQ(in.frames[0].size(), 100u);
}

TEST(BusTest, BindAndConnectErrorsNameTheEndpoint) {
  zmq::context_t ctx;
  BusSocket a = make(ctx, SocketKind::kRouter, "control");
  auto ep = a.bind("tcp://127.0.0.1:0");
  ASSERT_TRUE(ep.ok()) << ep.error();
  BusSocket b = make(ctx, SocketKind::kRouter, "control");
  auto again = b.bind(*ep);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().find(*ep), std::string::npos) << again.error();

  BusSocket c = make(ctx, SocketKind::kDealer, "weights", "a1");
  Status s = c.connect("bogus://nowhere");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("bogus://nowhere"), std::string::npos) << s.message();
}

TEST(BusTest, InvalidRoutingIdIsRefused) {
  zmq::context_t ctx;
  auto s = BusSocket::create(ctx, SocketKind::kDealer, test_options(), "control", std::string("\0x", 2));
  EXPECT_FALSE(s.ok());
}

TEST(BusTest, PollerReportsWhichSocketIsReadable) {
  zmq::context_t ctx;
  BusSocket p1 = make(ctx, SocketKind::kPull, "one");
  BusSocket p2 = make(ctx, SocketKind::kPull, "two");
  ASSERT_TRUE(p1.bind("inproc://one").ok());
  ASSERT_TRUE(p2.bind("inproc://two").ok());
  BusSocket s2 = make(ctx, SocketKind::kPush, "two");
  ASSERT_TRUE(s2.connect("inproc://two").ok());

  Poller poller;
  const size_t i1 = poller.add(p1), i2 = poller.add(p2);
  auto n = poller.poll(20ms);
  ASSERT_TRUE(n.ok()) << n.error();
  EXPECT_EQ(*n, 0);
  EXPECT_FALSE(poller.readable(i1));

  ASSERT_TRUE(s2.send(std::string("ping")).ok());
  n = poller.poll(2000ms);
  ASSERT_TRUE(n.ok()) << n.error();
  EXPECT_EQ(*n, 1);
  EXPECT_FALSE(poller.readable(i1));
  EXPECT_TRUE(poller.readable(i2));
  auto r = p2.recv(0ms);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->frames[0].to_string(), "ping");
}

TEST(BusTest, SocketsWorkWhenHandedToTheirOwningThread) {
  zmq::context_t ctx;
  BusSocket pull = make(ctx, SocketKind::kPull, "trajectories");
  ASSERT_TRUE(pull.bind("inproc://handover").ok());
  BusSocket push = make(ctx, SocketKind::kPush, "trajectories");
  ASSERT_TRUE(push.connect("inproc://handover").ok());
  std::thread sender([s = std::move(push)]() mutable {
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(s.send(std::to_string(i)).ok());
  });
  for (int i = 0; i < 100; ++i) EXPECT_EQ(recv_one(pull).frames.at(0).to_string(), std::to_string(i));
  sender.join();
}

// ------------------------------------------------------------ PeerTracker

using Clock = PeerTracker::Clock;

TEST(PeerTrackerTest, ReportsASilentPeerOnceByName) {
  PeerTracker t;
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  t.seen("a1", t0);
  t.seen("a2", t0);
  EXPECT_TRUE(t.missing(t0 + 900ms, 1000ms).empty());
  t.seen("a2", t0 + 900ms);
  EXPECT_EQ(t.missing(t0 + 1500ms, 1000ms), std::vector<std::string>{"a1"});
  EXPECT_TRUE(t.missing(t0 + 1600ms, 1000ms).empty());  // reported once
  EXPECT_FALSE(t.alive("a1"));
  EXPECT_TRUE(t.alive("a2"));
  EXPECT_EQ(t.alive_peers(), std::vector<std::string>{"a2"});
  EXPECT_EQ(t.missing(t0 + 2000ms, 1000ms), std::vector<std::string>{"a2"});
}

TEST(PeerTrackerTest, ARevivedPeerIsReportedAgainAfterANewSilence) {
  PeerTracker t;
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  t.seen("a1", t0);
  EXPECT_EQ(t.missing(t0 + 2s, 1s).size(), 1u);
  t.seen("a1", t0 + 3s);
  EXPECT_TRUE(t.alive("a1"));
  EXPECT_TRUE(t.missing(t0 + 3500ms, 1s).empty());
  EXPECT_EQ(t.missing(t0 + 5s, 1s), std::vector<std::string>{"a1"});
}

TEST(PeerTrackerTest, ForgottenPeersAreNeverReported) {
  PeerTracker t;
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  t.seen("a1", t0);
  t.seen("a2", t0);
  t.forget("a1");
  EXPECT_FALSE(t.known("a1"));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.missing(t0 + 10s, 1s), std::vector<std::string>{"a2"});
  EXPECT_EQ(t.last_seen("a2"), t0);
  EXPECT_FALSE(t.last_seen("a1").has_value());
}

}  // namespace
}  // namespace gr1
