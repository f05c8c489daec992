#include "common/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace gr1 {
namespace {
void emit(const char* level, const std::string& c, const std::string& m) {
  static std::mutex mu;
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const int ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "%s.%03d %s [%s] %s\n", ts, ms, level, c.c_str(), m.c_str());
  std::fflush(stderr);
}
}  // namespace
void log_info(const std::string& c, const std::string& m) { emit("INFO", c, m); }
void log_warn(const std::string& c, const std::string& m) { emit("WARN", c, m); }
void log_error(const std::string& c, const std::string& m) { emit("ERROR", c, m); }
}  // namespace gr1
