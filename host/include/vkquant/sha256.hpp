// SHA-256 (FIPS 180-4), incremental. Binds calibration artifacts to the model
// they were measured on.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace vkq {

class Sha256 {
 public:
  Sha256();
  void update(std::span<const std::byte> data);
  // The digest as 64 lower-case hex digits; the object is spent afterwards.
  std::string hex();

 private:
  void block(const std::uint8_t* p);
  std::array<std::uint32_t, 8> h_;
  std::array<std::uint8_t, 64> buf_{};
  std::size_t used_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace vkq
