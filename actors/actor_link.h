// The actor's bus thread: the only owner of the actor's three sockets.
//
//   learner --WorkGrant--> prompt queue --> next_prompt()      (rollout thread)
//   send_group() --> outbox --> [PUSH trajectories] --> learner
//   learner --WeightsAvailable--> [weights DEALER] request -> header + buckets
//        -> checksum + version verified -> take_new_weights()   (between groups)
//   heartbeats both ways on the control DEALER; a learner silent for
//   bus.peer_timeout_ms is reported; after 3x that the link gives up.
//
// Weights are fetched in the background while the rollout thread works, and
// handed over only after the checksum and version match the header.
// Public methods are thread-safe; sockets never leave the bus thread.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/options.h"
#include "common/status.h"
#include "common/trajectory.h"
#include "common/weights.h"

namespace gr1 {

class ActorLink {
 public:
  ActorLink(const Config& cfg, std::string actor_id);
  ~ActorLink();
  ActorLink(const ActorLink&) = delete;
  ActorLink& operator=(const ActorLink&) = delete;

  // Connects and registers; fails (naming the endpoint) if the learner does
  // not acknowledge within bus.peer_timeout_ms. The wait also ends, with an
  // error saying so, as soon as *interrupt turns true (a flag a signal
  // handler sets: SIGTERM while the learner is not up yet must not wait out
  // the whole registration timeout).
  Status start(const std::atomic<bool>* interrupt = nullptr);
  // Tells the learner this actor leaves (unless it asked us to), joins.
  // Leaving on its own, the link first hands the learner every queued group
  // and then a Shutdown, all within kExitFlushMs (or bus.send_timeout_ms if
  // shorter) together: with the learner gone, the sends cannot wait one
  // send timeout each and outlast the launcher's grace period. A Shutdown
  // from the learner already waiting on the control socket counts as
  // received (no flush then).
  void stop();
  static constexpr int kExitFlushMs = 3000;

  // A granted prompt: its id and, in reproducible runs (learner.reproducible),
  // the weights version it must be rolled out with.
  struct Grant {
    uint64_t prompt_id = 0;
    std::optional<uint64_t> weights_version;
  };
  // The next granted prompt, or nullopt after `timeout` / when closed.
  std::optional<Grant> next_prompt(std::chrono::milliseconds timeout);
  // Queues a group for sending; false when the link is closed.
  bool send_group(TrajectoryGroup group);
  // Every verified snapshot fetched since the last call, oldest first
  // (usually one; the newest is last).
  std::vector<std::shared_ptr<const WeightsSnapshot>> take_new_weights();
  // Asks for exactly version `v` (reproducible runs): fetched even when newer
  // ones were announced, as long as the learner still keeps it. nullopt: the
  // newest announced, as always.
  void want_weights(std::optional<uint64_t> v);
  // True once the learner answered a request for exactly `v` with another
  // version (it no longer keeps `v`).
  bool weights_unavailable(uint64_t v) const;
  // Latest rollout counters to report to the learner (sent with heartbeats).
  void report(std::map<std::string, double> values);

  bool closed() const;               // shutdown received, learner lost, or stop()
  std::string close_reason() const;  // why
  bool learner_lost() const;
  // Groups accepted by send_group() that never reached the transport: still
  // queued when the learner shut the link down or was lost, or not taken
  // within the exit flush. Final after stop(); the actor logs it.
  int undelivered_groups() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gr1
