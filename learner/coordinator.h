// The learner's bus thread: the only owner of the learner's three sockets.
//
//   actors --PUSH groups--> [trajectory PULL] --verify--> ready queue --> take_groups()
//   actors <-ROUTER control-> register / heartbeat / WorkGrant / Ack / Shutdown
//   actors <-ROUTER weights-> WeightsRequest -> header + buckets (latest snapshot)
//
// Admission control: an actor rolls out only prompts it was granted, and at
// most learner.max_inflight_groups are outstanding per actor (granted and not
// yet taken by the trainer). Nothing relies on ZeroMQ high-water marks, so
// nothing is dropped silently; every rejected message is counted and logged.
// A missing actor (no heartbeat for bus.peer_timeout_ms) is reported by name
// and its outstanding prompts are granted to others (no prompt is lost).
//
// Thread safety: all public methods may be called from any thread (the
// trainer's); sockets are used only by the internal bus thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/options.h"
#include "common/status.h"
#include "common/trajectory.h"
#include "common/weights.h"

namespace gr1 {

enum class GroupOutcome { kConsumed, kDiscardedStale };

struct CoordinatorCounters {
  uint64_t rejected_messages = 0;   // failed verification / protocol checks (cumulative)
  uint64_t groups_received = 0;
  uint64_t trajectories_received = 0;
  uint64_t policy_tokens_received = 0;
  uint64_t discarded_stale = 0;
  uint64_t weight_requests_served = 0;
  uint64_t actors_registered = 0;   // ever
  uint64_t actors_lost = 0;         // reported missing
  uint64_t actors_refused = 0;      // registrations refused (task/rollout settings differ)
  int actors_alive = 0;
  uint64_t prompts_granted = 0;
  uint64_t prompts_requeued = 0;
};

// Rollout counters actors report in Metrics messages (latest per actor).
struct ActorReport {
  std::map<std::string, double> values;
};

class Coordinator {
 public:
  explicit Coordinator(const Config& cfg);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Binds the three endpoints (errors name the endpoint) and starts the thread.
  Status start();
  // Sends Shutdown to every actor and waits (at most 2 s, or
  // bus.peer_timeout_ms if shorter) until each has answered with its own
  // Shutdown, so none misses it when the learner exits; stops the thread.
  // Idempotent.
  void stop(const std::string& reason = "training finished");

  // Blocks up to `timeout` for at least one verified group; returns up to `n`.
  std::vector<TrajectoryGroup> take_groups(size_t n, std::chrono::milliseconds timeout);

  // Tells the group's actor how its group ended; frees its slot and grants
  // it a new prompt (stale groups' prompts are granted again, not skipped).
  void complete(const TrajectoryGroup& g, GroupOutcome outcome);

  // Makes `snapshot` the weights served to actors and announces its version.
  void publish_weights(std::shared_ptr<const WeightsSnapshot> snapshot);

  CoordinatorCounters counters() const;
  std::vector<std::string> alive_actors() const;
  std::map<std::string, ActorReport> actor_reports() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gr1
