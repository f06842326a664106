// Weight storage types: ggml's block formats as GGUF files store them
// (ggml-common.h block structs, ggml-quants.c dequantize_row_*), plus f32,
// f16 and bf16. The CPU reference decode here is the definition the Vulkan
// kernels (shaders/include/quant.h) are tested against, bit for bit in the
// decoded fp32 values; quantize() writes the same blocks (used by
// `vkquant quantize` and the tests).
//
// Values are the ggml type ids, so a GGUF tensor's type field converts with
// quant::find(). Every block is little-endian, fp16 fields are IEEE binary16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace vkq::quant {

enum class Type : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  iq4_nl = 20,
  iq4_xs = 23,
  bf16 = 30,
};

struct TypeInfo {
  Type type;
  const char* name;       // lower case, as the CLI spells it: "q4_k"
  const char* ggml_name;  // as ggml and GGUF tools print it: "Q4_K"
  std::uint32_t block;    // elements per block (1 for f32/f16/bf16)
  std::uint32_t bytes;    // bytes per block
};

// Every type above, in enum order.
std::span<const TypeInfo> types();
const TypeInfo& info(Type t);
// The type with this ggml id, or nullptr (a ggml type vkquant does not read:
// callers refuse it naming the tensor and ggml_type_name()).
const TypeInfo* find(std::uint32_t ggml_id);
// ggml's name of any ggml type id ("IQ2_XXS", "TQ1_0", ...; "type 77" when
// unknown, in a per-thread buffer valid until the next such call).
const char* ggml_type_name(std::uint32_t ggml_id);
// Elements and bytes per block of every type ggml defines, read here or not
// (so a file holding IQ2_XXS can still be listed and sized); nullopt for an
// id ggml does not define.
struct BlockLayout {
  std::uint32_t block;  // elements per block
  std::uint32_t bytes;  // bytes per block
};
std::optional<BlockLayout> ggml_block_layout(std::uint32_t ggml_id);
// "F32, F16, Q4_0, ...": the ggml names of types(), for messages.
std::string supported_names();
// By name, either spelling ("q4_k", "Q4_K"); nullopt when unknown.
std::optional<Type> parse(std::string_view name);
inline bool is_block_quant(Type t) { return t != Type::f32 && t != Type::f16 && t != Type::bf16; }

// Bytes of n elements of one row; throws vkq::Error when n is not a multiple
// of the block.
std::uint64_t row_bytes(Type t, std::uint64_t n);

// Decodes src (exactly row_bytes(t, dst.size()) bytes) into dst, as ggml's
// dequantize_row_* / to_float does. Throws vkq::Error on a size mismatch.
void dequantize(Type t, std::span<const std::byte> src, std::span<float> dst);

// Whether quantize() writes type t.
bool can_quantize(Type t);
// Encodes src into dst (exactly row_bytes(t, src.size()) bytes) with the
// scales ggml's reference quantizers choose (quantize_row_*_ref; for iq4_nl
// and iq4_xs ggml_quantize_chunk's search without an importance matrix), byte
// for byte. Throws vkq::Error naming the type when !can_quantize(t), and for
// block types when a value is NaN or infinite (f32/f16/bf16 keep them).
// Thread-safe; blocks are independent, so callers may split rows across threads.
void quantize(Type t, std::span<const float> src, std::span<std::byte> dst);

// Test data: random bytes for every bit of every block, with each fp16 scale
// or minimum field set to a finite value of moderate size (|d| in
// [2^-10, 2^-2]; negative too, except where ggml's quantizer writes only
// non-negative ones: the d of q4_1/q5_1, the d and dmin of q2_k/q4_k/q5_k),
// so decoding gives finite values that exercise every code. For f32, f16 and
// bf16 every element is such a value (random mantissa, either sign).
// dst.size() must be a multiple of the block bytes (else vkq::Error); the
// same seed gives the same bytes on every platform (mt19937_64).
void fill_random_blocks(Type t, std::span<std::byte> dst, std::uint64_t seed);

}  // namespace vkq::quant
