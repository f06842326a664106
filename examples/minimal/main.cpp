// Opens the default Vulkan device, copies a buffer with a vkquant kernel and
// checks the result. Exit 0 on success.
#include <cstdio>
#include <vector>

#include <vkquant/buffer.hpp>
#include <vkquant/device.hpp>
#include <vkquant/error.hpp>
#include <vkquant/instance.hpp>
#include <vkquant/roofline.hpp>
#include <vkquant/stream.hpp>

int main() try {
  vkq::Instance instance = vkq::Instance::create();
  vkq::Device device = vkq::Device::create(instance);
  std::printf("device: %s (%s)\n", device.info().name.c_str(), device.info().type_name().c_str());

  const std::uint64_t n = 100003;
  std::vector<float> host(n);
  for (std::uint64_t i = 0; i < n; ++i) host[i] = float(i) * 0.5f;
  vkq::Buffer src = vkq::Buffer::create(device, n * sizeof(float));
  vkq::Buffer dst = vkq::Buffer::create(device, n * sizeof(float));
  src.upload(host.data(), n * sizeof(float));

  vkq::Stream stream = vkq::Stream::create(device);
  vkq::roofline::copy(stream, src, dst, n);
  stream.submit_and_wait();

  std::vector<float> out(n);
  dst.download(out.data(), n * sizeof(float));
  for (std::uint64_t i = 0; i < n; ++i) {
    if (out[i] != host[i]) {
      std::fprintf(stderr, "mismatch at %llu: %g != %g\n", (unsigned long long)i, out[i], host[i]);
      return 1;
    }
  }
  if (instance.validation_errors() != 0) {
    std::fprintf(stderr, "%u validation errors\n", instance.validation_errors());
    return 1;
  }
  std::printf("copied %llu floats on the GPU: OK\n", (unsigned long long)n);
  return 0;
} catch (const vkq::Error& e) {
  std::fprintf(stderr, "vkquant_minimal: %s\n", e.what());
  return 1;
}
