// autograd::to_dot: a walk over the nodes reachable from the root's grad_fn.
#include "dot.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "node.hpp"

namespace tg::autograd {
namespace {

std::string escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '"' || c == '\\') r += '\\';
    r += c;
  }
  return r;
}

std::string bytes_str(double b) {
  if (b < 1024) return fmt::format("{:.0f} B", b);
  if (b < 1024 * 1024) return fmt::format("{:.1f} KiB", b / 1024);
  return fmt::format("{:.1f} MiB", b / (1024 * 1024));
}

std::string meta(const Node& n) {
  if (n.out_ndim < 0) return "";
  std::vector<int64_t> dims(n.out_dims, n.out_dims + std::min(n.out_ndim, Node::kMetaDims));
  std::string shape = n.out_ndim > Node::kMetaDims ? fmt::format("[{} dims]", n.out_ndim)
                                                   : fmt::format("[{}]", fmt::join(dims, ", "));
  return fmt::format("{} {}", shape, dtype_name(n.meta_dtype));
}

}  // namespace

std::string to_dot(const Tensor& root, const std::vector<std::pair<std::string, Tensor>>& names) {
  std::unordered_map<const TensorImpl*, std::string> leaf_names;
  for (const auto& nt : names)
    if (nt.second.defined()) leaf_names.emplace(nt.second.impl().get(), nt.first);
  std::string out = "digraph tape {\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n";
  if (!root.defined() || !root.impl()->grad_fn) {
    const std::string what = !root.defined() ? "undefined tensor"
                                             : fmt::format("{} {} (no graph)", shape_str(root.shape()),
                                                           dtype_name(root.dtype()));
    return out + fmt::format("  n0 [label=\"{}\"];\n}}\n", escape(what));
  }
  std::unordered_map<const Node*, int> id;
  std::vector<const Node*> order{root.impl()->grad_fn.get()};
  id.emplace(order[0], 0);
  std::string edges;
  for (size_t i = 0; i < order.size(); ++i) {
    const Node& n = *order[i];
    std::string label;
    if (n.accumulator) {
      const auto leaf = n.leaf.lock();
      auto it = leaf ? leaf_names.find(leaf.get()) : leaf_names.end();
      label = escape(it != leaf_names.end() ? it->second : "leaf");
      if (leaf) label += fmt::format("\\n{} {}", shape_str(leaf->shape), dtype_name(leaf->dtype));
      out += fmt::format("  n{} [label=\"{}\", style=filled, fillcolor=\"#dbe9f6\"];\n", i, label);
    } else {
      label = escape(n.name);
      const std::string m = meta(n);
      if (!m.empty()) label += "\\n" + m;
      if (n.out_storage)
        label += "\\nkeeps its output: " + bytes_str(double(shape_numel(n.out_shape)) * double(element_size(n.out_dtype)));
      if (n.released) label += "\\n(freed by a backward)";
      out += fmt::format("  n{} [label=\"{}\"{}];\n", i, label, i == 0 ? ", penwidth=2" : "");
    }
    for (const auto& next : n.next) {
      if (!next) continue;
      auto [it, fresh] = id.emplace(next.get(), int(order.size()));
      if (fresh) order.push_back(next.get());
      edges += fmt::format("  n{} -> n{};\n", i, it->second);
    }
  }
  return out + edges + "}\n";
}

std::string to_dot(const Tensor& root) { return to_dot(root, {}); }

}  // namespace tg::autograd
