// vkq_make_keys OUT.safetensors --kind planted|gaussian [--rows N] [--d D] [--seed S]
// Writes one (rows, d) fp32 tensor "keys" of synthetic vectors for `vkquant
// gauge`: planted-rotation keys, or Gaussian keys with a random covariance.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "../rotation_data.hpp"
#include "vkquant/safetensors.hpp"

int main(int argc, char** argv) {
  std::string out, kind = "planted";
  long rows = 65536, d = 128;
  std::uint64_t seed = 1;
  CLI::App app{"synthetic key sets for vkquant gauge"};
  app.add_option("out", out, "output .safetensors")->required();
  app.add_option("--kind", kind)->check(CLI::IsMember({"planted", "gaussian"}));
  app.add_option("--rows", rows)->check(CLI::Range(2L, 1L << 26));
  app.add_option("--d", d)->check(CLI::Range(1L, 16384L));
  app.add_option("--seed", seed);
  CLI11_PARSE(app, argc, argv);
  try {
    vkq::rot::RowMat v;
    if (kind == "planted") {
      v = vkq::testdata::planted_keys(rows, d, seed);
    } else {
      // Correlated Gaussian: z A with A a random matrix, plus a mean.
      const vkq::rot::RowMat z = vkq::testdata::iid(rows, d, vkq::testdata::Dist::gaussian, seed);
      const vkq::rot::RowMat a = vkq::testdata::iid(d, d, vkq::testdata::Dist::gaussian, seed + 1) / float(std::sqrt(double(d)));
      v = z * a;
      const vkq::rot::RowMat mu = vkq::testdata::iid(1, d, vkq::testdata::Dist::gaussian, seed + 2);
      v.rowwise() += mu.row(0);
    }
    vkq::write_safetensors(out, {vkq::f32_tensor("keys", {std::uint64_t(rows), std::uint64_t(d)}, {v.data(), std::size_t(v.size())})},
                           {{"generator", "vkq_make_keys"}, {"kind", kind}, {"seed", std::to_string(seed)}});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vkq_make_keys: %s\n", e.what());
    return 1;
  }
  return 0;
}
