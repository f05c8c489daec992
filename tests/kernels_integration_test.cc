// GR1_KERNELS (common/threads.h) through build/bin/gr1: `gr1 kernels` names
// the kernels in force; portable mode starts gr1 again with the portable
// kernels' variables (whatever they were set to) and makes a short
// pretraining's checkpoint the same whatever native selection would pick
// (another OpenBLAS kernel, another ATen vector width, another oneDNN ISA),
// where in native mode those choices change it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "tests/test_util.h"

namespace gr1 {
namespace {

namespace fs = std::filesystem;
using test_util::CliRun;
using test_util::TempDir;
using test_util::read_text;

// What another CPU's native selection could be: settings that change the
// floats of a native run on a CPU with AVX2 (the variables OpenBLAS, ATen and
// oneDNN read).
constexpr const char* kOtherNativeChoice =
    "OPENBLAS_CORETYPE=Sandybridge ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41";

bool cpu_has_avx2_fma() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

CliRun gr1_with_env(const std::string& env, const std::string& args, const TempDir& tmp) {
  const std::string err = (tmp.dir / "stderr.txt").string();
  CliRun r = test_util::run_shell("env -u GR1_KERNELS -u OPENBLAS_CORETYPE -u ATEN_CPU_CAPABILITY " + env + " " +
                                  std::string(GR1_BINARY_DIR) + "/bin/gr1 " + args + " 2>" + err);
  r.err = read_text(err);
  return r;
}

nlohmann::json kernels(const std::string& env, const TempDir& tmp) {
  CliRun r = gr1_with_env(env, "kernels", tmp);
  EXPECT_EQ(r.rc, 0) << env << ": " << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_TRUE(j.is_object()) << env << ": " << r.out;
  return j.is_object() ? j : nlohmann::json::object();
}

TEST(Kernels, TheCommandNamesTheKernelsInForceAndAnUnknownModeIsRefused) {
  TempDir tmp("gr1_kernels");
  const auto native = kernels("", tmp);
  EXPECT_EQ(native["mode"], "native");
  EXPECT_EQ(native["onednn_convolutions"], true);
  EXPECT_TRUE(native["openblas_core"].is_string());

  CliRun bad = gr1_with_env("GR1_KERNELS=fastest", "kernels", tmp);
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("GR1_KERNELS: unknown mode \"fastest\" (known: native, portable)"), std::string::npos)
      << bad.err;
  EXPECT_EQ(bad.out, "");

  if (!cpu_has_avx2_fma()) {
    CliRun refused = gr1_with_env("GR1_KERNELS=portable", "kernels", tmp);
    EXPECT_EQ(refused.rc, 2);
    EXPECT_NE(refused.err.find("needs a CPU with AVX2 and FMA"), std::string::npos) << refused.err;
    GTEST_SKIP() << "this CPU lacks AVX2 or FMA: portable mode is refused (checked)";
  }
  for (const std::string env : {std::string("GR1_KERNELS=portable"),
                                std::string("GR1_KERNELS=portable ") + kOtherNativeChoice}) {
    const auto p = kernels(env, tmp);
    EXPECT_EQ(p["mode"], "portable") << env;
    EXPECT_EQ(p["openblas_core"], "Haswell") << env;
    EXPECT_EQ(p["aten_cpu_capability"], "AVX2") << env;
    EXPECT_EQ(p["onednn_convolutions"], false) << env;
  }
}

// A short pretraining (both stages, the CNN front end) -> its checkpoint's bytes.
std::string pretrained_bytes(const std::string& env, const std::string& name, const TempDir& tmp) {
  const fs::path out = tmp.dir / (name + ".safetensors");
  CliRun r = gr1_with_env(env,
                          "pretrain --config " + std::string(GR1_SOURCE_DIR) + "/configs/tests.yaml --run-dir " +
                              (tmp.dir / name).string() + " --out " + out.string() +
                              " --set model.conv_stem=true --set pretrain.steps=6 --set pretrain.vision_steps=4"
                              " --set pretrain.report_items=1",
                          tmp);
  EXPECT_EQ(r.rc, 0) << env << ": " << r.out << r.err;
  return fs::exists(out) ? read_text(out) : std::string();
}

TEST(Kernels, PortableModeMakesTheSameCheckpointWhateverNativeSelectionWouldPick) {
  if (!cpu_has_avx2_fma()) GTEST_SKIP() << "portable mode needs AVX2 and FMA";
  TempDir tmp("gr1_kernels_pretrain");
  const std::string portable = pretrained_bytes("GR1_KERNELS=portable", "portable", tmp);
  const std::string portable_other =
      pretrained_bytes(std::string("GR1_KERNELS=portable ") + kOtherNativeChoice, "portable_other", tmp);
  ASSERT_FALSE(portable.empty());
  EXPECT_TRUE(portable == portable_other) << "portable mode's floats depend on the native selection";
  // The same two settings in native mode: other floats (what portable mode
  // takes out of a run).
  const std::string native = pretrained_bytes("", "native", tmp);
  const std::string native_other = pretrained_bytes(kOtherNativeChoice, "native_other", tmp);
  ASSERT_FALSE(native.empty());
  EXPECT_FALSE(native == native_other) << "the native settings changed nothing: the check above proves nothing";
}

}  // namespace
}  // namespace gr1
