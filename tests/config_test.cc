#include "common/config.h"

#include <gtest/gtest.h>

#include <fstream>

namespace gr1 {
namespace {

std::string error_of(const std::string& yaml) {
  auto r = parse_config_yaml(yaml);
  return r.ok() ? std::string("<accepted>") : r.error();
}

TEST(ConfigTest, ShippedConfigsLoadAndValidate) {
  for (const char* name : {"demo.yaml", "tests.yaml"}) {
    auto r = load_config(std::string(GR1_SOURCE_DIR) + "/configs/" + name);
    ASSERT_TRUE(r.ok()) << name << ": " << r.error();
  }
  auto demo = load_config(std::string(GR1_SOURCE_DIR) + "/configs/demo.yaml");
  EXPECT_EQ(demo->rollout.g1, 2);
  EXPECT_EQ(demo->rollout.g2, 4);
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  EXPECT_EQ(error_of("learner:\n  lrr: 0.1\n"), "learner.lrr: unknown key");
  EXPECT_NE(error_of("bogus:\n  x: 1\n").find("bogus.x"), std::string::npos);
}

TEST(ConfigTest, BadValueIsNamed) {
  EXPECT_NE(error_of("learner:\n  lr: -1\n").find("learner.lr"), std::string::npos);
  EXPECT_NE(error_of("learner:\n  lr: fast\n").find("learner.lr"), std::string::npos);
  EXPECT_NE(error_of("model:\n  n_heads: 3\n").find("model.n_heads"), std::string::npos);
  EXPECT_NE(error_of("rollout:\n  top_p: 1.5\n").find("rollout.top_p"), std::string::npos);
  EXPECT_NE(error_of("rollout:\n  location_temperature: -0.5\n").find("rollout.location_temperature"),
            std::string::npos);
  EXPECT_NE(error_of("bus:\n  control_endpoint: localhost:5\n").find("bus.control_endpoint"),
            std::string::npos);
  EXPECT_NE(error_of("learner:\n  format_weight: -0.5\n").find("learner.format_weight: must be"),
            std::string::npos);
  EXPECT_EQ(error_of("learner:\n  format_weight: 0\n"), "<accepted>");
  EXPECT_NE(error_of("learner:\n  advantage: ppo\n").find("learner.advantage"), std::string::npos);
  EXPECT_NE(error_of("model:\n  d_model: [1, 2]\n").find("model.d_model"), std::string::npos);
  EXPECT_NE(error_of("pretrain:\n  processes: 0\n").find("pretrain.processes"), std::string::npos);
  EXPECT_NE(error_of("pretrain:\n  tight_crop_share: 1.5\n").find("pretrain.tight_crop_share: must be in [0, 1]"),
            std::string::npos);
  EXPECT_EQ(error_of("pretrain:\n  tight_crop_share: 0.5\n"), "<accepted>");
  EXPECT_NE(error_of("pretrain:\n  tight_box_text: true\n").find("pretrain.tight_box_text"), std::string::npos);
  EXPECT_EQ(error_of("pretrain:\n  tight_crop_share: 0.5\n  tight_box_text: true\n"), "<accepted>");
  EXPECT_NE(error_of("pretrain:\n  locate_same_shape_share: 2\n")
                .find("pretrain.locate_same_shape_share: must be in [0, 1]"),
            std::string::npos);
  EXPECT_EQ(error_of("pretrain:\n  locate_same_shape_share: 0.5\n"), "<accepted>");
  EXPECT_NE(error_of("pretrain:\n  crop_jitter_share: -1\n").find("pretrain.crop_jitter_share: must be in [0, 1]"),
            std::string::npos);
  EXPECT_NE(error_of("pretrain:\n  crop_jitter_cells: 40\n").find("pretrain.crop_jitter_cells: must be in [0, 32]"),
            std::string::npos);
  EXPECT_NE(error_of("pretrain:\n  crop_jitter_text: true\n").find("pretrain.crop_jitter_text"), std::string::npos);
  EXPECT_EQ(error_of("pretrain:\n  crop_jitter_share: 0.5\n  crop_jitter_text: true\n"), "<accepted>");
  EXPECT_NE(error_of("learner:\n  checkpoint_every: -1\n").find("learner.checkpoint_every: must be >= 0"),
            std::string::npos);
  EXPECT_EQ(error_of("learner:\n  checkpoint_every: 20\n"), "<accepted>");
  // Each rank takes whole scenes of a vision step: 8 images, half crops = 4 scenes.
  EXPECT_NE(error_of("pretrain:\n  processes: 5\n  vision_steps: 10\n  vision_batch: 8\n")
                .find("pretrain.processes: must be <= the scenes of a vision step (4"),
            std::string::npos);
  EXPECT_EQ(error_of("pretrain:\n  processes: 4\n  vision_steps: 10\n  vision_batch: 8\n"),
            "<accepted>");
  // Withholding the image context from answers needs an image context.
  EXPECT_NE(error_of("model:\n  answer_image_context: false\n")
                .find("model.answer_image_context: false needs model.image_context: true"),
            std::string::npos);
  EXPECT_EQ(error_of("model:\n  summary_token: true\n  image_context: true\n  answer_image_context: false\n"),
            "<accepted>");
}

TEST(ConfigTest, InvalidYamlIsReported) {
  EXPECT_NE(error_of("learner: [unclosed\n").find("invalid YAML"), std::string::npos);
}

TEST(ConfigTest, OverridesApplyAndAreValidated) {
  Config c;
  ASSERT_TRUE(apply_override(c, "learner.lr=0.5").ok());
  EXPECT_DOUBLE_EQ(c.learner.lr, 0.5);
  ASSERT_TRUE(apply_override(c, "bus.control_endpoint=ipc:///tmp/x").ok());
  EXPECT_EQ(c.bus.control_endpoint, "ipc:///tmp/x");
  EXPECT_EQ(apply_override(c, "learner.nope=1").message(), "learner.nope: unknown key");
  EXPECT_FALSE(apply_override(c, "learner.lr").ok());
}

TEST(ConfigTest, EffectiveYamlRoundTripsEveryField) {
  Config c;
  c.learner.lr = 0.125;
  c.bus.weights_endpoint = "ipc:///tmp/gr1-w";
  c.rollout.g2 = 3;
  c.learner.freeze_vision = true;
  const std::string y = config_to_yaml(c);
  EXPECT_NE(y.find("weights_endpoint: ipc:///tmp/gr1-w"), std::string::npos);
  auto back = parse_config_yaml(y);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_DOUBLE_EQ(back->learner.lr, 0.125);
  EXPECT_EQ(back->rollout.g2, 3);
  EXPECT_TRUE(back->learner.freeze_vision);
  EXPECT_EQ(config_to_yaml(*back), y);
}

// learner.reproducible: step s (1-based) trains on prompts (s-1)*G..s*G-1,
// rolled out one version behind the trainer (s-2), or with the trainer's own
// weights (s-1) when no staleness is allowed.
TEST(ConfigTest, ReproducibleVersionOfAPromptIsOneStepBehindItsStep) {
  LearnerOptions l;
  l.groups_per_step = 8;
  l.max_staleness = 4;
  EXPECT_EQ(reproducible_lag(l), 1u);
  for (uint64_t p : {0, 7, 8, 15}) EXPECT_EQ(reproducible_version(l, p), 0u) << p;  // steps 1, 2
  EXPECT_EQ(reproducible_version(l, 16), 1u);   // step 3: after step 1
  EXPECT_EQ(reproducible_version(l, 23), 1u);
  EXPECT_EQ(reproducible_version(l, 8 * 79), 78u);  // step 80
  l.max_staleness = 0;
  EXPECT_EQ(reproducible_lag(l), 0u);
  EXPECT_EQ(reproducible_version(l, 7), 0u);
  EXPECT_EQ(reproducible_version(l, 8), 1u);    // step 2: after step 1
  EXPECT_EQ(reproducible_version(l, 8 * 79), 79u);
}

}  // namespace
}  // namespace gr1
