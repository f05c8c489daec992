// ZeroMQ plumbing for the bus (cppzmq, torch-free). Contract: docs/bus.md.
//
//   learner                                   actor (one per process)
//   ROUTER  bus.control_endpoint    <------>  DEALER (routing id = actor id)
//   PULL    bus.trajectory_endpoint <-------  PUSH
//   ROUTER  bus.weights_endpoint    <------>  DEALER (routing id = actor id)
//
// THREADING: one zmq::context_t per process, shared (it is thread-safe).
// Every BusSocket is owned by exactly ONE thread: the learner's and the
// actor's bus threads own all three of their sockets; no other thread touches
// them. A socket may be created in one thread and then handed over ONCE to the
// thread that will use it (e.g. bound in start(), then moved into the bus
// thread: starting the thread is the required memory barrier). Other threads
// talk to the bus thread through BoundedQueue (common/queue.h) or inproc://.
//
// ERRORS: nothing here throws. cppzmq's zmq::error_t is caught and returned as
// a Status naming the socket, the endpoint and, for ROUTER sends, the peer.
// A would-block is not an error on receive (empty optional) and is
// "timed out after N ms sending to ..." on send.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/options.h"
#include "common/status.h"

namespace gr1 {

using Frames = std::vector<zmq::message_t>;

enum class SocketKind { kRouter, kDealer, kPush, kPull };
const char* socket_kind_name(SocketKind kind);  // "ROUTER", ...

// One received message. `peer` is the routing id of the sender on a ROUTER
// (its first frame, removed from `frames`); empty on other socket kinds.
struct Incoming {
  std::string peer;
  Frames frames;
};

// Moves `bytes` into a zmq frame without copying (zmq frees it after sending).
zmq::message_t to_frame(std::string bytes);
inline std::string frame_string(const zmq::message_t& m) { return m.to_string(); }

// A zmq socket with the bus's options and Status-returning calls. Movable,
// not copyable. Closed (with a short linger) by its destructor.
//
// Options set by create(), from BusOptions:
//   ZMQ_SNDTIMEO / ZMQ_RCVTIMEO = send_timeout_ms (every blocking call ends)
//   ZMQ_LINGER   = min(send_timeout_ms, 1000) (close flushes briefly, never hangs)
//   ZMQ_MAXMSGSIZE = max_message_bytes (per frame; zmq drops an oversize frame
//                  and the connection carrying it; tcp/ipc only, not inproc)
//   ZMQ_ROUTER_MANDATORY (ROUTER): a send to an unknown peer is an error
//   ZMQ_ROUTER_HANDOVER (ROUTER): a restarted actor with the same id takes over
//   ZMQ_ROUTING_ID (DEALER) = routing_id (the actor id)
//   ZMQ_IMMEDIATE (DEALER, PUSH): queue only to completed connections, so a
//                  missing learner surfaces as a send timeout
//   ZMQ_TCP_KEEPALIVE on, idle 10 s, interval 5 s, 3 probes
class BusSocket {
 public:
  // `name` is used in error messages ("control", "trajectories", ...).
  static Result<BusSocket> create(zmq::context_t& ctx, SocketKind kind, const BusOptions& opt,
                                  std::string name, const std::string& routing_id = {});
  BusSocket(BusSocket&&) noexcept = default;
  BusSocket& operator=(BusSocket&&) noexcept = default;
  BusSocket(const BusSocket&) = delete;
  BusSocket& operator=(const BusSocket&) = delete;

  // Binds; returns the actual endpoint (ZMQ_LAST_ENDPOINT), so
  // "tcp://127.0.0.1:0" or ":*" yields the ephemeral port chosen.
  Result<std::string> bind(const std::string& endpoint);
  // Connects (asynchronous in zmq: succeeds before the peer exists).
  Status connect(const std::string& endpoint);

  // DEALER / PUSH: one message of one or more frames. Blocks at most
  // `timeout_ms` (-1: the socket's send_timeout_ms). Multipart messages are
  // atomic: all frames are delivered or none.
  Status send(std::string frame, int timeout_ms = -1);
  Status send(std::vector<std::string> frames, int timeout_ms = -1);
  // ROUTER: to the peer with routing id `peer`. An unknown or disconnected
  // peer is an error ("no peer 'x' on control ROUTER ...").
  Status send_to(const std::string& peer, std::string frame, int timeout_ms = -1);
  Status send_to(const std::string& peer, std::vector<std::string> frames, int timeout_ms = -1);
  // Raw frames as they are (a ROUTER's first frame must be the routing id).
  Status send_frames(Frames frames, int timeout_ms = -1);

  // Waits at most `timeout` for one whole message. Empty optional on timeout
  // or when interrupted by a signal (not errors); an error only for a socket
  // failure (e.g. the context was terminated).
  Result<std::optional<Incoming>> recv(std::chrono::milliseconds timeout);

  SocketKind kind() const { return kind_; }
  const std::string& name() const { return name_; }
  const std::string& endpoint() const { return endpoint_; }  // last bound / connected
  std::string describe() const;  // "control ROUTER (tcp://127.0.0.1:5701)"
  zmq::socket_t& raw() { return sock_; }

 private:
  BusSocket(zmq::socket_t s, SocketKind kind, std::string name, int send_timeout_ms)
      : sock_(std::move(s)), kind_(kind), name_(std::move(name)),
        default_timeout_ms_(send_timeout_ms), current_timeout_ms_(send_timeout_ms) {}
  Status send_impl(Frames frames, int timeout_ms, const std::string& peer);

  zmq::socket_t sock_;
  SocketKind kind_;
  std::string name_;
  std::string endpoint_;
  int default_timeout_ms_;
  int current_timeout_ms_;
};

// Waits on several sockets of one thread at once.
//   Poller p; size_t c = p.add(control); size_t t = p.add(traj);
//   auto n = p.poll(10ms); if (n.ok() && p.readable(c)) control.recv(0ms)...
class Poller {
 public:
  size_t add(BusSocket& s);  // index for readable(); the socket must outlive the Poller
  // Waits at most `timeout`; returns the number of readable sockets (0 on
  // timeout or signal). Error only if polling itself fails.
  Result<int> poll(std::chrono::milliseconds timeout);
  bool readable(size_t index) const;
  size_t size() const { return items_.size(); }

 private:
  std::vector<zmq::pollitem_t> items_;
  std::vector<std::string> names_;
};

// Heartbeat bookkeeping: which peers have gone silent. Pure logic over the
// caller's clock (unit-testable); owned by one thread.
//   seen(id, now) on every message from id (registers unknown ids)
//   missing(now, timeout) -> ids silent for > timeout that were not reported
//   yet; each silence is reported ONCE. A later seen() revives the peer, and a
//   new silence is reported again.
//   forget(id) when the peer leaves (Shutdown) or is dropped.
class PeerTracker {
 public:
  using Clock = std::chrono::steady_clock;

  void seen(const std::string& id, Clock::time_point now);
  std::vector<std::string> missing(Clock::time_point now, std::chrono::milliseconds timeout);
  void forget(const std::string& id);

  bool known(const std::string& id) const { return peers_.count(id) != 0; }
  bool alive(const std::string& id) const;      // known and not reported missing
  std::vector<std::string> alive_peers() const;  // sorted
  std::optional<Clock::time_point> last_seen(const std::string& id) const;
  size_t size() const { return peers_.size(); }

 private:
  struct Peer {
    Clock::time_point last;
    bool reported_missing = false;
  };
  std::map<std::string, Peer> peers_;
};

}  // namespace gr1
