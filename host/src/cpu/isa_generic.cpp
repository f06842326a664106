// The host CPU kernels compiled for generic (see isa_impl.inc; the -m flags are
// set in host/CMakeLists.txt).
#define Eigen vkq_eigen_generic
#define VKQ_ISA_NS generic
#define VKQ_ISA_ENUM Isa::generic
#include "isa_impl.inc"
