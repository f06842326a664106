// The host CPU kernels compiled for avx2 (see isa_impl.inc; the -m flags are
// set in host/CMakeLists.txt).
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(__AVX2__)
#error "isa_avx2.cpp needs its -m flags (host/CMakeLists.txt)"
#endif
#define Eigen vkq_eigen_avx2
#define VKQ_ISA_NS avx2
#define VKQ_ISA_ENUM Isa::avx2
#include "isa_impl.inc"
