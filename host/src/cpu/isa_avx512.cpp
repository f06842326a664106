// The host CPU kernels compiled for avx512 (see isa_impl.inc; the -m flags are
// set in host/CMakeLists.txt).
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(__AVX512F__)
#error "isa_avx512.cpp needs its -m flags (host/CMakeLists.txt)"
#endif
#define Eigen vkq_eigen_avx512
#define VKQ_ISA_NS avx512
#define VKQ_ISA_ENUM Isa::avx512
#include "isa_impl.inc"
