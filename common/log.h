// Minimal line logger to stderr: "<time> <LEVEL> [component] message".
// Thread-safe (one write per line). Kept tiny on purpose.
#pragma once

#include <string>

namespace gr1 {
void log_info(const std::string& component, const std::string& message);
void log_warn(const std::string& component, const std::string& message);
void log_error(const std::string& component, const std::string& message);
}  // namespace gr1
