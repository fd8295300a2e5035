// tg::Tensor itself: factories, the generator, metadata, dtype conversion, raw access, in-place
// updates, storage sharing, printing, broadcasting, int64 arithmetic, comparisons and the errors
// of shape-taking ops.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <tapegrad.hpp>

using tg::Tensor;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const tg::Error& e) {
    return e.what();
  }
  return "<no tg::Error thrown>";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// f throws tg::Error whose message contains every one of parts.
void check_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  std::string msg = error_of(f);
  for (const std::string& p : parts) {
    INFO("message: " << msg);
    INFO("expected to contain: " << p);
    CHECK(contains(msg, p));
  }
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST_SUITE("tensor") {

// ---------------------------------------------------------------------------------------------
// Factories
// ---------------------------------------------------------------------------------------------

TEST_CASE("zeros, ones, full, empty: shape, dtype and values") {
  Tensor z = tg::zeros({2, 3});
  CHECK(z.shape() == tg::Shape{2, 3});
  CHECK(z.dtype() == tg::kFloat32);
  CHECK(values(z) == std::vector<double>(6, 0.0));
  CHECK_FALSE(z.requires_grad());

  Tensor o = tg::ones({4}, tg::kFloat64);
  CHECK(o.dtype() == tg::kFloat64);
  CHECK(values(o) == std::vector<double>(4, 1.0));

  Tensor f = tg::full({3, 1}, -2.5);
  CHECK(f.shape() == tg::Shape{3, 1});
  CHECK(values(f) == std::vector<double>(3, -2.5));

  Tensor fi = tg::full({2}, 7, tg::kInt64);
  CHECK(fi.dtype() == tg::kInt64);
  CHECK(fi.to_vector<int64_t>() == std::vector<int64_t>{7, 7});

  Tensor e = tg::empty({5, 2}, tg::kFloat64);
  CHECK(e.shape() == tg::Shape{5, 2});
  CHECK(e.numel() == 10);
  CHECK(e.dtype() == tg::kFloat64);

  Tensor s = tg::scalar_tensor(1.5, tg::kFloat64);
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.item<double>() == 1.5);

  Tensor empty_rows = tg::zeros({0, 3});
  CHECK(empty_rows.numel() == 0);
  CHECK(values(empty_rows).empty());
}

TEST_CASE("zeros_like, ones_like, full_like copy shape and dtype") {
  Tensor x = tg::zeros({2, 2}, tg::kFloat64);
  Tensor a = tg::ones_like(x), b = tg::full_like(x, 3), c = tg::zeros_like(tg::ones({3}, tg::kInt64));
  CHECK(a.shape() == x.shape());
  CHECK(a.dtype() == tg::kFloat64);
  CHECK(values(a) == std::vector<double>(4, 1.0));
  CHECK(values(b) == std::vector<double>(4, 3.0));
  CHECK(c.dtype() == tg::kInt64);
  CHECK(values(c) == std::vector<double>(3, 0.0));
}

TEST_CASE("TensorOptions: dtype and requires_grad") {
  Tensor a = tg::zeros({2}, tg::TensorOptions().dtype(tg::kFloat64).requires_grad(true));
  CHECK(a.dtype() == tg::kFloat64);
  CHECK(a.requires_grad());
  CHECK(a.is_leaf());
  Tensor b = tg::randn({2, 3}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  CHECK(b.requires_grad());
  CHECK(b.dtype() == tg::kFloat64);
  Tensor c = tg::tensor({1, 2}, {2}, tg::TensorOptions().requires_grad(true));
  CHECK(c.requires_grad());
  CHECK(c.dtype() == tg::kFloat32);
  Tensor d = tg::ones({1}, tg::TensorOptions().requires_grad(false));
  CHECK_FALSE(d.requires_grad());
  // int64 never requires grad.
  CHECK_THROWS_AS(tg::ones({1}, tg::TensorOptions(tg::kInt64).requires_grad(true)), tg::Error);
}

TEST_CASE("negative sizes are rejected") {
  check_error([] { tg::zeros({2, -1}); }, {"[2, -1]"});
  check_error([] { tg::randn({-3}); }, {"[-3]"});
}

TEST_CASE("randn: standard normal, floating only") {
  tg::manual_seed(123);
  Tensor r = tg::randn({200, 100});
  CHECK(r.dtype() == tg::kFloat32);
  std::vector<double> v = values(r);
  double mean = 0, sq = 0;
  for (double x : v) mean += x;
  mean /= double(v.size());
  for (double x : v) sq += (x - mean) * (x - mean);
  double sd = std::sqrt(sq / double(v.size()));
  CHECK(std::abs(mean) < 0.03);
  CHECK(std::abs(sd - 1.0) < 0.03);
  CHECK(std::set<double>(v.begin(), v.end()).size() > v.size() * 9 / 10);
  CHECK(tg::randn({3}, tg::kFloat64).dtype() == tg::kFloat64);
  CHECK_THROWS_WITH_AS(tg::randn({3}, tg::kInt64), doctest::Contains("randn"), tg::Error);
}

TEST_CASE("rand: uniform in [0, 1)") {
  tg::manual_seed(5);
  for (tg::Dtype d : {tg::kFloat32, tg::kFloat64}) {
    Tensor r = tg::rand({20000}, d);
    CHECK(r.dtype() == d);
    std::vector<double> v = values(r);
    double mean = 0, lo = 1, hi = 0;
    for (double x : v) {
      mean += x;
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    mean /= double(v.size());
    CHECK(lo >= 0.0);
    CHECK(hi < 1.0);
    CHECK(lo < 0.001);
    CHECK(hi > 0.999);
    CHECK(std::abs(mean - 0.5) < 0.01);
  }
  CHECK_THROWS_AS(tg::rand({3}, tg::kInt64), tg::Error);
}

TEST_CASE("randint: integers in [low, high)") {
  tg::manual_seed(9);
  Tensor r = tg::randint(-2, 3, {5000});
  CHECK(r.dtype() == tg::kInt64);
  std::vector<int64_t> v = r.to_vector<int64_t>();
  std::set<int64_t> seen(v.begin(), v.end());
  CHECK(seen == std::set<int64_t>{-2, -1, 0, 1, 2});
  Tensor f = tg::randint(0, 4, {100}, tg::kFloat32);
  CHECK(f.dtype() == tg::kFloat32);
  for (double x : values(f)) CHECK((x == 0 || x == 1 || x == 2 || x == 3));
  check_error([] { tg::randint(3, 3, {2}); }, {"randint", "3"});
}

TEST_CASE("arange: int64 unless a dtype is given") {
  Tensor a = tg::arange(0, 5);
  CHECK(a.dtype() == tg::kInt64);
  CHECK(a.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(tg::arange(2, 11, 3).to_vector<int64_t>() == std::vector<int64_t>{2, 5, 8});
  CHECK(tg::arange(5, 0, -2).to_vector<int64_t>() == std::vector<int64_t>{5, 3, 1});
  Tensor f = tg::arange(0, 1, 0.25, tg::kFloat64);
  CHECK(f.dtype() == tg::kFloat64);
  CHECK(values(f) == std::vector<double>{0, 0.25, 0.5, 0.75});
  CHECK(tg::arange(0, 1, 0.1, tg::kFloat64).numel() == 10);
  CHECK(tg::arange(3, 3).numel() == 0);
  CHECK_THROWS_AS(tg::arange(0, 5, 0), tg::Error);
  CHECK_THROWS_AS(tg::arange(0, 5, -1), tg::Error);
}

TEST_CASE("tensor(values, shape, dtype): row-major values") {
  Tensor t = tg::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, tg::kFloat64);
  CHECK(t.shape() == tg::Shape{2, 3});
  CHECK(t.dtype() == tg::kFloat64);
  CHECK(t.data_ptr<double>()[1 * 3 + 0] == 4);  // row 1, column 0
  Tensor i = tg::tensor({-3, 4}, {2}, tg::kInt64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{-3, 4});
  Tensor s = tg::tensor({2.5}, {}, tg::kFloat32);
  CHECK(s.dim() == 0);
  CHECK(s.item<float>() == 2.5f);
  check_error([] { tg::tensor({1, 2, 3}, {2, 2}); }, {"[2, 2]", "3"});
}

TEST_CASE("manual_seed: the same seed gives the same numbers") {
  tg::manual_seed(42);
  std::vector<double> a = values(tg::randn({50})), b = values(tg::rand({50})),
                      c = values(tg::randint(0, 1000, {50}));
  tg::manual_seed(42);
  CHECK(values(tg::randn({50})) == a);
  CHECK(values(tg::rand({50})) == b);
  CHECK(values(tg::randint(0, 1000, {50})) == c);
  // The generator moves on: the next draw differs.
  CHECK(values(tg::randn({50})) != a);
  tg::manual_seed(43);
  CHECK(values(tg::randn({50})) != a);
  // float64 draws use the same stream: same seed, same values up to float32 rounding.
  tg::manual_seed(42);
  std::vector<double> a64 = values(tg::randn({50}, tg::kFloat64));
  for (size_t i = 0; i < a.size(); ++i) CHECK(float(a64[i]) == float(a[i]));
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

TEST_CASE("shape, dim, numel, size with negative indices") {
  Tensor t = tg::zeros({2, 3, 4});
  CHECK(t.dim() == 3);
  CHECK(t.numel() == 24);
  CHECK(t.sizes() == t.shape());
  CHECK(t.size(0) == 2);
  CHECK(t.size(2) == 4);
  CHECK(t.size(-1) == 4);
  CHECK(t.size(-3) == 2);
  check_error([&] { t.size(3); }, {"[2, 3, 4]", "3"});
  check_error([&] { t.size(-4); }, {"[2, 3, 4]", "-4"});
  Tensor s = tg::scalar_tensor(1);
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.shape().empty());
  CHECK_THROWS_AS(s.size(0), tg::Error);
  Tensor u;
  CHECK_FALSE(u.defined());
  CHECK_THROWS_AS(u.shape(), tg::Error);
  CHECK_THROWS_AS(u.numel(), tg::Error);
  CHECK_FALSE(u.requires_grad());
}

TEST_CASE("dtype names and sizes") {
  CHECK(std::string(tg::dtype_name(tg::kFloat32)) == "float32");
  CHECK(std::string(tg::dtype_name(tg::kFloat64)) == "float64");
  CHECK(std::string(tg::dtype_name(tg::kInt64)) == "int64");
  CHECK(tg::element_size(tg::kFloat32) == 4);
  CHECK(tg::element_size(tg::kFloat64) == 8);
  CHECK(tg::element_size(tg::kInt64) == 8);
  CHECK(tg::shape_str({2, 3}) == "[2, 3]");
  CHECK(tg::shape_str({}) == "[]");
  CHECK(tg::shape_numel({}) == 1);
  CHECK(tg::shape_numel({4, 0}) == 0);
}

// ---------------------------------------------------------------------------------------------
// Conversion and raw access
// ---------------------------------------------------------------------------------------------

TEST_CASE("to(dtype): round trips and truncation") {
  Tensor f = tg::tensor({0.1, -1.5, 3e7, 2.75}, {2, 2});
  Tensor d = f.to(tg::kFloat64);
  CHECK(d.dtype() == tg::kFloat64);
  CHECK(d.shape() == f.shape());
  Tensor back = d.to(tg::kFloat32);
  CHECK(back.to_vector<float>() == f.to_vector<float>());

  Tensor i = tg::tensor({2.7, -2.7, 0.5, 100}, {4}, tg::kFloat64).to(tg::kInt64);
  CHECK(i.dtype() == tg::kInt64);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{2, -2, 0, 100});  // truncation toward zero
  Tensor big = tg::tensor({double(int64_t(1) << 40) + 3}, {1}, tg::kInt64);
  CHECK(big.to(tg::kFloat64).to(tg::kInt64).item<int64_t>() == (int64_t(1) << 40) + 3);

  // Same dtype: the same tensor.
  CHECK(f.to(tg::kFloat32).impl() == f.impl());
  // A conversion is a copy.
  d.data_ptr<double>()[0] = 9;
  CHECK(f.to_vector<float>()[0] == 0.1f);
}

TEST_CASE("to(dtype) is differentiable; to(int64) leaves the tape") {
  Tensor x = tg::tensor({1, 2}, {2}, tg::TensorOptions().requires_grad(true));
  Tensor y = x.to(tg::kFloat64);
  CHECK(y.requires_grad());
  (y * y).sum().backward();
  CHECK(x.grad().dtype() == tg::kFloat32);
  CHECK(values(x.grad()) == std::vector<double>{2, 4});
  Tensor i = x.to(tg::kInt64);
  CHECK_FALSE(i.requires_grad());
}

TEST_CASE("item, to_vector and data_ptr") {
  Tensor f = tg::tensor({1.5, 2.5, 3.5}, {3});
  CHECK(f.to_vector<double>() == std::vector<double>{1.5, 2.5, 3.5});
  CHECK(f.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3});
  CHECK(f.to_vector<float>() == std::vector<float>{1.5f, 2.5f, 3.5f});
  float* p = f.data_ptr<float>();
  p[1] = 10;
  CHECK(f.to_vector<double>()[1] == 10);
  const Tensor& cf = f;
  CHECK(cf.data_ptr<float>() == p);

  CHECK(tg::tensor({4.25}, {1, 1}, tg::kFloat64).item<double>() == 4.25);
  CHECK(tg::tensor({4.75}, {}, tg::kFloat64).item<int64_t>() == 4);
  CHECK(tg::tensor({7}, {}, tg::kInt64).item<double>() == 7.0);

  check_error([&] { f.data_ptr<double>(); }, {"data_ptr", "float32", "float64"});
  check_error([&] { f.data_ptr<int64_t>(); }, {"float32", "int64"});
  check_error([] { tg::zeros({2}, tg::kInt64).data_ptr<float>(); }, {"int64", "float32"});
  check_error([&] { f.item<double>(); }, {"item", "[3]"});
  CHECK_THROWS_AS(Tensor().item<double>(), tg::Error);
  CHECK_THROWS_AS(Tensor().to_vector<double>(), tg::Error);
}

// ---------------------------------------------------------------------------------------------
// In-place updates
// ---------------------------------------------------------------------------------------------

TEST_CASE("in-place zero_, fill_, copy_, add_, mul_") {
  Tensor t = tg::tensor({1, 2, 3, 4}, {2, 2}, tg::kFloat64);
  Tensor alias = t;  // handles share data
  Tensor* self = &t.mul_(2);
  CHECK(self == &t);
  CHECK(values(alias) == std::vector<double>{2, 4, 6, 8});
  t.add_(tg::ones({2, 2}, tg::kFloat64));
  CHECK(values(t) == std::vector<double>{3, 5, 7, 9});
  t.add_(tg::ones({2, 2}, tg::kFloat64), -0.5);
  CHECK(values(t) == std::vector<double>{2.5, 4.5, 6.5, 8.5});
  t.fill_(-1);
  CHECK(values(alias) == std::vector<double>(4, -1.0));
  t.zero_();
  CHECK(values(alias) == std::vector<double>(4, 0.0));
  // copy_ takes any shape with the same numel and converts the dtype.
  t.copy_(tg::arange(0, 4));
  CHECK(values(t) == std::vector<double>{0, 1, 2, 3});
  CHECK(t.dtype() == tg::kFloat64);
  CHECK(t.shape() == tg::Shape{2, 2});
  Tensor i = tg::zeros({3}, tg::kInt64);
  i.copy_(tg::tensor({1.9, -1.9, 5}, {3}));
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{1, -1, 5});
  i.mul_(3);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{3, -3, 15});

  check_error([&] { t.copy_(tg::zeros({5})); }, {"copy_", "[2, 2]", "[5]"});
  check_error([&] { t.add_(tg::zeros({4}, tg::kFloat64)); }, {"add_", "[2, 2]", "[4]"});
  check_error([&] { t.add_(tg::zeros({2, 2}, tg::kFloat32)); }, {"add_", "float32", "float64"});
  CHECK_THROWS_AS(Tensor().zero_(), tg::Error);
}

TEST_CASE("in-place updates are not recorded on the tape") {
  Tensor w = tg::ones({2}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  w.mul_(3).add_(tg::ones({2}, tg::kFloat64));
  CHECK(w.is_leaf());
  CHECK(w.requires_grad());
  CHECK(values(w) == std::vector<double>{4, 4});
  (w * w).sum().backward();
  CHECK(values(w.grad()) == std::vector<double>{8, 8});
}

// ---------------------------------------------------------------------------------------------
// Storage sharing
// ---------------------------------------------------------------------------------------------

TEST_CASE("reshape and its kin share storage with the input") {
  Tensor x = tg::arange(0, 6, 1, tg::kFloat32);
  Tensor r = x.reshape({2, 3});
  r.data_ptr<float>()[4] = 40;
  CHECK(values(x)[4] == 40);
  x.data_ptr<float>()[0] = -1;
  CHECK(values(r)[0] == -1);
  CHECK(r.data_ptr<float>() == x.data_ptr<float>());
  Tensor inferred = x.reshape({3, -1});
  CHECK(inferred.shape() == tg::Shape{3, 2});
  CHECK(inferred.data_ptr<float>() == x.data_ptr<float>());
  CHECK(x.view({6, 1}).data_ptr<float>() == x.data_ptr<float>());
  CHECK(r.flatten().data_ptr<float>() == x.data_ptr<float>());
  CHECK(r.unsqueeze(0).data_ptr<float>() == x.data_ptr<float>());
  CHECK(r.unsqueeze(0).squeeze().data_ptr<float>() == x.data_ptr<float>());
  CHECK(x.contiguous().data_ptr<float>() == x.data_ptr<float>());
  // In-place through a reshape is visible in the original.
  r.fill_(2);
  CHECK(values(x) == std::vector<double>(6, 2.0));
}

TEST_CASE("other movement ops copy") {
  Tensor x = tg::arange(0, 6, 1, tg::kFloat64).reshape({2, 3});
  const std::vector<double> orig = values(x);
  std::vector<Tensor> copies{x.permute({1, 0}), x.transpose(0, 1), x.t(), tg::slice(x, 1, 0, 2),
                             x.narrow(0, 1, 1), tg::unsqueeze(x, 0).expand({2, 2, 3}), tg::cat({x, x}, 0),
                             x.clone(), tg::pad(x, {1, 1}), tg::index_select(x, 1, tg::arange(0, 2))};
  for (size_t i = 0; i < copies.size(); ++i) {
    CAPTURE(i);
    CHECK(copies[i].data_ptr<double>() != x.data_ptr<double>());
    copies[i].fill_(-7);
    CHECK(values(x) == orig);
  }
  // Their values.
  CHECK(values(x.permute({1, 0})) == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(values(tg::slice(x, 1, 0, 3, 2)) == std::vector<double>{0, 2, 3, 5});
  CHECK(values(x.narrow(1, 1, 2)) == std::vector<double>{1, 2, 4, 5});
  CHECK(values(tg::cat({x, x}, 1)) == std::vector<double>{0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5});
  // clone is a copy on the tape.
  Tensor w = tg::ones({2}, tg::TensorOptions().requires_grad(true));
  Tensor c = w.clone();
  CHECK(c.requires_grad());
  (c * 3.0).sum().backward();
  CHECK(values(w.grad()) == std::vector<double>{3, 3});
}

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

TEST_CASE("printing: values, shape, dtype and grad_fn") {
  Tensor t = tg::tensor({1, 2.5, -3, 4}, {2, 2});
  std::string s = t.str();
  CHECK(contains(s, "tensor("));
  CHECK(contains(s, "1.0000"));
  CHECK(contains(s, "2.5000"));
  CHECK(contains(s, "-3.0000"));
  CHECK(contains(s, "shape=[2, 2]"));
  CHECK(contains(s, "dtype=float32"));
  CHECK_FALSE(contains(s, "grad_fn"));
  std::ostringstream os;
  os << t;
  CHECK(os.str() == s);

  std::string ints = tg::arange(0, 3).str();
  CHECK(contains(ints, "[0, 1, 2]"));
  CHECK(contains(ints, "dtype=int64"));

  Tensor x = tg::ones({2}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  CHECK(contains(x.str(), "requires_grad=true"));
  CHECK(contains(x.str(), "dtype=float64"));
  std::string prod = (x * x).str();
  CHECK(contains(prod, "grad_fn=<mul>"));
  CHECK(contains((x + x).str(), "grad_fn=<add>"));
  CHECK(contains(tg::exp(x).str(), "grad_fn=<exp>"));

  std::string scalar = tg::scalar_tensor(3.5, tg::kFloat64).str();
  CHECK(contains(scalar, "3.5000"));
  CHECK(contains(scalar, "shape=[]"));
  CHECK(Tensor().str() == "tensor(undefined)");

  // Large tensors are summarised.
  std::string big = tg::arange(0, 5000, 1, tg::kFloat32).str();
  CHECK(contains(big, "..."));
  CHECK(contains(big, "4999.0000"));
  CHECK_FALSE(contains(big, "2500.0000"));
  CHECK(big.size() < 400);
  // 3-d nesting.
  std::string cube = tg::arange(0, 8).reshape({2, 2, 2}).str();
  CHECK(contains(cube, "[[[0, 1]"));
  CHECK(contains(cube, "shape=[2, 2, 2]"));
}

// ---------------------------------------------------------------------------------------------
// Broadcasting and dtype promotion
// ---------------------------------------------------------------------------------------------

TEST_CASE("broadcasting follows NumPy's rules") {
  Tensor a = tg::tensor({1, 2, 3, 4, 5, 6}, {2, 3}, tg::kFloat64);
  Tensor row = tg::tensor({10, 20, 30}, {3}, tg::kFloat64);
  Tensor col = tg::tensor({100, 200}, {2, 1}, tg::kFloat64);
  Tensor r = a + row;
  CHECK(r.shape() == tg::Shape{2, 3});
  CHECK(values(r) == std::vector<double>{11, 22, 33, 14, 25, 36});
  CHECK(values(a * col) == std::vector<double>{100, 200, 300, 800, 1000, 1200});
  Tensor outer = col - row;  // [2, 1] - [3] -> [2, 3]
  CHECK(outer.shape() == tg::Shape{2, 3});
  CHECK(values(outer) == std::vector<double>{90, 80, 70, 190, 180, 170});
  Tensor s = tg::scalar_tensor(2, tg::kFloat64);
  CHECK((a / s).shape() == tg::Shape{2, 3});
  CHECK(values(10.0 - a)[0] == 9);
  CHECK(values(a / 2.0)[5] == 3);
  CHECK(values(2.0 / row)[0] == 0.2);
  Tensor b3 = tg::ones({4, 1, 3}, tg::kFloat64) * tg::ones({2, 1}, tg::kFloat64);
  CHECK(b3.shape() == tg::Shape{4, 2, 3});
  Tensor with_zero = tg::ones({0, 3}) + tg::ones({3});
  CHECK(with_zero.shape() == tg::Shape{0, 3});
}

TEST_CASE("broadcasting: the gradient is summed back to each operand's shape") {
  Tensor a = tg::ones({2, 3}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  Tensor row = tg::ones({3}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  Tensor col = tg::ones({2, 1}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  ((a + row) * col).sum().backward();
  CHECK(row.grad().shape() == tg::Shape{3});
  CHECK(values(row.grad()) == std::vector<double>{2, 2, 2});
  CHECK(col.grad().shape() == tg::Shape{2, 1});
  CHECK(values(col.grad()) == std::vector<double>{6, 6});
  CHECK(values(a.grad()) == std::vector<double>(6, 1.0));
}

TEST_CASE("broadcasting errors name the op and both shapes") {
  Tensor a = tg::zeros({2, 3});
  Tensor b = tg::zeros({4});
  check_error([&] { a + b; }, {"add", "[2, 3]", "[4]"});
  check_error([&] { a - b; }, {"sub", "[2, 3]", "[4]"});
  check_error([&] { b * a; }, {"mul", "[4]", "[2, 3]"});
  check_error([&] { a / b; }, {"div", "[2, 3]", "[4]"});
  check_error([&] { tg::maximum(a, tg::zeros({3, 3})); }, {"maximum", "[2, 3]", "[3, 3]"});
  check_error([&] { tg::where(tg::zeros({5}), a, a); }, {"where", "[5]", "[2, 3]"});
  check_error([&] { tg::eq(a, b); }, {"eq", "[2, 3]", "[4]"});
}

TEST_CASE("dtype promotion") {
  Tensor f = tg::ones({2});
  Tensor d = tg::ones({2}, tg::kFloat64);
  Tensor i = tg::ones({2}, tg::kInt64);
  CHECK((f + d).dtype() == tg::kFloat64);
  CHECK((i + f).dtype() == tg::kFloat32);
  CHECK((i * d).dtype() == tg::kFloat64);
  CHECK((i + 2.0).dtype() == tg::kInt64);
  CHECK((i * 0.5).dtype() == tg::kFloat32);
  CHECK(values(i * 0.5) == std::vector<double>{0.5, 0.5});
  CHECK((f * 2.0).dtype() == tg::kFloat32);
  CHECK(tg::matmul(tg::ones({2, 2}), tg::ones({2, 2}, tg::kFloat64)).dtype() == tg::kFloat64);
}

// ---------------------------------------------------------------------------------------------
// int64 arithmetic and comparisons
// ---------------------------------------------------------------------------------------------

TEST_CASE("int64 arithmetic is exact") {
  const int64_t big = (int64_t(1) << 53) + 1;  // not representable in float64
  Tensor a = tg::tensor({0, 5, -7}, {3}, tg::kInt64);
  a.data_ptr<int64_t>()[0] = big;
  Tensor b = tg::tensor({1, 3, 2}, {3}, tg::kInt64);
  CHECK((a + b).to_vector<int64_t>() == std::vector<int64_t>{big + 1, 8, -5});
  CHECK((a - b).to_vector<int64_t>() == std::vector<int64_t>{big - 1, 2, -9});
  CHECK((a * b).to_vector<int64_t>() == std::vector<int64_t>{big, 15, -14});
  CHECK((-a).to_vector<int64_t>() == std::vector<int64_t>{-big, -5, 7});
  CHECK(tg::abs(a).to_vector<int64_t>() == std::vector<int64_t>{big, 5, 7});
  CHECK(tg::sum(a).item<int64_t>() == big - 2);
  CHECK(tg::sum(a).dtype() == tg::kInt64);
  CHECK(tg::max(a).item<int64_t>() == big);
  CHECK(tg::min(a).item<int64_t>() == -7);
  CHECK(tg::argmax(b, 0).item<int64_t>() == 1);
  Tensor m = tg::matmul(tg::tensor({1, 2, 3, 4}, {2, 2}, tg::kInt64), tg::tensor({5, 6, 7, 8}, {2, 2}, tg::kInt64));
  CHECK(m.dtype() == tg::kInt64);
  CHECK(m.to_vector<int64_t>() == std::vector<int64_t>{19, 22, 43, 50});
  CHECK((a + int64_t(1)).dtype() == tg::kInt64);
  CHECK(tg::relu(tg::tensor({-3, 4}, {2}, tg::kInt64)).to_vector<int64_t>() == std::vector<int64_t>{0, 4});
  CHECK_THROWS_WITH_AS(tg::exp(a), doctest::Contains("int64"), tg::Error);
  CHECK_THROWS_WITH_AS(tg::mean(a), doctest::Contains("int64"), tg::Error);
}

TEST_CASE("comparisons return 0/1 in the inputs' dtype and carry no gradient") {
  Tensor x = tg::tensor({1, 2, 3}, {3}, tg::TensorOptions().requires_grad(true));
  Tensor two = tg::scalar_tensor(2);
  CHECK(values(tg::eq(x, two)) == std::vector<double>{0, 1, 0});
  CHECK(values(tg::ne(x, two)) == std::vector<double>{1, 0, 1});
  CHECK(values(tg::lt(x, two)) == std::vector<double>{1, 0, 0});
  CHECK(values(tg::le(x, two)) == std::vector<double>{1, 1, 0});
  CHECK(values(tg::gt(x, two)) == std::vector<double>{0, 0, 1});
  CHECK(values(tg::ge(x, two)) == std::vector<double>{0, 1, 1});
  CHECK(tg::eq(x, two).dtype() == tg::kFloat32);
  CHECK_FALSE(tg::lt(x, two).requires_grad());
  Tensor i = tg::tensor({1, 5}, {2}, tg::kInt64);
  CHECK(tg::gt(i, tg::tensor({3, 3}, {2}, tg::kInt64)).dtype() == tg::kInt64);
  CHECK(tg::gt(i, tg::tensor({3, 3}, {2}, tg::kInt64)).to_vector<int64_t>() == std::vector<int64_t>{0, 1});
  CHECK(tg::gt(i, tg::scalar_tensor(2.5, tg::kFloat64)).dtype() == tg::kFloat64);
  // Broadcast comparison.
  Tensor m = tg::lt(tg::tensor({0, 1, 2}, {3, 1}), tg::tensor({0, 1, 2}, {3}));
  CHECK(m.shape() == tg::Shape{3, 3});
  CHECK(values(m) == std::vector<double>{0, 1, 1, 0, 0, 1, 0, 0, 0});
  // NaN compares unequal to everything.
  Tensor nan = tg::full({1}, std::nan(""));
  CHECK(values(tg::eq(nan, nan)) == std::vector<double>{0});
  CHECK(values(tg::ne(nan, nan)) == std::vector<double>{1});
}

// ---------------------------------------------------------------------------------------------
// Errors of shape-taking ops: tg::Error naming the op and the shapes
// ---------------------------------------------------------------------------------------------

TEST_CASE("reshape errors") {
  Tensor x = tg::zeros({2, 3});
  check_error([&] { x.reshape({4, 2}); }, {"reshape", "[4, 2]", "[2, 3]"});
  check_error([&] { x.reshape({-1, 4}); }, {"reshape", "[-1, 4]", "[2, 3]"});
  check_error([&] { x.reshape({-1, -1}); }, {"reshape", "[-1, -1]"});
  check_error([&] { x.reshape({-2, 3}); }, {"reshape", "[-2, 3]"});
  check_error([&] { x.view({7}); }, {"[7]", "[2, 3]"});
  check_error([&] { x.flatten(1, 0); }, {"flatten"});
  CHECK(x.reshape({-1}).shape() == tg::Shape{6});
  CHECK(tg::zeros({0, 3}).reshape({3, 0}).shape() == tg::Shape{3, 0});
}

TEST_CASE("permute and transpose errors") {
  Tensor x = tg::zeros({2, 3});
  check_error([&] { x.permute({0}); }, {"permute", "[2, 3]", "[0]"});
  check_error([&] { x.permute({0, 0}); }, {"permute", "[2, 3]", "[0, 0]"});
  check_error([&] { x.permute({0, 5}); }, {"permute", "[2, 3]", "[0, 5]"});
  check_error([&] { x.permute({0, 1, 2}); }, {"permute", "[2, 3]"});
  check_error([&] { x.transpose(0, 2); }, {"transpose", "[2, 3]"});
  check_error([&] { tg::zeros({2, 2, 2}).t(); }, {"[2, 2, 2]"});
  CHECK(x.permute({-1, 0}).shape() == tg::Shape{3, 2});
}

TEST_CASE("slice and narrow errors") {
  Tensor x = tg::zeros({2, 3});
  check_error([&] { tg::slice(x, 2, 0, 1); }, {"slice", "[2, 3]"});
  check_error([&] { tg::slice(x, 1, 0, 2, 0); }, {"slice", "[2, 3]", "step"});
  check_error([&] { x.narrow(1, 2, 5); }, {"narrow", "[2, 3]"});
  check_error([&] { x.narrow(3, 0, 1); }, {"narrow", "[2, 3]"});
  // Out-of-range bounds clamp, as Python slicing does.
  CHECK(tg::slice(x, 1, 1, 100).shape() == tg::Shape{2, 2});
  CHECK(tg::slice(x, 1, -2, 3).shape() == tg::Shape{2, 2});
  CHECK(tg::slice(x, 0, 2, 1).shape() == tg::Shape{0, 3});
}

TEST_CASE("cat and stack errors") {
  Tensor a = tg::zeros({2, 3});
  check_error([&] { tg::cat({a, tg::zeros({3, 4})}, 0); }, {"cat", "[2, 3]", "[3, 4]"});
  check_error([&] { tg::cat({a, tg::zeros({2, 3}, tg::kFloat64)}, 0); }, {"cat", "float32", "float64"});
  check_error([&] { tg::cat({a, tg::zeros({2, 3, 1})}, 0); }, {"cat", "[2, 3]", "[2, 3, 1]"});
  check_error([&] { tg::cat({a, a}, 2); }, {"cat", "[2, 3]"});
  check_error([&] { tg::cat({}, 0); }, {"cat"});
  check_error([&] { tg::stack({a, tg::zeros({3, 2})}); }, {"stack", "[2, 3]", "[3, 2]"});
  CHECK(tg::cat({a, tg::zeros({2, 1})}, 1).shape() == tg::Shape{2, 4});
  CHECK(tg::cat({a, tg::zeros({0, 3})}, 0).shape() == tg::Shape{2, 3});
  CHECK(tg::stack({a, a}, 1).shape() == tg::Shape{2, 2, 3});
}

TEST_CASE("matmul errors") {
  check_error([] { tg::matmul(tg::zeros({2, 3}), tg::zeros({4, 5})); }, {"matmul", "[2, 3]", "[4, 5]"});
  check_error([] { tg::matmul(tg::zeros({3}), tg::zeros({4})); }, {"matmul", "[3]", "[4]"});
  check_error([] { tg::matmul(tg::zeros({2, 3}), tg::zeros({4})); }, {"matmul", "[2, 3]", "[4]"});
  check_error([] { tg::matmul(tg::zeros({2, 2, 3}), tg::zeros({3, 3, 4})); }, {"matmul", "[2, 2, 3]", "[3, 3, 4]"});
  check_error([] { tg::matmul(tg::zeros({2, 3}), tg::zeros({})); }, {"matmul", "[2, 3]", "[]"});
  // The valid forms.
  CHECK(tg::matmul(tg::ones({3}), tg::ones({3})).dim() == 0);
  CHECK(tg::matmul(tg::ones({2, 3}), tg::ones({3})).shape() == tg::Shape{2});
  CHECK(tg::matmul(tg::ones({3}), tg::ones({3, 4})).shape() == tg::Shape{4});
  CHECK(tg::matmul(tg::ones({5, 2, 3}), tg::ones({3, 4})).shape() == tg::Shape{5, 2, 4});
  CHECK(tg::matmul(tg::ones({5, 1, 2, 3}), tg::ones({4, 3, 2})).shape() == tg::Shape{5, 4, 2, 2});
}

TEST_CASE("unfold and fold errors") {
  check_error([] { tg::unfold(tg::zeros({3, 4}), tg::WindowOptions({2})); }, {"unfold", "[3, 4]"});
  check_error([] { tg::unfold(tg::zeros({1, 1, 3, 3}), tg::WindowOptions({5})); }, {"unfold", "[1, 1, 3, 3]"});
  check_error([] { tg::unfold(tg::zeros({1, 1, 3, 3}), tg::WindowOptions({2, 2, 2})); }, {"unfold", "[2, 2, 2]"});
  check_error([] { tg::unfold(tg::zeros({1, 1, 3, 3}), tg::WindowOptions({2}).stride({0})); }, {"unfold", "stride"});
  check_error([] { tg::unfold(tg::zeros({1, 1, 3, 3}), tg::WindowOptions()); }, {"unfold", "kernel_size"});
  check_error([] { tg::fold(tg::zeros({1, 4, 5}), {3, 3}, tg::WindowOptions({2})); }, {"fold", "[1, 4, 5]"});
  CHECK(tg::unfold(tg::zeros({1, 2, 3, 3}), tg::WindowOptions({2})).shape() == tg::Shape{1, 8, 4});
}

TEST_CASE("other shape errors") {
  Tensor x = tg::zeros({2, 3});
  check_error([&] { x.expand({4, 3}); }, {"expand", "[2, 3]", "[4, 3]"});
  check_error([&] { x.expand({3}); }, {"expand", "[2, 3]", "[3]"});
  check_error([&] { tg::pad(x, {1}); }, {"pad", "[2, 3]"});
  check_error([&] { tg::index_select(x, 0, tg::tensor({0, 2}, {2}, tg::kInt64)); }, {"index_select", "2"});
  check_error([&] { tg::index_select(x, 0, tg::tensor({0}, {1})); }, {"index_select", "int64"});
  check_error([&] { tg::gather(x, 1, tg::tensor({0, 5}, {2, 1}, tg::kInt64)); }, {"gather", "5"});
  check_error([&] { tg::sum(x, {0, 0}); }, {"sum"});
  check_error([&] { tg::clamp(x, 1, 0); }, {"clamp"});
  check_error([&] { tg::split(x, 0); }, {"split"});
}

}  // TEST_SUITE

TEST_CASE("int64 division is true division (float32), as in PyTorch, and never traps on zero") {
  Tensor a = tg::tensor({5, 3, 1}, {3}, tg::kInt64), b = tg::tensor({2, 2, 0}, {3}, tg::kInt64);
  Tensor q = a / b;
  CHECK(q.dtype() == tg::kFloat32);
  auto v = q.to_vector<double>();
  CHECK(v[0] == 2.5);
  CHECK(v[1] == 1.5);
  CHECK(std::isinf(v[2]));
  CHECK((a / 2.0).to_vector<double>()[0] == 2.5);
}

TEST_CASE("in-place ops work on the const handle grad() returns, as API.md writes w.grad().zero_()") {
  Tensor w = tg::ones({2}).requires_grad_();
  (w * 3.0).sum().backward();
  w.grad().zero_();
  CHECK(w.grad().to_vector<double>() == std::vector<double>{0, 0});
}

TEST_CASE("var in float32 does not cancel when the mean dwarfs the spread (prim::moments)") {
  // Values near 1e4 with a spread of 0.1: a naive E[x^2] - E[x]^2 in float32 loses every digit.
  tg::manual_seed(3);
  Tensor x = tg::randn({4096}) * 0.1 + 1e4;
  const double v32 = tg::var(x, {0}).item<double>();
  const double v64 = tg::var(x.to(tg::kFloat64), {0}).item<double>();
  CHECK(v32 == doctest::Approx(v64).epsilon(1e-4));
  CHECK(v64 == doctest::Approx(0.01).epsilon(0.1));
}

TEST_CASE("unfold of a large batch (streamed to memory) equals the per-sample unfolds; fold likewise") {
  // 4 x [16, 63, 65] with a 3x3 window: 8.9 MB of output takes the non-temporal-store path,
  // one sample (2.2 MB) the ordinary one. 61 x 63 positions: plane blocks start unaligned, and
  // without padding their last values are data, not zeros.
  tg::manual_seed(5);
  Tensor x = tg::randn({4, 16, 63, 65});
  const auto o = tg::WindowOptions({3});
  Tensor all = tg::unfold(x, o);
  std::vector<Tensor> parts;
  for (int64_t n = 0; n < 4; ++n) parts.push_back(tg::unfold(tg::narrow(x, 0, n, 1), o));
  CHECK(all.to_vector<float>() == tg::cat(parts, 0).to_vector<float>());
  Tensor back = tg::fold(all, {63, 65}, o);
  std::vector<Tensor> folded;
  for (int64_t n = 0; n < 4; ++n) folded.push_back(tg::fold(parts[size_t(n)], {63, 65}, o));
  CHECK(back.to_vector<float>() == tg::cat(folded, 0).to_vector<float>());
  // Each interior pixel is covered by all 9 windows: fold(unfold(x)) = 9 x there.
  CHECK(back.to_vector<float>()[size_t(132)] == doctest::Approx(9.0f * x.to_vector<float>()[size_t(132)]));
  // Streamed row by row from a padded plane: padding, dilation along w, stride 2 along h.
  Tensor x2 = tg::randn({4, 16, 127, 65});
  const auto o3 = tg::WindowOptions({3, 3}).padding({1, 2}).dilation({1, 2}).stride({2, 1});
  Tensor all2 = tg::unfold(x2, o3);  // [4, 144, 64 * 65]: 9.6 MB, one sample 2.4 MB
  std::vector<Tensor> parts2;
  for (int64_t n = 0; n < 4; ++n) parts2.push_back(tg::unfold(tg::narrow(x2, 0, n, 1), o3));
  CHECK(all2.to_vector<float>() == tg::cat(parts2, 0).to_vector<float>());
  // fold streams its own output from 8 MiB: 2 x [16, 251, 263] is 8.4 MB (one sample 4.2 MB);
  // rows of 263 floats start unaligned. A 1x2 window keeps the input small.
  const auto o2 = tg::WindowOptions({1, 2}).padding({0, 1});
  Tensor cols2 = tg::randn({2, 16 * 2, 251 * 264});
  Tensor big = tg::fold(cols2, {251, 263}, o2);
  std::vector<Tensor> halves;
  for (int64_t n = 0; n < 2; ++n) halves.push_back(tg::fold(tg::narrow(cols2, 0, n, 1), {251, 263}, o2));
  CHECK(big.to_vector<float>() == tg::cat(halves, 0).to_vector<float>());
}

TEST_CASE("fold in float32 equals fold in float64") {
  // Wide rows, padding on one side only, dilation, 1-D and 3-D windows,
  // and a stride of 2.
  struct Row {
    tg::Shape out;
    tg::WindowOptions o;
    int64_t c;
  };
  const std::vector<Row> rows = {
      {{5, 150}, tg::WindowOptions({3}).padding({1}), 3},
      {{7, 9}, tg::WindowOptions({3, 5}).padding({0, 2}).dilation({2, 1}), 2},
      {{40}, tg::WindowOptions({4}).padding({3}).dilation({3}), 2},
      {{3, 4, 19}, tg::WindowOptions({3}).padding({1}), 2},
      {{6, 6}, tg::WindowOptions({3}).padding({1}).stride({2}), 3},
  };
  tg::manual_seed(11);
  for (const Row& r : rows) {
    Tensor x = tg::randn([&] { tg::Shape s{2, r.c}; s.insert(s.end(), r.out.begin(), r.out.end()); return s; }(),
                         tg::kFloat64);
    Tensor cols = tg::unfold(x, r.o);
    Tensor f64 = tg::fold(cols, r.out, r.o), f32 = tg::fold(cols.to(tg::kFloat32), r.out, r.o);
    REQUIRE(f32.shape() == f64.shape());
    const auto a = f32.to_vector<float>();
    const auto b = f64.to_vector<double>();
    double err = 0;
    double scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      err = std::max(err, std::fabs(double(a[i]) - b[i]));
      scale = std::max(scale, std::fabs(b[i]));
    }
    CHECK(err < 1e-6 * scale);
  }
}
