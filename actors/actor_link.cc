#include "actors/actor_link.h"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "common/bus.h"
#include "common/config.h"
#include "common/log.h"
#include "common/messages.h"

namespace gr1 {
namespace {
using Clock = std::chrono::steady_clock;
std::string host_name() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}
}  // namespace

struct ActorLink::Impl {
  Impl(const Config& c, std::string i) : cfg(c), id(std::move(i)), rejects(id + ".bus") {}

  const Config cfg;
  const std::string id;
  zmq::context_t ctx{1};
  std::thread thread;
  std::atomic<bool> stop_requested{false};
  const std::atomic<bool>* interrupt = nullptr;  // start()'s, read by the registration wait

  // ---- shared with the rollout thread, guarded by mu ----
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<ActorLink::Grant> prompts;
  std::deque<TrajectoryGroup> outbox;
  std::vector<std::shared_ptr<const WeightsSnapshot>> fresh;  // verified, not yet taken
  std::optional<uint64_t> wanted;   // want_weights()
  bool want_pending = false;        // `wanted` not yet asked for (or not yet received)
  std::set<uint64_t> unavailable;   // exact versions the learner no longer keeps
  std::map<std::string, double> report;
  bool report_dirty = false;
  bool closed = false;
  bool lost = false;
  bool shutdown_by_learner = false;
  int undelivered = 0;
  std::string reason;

  // ---- bus thread only ----
  RejectCounter rejects;
  uint64_t known_version = 0;    // newest version announced
  bool known_any = false;
  uint64_t held_version = 0;     // newest verified version fetched
  bool held_any = false;
  bool fetching = false;
  std::optional<uint64_t> asked_exact;  // the in-flight request's exact version
  Clock::time_point fetch_started;
  Clock::time_point next_weights_try;  // after a failed request
  bool weights_request_failing = false;
  int64_t push_failures = 0;  // consecutive failed group sends

  void close(const std::string& why, bool by_learner, bool is_lost) {
    std::lock_guard<std::mutex> lock(mu);
    if (!closed) reason = why;
    closed = true;
    shutdown_by_learner |= by_learner;
    lost |= is_lost;
    cv.notify_all();
  }
  bool is_closed() const {
    std::lock_guard<std::mutex> lock(mu);
    return closed;
  }

  void run(std::promise<Status> started);
  void request_weights(BusSocket& w, uint64_t version, bool exact);
  // Starts the next fetch, if one is due: the wanted version, else the newest.
  void maybe_request_weights(BusSocket& w);
  void leave(BusSocket& ctl, BusSocket& push);
};

void ActorLink::Impl::maybe_request_weights(BusSocket& w) {
  if (fetching) return;
  std::optional<uint64_t> want;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (wanted && want_pending && !unavailable.count(*wanted)) want = wanted;
  }
  if (want) {
    request_weights(w, *want, true);
    if (fetching) {
      std::lock_guard<std::mutex> lock(mu);
      want_pending = false;
    }
  } else if (known_any && (!held_any || known_version > held_version)) {
    request_weights(w, known_version, false);
  }
}

void ActorLink::Impl::request_weights(BusSocket& w, uint64_t version, bool exact) {
  if (Clock::now() < next_weights_try) return;
  // Without waiting: with no learner connected (ZMQ_IMMEDIATE) the send
  // would block the bus thread for a whole send timeout. Retried shortly.
  Status s = w.send(encode_message(id, WeightsRequestMsg{version}), 0);
  if (!s.ok()) {
    if (!weights_request_failing) log_warn(id, "weights request failed (will retry): " + s.message());
    weights_request_failing = true;
    next_weights_try = Clock::now() + std::chrono::milliseconds(200);
    return;
  }
  weights_request_failing = false;
  asked_exact = exact ? std::optional<uint64_t>(version) : std::nullopt;
  fetching = true;
  fetch_started = Clock::now();
}

void ActorLink::Impl::run(std::promise<Status> started) {
  auto ctl = BusSocket::create(ctx, SocketKind::kDealer, cfg.bus, "control", id);
  auto push = BusSocket::create(ctx, SocketKind::kPush, cfg.bus, "trajectories");
  auto wts = BusSocket::create(ctx, SocketKind::kDealer, cfg.bus, "weights", id);
  for (auto* s : {&ctl, &push, &wts})
    if (!s->ok()) {
      started.set_value(s->status());
      return;
    }
  for (auto [s, ep] : {std::pair{&*ctl, cfg.bus.control_endpoint},
                       std::pair{&*push, cfg.bus.trajectory_endpoint},
                       std::pair{&*wts, cfg.bus.weights_endpoint}})
    if (Status st = s->connect(ep); !st.ok()) {
      started.set_value(st);
      return;
    }

  // ---- register and wait for the acknowledgement ----
  RegisterMsg reg;
  reg.actor_id = id;
  reg.pid = getpid();
  reg.hostname = host_name();
  reg.capabilities = {"rollout-g1g2", "weights-buckets"};
  reg.settings = rollout_contract(cfg);
  const auto deadline = Clock::now() + std::chrono::milliseconds(cfg.bus.peer_timeout_ms);
  bool registered = false;
  bool reached = false;  // a Register went out at least once
  auto next_try = Clock::now();
  auto interrupted = [&] { return stop_requested.load() || (interrupt && interrupt->load()); };
  while (!registered && Clock::now() < deadline && !interrupted()) {
    if (Clock::now() >= next_try) {
      // ZMQ_IMMEDIATE: with no learner connected yet nothing is queued and a
      // send would block for the whole send timeout, deaf to an interrupt.
      // Try without waiting, again shortly; once sent, resend now and then.
      const bool sent = ctl->send(encode_message(id, reg), 0).ok();
      reached |= sent;
      next_try = Clock::now() + std::chrono::milliseconds(sent ? 1000 : 50);
    }
    auto in = ctl->recv(std::chrono::milliseconds(50));
    if (!in.ok() || !in->has_value()) continue;
    auto r = decode_message((*in)->frames.back().data(), (*in)->frames.back().size(),
                            cfg.bus.max_message_bytes);
    if (!rejects.note(r, "control")) continue;
    if (const auto* ack = r->get<RegisterAckMsg>()) {
      if (!ack->accepted) {
        started.set_value(Status::Error("learner refused registration: " + ack->reason));
        return;
      }
      registered = true;
      known_version = ack->weights_version;
    }
    // Anything else before the ack (a grant, a weights notice) is handled in
    // the main loop only after registration; the learner sends the ack first.
  }
  if (!registered && interrupted()) {
    started.set_value(Status::Error("interrupted while waiting for the learner's RegisterAck at " +
                                    cfg.bus.control_endpoint));
    return;
  }
  if (!registered) {
    started.set_value(Status::Error("no RegisterAck from the learner at " +
                                    cfg.bus.control_endpoint + " within " +
                                    std::to_string(cfg.bus.peer_timeout_ms) + " ms" +
                                    (reached ? "" : " (no learner accepted the connection)")));
    return;
  }
  started.set_value(Status::Ok());

  Poller poller;
  poller.add(*ctl);
  poller.add(*wts);
  auto last_learner = Clock::now();
  auto next_beat = Clock::now();
  bool reported_missing = false;
  uint64_t seq = 0;
  const auto timeout = std::chrono::milliseconds(cfg.bus.peer_timeout_ms);

  while (!stop_requested.load() && !is_closed()) {
    auto pr = poller.poll(std::chrono::milliseconds(2));
    if (!pr.ok()) {
      close("poll failed: " + pr.error(), false, false);
      break;
    }
    // ---- control ----
    for (int k = 0; k < 64; ++k) {
      auto in = ctl->recv(std::chrono::milliseconds(0));
      if (!in.ok() || !in->has_value()) break;
      const auto& fr = (*in)->frames;
      if (fr.size() != 1) {
        rejects.reject("control", "expected 1 frame");
        continue;
      }
      auto r = decode_message(fr[0].data(), fr[0].size(), cfg.bus.max_message_bytes);
      if (!rejects.note(r, "control")) continue;
      last_learner = Clock::now();
      if (reported_missing) {
        log_info(id, "learner is back");
        reported_missing = false;
      }
      const Message& m = *r;
      if (const auto* g = m.get<WorkGrantMsg>()) {
        std::lock_guard<std::mutex> lock(mu);
        for (size_t k = 0; k < g->prompt_ids.size(); ++k) {
          ActorLink::Grant grant{g->prompt_ids[k], std::nullopt};
          if (!g->weights_versions.empty()) grant.weights_version = g->weights_versions[k];
          prompts.push_back(grant);
        }
        cv.notify_all();
      } else if (const auto* wa = m.get<WeightsAvailableMsg>()) {
        if (!known_any || wa->version > known_version) known_version = wa->version;
        known_any = true;
        maybe_request_weights(*wts);
      } else if (const auto* sd = m.get<ShutdownMsg>()) {
        // Answered, so that the learner knows we have it (Coordinator::stop).
        (void)ctl->send(encode_message(id, ShutdownMsg{"acknowledged"}), 0);
        close("learner: " + sd->reason, true, false);
      } else if (const auto* ack = m.get<AckMsg>()) {
        if (ack->outcome == AckOutcome::kRejected)
          log_warn(id, "learner rejected group " + std::to_string(ack->group_id) + ": " + ack->reason);
      } else if (m.get<HeartbeatMsg>() || m.get<RegisterAckMsg>()) {
        // liveness only
      } else {
        rejects.reject("control", std::string("unexpected ") + kind_name(m.kind()));
      }
    }
    // ---- weights reply: header + buckets in one multipart message ----
    for (int k = 0; k < 4; ++k) {
      auto in = wts->recv(std::chrono::milliseconds(0));
      if (!in.ok() || !in->has_value()) break;
      std::vector<std::string_view> views;
      for (const auto& f : (*in)->frames) views.emplace_back(static_cast<const char*>(f.data()), f.size());
      fetching = false;
      // An exact request may be answered with an older version than held;
      // otherwise only a newer one is taken.
      const auto exact = std::exchange(asked_exact, std::nullopt);
      auto snap = decode_weights_reply(views, cfg.bus.max_message_bytes,
                                       exact ? *exact : held_any ? held_version + 1 : 0);
      if (!snap.ok()) {
        rejects.reject("weights", snap.error());
        continue;  // asked again below
      }
      last_learner = Clock::now();
      auto s = std::make_shared<WeightsSnapshot>(std::move(*snap));
      s->fetch_ms = std::chrono::duration<double, std::milli>(Clock::now() - fetch_started).count();
      held_version = held_any ? std::max(held_version, s->version) : s->version;
      held_any = true;
      std::lock_guard<std::mutex> lock(mu);
      if (wanted && s->version == *wanted) want_pending = false;  // no second fetch of it
      if (exact && s->version != *exact) {
        unavailable.insert(*exact);
        log_warn(id, "the learner no longer keeps weights v" + std::to_string(*exact) + " (sent v" +
                         std::to_string(s->version) + ")");
      }
      fresh.push_back(std::move(s));
      cv.notify_all();
    }
    maybe_request_weights(*wts);

    // ---- outgoing groups: never dropped; a timed-out send is retried ----
    while (true) {
      TrajectoryGroup g;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (outbox.empty()) break;
        g = outbox.front();
      }
      Status s = push->send(encode_message(id, g), 100);
      if (!s.ok()) {
        // Once per outage, not once per 100-ms try.
        if (push_failures++ == 0)
          log_warn(id, "sending group " + std::to_string(g.group_id) + " failed (will retry): " + s.message());
        break;
      }
      if (push_failures > 0) {
        log_info(id, "sending groups again after " + std::to_string(push_failures) + " failed tries");
        push_failures = 0;
      }
      std::lock_guard<std::mutex> lock(mu);
      outbox.pop_front();
      cv.notify_all();
    }

    // ---- heartbeats, metrics, learner liveness ----
    const auto now = Clock::now();
    if (now >= next_beat) {
      next_beat = now + std::chrono::milliseconds(cfg.bus.heartbeat_interval_ms);
      HeartbeatMsg hb;
      hb.role = PeerRole::kActor;
      hb.seq = ++seq;
      hb.weights_version = held_version;
      std::map<std::string, double> rep;
      bool dirty;
      {
        std::lock_guard<std::mutex> lock(mu);
        hb.inflight_groups = static_cast<uint32_t>(prompts.size() + outbox.size());
        dirty = report_dirty;
        report_dirty = false;
        rep = report;
      }
      // Without waiting (see request_weights): a heartbeat that cannot go
      // now is worthless later; unsent metrics go with the next one.
      (void)ctl->send(encode_message(id, hb), 0);
      if (dirty && !ctl->send(encode_message(id, MetricsMsg{rep}), 0).ok()) {
        std::lock_guard<std::mutex> lock(mu);
        report_dirty = true;
      }
      if (now - last_learner > timeout && !reported_missing) {
        reported_missing = true;
        log_warn(id, "learner missing: no message for " + std::to_string(cfg.bus.peer_timeout_ms) + " ms");
      }
      if (now - last_learner > 3 * timeout) close("learner lost", false, true);
    }
  }
  leave(*ctl, *push);
}

void ActorLink::Impl::leave(BusSocket& ctl, BusSocket& push) {
  // A Shutdown the learner sent just before we stopped (the launcher's
  // SIGTERM and the learner's end often come together) is its word: read it.
  bool said = false;
  for (int k = 0; k < 64 && !said; ++k) {
    auto in = ctl.recv(std::chrono::milliseconds(0));
    if (!in.ok() || !in->has_value()) break;
    const auto& fr = (*in)->frames;
    if (fr.size() != 1) continue;
    auto r = decode_message(fr[0].data(), fr[0].size(), cfg.bus.max_message_bytes);
    if (!r.ok()) continue;
    if (const auto* sd = r->get<ShutdownMsg>()) {
      (void)ctl.send(encode_message(id, ShutdownMsg{"acknowledged"}), 0);
      close("learner: " + sd->reason, true, false);
      said = true;
    }
  }
  std::deque<TrajectoryGroup> rest;
  bool by_learner, lost_now;
  {
    std::lock_guard<std::mutex> lock(mu);
    by_learner = shutdown_by_learner;
    lost_now = lost;
    rest.swap(outbox);
  }
  size_t sent = 0;
  if (!by_learner && !lost_now) {
    // Leaving on our own: hand over what is queued, then say so. One budget
    // for all of it: with the learner gone, every send would otherwise wait
    // a whole send timeout (ZMQ_IMMEDIATE queues nothing without a peer).
    const int budget_ms = std::min(cfg.bus.send_timeout_ms, kExitFlushMs);
    const auto deadline = Clock::now() + std::chrono::milliseconds(budget_ms);
    auto left_ms = [&] {
      return static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
    };
    for (; sent < rest.size(); ++sent) {
      const int ms = left_ms();
      if (ms == 0 || !push.send(encode_message(id, rest[sent]), ms).ok()) break;
    }
    if (sent < rest.size())
      log_warn(id, "leaving with " + std::to_string(rest.size() - sent) + " of " +
                       std::to_string(rest.size()) + " queued groups undelivered: the learner " +
                       "did not take them within " + std::to_string(budget_ms) + " ms");
    // The goodbye gets what is left of the budget, and at least a moment.
    (void)ctl.send(encode_message(id, ShutdownMsg{"actor leaving"}), std::max(50, left_ms()));
    ctl.raw().set(zmq::sockopt::linger, 500);
    push.raw().set(zmq::sockopt::linger, 2000);
  }
  std::lock_guard<std::mutex> lock(mu);
  undelivered += static_cast<int>(rest.size() - sent);
}

ActorLink::ActorLink(const Config& cfg, std::string actor_id)
    : impl_(std::make_unique<Impl>(cfg, std::move(actor_id))) {}

ActorLink::~ActorLink() { stop(); }

Status ActorLink::start(const std::atomic<bool>* interrupt) {
  impl_->interrupt = interrupt;
  std::promise<Status> p;
  auto f = p.get_future();
  impl_->thread = std::thread([this, pr = std::move(p)]() mutable { impl_->run(std::move(pr)); });
  Status s = f.get();
  if (!s.ok()) {
    impl_->stop_requested = true;
    impl_->thread.join();
    impl_->close(s.message(), false, false);
  }
  return s;
}

void ActorLink::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->stop_requested = true;
  impl_->thread.join();
  impl_->close("stopped", false, false);
}

std::optional<ActorLink::Grant> ActorLink::next_prompt(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->cv.wait_for(lock, timeout, [&] { return !impl_->prompts.empty() || impl_->closed; });
  if (impl_->prompts.empty() || impl_->closed) return std::nullopt;
  const Grant p = impl_->prompts.front();
  impl_->prompts.pop_front();
  return p;
}

bool ActorLink::send_group(TrajectoryGroup group) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->closed) return false;
  impl_->outbox.push_back(std::move(group));
  return true;
}

std::vector<std::shared_ptr<const WeightsSnapshot>> ActorLink::take_new_weights() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return std::exchange(impl_->fresh, {});
}

void ActorLink::want_weights(std::optional<uint64_t> v) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->wanted = v;
  impl_->want_pending = v.has_value();
}

bool ActorLink::weights_unavailable(uint64_t v) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->unavailable.count(v) > 0;
}

void ActorLink::report(std::map<std::string, double> values) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->report = std::move(values);
  impl_->report_dirty = true;
}

bool ActorLink::closed() const { return impl_->is_closed(); }

std::string ActorLink::close_reason() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->reason;
}

bool ActorLink::learner_lost() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->lost;
}

int ActorLink::undelivered_groups() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->undelivered + static_cast<int>(impl_->outbox.size());
}

}  // namespace gr1
