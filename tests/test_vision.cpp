// tg::vision: box_iou, nms and roi_align against hand-computed cases and torchvision
// (tests/golden/generate_vision.py), gradcheck / gradgradcheck of roi_align, PNG files through
// libpng, and Grad-CAM on a model whose answer is known.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <tapegrad.hpp>

#include "golden_io.hpp"

using tg::Tensor;
namespace fs = std::filesystem;
namespace V = tg::vision;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace {

const std::vector<golden::Case>& vision_cases() {
  static const auto cases = golden::load(std::string(TAPEGRAD_GOLDEN_DIR) + "/vision.txt");
  return cases;
}

const golden::Case& find_case(const std::string& name) {
  for (const auto& c : vision_cases())
    if (c.name == name) return c;
  throw std::runtime_error("no golden case " + name);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

Tensor boxes(const std::vector<double>& v) { return tg::tensor(v, {int64_t(v.size() / 4), 4}, tg::kFloat64); }

// The message of the tg::Error that fn throws ("" if it does not throw).
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

// The differentiable golden rows: the same call as in generate_vision.py.
std::map<std::string, Fn> differentiable_rows() {
  std::map<std::string, Fn> t;
  auto ra = [](V::RoiAlignOptions o) { return Fn([o](const std::vector<Tensor>& in) { return V::roi_align(in[0], in[1], o); }); };
  using O = V::RoiAlignOptions;
  t["box_iou"] = [](const std::vector<Tensor>& in) { return V::box_iou(in[0], in[1]); };
  t["box_iou_overlapping"] = t["box_iou"];
  t["box_iou_single"] = t["box_iou"];
  t["roi_align_sr2"] = ra(O({3, 2}).sampling_ratio(2));
  t["roi_align_sr2_aligned"] = ra(O({3, 2}).sampling_ratio(2).aligned(true));
  t["roi_align_adaptive"] = ra(O(2));
  t["roi_align_adaptive_aligned"] = ra(O(2).sampling_ratio(0).aligned(true));
  t["roi_align_scale"] = ra(O({2, 3}).spatial_scale(0.5));
  t["roi_align_scale_aligned"] = ra(O({2, 3}).spatial_scale(0.5).sampling_ratio(3).aligned(true));
  t["roi_align_degenerate"] = ra(O(3));
  t["roi_align_degenerate_aligned"] = ra(O(3).sampling_ratio(2).aligned(true));
  // torchvision's positional form and the per-image list form.
  t["roi_align_list"] = [](const std::vector<Tensor>& in) { return V::roi_align(in[0], {in[1], in[2]}, {2, 2}, 1.0, 2, true); };
  t["roi_align_f32"] = [](const std::vector<Tensor>& in) { return V::roi_align(in[0], in[1], 2, 1.0, -1, true); };
  return t;
}

std::map<std::string, double> nms_thresholds() {
  return {{"nms", 0.5}, {"nms_low_threshold", 0.1}, {"nms_high_threshold", 0.8}, {"nms_ties", 0.3}, {"nms_f32", 0.45}};
}

// A fresh directory, removed with its contents at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() / ("tapegrad-vision-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& path, const std::vector<char>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(b.data(), std::streamsize(b.size()));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// golden coverage

TEST_CASE("vision golden: every case has a row and every row a case") {
  auto rows = differentiable_rows();
  auto nms_rows = nms_thresholds();
  for (const auto& c : vision_cases())
    CHECK_MESSAGE(rows.count(c.name) + nms_rows.count(c.name) == 1, "no C++ row for golden case ", c.name);
  for (const auto& row : rows) CHECK_NOTHROW(find_case(row.first));
  for (const auto& row : nms_rows) CHECK_NOTHROW(find_case(row.first));
  CHECK(vision_cases().size() == rows.size() + nms_rows.size());
}

// ---------------------------------------------------------------------------------------------
// box_iou

TEST_CASE("box_iou: hand-computed overlaps") {
  // a0 is the 2 x 2 square at the origin (area 4), a1 the 4 x 2 rectangle (area 8).
  Tensor a = boxes({0, 0, 2, 2, /**/ 0, 0, 4, 2});
  Tensor b = boxes({1, 1, 3, 3,    // with a0: 1 x 1 = 1 shared, union 4 + 4 - 1 = 7 -> 1/7
                    0, 0, 2, 2,    // a0 itself -> 1
                    2, 2, 4, 4,    // touches a0 at a corner: no area -> 0
                    0, 0, 1, 1,    // inside a0: 1 / 4
                    5, 5, 6, 6});  // far away -> 0
  Tensor iou = V::box_iou(a, b);
  REQUIRE(iou.shape() == tg::Shape{2, 5});
  auto v = iou.to_vector<double>();
  CHECK(v[0] == doctest::Approx(1.0 / 7));
  CHECK(v[1] == doctest::Approx(1.0));
  CHECK(v[2] == 0.0);
  CHECK(v[3] == doctest::Approx(0.25));
  CHECK(v[4] == 0.0);
  // a1 = [0, 4] x [0, 2] with [1, 3] x [1, 3]: 2 x 1 = 2 shared, union 8 + 4 - 2 = 10 -> 0.2
  CHECK(v[5] == doctest::Approx(0.2));
  // with [0, 2] x [0, 2]: 4 shared, union 8 -> 0.5;  [2, 4] x [2, 4]: touches its top edge -> 0
  CHECK(v[6] == doctest::Approx(0.5));
  CHECK(v[7] == 0.0);
  CHECK(v[8] == doctest::Approx(1.0 / 8));
  CHECK(v[9] == 0.0);
  CHECK(V::box_iou(a.to(tg::kFloat32), b.to(tg::kFloat32)).dtype() == tg::kFloat32);
}

TEST_CASE("box_iou: forward and gradients match torchvision") {
  auto rows = differentiable_rows();
  for (const char* name : {"box_iou", "box_iou_overlapping", "box_iou_single"}) {
    INFO("case ", name);
    golden::check_against_golden(find_case(name), rows.at(name), tg::kFloat64, 1e-12, 1e-10);
    golden::check_against_golden(find_case(name), rows.at(name), tg::kFloat32, 1e-5, 1e-4);
  }
}

TEST_CASE("box_iou: gradcheck and gradgradcheck through a preceding op") {
  const auto& c = find_case("box_iou_overlapping");
  // exp(log b) = b, so the gradient reaches the leaves only through a second op.
  Fn fn = [](const std::vector<Tensor>& in) { return V::box_iou(tg::exp(tg::log(in[0])), in[1]); };
  CHECK_MESSAGE(tg::gradcheck(fn, {c.inputs[0], c.inputs[1]}).ok, "gradcheck");
  auto r = tg::gradgradcheck(fn, {c.inputs[0], c.inputs[1]});
  CHECK_MESSAGE(r.ok, r.message);
}

TEST_CASE("box_iou: empty inputs and bad shapes") {
  CHECK(V::box_iou(tg::zeros({0, 4}), boxes({0, 0, 1, 1, 0, 0, 2, 2}).to(tg::kFloat32)).shape() == tg::Shape{0, 2});
  CHECK(V::box_iou(boxes({0, 0, 1, 1}), tg::zeros({0, 4}, tg::kFloat64)).shape() == tg::Shape{1, 0});
  CHECK_THROWS_AS(V::box_iou(tg::zeros({3, 5}), tg::zeros({2, 4})), tg::Error);
  CHECK_THROWS_AS(V::box_iou(tg::zeros({2, 4}), tg::zeros({4})), tg::Error);
  CHECK_THROWS_AS(V::box_iou(tg::zeros({2, 4}, tg::kInt64), tg::zeros({2, 4})), tg::Error);
  CHECK_THROWS_AS(V::box_iou(Tensor(), tg::zeros({2, 4})), tg::Error);
  const std::string m = error_of([] { V::box_iou(tg::zeros({3, 5}), tg::zeros({2, 4})); });
  CHECK(contains(m, "box_iou"));
  CHECK(contains(m, "[N, 4]"));
  CHECK(contains(m, "[3, 5]"));
}

// ---------------------------------------------------------------------------------------------
// nms

TEST_CASE("nms: hand-computed suppression") {
  // 0: [0, 10]^2 (area 100), score 0.9
  // 1: [1, 11] x [0, 10], score 0.8: shares 9 x 10 = 90 with box 0, IoU 90 / 110 = 0.818
  // 2: [20, 30]^2, score 0.7: overlaps nothing
  // 3: box 0 again, score 0.95: IoU 1 with box 0, 0.818 with box 1
  Tensor b = boxes({0, 0, 10, 10, 1, 0, 11, 10, 20, 20, 30, 30, 0, 0, 10, 10});
  Tensor s = tg::tensor({0.9, 0.8, 0.7, 0.95}, {4}, tg::kFloat64);
  // Threshold 0.5: 3 is kept first, and removes 0 (IoU 1) and 1 (0.818); 2 stays.
  CHECK(V::nms(b, s, 0.5).to_vector<int64_t>() == std::vector<int64_t>{3, 2});
  // Threshold 0.9: 0.818 no longer suppresses, 1.0 still does.
  CHECK(V::nms(b, s, 0.9).to_vector<int64_t>() == std::vector<int64_t>{3, 1, 2});
  // Threshold 1: nothing is above it.
  CHECK(V::nms(b, s, 1.0).to_vector<int64_t>() == std::vector<int64_t>{3, 0, 1, 2});
  CHECK(V::nms(b, s, 0.5).dtype() == tg::kInt64);
}

TEST_CASE("nms: an IoU equal to the threshold is kept (strictly greater suppresses)") {
  // [0, 4] x [0, 1] (area 4) and [0, 2] x [0, 1] (area 2): 2 shared, union 4: IoU exactly 0.5.
  Tensor b = boxes({0, 0, 4, 1, 0, 0, 2, 1});
  Tensor s = tg::tensor({0.9, 0.1}, {2}, tg::kFloat64);
  CHECK(V::nms(b, s, 0.5).to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  CHECK(V::nms(b, s, 0.49).to_vector<int64_t>() == std::vector<int64_t>{0});
}

TEST_CASE("nms: ties in scores keep the lower index first") {
  // Three disjoint boxes with one score: all kept, in index order.
  Tensor b = boxes({0, 0, 1, 1, 5, 5, 6, 6, 10, 10, 11, 11});
  CHECK(V::nms(b, tg::full({3}, 0.5, tg::kFloat64), 0.5).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2});
  // Two identical boxes with equal scores: the first survives.
  Tensor d = boxes({5, 5, 6, 6, 0, 0, 2, 2, 0, 0, 2, 2});
  Tensor s = tg::tensor({0.2, 0.7, 0.7}, {3}, tg::kFloat64);
  CHECK(V::nms(d, s, 0.5).to_vector<int64_t>() == std::vector<int64_t>{1, 0});
}

TEST_CASE("nms: torchvision's indices on clustered boxes, with ties and in float32") {
  for (const auto& row : nms_thresholds()) {  // no structured binding: INFO captures in a lambda
    const auto& name = row.first;
    const auto& threshold = row.second;
    INFO("case ", name);
    const auto& c = find_case(name);
    const tg::Dtype d = ends_with(name, "_f32") ? tg::kFloat32 : tg::kFloat64;
    Tensor keep = V::nms(c.inputs[0].to(d), c.inputs[1].to(d), threshold);
    CHECK(keep.dtype() == tg::kInt64);
    CHECK(keep.to_vector<int64_t>() == c.output.to_vector<int64_t>());
  }
}

TEST_CASE("nms: empty input and bad arguments") {
  Tensor keep = V::nms(tg::zeros({0, 4}), tg::zeros({0}), 0.5);
  CHECK(keep.shape() == tg::Shape{0});
  CHECK(keep.dtype() == tg::kInt64);
  Tensor b = boxes({0, 0, 1, 1, 0, 0, 2, 2});
  CHECK_THROWS_AS(V::nms(b, tg::zeros({3}, tg::kFloat64), 0.5), tg::Error);     // one score per box
  CHECK_THROWS_AS(V::nms(b, tg::zeros({2, 1}, tg::kFloat64), 0.5), tg::Error);
  CHECK_THROWS_AS(V::nms(tg::zeros({2, 3}), tg::zeros({2}), 0.5), tg::Error);
  CHECK_THROWS_AS(V::nms(b, tg::zeros({2}, tg::kInt64), 0.5), tg::Error);
  CHECK_THROWS_AS(V::nms(b, tg::tensor({0.5, std::nan("")}, {2}, tg::kFloat64), 0.5), tg::Error);
  CHECK_THROWS_AS(V::nms(b, tg::zeros({2}, tg::kFloat64), std::nan("")), tg::Error);
  const std::string m = error_of([&] { V::nms(b, tg::zeros({3}, tg::kFloat64), 0.5); });
  CHECK(contains(m, "nms"));
  CHECK(contains(m, "[2]"));
  CHECK(contains(m, "[3]"));
}

// ---------------------------------------------------------------------------------------------
// roi_align

TEST_CASE("roi_align: a hand-computed case on a linear image") {
  // x[y][x] = 4y + x. Bilinear interpolation reproduces a linear function exactly, so each bin is
  // the function at the mean of its sample points.
  Tensor x = tg::arange(0, 16, 1, tg::kFloat64).reshape({1, 1, 4, 4});
  Tensor r = tg::tensor({0, 0.5, 0.5, 2.5, 2.5}, {1, 5}, tg::kFloat64);
  // aligned: the box moves by -0.5 to [0, 2]^2; 2 x 2 bins of size 1; one sample at each bin
  // centre (0.5 or 1.5): 4 * 0.5 + 0.5 = 2.5, 4 * 0.5 + 1.5 = 3.5, 4 * 1.5 + 0.5 = 6.5, 7.5.
  Tensor y = V::roi_align(x, r, V::RoiAlignOptions(2).sampling_ratio(1).aligned(true));
  CHECK(y.shape() == tg::Shape{1, 1, 2, 2});
  CHECK(y.to_vector<double>() == std::vector<double>{2.5, 3.5, 6.5, 7.5});
  // not aligned: the box stays at [0.5, 2.5]^2, bin centres at 1 and 2: 5, 6, 9, 10, and with 2 x 2
  // samples per bin (at 0.75 and 1.25 about the centre 1, ...) the mean is the same.
  CHECK(V::roi_align(x, r, 2, 1.0, 1, false).to_vector<double>() == std::vector<double>{5, 6, 9, 10});
  CHECK(V::roi_align(x, r, 2, 1.0, 2, false).to_vector<double>() == std::vector<double>{5, 6, 9, 10});
  // spatial_scale 0.5: the same box given in coordinates twice as large.
  Tensor r2 = tg::tensor({0, 1, 1, 5, 5}, {1, 5}, tg::kFloat64);
  CHECK(V::roi_align(x, r2, 2, 0.5, 2, false).to_vector<double>() == std::vector<double>{5, 6, 9, 10});
}

TEST_CASE("roi_align: forward and input gradient match torchvision") {
  auto rows = differentiable_rows();
  for (const auto& row : rows) {  // no structured binding: INFO captures in a lambda
    const auto& name = row.first;
    const auto& fn = row.second;
    if (name.rfind("roi_align", 0) != 0) continue;
    INFO("case ", name);
    const auto& c = find_case(name);
    if (!ends_with(name, "_f32")) golden::check_against_golden(c, fn, tg::kFloat64, 1e-12, 1e-10);
    golden::check_against_golden(c, fn, tg::kFloat32, 1e-5, 1e-4);
  }
}

TEST_CASE("roi_align: gradcheck and gradgradcheck in float64") {
  const auto& c = find_case("roi_align_sr2");
  const Tensor x = c.inputs[0];
  Tensor r = c.inputs[1];
  using O = V::RoiAlignOptions;
  for (const O& o : {O({3, 2}).sampling_ratio(2), O({3, 2}).sampling_ratio(2).aligned(true), O(2),
                     O(2).sampling_ratio(0).aligned(true), O({2, 3}).spatial_scale(0.7).sampling_ratio(-1)}) {
    INFO("aligned ", o.aligned(), " sampling_ratio ", o.sampling_ratio(), " scale ", o.spatial_scale());
    // tanh first: the gradient must reach the leaf through another op (a zero gradient can't pass).
    Fn fn = [r, o](const std::vector<Tensor>& in) { return V::roi_align(tg::tanh(in[0]), r, o); };
    auto g = tg::gradcheck(fn, {x});
    CHECK_MESSAGE(g.ok, g.message);
    auto gg = tg::gradgradcheck(fn, {x});
    CHECK_MESSAGE(gg.ok, gg.message);
  }
}

TEST_CASE("roi_align: the list form, empty boxes, and bad arguments") {
  const auto& c = find_case("roi_align_sr2");
  Tensor x = c.inputs[0], r = c.inputs[1];  // x [2, 3, 7, 8]
  // The list form equals the [K, 5] form with the image index prepended.
  Tensor b0 = tg::tensor({0.5, 1, 4, 5, 2, 2, 3, 6}, {2, 4}, tg::kFloat64), b1 = tg::tensor({1, 0, 6, 3}, {1, 4}, tg::kFloat64);
  Tensor rows = tg::tensor({0, 0.5, 1, 4, 5, 0, 2, 2, 3, 6, 1, 1, 0, 6, 3}, {3, 5}, tg::kFloat64);
  CHECK(V::roi_align(x, {b0, b1}, {2, 2}, 1.0, 2).to_vector<double>() ==
        V::roi_align(x, rows, {2, 2}, 1.0, 2).to_vector<double>());
  CHECK(V::roi_align(x, tg::zeros({0, 5}, tg::kFloat64), {3, 2}).shape() == tg::Shape{0, 3, 3, 2});
  CHECK(V::roi_align(x, {tg::zeros({0, 4}, tg::kFloat64), b1}, 2).shape() == tg::Shape{1, 3, 2, 2});

  CHECK_THROWS_AS(V::roi_align(x.reshape({6, 7, 8}), r, 2), tg::Error);               // 3-D input
  CHECK_THROWS_AS(V::roi_align(x, b0, 2), tg::Error);                                 // [K, 4] without the index
  CHECK_THROWS_AS(V::roi_align(x, r, {0, 2}), tg::Error);                             // empty bins
  CHECK_THROWS_AS(V::roi_align(x, r, {2, 2, 2}), tg::Error);
  CHECK_THROWS_AS(V::roi_align(x, r, 2, 0.0), tg::Error);                             // spatial_scale
  CHECK_THROWS_AS(V::roi_align(x, {b0}, 2), tg::Error);                               // one list entry per image
  CHECK_THROWS_AS(V::roi_align(x, {b0, tg::zeros({1, 5}, tg::kFloat64)}, 2), tg::Error);
  CHECK_THROWS_AS(V::roi_align(x.to(tg::kInt64), r, 2), tg::Error);
  const std::string m = error_of([&] { V::roi_align(x, tg::tensor({2, 0, 0, 1, 1}, {1, 5}, tg::kFloat64), 2); });
  CHECK(contains(m, "roi_align"));
  CHECK(contains(m, "image 2"));
  CHECK(contains(m, "[0, 2)"));
  CHECK_THROWS_AS(V::roi_align(x, tg::tensor({0.5, 0, 0, 1, 1}, {1, 5}, tg::kFloat64), 2), tg::Error);
  CHECK_THROWS_AS(V::roi_align(x, tg::tensor({0, 0, std::nan(""), 1, 1}, {1, 5}, tg::kFloat64), 2), tg::Error);
}

// ---------------------------------------------------------------------------------------------
// PNG

TEST_CASE("png: write then read is exact at 8 bits for 1, 2, 3 and 4 channels") {
  TempDir dir;
  tg::manual_seed(11);
  for (int64_t c : {1, 2, 3, 4}) {
    INFO("channels ", c);
    Tensor img = tg::randint(0, 256, {c, 5, 7}).to(tg::kFloat32) / 255.0;  // multiples of 1/255
    const std::string path = dir.file("img" + std::to_string(c) + ".png");
    V::write_png(path, img);
    Tensor back = V::read_png(path);
    CHECK(back.dtype() == tg::kFloat32);
    REQUIRE(back.shape() == img.shape());
    CHECK(back.to_vector<float>() == img.to_vector<float>());
  }
  // float64 images are written the same way.
  Tensor g = tg::tensor({0, 1.0 / 255, 254.0 / 255, 1}, {1, 2, 2}, tg::kFloat64);
  V::write_png(dir.file("g.png"), g);
  CHECK(V::read_png(dir.file("g.png")).to_vector<double>() == g.to(tg::kFloat32).to_vector<double>());
}

TEST_CASE("png: values are clamped to [0, 1] and rounded to the nearest 1/255") {
  TempDir dir;
  // -0.5 -> 0; 1.7 -> 255; 0.5 * 255 = 127.5 -> 128; 0.2 * 255 = 51 -> 51; 0.0019 * 255 = 0.48 -> 0
  Tensor img = tg::tensor({-0.5, 1.7, 0.5, 0.2, 0.0019, 1.0}, {1, 2, 3});
  V::write_png(dir.file("c.png"), img);
  auto v = V::read_png(dir.file("c.png")).to_vector<float>();
  const std::vector<float> want{0.0f, 1.0f, 128.0f / 255.0f, 51.0f / 255.0f, 0.0f, 1.0f};
  CHECK(v == want);
}

TEST_CASE("png: missing, corrupt and truncated files throw tg::Error naming the path") {
  TempDir dir;
  const std::string missing = dir.file("missing.png");
  std::string m = error_of([&] { V::read_png(missing); });
  CHECK(contains(m, "read_png"));
  CHECK(contains(m, missing));

  tg::manual_seed(3);
  const std::string good = dir.file("good.png");
  V::write_png(good, tg::rand({3, 16, 16}));
  const std::vector<char> bytes = read_bytes(good);
  REQUIRE(bytes.size() > 100);
  REQUIRE_NOTHROW(V::read_png(good));

  std::vector<std::pair<std::string, std::vector<char>>> bad;
  bad.emplace_back("empty.png", std::vector<char>{});
  bad.emplace_back("text.png", std::vector<char>{'n', 'o', 't', ' ', 'a', ' ', 'p', 'n', 'g', '\n'});
  bad.emplace_back("signature_only.png", std::vector<char>(bytes.begin(), bytes.begin() + 8));
  bad.emplace_back("header_cut.png", std::vector<char>(bytes.begin(), bytes.begin() + 20));
  bad.emplace_back("half.png", std::vector<char>(bytes.begin(), bytes.begin() + long(bytes.size() / 2)));
  bad.emplace_back("no_end.png", std::vector<char>(bytes.begin(), bytes.end() - 12));
  std::vector<char> flipped = bytes;  // a damaged byte inside the image data: the chunk's CRC fails
  flipped[bytes.size() / 2] = char(flipped[bytes.size() / 2] ^ 0x5a);
  bad.emplace_back("flipped.png", flipped);
  std::vector<char> header = bytes;  // IHDR's width byte changed: its CRC fails
  header[18] = char(header[18] ^ 0x01);
  bad.emplace_back("bad_header.png", header);
  for (const auto& row : bad) {  // no structured binding: INFO captures in a lambda
    const auto& name = row.first;
    const auto& content = row.second;
    INFO("file ", name);
    const std::string path = dir.file(name);
    write_bytes(path, content);
    m = error_of([&] { V::read_png(path); });
    CHECK(contains(m, "read_png"));
    CHECK(contains(m, path));
  }
  // A directory is not a file either.
  CHECK(contains(error_of([&] { V::read_png(dir.path.string()); }), "read_png"));
}

TEST_CASE("png: write_png validates the image and the path") {
  TempDir dir;
  CHECK_THROWS_AS(V::write_png(dir.file("a.png"), tg::rand({5, 2, 2})), tg::Error);  // 5 channels
  CHECK_THROWS_AS(V::write_png(dir.file("a.png"), tg::rand({2, 2})), tg::Error);
  CHECK_THROWS_AS(V::write_png(dir.file("a.png"), tg::rand({3, 0, 2})), tg::Error);
  CHECK_THROWS_AS(V::write_png(dir.file("a.png"), tg::zeros({1, 2, 2}, tg::kInt64)), tg::Error);
  CHECK_THROWS_AS(V::write_png(dir.file("a.png"), Tensor()), tg::Error);
  CHECK_THROWS_AS(V::write_png(dir.file("a.png"), tg::tensor({0.5, std::nan("")}, {1, 1, 2})), tg::Error);
  const std::string nowhere = dir.file("no/such/dir/a.png");
  const std::string m = error_of([&] { V::write_png(nowhere, tg::rand({1, 2, 2})); });
  CHECK(contains(m, "write_png"));
  CHECK(contains(m, nowhere));
  CHECK(!fs::exists(dir.file("a.png")));
}

// ---------------------------------------------------------------------------------------------
// Grad-CAM

namespace {

// conv (channel 0 copies the image, channel 1 is its negative) -> ReLU -> 2x2 max pool (the
// target layer, 8 x 8) -> global average -> linear. Class 0 reads channel 0, class 1 channel 1,
// which is zero after the ReLU for a non-negative image.
struct CamNet {
  std::shared_ptr<tg::nn::Sequential> net = std::make_shared<tg::nn::Sequential>();
  std::shared_ptr<tg::nn::Conv2d> conv;
  std::shared_ptr<tg::nn::MaxPool2d> pool;
  std::shared_ptr<tg::nn::Linear> fc;
  CamNet() {
    conv = net->push_back(std::make_shared<tg::nn::Conv2d>(tg::nn::Conv2dOptions(1, 2, 3).padding(1).bias(false)));
    net->push_back(std::make_shared<tg::nn::ReLU>());
    pool = net->push_back(std::make_shared<tg::nn::MaxPool2d>(2));
    net->push_back(std::make_shared<tg::nn::AdaptiveAvgPool2d>(1));
    net->push_back(std::make_shared<tg::nn::Flatten>());
    fc = net->push_back(std::make_shared<tg::nn::Linear>(2, 3));
    tg::NoGradGuard no_grad;
    conv->weight.zero_();
    conv->weight.copy_(tg::tensor({0, 0, 0, 0, 1, 0, 0, 0, 0, /**/ 0, 0, 0, 0, -1, 0, 0, 0, 0}, {2, 1, 3, 3}));
    fc->weight.copy_(tg::tensor({1, 0, /**/ 0, 1, /**/ 1, 1}, {3, 2}));
    fc->bias.zero_();
  }
};

// Two 16 x 16 images, each with a bright 4 x 4 patch on pool cells: image 0 at rows 4-7,
// columns 10-13; image 1 at rows 10-13, columns 2-5.
Tensor patch_images() {
  std::vector<double> v(2 * 16 * 16, 0.0);
  for (int y = 4; y < 8; ++y)
    for (int x = 10; x < 14; ++x) v[size_t(y * 16 + x)] = 1.0;
  for (int y = 10; y < 14; ++y)
    for (int x = 2; x < 6; ++x) v[size_t(256 + y * 16 + x)] = 1.0;
  return tg::tensor(v, {2, 1, 16, 16});
}

}  // namespace

TEST_CASE("grad_cam: the map's maximum is on the bright patch") {
  CamNet m;
  Tensor x = patch_images();
  Tensor cam = V::grad_cam(*m.net, *m.pool, x, 0);
  REQUIRE(cam.shape() == tg::Shape{2, 16, 16});
  CHECK(cam.dtype() == tg::kFloat32);
  CHECK(!cam.requires_grad());
  auto v = cam.to_vector<double>();
  auto at = [&](int n, int y, int x) { return v[size_t((n * 16 + y) * 16 + x)]; };
  for (double e : v) {
    CHECK(e >= 0.0);
    CHECK(e <= 1.0);
  }
  // The gradient of class 0 (the mean of channel 0) is 1/64 on every pool cell, so the map is
  // channel 0 of the pooled activation: 1 on cells (2-3, 5-6) of image 0, 0 elsewhere. Resized
  // 8 -> 16 with align_corners = false, output row i reads source row i / 2 - 0.25: rows 5 and 6
  // (1.25 to 2.75 ... inside the patch cells) are 1; row 4 reads 1.75 = 0.25 * cell 1 + 0.75 * cell 2.
  CHECK(at(0, 5, 11) == doctest::Approx(1.0));
  CHECK(at(0, 6, 12) == doctest::Approx(1.0));
  CHECK(at(0, 4, 11) == doctest::Approx(0.75));
  CHECK(at(0, 4, 10) == doctest::Approx(0.75 * 0.75));
  CHECK(at(0, 0, 0) == 0.0);
  CHECK(at(0, 12, 3) == 0.0);  // image 1's patch is not in image 0's map
  // Normalised per image: each image's maximum is 1, on its own patch.
  for (int n = 0; n < 2; ++n) {
    int best = 0;
    for (int i = 1; i < 256; ++i)
      if (v[size_t(n * 256 + i)] > v[size_t(n * 256 + best)]) best = i;
    const int y = best / 16, xx = best % 16;
    INFO("image ", n, " maximum at ", y, ", ", xx);
    CHECK(v[size_t(n * 256 + best)] == doctest::Approx(1.0));
    if (n == 0) CHECK((y >= 4 && y < 8 && xx >= 10 && xx < 14));
    if (n == 1) CHECK((y >= 10 && y < 14 && xx >= 2 && xx < 6));
  }
}

TEST_CASE("grad_cam: an all-zero map stays zero; the model and the input are untouched") {
  CamNet m;
  Tensor x = patch_images();
  // Class 1 reads channel 1, which the ReLU zeroes: relu(sum w A) is 0 everywhere, and stays 0
  // (no 0 / 0).
  Tensor cam = V::grad_cam(*m.net, *m.pool, x, 1);
  for (double e : cam.to_vector<double>()) CHECK(e == 0.0);
  // No parameter gradient was written, the input was not made to require grad, and the hook is gone.
  for (const auto& p : m.net->parameters()) CHECK(!p.grad().defined());
  CHECK(!x.requires_grad());
  CHECK(m.pool->forward_hook_count() == 0);
  // The model still works, and a hook of the user's on the same layer is left alone.
  int calls = 0;
  m.pool->register_forward_hook([&](tg::nn::Module&, const Tensor&, const Tensor&) { ++calls; });
  Tensor cam2 = V::grad_cam(*m.net, *m.pool, x, 2);  // class 2 = channel 0 + channel 1: the same map as class 0
  CHECK(calls == 1);
  CHECK(m.pool->forward_hook_count() == 1);
  CHECK(golden::mismatch(cam2, V::grad_cam(*m.net, *m.pool, x, 0), 1e-6, 1e-6) <= 1.0);
}

TEST_CASE("grad_cam: bad arguments throw, and the hook is removed on error too") {
  CamNet m;
  Tensor x = patch_images();
  std::string e = error_of([&] { V::grad_cam(*m.net, *m.pool, x, 3); });
  CHECK(contains(e, "grad_cam"));
  CHECK(contains(e, "class_index 3"));
  CHECK(contains(e, "3 classes"));
  CHECK_THROWS_AS(V::grad_cam(*m.net, *m.pool, x, -1), tg::Error);
  CHECK(m.pool->forward_hook_count() == 0);
  CHECK_THROWS_AS(V::grad_cam(*m.net, *m.pool, x.reshape({2, 16, 16}), 0), tg::Error);
  // A layer that is not part of the model never runs.
  tg::nn::MaxPool2d stranger(2);
  e = error_of([&] { V::grad_cam(*m.net, stranger, x, 0); });
  CHECK(contains(e, "ran 0 times"));
  CHECK(stranger.forward_hook_count() == 0);
  // A target layer whose output is not [N, K, h, w] (Flatten's is [N, 2]).
  e = error_of([&] { V::grad_cam(*m.net, *(*m.net)[4], x, 0); });
  CHECK(contains(e, "[2, K, h, w]"));
}
