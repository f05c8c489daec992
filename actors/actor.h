// The rollout actor process (`gr1 actor --id NAME`).
#pragma once

#include <string>

#include "common/options.h"

namespace gr1 {

// Registers with the learner, receives the current weights, then rolls out
// the prompts it is granted until the learner says Shutdown (exit 0), the
// learner goes missing (exit 3) or SIGINT/SIGTERM (exit 0 after telling the
// learner it leaves). Two threads: the rollout thread (this one) and the
// ActorLink bus thread that owns every socket.
int run_actor(const Config& cfg, const std::string& actor_id);

}  // namespace gr1
