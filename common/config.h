// Configuration: YAML read in ONE place into the typed Config (options.h),
// validated once. An unknown key or a bad value is an error naming the key
// ("learner.lr: must be > 0, got -1"). The effective configuration is written
// next to every run as config.yaml.
#pragma once

#include <string>
#include <vector>

#include "common/options.h"
#include "common/status.h"

namespace gr1 {

// Parses a YAML document. Keys not present keep their defaults.
Result<Config> parse_config_yaml(const std::string& yaml_text);

// Loads a YAML file, then applies "section.key=value" overrides (same rules).
Result<Config> load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Applies one "section.key=value" override to cfg.
Status apply_override(Config& cfg, const std::string& assignment);

// Checks ranges and cross-field rules; errors name the key.
Status validate_config(const Config& cfg);

// The effective configuration as YAML (every field, including endpoints).
std::string config_to_yaml(const Config& cfg);

// "section.key=value" for every field of the named sections, in the order of
// the field table (the value as config.yaml writes it).
std::vector<std::string> config_values(const Config& cfg, const std::vector<std::string>& sections);

// What an actor and the learner must agree on, or the learner would score an
// actor's trajectories against other questions or other sampling: every
// task.* and rollout.* value. Sent with Register; the learner refuses an
// actor whose values differ and names the keys.
std::vector<std::string> rollout_contract(const Config& cfg);

// The keys on which two contracts differ, as "key: actor V, learner W" (a key
// one side lacks shows as "(none)"); empty when they agree.
std::vector<std::string> contract_differences(const std::vector<std::string>& actor,
                                              const std::vector<std::string>& learner);

}  // namespace gr1
