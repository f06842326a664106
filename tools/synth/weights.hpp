// Deterministic random weights, produced row by row and streamed: each row's
// values come from a generator seeded by (seed, Hugging Face tensor name,
// row), so a tensor is the same in every format, shard layout and layer count,
// and the GGUF q/k row permutation only changes which row is produced when.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "plan.hpp"

namespace vkq::synth {

enum class Storage { bf16, f16, f32 };

// Bytes one element takes in `s`.
std::uint32_t storage_bytes(Storage s);

// Receives consecutive pieces of a tensor's bytes (a few MiB at most).
using ByteSink = std::function<void(std::span<const std::byte>)>;

// Produces tensor `t` in `s`, row-major; `permuted` applies t.permute_heads
// (GGUF row h*hd + 2i + j holds Hugging Face row h*hd + (hd/2)*j + i).
void emit_tensor(const PlannedTensor& t, Storage s, bool permuted, std::uint64_t seed, float stddev, const ByteSink& sink);

// The value of element (row, col) of tensor `t` before storage rounding (tests).
float tensor_value(const PlannedTensor& t, std::uint64_t row, std::uint64_t col, std::uint64_t seed, float stddev);

}  // namespace vkq::synth
