// CPU reference of the sign-packing kernels (layouts in shaders/include/signpack.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace vkq::ref {

// Row means of v: fp64 sums, rounded to float.
// v (rows, d) -> mean (rows)
void row_mean(std::span<const float> v, std::uint64_t rows, std::uint32_t d, std::span<float> mean);

// Signs and alpha of x = v - mean[r] (mean empty: x = v). alpha from fp64 sums.
// v (rows, d), mean (rows) or empty -> bits (rows, ceil(d/32)), alpha (rows)
void signpack(std::span<const float> v, std::uint64_t rows, std::uint32_t d, std::span<const float> mean,
              std::span<std::uint32_t> bits, std::span<float> alpha);

// alpha * (bit ? +1 : -1) (+ mean[r]).
// bits (rows, ceil(d/32)), alpha (rows), mean (rows) or empty -> out (rows, d)
void signunpack(std::span<const std::uint32_t> bits, std::span<const float> alpha, std::span<const float> mean,
                std::uint64_t rows, std::uint32_t d, std::span<float> out);

// fp16 input layout: v (rows, d) -> (rows, ceil(d/2)) words, lower half = even
// column, odd d pads each row's last upper half with 0.
std::vector<std::uint32_t> pack_half_rows(std::span<const float> v, std::uint64_t rows, std::uint32_t d);
// fp16 alpha layout: alpha (rows) -> (ceil(rows/2)) words, lower half = even row.
std::vector<std::uint32_t> pack_half_pairs(std::span<const float> alpha);
// And back: (ceil(rows/2)) words -> (rows) floats.
std::vector<float> unpack_half_pairs(std::span<const std::uint32_t> words, std::uint64_t rows);

}  // namespace vkq::ref
