// tg::vision's detection parts: VOC average precision and mAP (hand-computed cases and golden
// values from an independent numpy implementation, tests/golden/generate_detection.py), R-CNN
// box deltas against torchvision's BoxCoder (the same generator) with gradcheck and
// gradgradcheck, clip_boxes, and draw_boxes pixel by pixel.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include <tapegrad.hpp>

#include "golden_io.hpp"

using tg::Tensor;
namespace V = tg::vision;

namespace {

const std::map<std::string, Tensor>& golden_tensors() {
  static const auto m = golden::named_tensors(std::string(TAPEGRAD_GOLDEN_DIR) + "/detection.txt");
  return m;
}

const Tensor& g(const std::string& name) {
  const auto& m = golden_tensors();
  auto it = m.find(name);
  if (it == m.end()) throw std::runtime_error("no golden tensor " + name);
  return it->second;
}

Tensor rows(const std::vector<double>& v, int64_t cols = 4) {
  return tg::tensor(v, {int64_t(v.size()) / cols, cols}, tg::kFloat64);
}
Tensor labels(const std::vector<double>& v) { return tg::tensor(v, {int64_t(v.size())}, tg::kInt64); }
Tensor scores(const std::vector<double>& v) { return tg::tensor(v, {int64_t(v.size())}, tg::kFloat64); }

template <typename F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const tg::Error& e) {
    return e.what();
  }
  return "";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A golden AP case split into images: truth rows (image, x1, y1, x2, y2, label), detection rows
// (image, x1, y1, x2, y2, score, label).
void split_case(const std::string& name, std::vector<V::Detections>* det, std::vector<V::GroundTruth>* gt) {
  const std::vector<double> info = g(name + ".info").to_vector<double>();
  const int64_t images = int64_t(info[0]);
  const std::vector<double> t = g(name + ".truth").to_vector<double>(), d = g(name + ".det").to_vector<double>();
  det->assign(size_t(images), {});
  gt->assign(size_t(images), {});
  for (int64_t i = 0; i < images; ++i) {
    std::vector<double> tb, tl, db, ds, dl;
    for (size_t r = 0; r < t.size(); r += 6)
      if (int64_t(t[r]) == i) tb.insert(tb.end(), t.begin() + long(r) + 1, t.begin() + long(r) + 5), tl.push_back(t[r + 5]);
    for (size_t r = 0; r < d.size(); r += 7)
      if (int64_t(d[r]) == i)
        db.insert(db.end(), d.begin() + long(r) + 1, d.begin() + long(r) + 5), ds.push_back(d[r + 5]), dl.push_back(d[r + 6]);
    (*gt)[size_t(i)] = {tg::tensor(tb, {int64_t(tl.size()), 4}, tg::kFloat64), labels(tl)};
    (*det)[size_t(i)] = {tg::tensor(db, {int64_t(dl.size()), 4}, tg::kFloat64), scores(ds), labels(dl)};
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// average precision

TEST_CASE("average_precision: hand-computed cases") {
  const Tensor a = rows({0, 0, 10, 10}), ab = rows({0, 0, 10, 10, 20, 20, 30, 30});
  SUBCASE("one exact detection: AP 1") {
    CHECK(V::average_precision({{a, scores({0.3}), labels({0})}}, {{a, labels({0})}}, 0) == 1.0);
  }
  SUBCASE("a duplicate between two hits: recall 1/2, 1/2, 1 at precision 1, 1/2, 2/3 -> 1/2 + 1/2 * 2/3") {
    // the duplicate's precision 1/2 is raised to 2/3 (the best at a higher recall)
    const Tensor d = rows({0, 0, 10, 10, 0, 0, 10, 10, 20, 20, 30, 30});
    CHECK(V::average_precision({{d, scores({0.9, 0.8, 0.7}), labels({0, 0, 0})}}, {{ab, labels({0, 0})}}, 0) ==
          doctest::Approx(5.0 / 6.0));
  }
  SUBCASE("order by score, not by position: a false positive ranked first halves the precision") {
    const Tensor d = rows({0, 0, 10, 10, 40, 40, 50, 50});  // the hit first in the list, ranked second
    CHECK(V::average_precision({{d, scores({0.8, 0.9}), labels({0, 0})}}, {{a, labels({0})}}, 0) ==
          doctest::Approx(0.5));
    // ranked first: precision 1 at recall 1; the false positive after it costs nothing
    CHECK(V::average_precision({{d, scores({0.9, 0.8}), labels({0, 0})}}, {{a, labels({0})}}, 0) == 1.0);
  }
  SUBCASE("IoU exactly at the threshold matches; above it does not") {
    const Tensor half = rows({0, 0, 10, 5});  // 50 / 100
    CHECK(V::average_precision({{half, scores({1}), labels({0})}}, {{a, labels({0})}}, 0, 0.5) == 1.0);
    CHECK(V::average_precision({{half, scores({1}), labels({0})}}, {{a, labels({0})}}, 0, 0.51) == 0.0);
  }
  SUBCASE("VOC matching: the best-IoU box, already matched, makes a false positive") {
    // truth A = [0, 10]^2 and B = [2, 12] x [0, 10]. The second detection overlaps A by 95/105
    // and B by 85/115 = 0.74: its match is A, taken, so it is a false positive even though B is
    // free (COCO's matching would take B). Recall 1/2, 1/2; precision 1, 1/2 -> AP 1/2.
    const Tensor t = rows({0, 0, 10, 10, 2, 0, 12, 10}), d = rows({0, 0, 10, 10, 0.5, 0, 10.5, 10});
    CHECK(V::average_precision({{d, scores({0.9, 0.8}), labels({0, 0})}}, {{t, labels({0, 0})}}, 0) ==
          doctest::Approx(0.5));
  }
  SUBCASE("images are matched separately; other labels are ignored") {
    // image 0 has the truth; the same box in image 1 is a false positive, one of label 1 is not counted
    std::vector<V::Detections> d{{rows({0, 0, 10, 10}), scores({0.5}), labels({0})},
                                 {rows({0, 0, 10, 10, 0, 0, 10, 10}), scores({0.9, 0.95}), labels({0, 1})}};
    std::vector<V::GroundTruth> t{{a, labels({0})}, {tg::zeros({0, 4}, tg::kFloat64), labels({})}};
    CHECK(V::average_precision(d, t, 0) == doctest::Approx(0.5));
  }
  SUBCASE("no detection: 0; no ground truth: NaN") {
    std::vector<V::Detections> none{{tg::zeros({0, 4}), tg::zeros({0}), labels({})}};
    CHECK(V::average_precision(none, {{a, labels({0})}}, 0) == 0.0);
    CHECK(std::isnan(V::average_precision({{a, scores({1}), labels({0})}}, {{a, labels({0})}}, 1)));
  }
}

TEST_CASE("mean_average_precision: classes without ground truth are skipped") {
  // class 0: the duplicate case above (5/6); class 1: a detection, no truth (NaN, skipped);
  // class 2: truth, no detection (0). mAP = (5/6 + 0) / 2.
  const Tensor d = rows({0, 0, 10, 10, 0, 0, 10, 10, 20, 20, 30, 30, 40, 40, 50, 50});
  const Tensor t = rows({0, 0, 10, 10, 20, 20, 30, 30, 5, 40, 15, 60});
  const auto m = V::mean_average_precision({{d, scores({0.9, 0.8, 0.7, 0.99}), labels({0, 0, 0, 1})}},
                                           {{t, labels({0, 0, 2})}}, 3);
  REQUIRE(m.ap.size() == 3);
  CHECK(m.ap[0] == doctest::Approx(5.0 / 6.0));
  CHECK(std::isnan(m.ap[1]));
  CHECK(m.ap[2] == 0.0);
  CHECK(m.map == doctest::Approx(5.0 / 12.0));
  CHECK(m.num_truth == std::vector<int64_t>{2, 0, 1});
  CHECK(m.num_detections == std::vector<int64_t>{3, 1, 0});
  // float32 inputs give the same
  const auto m32 = V::mean_average_precision(
      {{d.to(tg::kFloat32), scores({0.9, 0.8, 0.7, 0.99}).to(tg::kFloat32), labels({0, 0, 0, 1})}},
      {{t.to(tg::kFloat32), labels({0, 0, 2})}}, 3);
  CHECK(m32.map == doctest::Approx(5.0 / 12.0));
}

TEST_CASE("mean_average_precision: golden values of an independent numpy implementation") {
  int checked = 0;
  for (int k = 0;; ++k) {
    const std::string name = "ap" + std::to_string(k);
    if (!golden_tensors().count(name + ".info")) break;
    INFO("case ", name);
    std::vector<V::Detections> det;
    std::vector<V::GroundTruth> gt;
    split_case(name, &det, &gt);
    const std::vector<double> info = g(name + ".info").to_vector<double>();
    const auto m = V::mean_average_precision(det, gt, int64_t(info[1]), info[2]);
    const std::vector<double> want = g(name + ".ap").to_vector<double>();
    REQUIRE(m.ap.size() == want.size());
    for (size_t c = 0; c < want.size(); ++c) {
      INFO("class ", c);
      if (std::isnan(want[c]))
        CHECK(std::isnan(m.ap[c]));
      else
        CHECK(m.ap[c] == doctest::Approx(want[c]).epsilon(1e-12));
      // the single-class function agrees
      const double one = V::average_precision(det, gt, int64_t(c), info[2]);
      CHECK((std::isnan(one) ? std::isnan(m.ap[c]) : one == m.ap[c]));
    }
    CHECK(m.map == doctest::Approx(g(name + ".map").item<double>()).epsilon(1e-12));
    ++checked;
  }
  CHECK(checked >= 9);
}

TEST_CASE("average_precision: bad arguments throw tg::Error naming what was expected") {
  const Tensor a = rows({0, 0, 10, 10});
  std::vector<V::GroundTruth> t{{a, labels({0})}};
  auto msg = error_of([&] { V::average_precision({}, t, 0); });
  CHECK(contains(msg, "same images"));
  CHECK(contains(msg, "got 0 and 1"));
  msg = error_of([&] { V::average_precision({{rows({0, 0, 1, 1, 2}, 5), scores({1}), labels({0})}}, t, 0); });
  CHECK(contains(msg, "[N, 4]"));
  CHECK(contains(msg, "[1, 5]"));
  msg = error_of([&] { V::average_precision({{a, scores({1, 2}), labels({0})}}, t, 0); });
  CHECK(contains(msg, "scores of image 0"));
  msg = error_of([&] { V::average_precision({{a, scores({1}), scores({0})}}, t, 0); });
  CHECK(contains(msg, "int64 [1]"));
  msg = error_of([&] { V::average_precision({{a, scores({NAN}), labels({0})}}, t, 0); });
  CHECK(contains(msg, "NaN"));
  msg = error_of([&] { V::average_precision({{a, scores({1}), labels({0})}}, t, 0, 0.0); });
  CHECK(contains(msg, "(0, 1]"));
  msg = error_of([&] { V::average_precision({{rows({0, 0, INFINITY, 1}), scores({1}), labels({0})}}, t, 0); });
  CHECK(contains(msg, "non-finite"));
  msg = error_of([&] { V::mean_average_precision({{a, scores({1}), labels({3})}}, t, 3); });
  CHECK(contains(msg, "detected label 3"));
  CHECK(contains(msg, "[0, 3)"));
  msg = error_of([&] { V::mean_average_precision({{a, scores({1}), labels({0})}}, t, 0); });
  CHECK(contains(msg, "positive number of classes"));
  CHECK_THROWS_AS(V::mean_average_precision({{a, scores({1}), labels({0})}}, {{a, labels({-1})}}, 2), tg::Error);
}

// ---------------------------------------------------------------------------------------------
// box coding

TEST_CASE("encode_boxes / decode_boxes: hand-computed deltas and the round trip") {
  const Tensor ref = rows({0, 0, 10, 20, 0, 0, 10, 20});
  const Tensor b = rows({5, 0, 15, 20,    // moved right by half the width
                         -5, 5, 15, 15});  // twice as wide, half as high, same centre
  const std::vector<double> d = V::encode_boxes(b, ref).to_vector<double>();
  const std::vector<double> want{0.5, 0, 0, 0, 0, 0, std::log(2.0), std::log(0.5)};
  for (size_t i = 0; i < want.size(); ++i) CHECK(d[i] == doctest::Approx(want[i]));
  // weights scale each column
  const std::vector<double> d10 = V::encode_boxes(b, ref, V::BoxCoderOptions(10, 10, 5, 5)).to_vector<double>();
  CHECK(d10[0] == doctest::Approx(5.0));
  CHECK(d10[6] == doctest::Approx(5 * std::log(2.0)));
  for (const V::BoxCoderOptions& o : {V::BoxCoderOptions(), V::BoxCoderOptions(10, 10, 5, 5)}) {
    const Tensor back = V::decode_boxes(V::encode_boxes(b, ref, o), ref, o);
    CHECK(golden::mismatch(back, b, 1e-12, 1e-12) <= 1.0);
  }
  CHECK(V::encode_boxes(b.to(tg::kFloat32), ref.to(tg::kFloat32)).dtype() == tg::kFloat32);
}

TEST_CASE("encode_boxes / decode_boxes / clip_boxes: torchvision's BoxCoder and clip_boxes_to_image") {
  const Tensor& p = g("coder.proposals");
  const Tensor& b = g("coder.boxes");
  const Tensor& codes = g("coder.codes");
  const std::vector<std::pair<std::string, V::BoxCoderOptions>> coders{{"w1", V::BoxCoderOptions()},
                                                                       {"w10", V::BoxCoderOptions(10, 10, 5, 5)}};
  for (const auto& coder : coders) {
    const std::string& name = coder.first;  // not a structured binding: INFO captures it in a lambda
    const V::BoxCoderOptions& o = coder.second;
    INFO("weights ", name);
    const Tensor e = V::encode_boxes(b, p, o), d = V::decode_boxes(codes, p, o);
    REQUIRE(e.shape() == g("coder.encoded_" + name).shape());
    CHECK(golden::mismatch(e, g("coder.encoded_" + name), 1e-12, 1e-10) <= 1.0);
    CHECK(golden::mismatch(d, g("coder.decoded_" + name), 1e-10, 1e-10) <= 1.0);  // includes clipped dw, dh
    CHECK(golden::mismatch(V::encode_boxes(b.to(tg::kFloat32), p.to(tg::kFloat32), o), g("coder.encoded_" + name),
                           1e-4, 1e-4) <= 1.0);
  }
  CHECK(golden::mismatch(V::clip_boxes(b * 1.5 - 10, 40, 30), g("coder.clipped"), 1e-12, 1e-12) <= 1.0);
}

TEST_CASE("encode_boxes / decode_boxes: gradcheck and gradgradcheck through a preceding op") {
  const Tensor p = g("coder.proposals").narrow(0, 2, 4).contiguous();
  const Tensor b = g("coder.boxes").narrow(0, 2, 4).contiguous();
  const Tensor codes = g("coder.codes").narrow(0, 2, 4).contiguous() * 0.25;  // inside the clip
  const V::BoxCoderOptions o(10, 10, 5, 5);
  tg::GradcheckFn enc = [o](const std::vector<Tensor>& in) { return V::encode_boxes(tg::exp(tg::log(in[0])), in[1], o); };
  tg::GradcheckFn dec = [o](const std::vector<Tensor>& in) { return V::decode_boxes(in[0] * 2.0, tg::exp(tg::log(in[1])), o); };
  auto r = tg::gradcheck(enc, {b, p});
  CHECK_MESSAGE(r.ok, r.message);
  r = tg::gradgradcheck(enc, {b, p});
  CHECK_MESSAGE(r.ok, r.message);
  r = tg::gradcheck(dec, {codes, p});
  CHECK_MESSAGE(r.ok, r.message);
  r = tg::gradgradcheck(dec, {codes, p});
  CHECK_MESSAGE(r.ok, r.message);
  // the gradient is not zero: d x1 / d dx = w / wx
  Tensor c = codes.clone().requires_grad_();
  tg::slice(V::decode_boxes(c, p, o), 1, 0, 1).sum().backward();
  const std::vector<double> gc = c.grad().to_vector<double>(), pv = p.to_vector<double>();
  CHECK(gc[0] == doctest::Approx((pv[2] - pv[0]) / 10));
}

TEST_CASE("encode_boxes / decode_boxes / clip_boxes: bad arguments") {
  const Tensor a = rows({0, 0, 10, 10});
  auto msg = error_of([&] { V::encode_boxes(rows({0, 0, 1, 1, 0, 0, 2, 2}), a); });
  CHECK(contains(msg, "encode_boxes"));
  CHECK(contains(msg, "2 rows and 1 reference"));
  msg = error_of([&] { V::decode_boxes(tg::zeros({1, 5}, tg::kFloat64), a); });
  CHECK(contains(msg, "[N, 4]"));
  CHECK(contains(msg, "[1, 5]"));
  msg = error_of([&] { V::decode_boxes(a, a, V::BoxCoderOptions(1, 0, 1, 1)); });
  CHECK(contains(msg, "four positive finite weights"));
  msg = error_of([&] { V::encode_boxes(a.to(tg::kFloat32), a); });
  CHECK(contains(msg, "same dtype"));
  CHECK_THROWS_AS(V::encode_boxes(tg::zeros({1, 4}, tg::kInt64), tg::zeros({1, 4}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS(V::clip_boxes(a, -1, 10), tg::Error);
  CHECK_THROWS_AS(V::clip_boxes(Tensor(), 1, 10), tg::Error);
}

// ---------------------------------------------------------------------------------------------
// draw_boxes

TEST_CASE("draw_boxes: the outline's pixels, width, clipping and colour") {
  // A box over columns 1..4 and rows 1..3 of a 6 x 6 image: rows 1 and 3 in full, row 2 at both ends.
  const Tensor img = tg::zeros({1, 6, 6});
  const std::vector<float> v = V::draw_boxes(img, rows({1, 1, 5, 4}), {0.5}).to_vector<float>();
  std::set<int> want{1 * 6 + 1, 1 * 6 + 2, 1 * 6 + 3, 1 * 6 + 4, 2 * 6 + 1, 2 * 6 + 4,
                     3 * 6 + 1, 3 * 6 + 2, 3 * 6 + 3, 3 * 6 + 4};
  for (int i = 0; i < 36; ++i) {
    INFO("pixel ", i);
    CHECK(v[size_t(i)] == (want.count(i) ? 0.5f : 0.0f));
  }
  CHECK(img.to_vector<float>() == std::vector<float>(36, 0.0f));  // the input is untouched
  // Partly outside: columns and rows -2..2; only its right and bottom edges are in the image.
  const Tensor rgb = V::draw_boxes(tg::zeros({3, 4, 4}, tg::kFloat64), rows({-2.2, -1.6, 2.6, 3.4}), {1, 0.25, 0});
  const std::vector<double> c = rgb.to_vector<double>();
  std::set<int> edge{0 * 4 + 2, 1 * 4 + 2, 2 * 4 + 0, 2 * 4 + 1, 2 * 4 + 2};
  for (int i = 0; i < 16; ++i) {
    INFO("pixel ", i);
    CHECK(c[size_t(i)] == (edge.count(i) ? 1.0 : 0.0));
    CHECK(c[size_t(16 + i)] == (edge.count(i) ? 0.25 : 0.0));
    CHECK(c[size_t(32 + i)] == 0.0);
  }
  // Width 2 fills a 4 x 4 box; a box outside draws nothing; none at all is a copy.
  const std::vector<float> w2 = V::draw_boxes(tg::zeros({1, 6, 6}), rows({1, 1, 5, 5}), {1}, 2).to_vector<float>();
  float filled = 0;
  for (float x : w2) filled += x;
  CHECK(filled == 16.0f);
  CHECK(tg::sum(V::draw_boxes(tg::zeros({1, 6, 6}), rows({10, 10, 20, 20}), {1})).item<double>() == 0.0);
  CHECK(V::draw_boxes(tg::ones({1, 2, 2}), tg::zeros({0, 4}), {0}).to_vector<float>() == std::vector<float>(4, 1.0f));
}

TEST_CASE("draw_boxes: bad arguments") {
  auto msg = error_of([] { V::draw_boxes(tg::zeros({3, 4, 4}), rows({0, 0, 1, 1}), {1, 0}); });
  CHECK(contains(msg, "3 values"));
  CHECK(contains(msg, "got 2"));
  msg = error_of([] { V::draw_boxes(tg::zeros({4, 4}), rows({0, 0, 1, 1}), {1}); });
  CHECK(contains(msg, "[C, H, W]"));
  msg = error_of([] { V::draw_boxes(tg::zeros({1, 4, 4}), rows({0, 0, NAN, 1}), {1}); });
  CHECK(contains(msg, "non-finite"));
  CHECK_THROWS_AS(V::draw_boxes(tg::zeros({1, 4, 4}), rows({0, 0, 1, 1}), {1}, 0), tg::Error);
  CHECK_THROWS_AS(V::draw_boxes(tg::zeros({1, 4, 4}), tg::zeros({1, 3}), {1}), tg::Error);
}
