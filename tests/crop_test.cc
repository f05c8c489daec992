// Crop mapping and pixel preparation (common/crop.h).
#include "common/crop.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

namespace gr1 {
namespace {

constexpr double kAspect = 200.0;

void expect_box(const Box& got, double x1, double y1, double x2, double y2) {
  EXPECT_NEAR(got.x1, x1, 1e-3);
  EXPECT_NEAR(got.y1, y1, 1e-3);
  EXPECT_NEAR(got.x2, x2, 1e-3);
  EXPECT_NEAR(got.y2, y2, 1e-3);
}

TEST(ShownBoxToCrop, ScalesShownFrameToOriginalPixels) {
  auto r = shown_box_to_crop(Box{16, 16, 32, 48}, 64, 64, 256, 256, 28, kAspect);
  ASSERT_TRUE(r.ok()) << r.error();
  expect_box(*r, 64, 64, 128, 192);
}

TEST(ShownBoxToCrop, ScalesEachAxisByItsOwnRatio) {
  // 500x333 original shown at 64x64: x * 500/64, y * 333/64.
  auto r = shown_box_to_crop(Box{10, 20, 30, 40}, 64, 64, 500, 333, 28, kAspect);
  ASSERT_TRUE(r.ok()) << r.error();
  expect_box(*r, 78.125, 104.0625, 234.375, 208.125);
}

TEST(ShownBoxToCrop, ClampsToTheImage) {
  auto r = shown_box_to_crop(Box{-10, -5, 70, 80}, 64, 64, 256, 256, 28, kAspect);
  ASSERT_TRUE(r.ok()) << r.error();
  expect_box(*r, 0, 0, 256, 256);
}

TEST(ShownBoxToCrop, WidensShortSideSymmetricallyAboutItsCentre) {
  // Original [120,120,124,160]: width 4 -> 28 about x = 122; height 40 kept.
  auto r = shown_box_to_crop(Box{30, 30, 31, 40}, 64, 64, 256, 256, 28, kAspect);
  ASSERT_TRUE(r.ok()) << r.error();
  expect_box(*r, 108, 120, 136, 160);
}

TEST(ShownBoxToCrop, WideningAtLeftAndTopBordersShiftsInside) {
  // Original [0,0,4,8] -> centred would be [-12,16] x [-10,18]; shifted to start at 0.
  auto r = shown_box_to_crop(Box{0, 0, 1, 2}, 64, 64, 256, 256, 28, kAspect);
  ASSERT_TRUE(r.ok()) << r.error();
  expect_box(*r, 0, 0, 28, 28);
}

TEST(ShownBoxToCrop, WideningAtRightAndBottomBordersShiftsInside) {
  // Original [252,248,256,256] -> centred [240,268] x [238,266]; shifted to end at 256.
  auto r = shown_box_to_crop(Box{63, 62, 64, 64}, 64, 64, 256, 256, 28, kAspect);
  ASSERT_TRUE(r.ok()) << r.error();
  expect_box(*r, 228, 228, 256, 256);
}

TEST(ShownBoxToCrop, ImageSideBelowMinimumUsesFullExtent) {
  // Width 20 < 28: x becomes [0, 20]; y (15.625..78.125) is long enough.
  auto r = shown_box_to_crop(Box{10, 10, 20, 50}, 64, 64, 20, 100, 28, kAspect);
  ASSERT_TRUE(r.ok()) << r.error();
  expect_box(*r, 0, 15.625, 20, 78.125);
}

TEST(ShownBoxToCrop, RejectsDegenerateBoxes) {
  for (const Box& b : {Box{10, 10, 10, 20}, Box{10, 10, 20, 10}, Box{20, 10, 10, 20},
                       Box{70, 70, 80, 80} /* wholly outside: clamps to a point */,
                       Box{-9, 5, -1, 9} /* wholly left of the image */}) {
    auto r = shown_box_to_crop(b, 64, 64, 256, 256, 28, kAspect);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("degenerate"), std::string::npos) << r.error();
  }
}

TEST(ShownBoxToCrop, RejectsNonFiniteCoordinates) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (const Box& b : {Box{nan, 0, 10, 10}, Box{0, 0, inf, 10}, Box{0, -inf, 10, 10}}) {
    auto r = shown_box_to_crop(b, 64, 64, 256, 256, 28, kAspect);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("non-finite"), std::string::npos) << r.error();
  }
}

TEST(ShownBoxToCrop, RejectsAspectRatioAtOrAboveTheLimit) {
  // Shown frame == original frame, so no scaling: 8000x40 is exactly 200.
  auto at = shown_box_to_crop(Box{0, 0, 8000, 40}, 10000, 40, 10000, 40, 28, kAspect);
  ASSERT_FALSE(at.ok());
  EXPECT_NE(at.error().find("aspect"), std::string::npos) << at.error();
  auto below = shown_box_to_crop(Box{0, 0, 7960, 40}, 10000, 40, 10000, 40, 28, kAspect);
  EXPECT_TRUE(below.ok());
}

TEST(ShownBoxToCrop, AspectIsJudgedAfterWidening) {
  // 1 x 250 original pixels would be aspect 250; widened to 28 x 250 it is ~8.9.
  auto r = shown_box_to_crop(Box{100, 3, 101, 253}, 256, 256, 256, 256, 28, kAspect);
  ASSERT_TRUE(r.ok()) << r.error();
  expect_box(*r, 86.5, 3, 114.5, 253);
  // Without widening the same box is rejected.
  EXPECT_FALSE(shown_box_to_crop(Box{100, 3, 101, 253}, 256, 256, 256, 256, 0, kAspect).ok());
}

TEST(ShownBoxToCrop, RejectsBadFrameArguments) {
  EXPECT_FALSE(shown_box_to_crop(Box{0, 0, 10, 10}, 0, 64, 256, 256, 28, kAspect).ok());
  EXPECT_FALSE(shown_box_to_crop(Box{0, 0, 10, 10}, 64, 64, 256, -1, 28, kAspect).ok());
  EXPECT_FALSE(shown_box_to_crop(Box{0, 0, 10, 10}, 64, 64, 256, 256, -1, kAspect).ok());
}

cv::Mat pattern_image(int w, int h) {
  cv::Mat img(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      img.at<cv::Vec3b>(y, x) = cv::Vec3b((x * 7 + y * 3) % 256, (x * 13) % 256, (y * 11) % 256);
  return img;
}

TEST(CropAndResize, RoundsOutwardFloorStartCeilEnd) {
  const cv::Mat img = pattern_image(100, 100);
  // floor(10.5)=10, floor(20.2)=20, ceil(30.1)=31, ceil(40.0)=40 -> 21 x 20.
  const cv::Mat out = crop_and_resize(img, Box{10.5f, 20.2f, 30.1f, 40.0f}, 21, 20);
  ASSERT_EQ(out.cols, 21);
  ASSERT_EQ(out.rows, 20);
  EXPECT_EQ(cv::norm(out, img(cv::Rect(10, 20, 21, 20)), cv::NORM_INF), 0.0);
}

TEST(CropAndResize, ShrinkingAveragesAreas) {
  // Columns repeat 0,0,0,200: a 4x shrink by area gives 50 everywhere
  // (bilinear sampling would read the zeros between and give 0).
  cv::Mat img(8, 8, CV_8UC3);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) img.at<cv::Vec3b>(y, x) = cv::Vec3b::all(x % 4 == 3 ? 200 : 0);
  const cv::Mat out = crop_and_resize(img, Box{0, 0, 8, 8}, 2, 2);
  ASSERT_EQ(out.size(), cv::Size(2, 2));
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x) EXPECT_EQ(out.at<cv::Vec3b>(y, x)[0], 50);
}

TEST(CropAndResize, EnlargingInterpolatesLinearly) {
  // [0 100] doubled: bilinear gives 0, 25, 75, 100 (nearest/area would repeat 0, 0).
  cv::Mat img(2, 2, CV_8UC3);
  img.at<cv::Vec3b>(0, 0) = img.at<cv::Vec3b>(1, 0) = cv::Vec3b::all(0);
  img.at<cv::Vec3b>(0, 1) = img.at<cv::Vec3b>(1, 1) = cv::Vec3b::all(100);
  const cv::Mat out = crop_and_resize(img, Box{0, 0, 2, 2}, 4, 4);
  ASSERT_EQ(out.size(), cv::Size(4, 4));
  EXPECT_EQ(out.at<cv::Vec3b>(0, 0)[0], 0);
  EXPECT_EQ(out.at<cv::Vec3b>(0, 1)[0], 25);
  EXPECT_EQ(out.at<cv::Vec3b>(0, 2)[0], 75);
  EXPECT_EQ(out.at<cv::Vec3b>(0, 3)[0], 100);
}

TEST(CropAndResize, EmptyRegionGivesEmptyMat) {
  const cv::Mat img = pattern_image(10, 10);
  EXPECT_TRUE(crop_and_resize(img, Box{20, 20, 30, 30}, 8, 8).empty());
  EXPECT_TRUE(crop_and_resize(img, Box{0, 0, 5, 5}, 0, 8).empty());
  EXPECT_TRUE(crop_and_resize(cv::Mat(), Box{0, 0, 5, 5}, 8, 8).empty());
}

TEST(CropAndResize, IsDeterministic) {
  const cv::Mat img = pattern_image(256, 256);
  const Box b{13.7f, 40.2f, 101.9f, 77.1f};
  EXPECT_EQ(cv::norm(crop_and_resize(img, b, 64, 64), crop_and_resize(img, b, 64, 64),
                     cv::NORM_INF),
            0.0);
}

TEST(ResizeForPolicy, MakesASquareOfTheGivenSide) {
  const cv::Mat out = resize_for_policy(pattern_image(300, 100), 64);
  EXPECT_EQ(out.size(), cv::Size(64, 64));
  EXPECT_EQ(out.type(), CV_8UC3);
  const cv::Mat flat(256, 256, CV_8UC3, cv::Scalar(10, 20, 30));
  EXPECT_EQ(cv::norm(resize_for_policy(flat, 64), cv::Mat(64, 64, CV_8UC3, cv::Scalar(10, 20, 30)),
                     cv::NORM_INF),
            0.0);
}

TEST(ToChwRgb, WritesPlanarRgbInUnitRange) {
  cv::Mat img(1, 2, CV_8UC3);
  img.at<cv::Vec3b>(0, 0) = cv::Vec3b(255, 0, 51);  // B, G, R
  img.at<cv::Vec3b>(0, 1) = cv::Vec3b(0, 102, 255);
  auto r = to_chw_rgb(img);
  ASSERT_TRUE(r.ok()) << r.error();
  const std::vector<float>& v = *r;
  ASSERT_EQ(v.size(), 6u);
  // R plane, G plane, B plane; pixel order within a plane.
  EXPECT_FLOAT_EQ(v[0], 51 / 255.f);
  EXPECT_FLOAT_EQ(v[1], 1.f);
  EXPECT_FLOAT_EQ(v[2], 0.f);
  EXPECT_FLOAT_EQ(v[3], 102 / 255.f);
  EXPECT_FLOAT_EQ(v[4], 1.f);
  EXPECT_FLOAT_EQ(v[5], 0.f);
}

TEST(ToChwRgb, HandlesNonContinuousViews) {
  const cv::Mat img = pattern_image(10, 10);
  const cv::Mat roi = img(cv::Rect(2, 3, 4, 5));
  ASSERT_FALSE(roi.isContinuous());
  auto a = to_chw_rgb(roi);
  auto b = to_chw_rgb(roi.clone());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_FLOAT_EQ((*a)[0], roi.at<cv::Vec3b>(0, 0)[2] / 255.f);
}

TEST(ToChwRgb, RejectsOtherPixelTypes) {
  EXPECT_FALSE(to_chw_rgb(cv::Mat(4, 4, CV_8UC1, cv::Scalar(0))).ok());
  EXPECT_FALSE(to_chw_rgb(cv::Mat(4, 4, CV_32FC3, cv::Scalar(0))).ok());
  EXPECT_FALSE(to_chw_rgb(cv::Mat()).ok());
}

}  // namespace
}  // namespace gr1
