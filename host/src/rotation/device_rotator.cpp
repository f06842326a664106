// The rotation GEMMs of the solvers on a Vulkan device, through the rotate
// kernel: the rows are uploaded once per set_rows, each apply uploads R and
// downloads Y.
#include <optional>

#include "vkquant/buffer.hpp"
#include "vkquant/device.hpp"
#include "vkquant/kernels/rotate.hpp"
#include "vkquant/rotation/learn.hpp"
#include "vkquant/stream.hpp"

namespace vkq::rot {

namespace {
class DeviceRotator final : public RowRotator {
 public:
  explicit DeviceRotator(Device& device) : device_(device), stream_(Stream::create(device)) {}

  void set_rows(const RowMat& x) override {
    rows_ = std::uint64_t(x.rows());
    d_ = std::uint32_t(x.cols());
    ensure(x_, rows_ * d_ * 4);
    x_->upload(x.data(), rows_ * d_ * 4);
  }

  void apply(const Eigen::MatrixXf& r, RowMat& y) override {
    run(*x_, rows_, r, y);
  }

  Eigen::MatrixXf abt(const Eigen::MatrixXf& a, const Eigen::MatrixXf& b) override {
    const RowMat ar = a;
    auto tmp = Buffer::create(device_, std::uint64_t(ar.size()) * 4);
    tmp.upload(ar.data(), std::uint64_t(ar.size()) * 4);
    RowMat y;
    run(tmp, std::uint64_t(ar.rows()), b, y);
    return y;
  }

 private:
  // Grows `b` to at least `bytes`.
  void ensure(std::optional<Buffer>& b, std::uint64_t bytes) {
    if (!b || b->size() < bytes) b.emplace(Buffer::create(device_, std::max<std::uint64_t>(bytes, 4)));
  }

  void run(const Buffer& x, std::uint64_t rows, const Eigen::MatrixXf& r, RowMat& y) {
    const auto d = std::uint32_t(r.rows());
    const RowMat rr = r;  // the kernel reads R row-major
    ensure(r_, std::uint64_t(d) * d * 4);
    r_->upload(rr.data(), std::uint64_t(d) * d * 4);
    ensure(y_, rows * d * 4);
    kernels::rotate(stream_, x, *r_, *y_, rows, d);
    stream_.submit_and_wait();
    y.resize(Eigen::Index(rows), d);
    y_->download(y.data(), rows * d * 4);
  }

  Device& device_;
  Stream stream_;
  std::optional<Buffer> x_, r_, y_;
  std::uint64_t rows_ = 0;
  std::uint32_t d_ = 0;
};
}  // namespace

std::unique_ptr<RowRotator> device_rotator(Device& device) { return std::make_unique<DeviceRotator>(device); }

}  // namespace vkq::rot
