#include "learner/coordinator.h"

#include <unistd.h>

#include <atomic>
#include <future>
#include <iterator>
#include <set>
#include <utility>

#include "common/bus.h"
#include "common/config.h"
#include "common/log.h"
#include "common/messages.h"
#include "common/tokenizer.h"
#include "learner/validate.h"

namespace gr1 {
namespace {
using Clock = std::chrono::steady_clock;
constexpr const char* kSender = "learner";
constexpr const char* kLog = "learner.bus";
// How long stop() waits for the actors to answer its Shutdown.
constexpr int kShutdownWaitMs = 2000;
}  // namespace

struct Coordinator::Impl {
  explicit Impl(const Config& c) : cfg(c), rejects(kLog) {}

  // Per-actor bookkeeping: bus thread only (alive list mirrored under mu).
  struct Actor {
    bool alive = false;
    std::set<uint64_t> granted;  // prompts granted, group not yet received
    int in_learner = 0;          // groups received, not yet completed
    ActorReport report;
  };

  // Commands from the trainer thread to the bus thread.
  struct Command {
    enum Kind { kComplete, kPublish } kind;
    std::string actor;
    uint64_t group_id = 0, prompt_id = 0;
    GroupOutcome outcome = GroupOutcome::kConsumed;
  };

  const Config cfg;
  const std::vector<std::string> contract = rollout_contract(cfg);  // what an actor must match
  zmq::context_t ctx{1};
  std::thread thread;
  std::atomic<bool> running{false};
  std::atomic<bool> stop_requested{false};
  std::string stop_reason;

  // ---- shared with the trainer thread, guarded by mu ----
  mutable std::mutex mu;
  std::condition_variable ready_cv;
  std::deque<TrajectoryGroup> ready;
  std::deque<Command> commands;
  std::shared_ptr<const WeightsSnapshot> weights;
  // Encoded replies by version: the newest (`weights`) only, or in a
  // reproducible run the last few, so an actor can fetch the exact version
  // its grants ask for.
  std::map<uint64_t, std::vector<std::string>> kept_frames;
  CoordinatorCounters counters;
  std::vector<std::string> alive_list;
  std::map<std::string, ActorReport> reports;

  // ---- bus thread only ----
  RejectCounter rejects;
  std::map<std::string, Actor> actors;
  PeerTracker peers;
  uint64_t next_prompt = 0;
  std::deque<uint64_t> requeued;
  uint64_t announced_version = 0;
  bool have_weights = false;
  bool regrant = false;  // prompts were requeued or became grantable: offer them to every actor

  void run(std::promise<Status> started);
  void handle_control(BusSocket& ctl, Incoming in);
  void handle_group(BusSocket& ctl, Incoming in);
  void handle_weights(BusSocket& w, Incoming in);
  void drain_commands(BusSocket& ctl);
  void grant(BusSocket& ctl, const std::string& id);
  void lose(const std::string& id, const std::string& why);
  void send(BusSocket& ctl, const std::string& id, const Payload& p);
  void sync_shared();
  uint64_t required_version(uint64_t p) const { return reproducible_version(cfg.learner, p); }
};

void Coordinator::Impl::send(BusSocket& ctl, const std::string& id, const Payload& p) {
  Status s = ctl.send_to(id, encode_message(kSender, p));
  if (!s.ok()) log_warn(kLog, "send to " + id + " failed: " + s.message());
}

void Coordinator::Impl::sync_shared() {
  std::lock_guard<std::mutex> lock(mu);
  alive_list.clear();
  for (auto& [id, a] : actors)
    if (a.alive) alive_list.push_back(id);
  counters.actors_alive = static_cast<int>(alive_list.size());
  counters.rejected_messages = rejects.rejected();
  for (auto& [id, a] : actors) reports[id] = a.report;
}

// Tops the actor up to max_inflight_groups outstanding prompts.
void Coordinator::Impl::grant(BusSocket& ctl, const std::string& id) {
  Actor& a = actors[id];
  if (!a.alive) return;
  WorkGrantMsg g;
  const bool exact = cfg.learner.reproducible;
  while (static_cast<int>(a.granted.size()) + a.in_learner < cfg.learner.max_inflight_groups) {
    uint64_t p;
    if (!requeued.empty()) {
      p = requeued.front();
      // Reproducible: a prompt is granted once the version it needs is out.
      if (exact && (!have_weights || required_version(p) > announced_version)) break;
      requeued.pop_front();
    } else {
      if (exact && (!have_weights || required_version(next_prompt) > announced_version)) break;
      p = next_prompt++;
    }
    a.granted.insert(p);
    g.prompt_ids.push_back(p);
    if (exact) g.weights_versions.push_back(required_version(p));
  }
  if (g.prompt_ids.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu);
    counters.prompts_granted += g.prompt_ids.size();
  }
  send(ctl, id, g);
}

void Coordinator::Impl::lose(const std::string& id, const std::string& why) {
  Actor& a = actors[id];
  if (!a.alive) return;
  a.alive = false;
  const size_t n = a.granted.size();
  for (uint64_t p : a.granted) requeued.push_back(p);
  a.granted.clear();
  if (n > 0) regrant = true;
  {
    std::lock_guard<std::mutex> lock(mu);
    counters.prompts_requeued += n;
    counters.actors_lost += 1;
  }
  log_warn(kLog, "actor " + id + " " + why + "; its " + std::to_string(n) +
                     " outstanding prompt(s) go to other actors");
  peers.forget(id);
}

void Coordinator::Impl::handle_control(BusSocket& ctl, Incoming in) {
  const std::string src = "control/" + in.peer;
  if (in.frames.size() != 1) {
    rejects.reject(src, "expected 1 frame, got " + std::to_string(in.frames.size()));
    return;
  }
  auto r = decode_message(in.frames[0].data(), in.frames[0].size(), cfg.bus.max_message_bytes);
  if (!rejects.note(r, src)) return;
  const Message& m = *r;
  if (m.sender != in.peer) {
    rejects.reject(src, "envelope sender '" + m.sender + "' differs from routing id");
    return;
  }
  const std::string& id = in.peer;
  const auto now = Clock::now();
  if (const auto* reg = m.get<RegisterMsg>()) {
    // An actor that rolls out other questions (task.*) or samples otherwise
    // (rollout.*) would be scored against the learner's questions and its
    // logprobs mistaken for this sampling's: refuse it, naming the keys.
    std::string refused;
    if (reg->settings.empty()) {
      refused = "it sent no task/rollout settings (an actor older than this learner?)";
    } else if (const auto diff = contract_differences(reg->settings, contract); !diff.empty()) {
      refused = "its settings differ from the learner's: ";
      for (size_t k = 0; k < diff.size(); ++k) refused += (k ? "; " : "") + diff[k];
    }
    if (!refused.empty()) {
      log_warn(kLog, "refused actor " + id + ": " + refused);
      if (auto known = actors.find(id); known != actors.end() && known->second.alive)
        lose(id, "registered again with other settings");
      {
        std::lock_guard<std::mutex> lock(mu);
        counters.actors_refused += 1;
      }
      RegisterAckMsg ack;
      ack.accepted = false;
      ack.reason = refused;
      ack.run_id = cfg.run.name;
      send(ctl, id, ack);
      return;
    }
    Actor& a = actors[id];
    if (a.alive) {  // a restart under the same name: its old grants are void
      for (uint64_t p : a.granted) requeued.push_back(p);
      if (!a.granted.empty()) regrant = true;
      a.granted.clear();
      log_warn(kLog, "actor " + id + " registered again (restart?); requeued its prompts");
    }
    a.alive = true;
    a.in_learner = 0;
    peers.seen(id, now);
    {
      std::lock_guard<std::mutex> lock(mu);
      counters.actors_registered += 1;
    }
    log_info(kLog, "actor " + id + " registered (pid " + std::to_string(reg->pid) + " on " +
                       reg->hostname + ")");
    RegisterAckMsg ack;
    ack.accepted = true;
    ack.run_id = cfg.run.name;
    ack.weights_version = announced_version;
    send(ctl, id, ack);
    if (have_weights) send(ctl, id, WeightsAvailableMsg{announced_version, 0});
    grant(ctl, id);
    return;
  }
  auto it = actors.find(id);
  if (it == actors.end() || !it->second.alive) {
    if (m.get<ShutdownMsg>()) return;  // already gone
    rejects.reject(src, std::string(kind_name(m.kind())) + " from an unregistered actor");
    send(ctl, id, ShutdownMsg{"not registered (or reported missing): register again"});
    return;
  }
  peers.seen(id, now);
  if (m.get<HeartbeatMsg>()) return;
  if (const auto* mm = m.get<MetricsMsg>()) {
    it->second.report.values = mm->values;
    return;
  }
  if (const auto* sd = m.get<ShutdownMsg>()) {
    lose(id, "left (" + sd->reason + ")");
    return;
  }
  rejects.reject(src, std::string("unexpected ") + kind_name(m.kind()) + " on the control socket");
}

void Coordinator::Impl::handle_group(BusSocket& ctl, Incoming in) {
  const std::string src = "trajectories";
  if (in.frames.size() != 1) {
    rejects.reject(src, "expected 1 frame, got " + std::to_string(in.frames.size()));
    return;
  }
  auto r = decode_message(in.frames[0].data(), in.frames[0].size(), cfg.bus.max_message_bytes);
  if (!rejects.note(r, src)) return;
  Message& m = *r;
  auto* g = m.get<TrajectoryGroup>();
  if (!g) {
    rejects.reject(src, std::string("unexpected ") + kind_name(m.kind()) + " on the trajectory socket");
    return;
  }
  const std::string from = src + "/" + m.sender;
  if (g->actor_id != m.sender) {
    rejects.reject(from, "group actor_id '" + g->actor_id + "' differs from sender");
    return;
  }
  auto it = actors.find(g->actor_id);
  if (it == actors.end()) {
    rejects.reject(from, "group from an unknown actor");
    return;
  }
  Actor& a = it->second;
  // Accept a prompt that was granted to this actor, or one that was requeued
  // after the actor was presumed lost (its late result is still good data).
  bool granted = a.granted.erase(g->prompt_id) > 0;
  if (!granted) {
    auto q = std::find(requeued.begin(), requeued.end(), g->prompt_id);
    if (q != requeued.end()) {
      requeued.erase(q);
      granted = true;
    }
  }
  if (!granted) {
    rejects.reject(from, "prompt " + std::to_string(g->prompt_id) + " was not granted to it");
    return;
  }
  if (Status s = validate_group(*g, cfg, Tokenizer().vocab_size()); !s.ok()) {
    rejects.reject(from, "invalid group " + std::to_string(g->group_id) + ": " + s.message());
    requeued.push_back(g->prompt_id);
    if (a.alive) {
      send(ctl, g->actor_id, AckMsg{g->group_id, g->prompt_id, AckOutcome::kRejected, s.message()});
      grant(ctl, g->actor_id);
    }
    return;
  }
  rejects.accept();
  if (a.alive) a.in_learner += 1;
  uint64_t tokens = 0;
  for (const auto& t : g->trajectories)
    for (auto mk : t.policy_mask) tokens += mk;
  {
    std::lock_guard<std::mutex> lock(mu);
    counters.groups_received += 1;
    counters.trajectories_received += g->trajectories.size();
    counters.policy_tokens_received += tokens;
    ready.push_back(std::move(*g));
  }
  ready_cv.notify_all();
}

void Coordinator::Impl::handle_weights(BusSocket& w, Incoming in) {
  const std::string src = "weights/" + in.peer;
  if (in.frames.size() != 1) {
    rejects.reject(src, "expected 1 frame");
    return;
  }
  auto r = decode_message(in.frames[0].data(), in.frames[0].size(), cfg.bus.max_message_bytes);
  if (!rejects.note(r, src)) return;
  if (!r->get<WeightsRequestMsg>()) {
    rejects.reject(src, std::string("unexpected ") + kind_name(r->kind()) + " on the weights socket");
    return;
  }
  std::vector<std::string> frames;
  const uint64_t asked = r->get<WeightsRequestMsg>()->version;
  {
    std::lock_guard<std::mutex> lock(mu);
    // The version asked for when it is kept (reproducible runs), else the newest.
    auto k = kept_frames.find(asked);
    if (k == kept_frames.end() && !kept_frames.empty()) k = std::prev(kept_frames.end());
    if (k != kept_frames.end()) frames = k->second;  // copy: the send takes ownership
    if (!frames.empty()) counters.weight_requests_served += 1;
  }
  if (frames.empty()) {
    rejects.reject(src, "weights requested before any were published");
    return;
  }
  if (Status s = w.send_to(in.peer, std::move(frames)); !s.ok())
    log_warn(kLog, "weights reply to " + in.peer + " failed: " + s.message());
}

void Coordinator::Impl::drain_commands(BusSocket& ctl) {
  std::deque<Command> cmds;
  {
    std::lock_guard<std::mutex> lock(mu);
    cmds.swap(commands);
  }
  for (const auto& c : cmds) {
    if (c.kind == Command::kPublish) {
      uint64_t v;
      {
        std::lock_guard<std::mutex> lock(mu);
        v = weights->version;
      }
      announced_version = v;
      have_weights = true;
      for (auto& [id, a] : actors)
        if (a.alive) send(ctl, id, WeightsAvailableMsg{v, 0});
      // Reproducible: prompts that waited for this version can go out now.
      if (cfg.learner.reproducible) regrant = true;
      continue;
    }
    auto it = actors.find(c.actor);
    if (it == actors.end()) continue;
    Actor& a = it->second;
    if (a.in_learner > 0) a.in_learner -= 1;
    if (c.outcome == GroupOutcome::kDiscardedStale) {
      requeued.push_back(c.prompt_id);  // the prompt is rolled out again, not skipped
      std::lock_guard<std::mutex> lock(mu);
      counters.discarded_stale += 1;
      counters.prompts_requeued += 1;
    }
    if (!a.alive) continue;
    AckMsg ack{c.group_id, c.prompt_id,
               c.outcome == GroupOutcome::kConsumed ? AckOutcome::kConsumed
                                                    : AckOutcome::kDiscardedStale,
               ""};
    send(ctl, c.actor, ack);
    grant(ctl, c.actor);
  }
}

void Coordinator::Impl::run(std::promise<Status> started) {
  auto mk = [&](SocketKind k, const char* name) {
    return BusSocket::create(ctx, k, cfg.bus, name);
  };
  auto ctl = mk(SocketKind::kRouter, "control");
  auto traj = mk(SocketKind::kPull, "trajectories");
  auto wts = mk(SocketKind::kRouter, "weights");
  for (auto* s : {&ctl, &traj, &wts})
    if (!s->ok()) {
      started.set_value(s->status());
      return;
    }
  for (auto [s, ep] : {std::pair{&*ctl, cfg.bus.control_endpoint},
                       std::pair{&*traj, cfg.bus.trajectory_endpoint},
                       std::pair{&*wts, cfg.bus.weights_endpoint}}) {
    auto b = s->bind(ep);
    if (!b.ok()) {
      started.set_value(b.status());
      return;
    }
  }
  started.set_value(Status::Ok());

  Poller poller;
  const size_t i_ctl = poller.add(*ctl), i_traj = poller.add(*traj), i_w = poller.add(*wts);
  auto next_beat = Clock::now();
  uint64_t seq = 0;
  while (!stop_requested.load()) {
    auto pr = poller.poll(std::chrono::milliseconds(2));
    if (!pr.ok()) {
      log_error(kLog, "poll failed: " + pr.error());
      break;
    }
    // Bounded work per socket per iteration keeps every socket served.
    for (int k = 0; k < 64 && poller.readable(i_ctl); ++k) {
      auto in = ctl->recv(std::chrono::milliseconds(0));
      if (!in.ok() || !in->has_value()) break;
      handle_control(*ctl, std::move(**in));
    }
    for (int k = 0; k < 16; ++k) {
      auto in = traj->recv(std::chrono::milliseconds(0));
      if (!in.ok() || !in->has_value()) break;
      handle_group(*ctl, std::move(**in));
    }
    for (int k = 0; k < 16; ++k) {
      auto in = wts->recv(std::chrono::milliseconds(0));
      if (!in.ok() || !in->has_value()) break;
      handle_weights(*wts, std::move(**in));
    }
    (void)i_traj;
    (void)i_w;
    drain_commands(*ctl);
    // A lost actor's prompts, and in a reproducible run the prompts a new
    // version made grantable, go out at once, also to idle actors (a
    // reproducible step cannot go on without them).
    if (std::exchange(regrant, false))
      for (auto& [id, a] : actors) grant(*ctl, id);

    const auto now = Clock::now();
    if (now >= next_beat) {
      next_beat = now + std::chrono::milliseconds(cfg.bus.heartbeat_interval_ms);
      HeartbeatMsg hb;
      hb.role = PeerRole::kLearner;
      hb.seq = ++seq;
      hb.weights_version = announced_version;
      for (auto& [id, a] : actors)
        if (a.alive) send(*ctl, id, hb);
      for (const auto& id : peers.missing(now, std::chrono::milliseconds(cfg.bus.peer_timeout_ms)))
        lose(id, "missing: no message for " + std::to_string(cfg.bus.peer_timeout_ms) + " ms");
      sync_shared();
    }
  }
  // Orderly end: tell every actor, then keep the control socket open until
  // each one has answered with its own Shutdown (or kShutdownWaitMs passed).
  // An actor's DEALER uses ZMQ_IMMEDIATE, which drops messages it has not
  // read yet when the connection closes: a learner that exited right after
  // sending left some actors without the word, waiting for a signal.
  std::set<std::string> waiting;
  for (auto& [id, a] : actors)
    if (a.alive) {
      send(*ctl, id, ShutdownMsg{stop_reason});
      waiting.insert(id);
    }
  sync_shared();
  const auto until = Clock::now() + std::chrono::milliseconds(
                                        std::min(cfg.bus.peer_timeout_ms, kShutdownWaitMs));
  while (!waiting.empty() && Clock::now() < until) {
    auto in = ctl->recv(std::chrono::milliseconds(10));
    if (!in.ok()) break;
    if (!in->has_value() || (*in)->frames.empty()) continue;
    const auto& body = (*in)->frames.back();
    auto r = decode_message(body.data(), body.size(), cfg.bus.max_message_bytes);
    if (r.ok() && r->get<ShutdownMsg>()) waiting.erase((*in)->peer);
  }
  if (!waiting.empty()) {
    std::string names;
    for (const auto& id : waiting) names += (names.empty() ? "" : ", ") + id;
    log_warn(kLog, "no shutdown answer within " + std::to_string(kShutdownWaitMs) +
                       " ms from: " + names + " (older actors do not answer)");
  }
  ctl->raw().set(zmq::sockopt::linger, 1000);
}

Coordinator::Coordinator(const Config& cfg) : impl_(std::make_unique<Impl>(cfg)) {}

Coordinator::~Coordinator() { stop(); }

Status Coordinator::start() {
  std::promise<Status> p;
  auto f = p.get_future();
  impl_->thread = std::thread([this, pr = std::move(p)]() mutable { impl_->run(std::move(pr)); });
  Status s = f.get();
  if (!s.ok()) {
    impl_->thread.join();
    return s;
  }
  impl_->running = true;
  return s;
}

void Coordinator::stop(const std::string& reason) {
  if (!impl_->thread.joinable()) return;
  impl_->stop_reason = reason;
  impl_->stop_requested = true;
  impl_->thread.join();
  impl_->running = false;
  impl_->ready_cv.notify_all();
}

std::vector<TrajectoryGroup> Coordinator::take_groups(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->ready_cv.wait_for(lock, timeout, [&] { return !impl_->ready.empty(); });
  std::vector<TrajectoryGroup> out;
  while (!impl_->ready.empty() && out.size() < n) {
    out.push_back(std::move(impl_->ready.front()));
    impl_->ready.pop_front();
  }
  return out;
}

void Coordinator::complete(const TrajectoryGroup& g, GroupOutcome outcome) {
  Impl::Command c{Impl::Command::kComplete, g.actor_id, g.group_id, g.prompt_id, outcome};
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->commands.push_back(c);
}

void Coordinator::publish_weights(std::shared_ptr<const WeightsSnapshot> snapshot) {
  auto frames = encode_weights_reply(kSender, *snapshot);
  // Reproducible: enough for every version a granted prompt can still need
  // (the lag plus a margin for a slow fetch); otherwise the newest only.
  const size_t keep = impl_->cfg.learner.reproducible
                          ? static_cast<size_t>(reproducible_lag(impl_->cfg.learner)) + 3
                          : 1;
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->kept_frames[snapshot->version] = std::move(frames);
  while (impl_->kept_frames.size() > keep) impl_->kept_frames.erase(impl_->kept_frames.begin());
  impl_->weights = std::move(snapshot);
  impl_->commands.push_back(Impl::Command{Impl::Command::kPublish, "", 0, 0, GroupOutcome::kConsumed});
}

CoordinatorCounters Coordinator::counters() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->counters;
}

std::vector<std::string> Coordinator::alive_actors() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->alive_list;
}

std::map<std::string, ActorReport> Coordinator::actor_reports() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->reports;
}

}  // namespace gr1
