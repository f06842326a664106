// Splitting work so that every storage-buffer binding fits in
// maxStorageBufferRange. Kernels over rows bind whole rows per chunk.
#pragma once

#include <algorithm>
#include <cstdint>

#include "vkquant/device.hpp"
#include "vkquant/error.hpp"

namespace vkq {

// Rows of `row_bytes` that fit in one binding, rounded down to a multiple of
// `granule` rows (so chunk offsets stay aligned); at least `granule`.
inline std::uint64_t rows_per_binding(const Device& d, std::uint64_t row_bytes, std::uint64_t granule = 1) {
  if (row_bytes == 0 || granule == 0) throw Error("rows_per_binding: zero row size or granule");
  const std::uint64_t rows = d.binding_chunk_bytes() / row_bytes / granule * granule;
  if (rows == 0) throw Error("one row of " + std::to_string(row_bytes) + " bytes exceeds maxStorageBufferRange");
  return rows;
}

// Calls f(first, count) over [0, n) in pieces of at most `chunk`.
template <class F>
void for_each_chunk(std::uint64_t n, std::uint64_t chunk, F&& f) {
  for (std::uint64_t first = 0; first < n; first += chunk) f(first, std::min(chunk, n - first));
}

}  // namespace vkq
