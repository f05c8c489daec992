#include "common/bus.h"

#include <algorithm>
#include <cerrno>
#include <iterator>

#include <zmq_addon.hpp>

namespace gr1 {
namespace {

zmq::socket_type zmq_type(SocketKind k) {
  switch (k) {
    case SocketKind::kRouter: return zmq::socket_type::router;
    case SocketKind::kDealer: return zmq::socket_type::dealer;
    case SocketKind::kPush: return zmq::socket_type::push;
    case SocketKind::kPull: return zmq::socket_type::pull;
  }
  return zmq::socket_type::pair;
}

std::string printable(const std::string& id) {
  std::string out;
  for (const char c : id.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return id.size() > 64 ? out + "..." : out;
}

}  // namespace

const char* socket_kind_name(SocketKind kind) {
  switch (kind) {
    case SocketKind::kRouter: return "ROUTER";
    case SocketKind::kDealer: return "DEALER";
    case SocketKind::kPush: return "PUSH";
    case SocketKind::kPull: return "PULL";
  }
  return "?";
}

zmq::message_t to_frame(std::string bytes) {
  // Small frames: a copy into zmq's inline storage is cheaper than a heap hop.
  if (bytes.size() <= 64) return zmq::message_t(bytes.data(), bytes.size());
  auto* owned = new std::string(std::move(bytes));
  return zmq::message_t(
      owned->data(), owned->size(),
      [](void*, void* hint) { delete static_cast<std::string*>(hint); }, owned);
}

Result<BusSocket> BusSocket::create(zmq::context_t& ctx, SocketKind kind, const BusOptions& opt,
                                    std::string name, const std::string& routing_id) {
  const std::string what = name + " " + socket_kind_name(kind);
  if (!routing_id.empty() && (routing_id.size() > 255 || routing_id[0] == '\0'))
    return Status::Error("cannot create " + what + ": routing id " + printable(routing_id) +
                         " must be 1..255 bytes and not start with a zero byte");
  try {
    zmq::socket_t s(ctx, zmq_type(kind));
    s.set(zmq::sockopt::linger, std::min(opt.send_timeout_ms, 1000));
    s.set(zmq::sockopt::sndtimeo, opt.send_timeout_ms);
    s.set(zmq::sockopt::rcvtimeo, opt.send_timeout_ms);
    s.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(opt.max_message_bytes));
    s.set(zmq::sockopt::tcp_keepalive, 1);
    s.set(zmq::sockopt::tcp_keepalive_idle, 10);
    s.set(zmq::sockopt::tcp_keepalive_intvl, 5);
    s.set(zmq::sockopt::tcp_keepalive_cnt, 3);
    s.set(zmq::sockopt::reconnect_ivl_max, 1000);
    switch (kind) {
      case SocketKind::kRouter:
        s.set(zmq::sockopt::router_mandatory, true);
        s.set(zmq::sockopt::router_handover, true);
        break;
      case SocketKind::kDealer:
        if (!routing_id.empty()) s.set(zmq::sockopt::routing_id, routing_id);
        s.set(zmq::sockopt::immediate, true);
        break;
      case SocketKind::kPush:
        s.set(zmq::sockopt::immediate, true);
        break;
      case SocketKind::kPull:
        break;
    }
    return BusSocket(std::move(s), kind, std::move(name), opt.send_timeout_ms);
  } catch (const zmq::error_t& e) {
    return Status::Error("cannot create " + what + ": " + e.what());
  }
}

std::string BusSocket::describe() const {
  std::string d = name_ + " " + socket_kind_name(kind_);
  if (!endpoint_.empty()) d += " (" + endpoint_ + ")";
  return d;
}

Result<std::string> BusSocket::bind(const std::string& endpoint) {
  try {
    sock_.bind(endpoint);
    std::string last = sock_.get(zmq::sockopt::last_endpoint);
    while (!last.empty() && last.back() == '\0') last.pop_back();
    endpoint_ = last.empty() ? endpoint : last;
    return endpoint_;
  } catch (const zmq::error_t& e) {
    return Status::Error("cannot bind " + name_ + " " + socket_kind_name(kind_) + " to " +
                         endpoint + ": " + e.what());
  }
}

Status BusSocket::connect(const std::string& endpoint) {
  try {
    sock_.connect(endpoint);
    endpoint_ = endpoint;
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return Status::Error("cannot connect " + name_ + " " + socket_kind_name(kind_) + " to " +
                         endpoint + ": " + e.what());
  }
}

Status BusSocket::send(std::string frame, int timeout_ms) {
  Frames f;
  f.push_back(to_frame(std::move(frame)));
  return send_impl(std::move(f), timeout_ms, {});
}

Status BusSocket::send(std::vector<std::string> frames, int timeout_ms) {
  Frames f;
  f.reserve(frames.size());
  for (auto& s : frames) f.push_back(to_frame(std::move(s)));
  return send_impl(std::move(f), timeout_ms, {});
}

Status BusSocket::send_to(const std::string& peer, std::string frame, int timeout_ms) {
  Frames f;
  f.emplace_back(peer.data(), peer.size());
  f.push_back(to_frame(std::move(frame)));
  return send_impl(std::move(f), timeout_ms, peer);
}

Status BusSocket::send_to(const std::string& peer, std::vector<std::string> frames,
                          int timeout_ms) {
  Frames f;
  f.reserve(frames.size() + 1);
  f.emplace_back(peer.data(), peer.size());
  for (auto& s : frames) f.push_back(to_frame(std::move(s)));
  return send_impl(std::move(f), timeout_ms, peer);
}

Status BusSocket::send_frames(Frames frames, int timeout_ms) {
  std::string peer;
  if (kind_ == SocketKind::kRouter && !frames.empty()) peer = frames[0].to_string();
  return send_impl(std::move(frames), timeout_ms, peer);
}

Status BusSocket::send_impl(Frames frames, int timeout_ms, const std::string& peer) {
  const std::string to =
      peer.empty() ? describe() : "peer '" + printable(peer) + "' on " + describe();
  if (frames.empty()) return Status::Error("nothing to send to " + to);
  if (kind_ == SocketKind::kRouter && frames.size() < 2)
    return Status::Error("ROUTER send to " + to + " needs a routing id and a payload frame");
  if (kind_ == SocketKind::kPull) return Status::Error("cannot send on " + describe());
  if (!peer.empty() && kind_ != SocketKind::kRouter)
    return Status::Error("send_to needs a ROUTER, not " + describe());
  if (timeout_ms < 0) timeout_ms = default_timeout_ms_;
  try {
    if (timeout_ms != current_timeout_ms_) {
      sock_.set(zmq::sockopt::sndtimeo, timeout_ms);
      current_timeout_ms_ = timeout_ms;
    }
    for (size_t i = 0; i < frames.size(); ++i) {
      const auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      if (!sock_.send(frames[i], flags)) {
        // Only the first frame can block: the rest of a multipart message
        // follows it into the same pipe.
        return Status::Error("timed out after " + std::to_string(timeout_ms) +
                             " ms sending to " + to);
      }
    }
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return Status::Error("no peer '" + printable(peer) + "' on " + describe());
    return Status::Error("sending to " + to + " failed: " + e.what());
  }
}

Result<std::optional<Incoming>> BusSocket::recv(std::chrono::milliseconds timeout) {
  using R = Result<std::optional<Incoming>>;
  if (kind_ == SocketKind::kPush) return Status::Error("cannot receive on " + describe());
  try {
    zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) == 0) return R(std::nullopt);
    Incoming in;
    if (!zmq::recv_multipart(sock_, std::back_inserter(in.frames), zmq::recv_flags::dontwait))
      return R(std::nullopt);
    if (kind_ == SocketKind::kRouter) {
      if (in.frames.empty()) return R(std::nullopt);
      in.peer = in.frames.front().to_string();
      in.frames.erase(in.frames.begin());
    }
    return R(std::optional<Incoming>(std::move(in)));
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return R(std::nullopt);
    return Status::Error("receiving on " + describe() + " failed: " + e.what());
  }
}

size_t Poller::add(BusSocket& s) {
  items_.push_back(zmq::pollitem_t{s.raw().handle(), 0, ZMQ_POLLIN, 0});
  names_.push_back(s.describe());
  return items_.size() - 1;
}

Result<int> Poller::poll(std::chrono::milliseconds timeout) {
  for (auto& it : items_) it.revents = 0;
  try {
    return zmq::poll(items_.data(), items_.size(), timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return 0;
    std::string names;
    for (const auto& n : names_) names += (names.empty() ? "" : ", ") + n;
    return Status::Error("polling " + names + " failed: " + e.what());
  }
}

bool Poller::readable(size_t index) const {
  return index < items_.size() && (items_[index].revents & ZMQ_POLLIN);
}

void PeerTracker::seen(const std::string& id, Clock::time_point now) {
  Peer& p = peers_[id];
  p.last = std::max(p.last, now);
  p.reported_missing = false;
}

std::vector<std::string> PeerTracker::missing(Clock::time_point now,
                                              std::chrono::milliseconds timeout) {
  std::vector<std::string> out;
  for (auto& [id, p] : peers_) {
    if (!p.reported_missing && now - p.last > timeout) {
      p.reported_missing = true;
      out.push_back(id);
    }
  }
  return out;
}

void PeerTracker::forget(const std::string& id) { peers_.erase(id); }

bool PeerTracker::alive(const std::string& id) const {
  const auto it = peers_.find(id);
  return it != peers_.end() && !it->second.reported_missing;
}

std::vector<std::string> PeerTracker::alive_peers() const {
  std::vector<std::string> out;
  for (const auto& [id, p] : peers_)
    if (!p.reported_missing) out.push_back(id);
  return out;
}

std::optional<PeerTracker::Clock::time_point> PeerTracker::last_seen(const std::string& id) const {
  const auto it = peers_.find(id);
  if (it == peers_.end()) return std::nullopt;
  return it->second.last;
}

}  // namespace gr1
