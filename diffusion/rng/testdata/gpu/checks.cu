// Spot checks of the GPU arithmetic that cuda.go and mufu.go reproduce:
// __sincosf at the top of its range, a hash of logf on every 97th float in
// [2^-33, 1] (TestCUDALogfMatchesHardware), and that sqrtf is correctly
// rounded on [2^-24, 64).
//
//   nvcc -O3 -arch=sm_90 -o checks checks.cu && ./checks
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <vector>
__global__ void k_sc(const float* v, float* s, float* c, int n) {
  int i = threadIdx.x; if (i < n) { float a, b; __sincosf(v[i], &a, &b); s[i] = a; c[i] = b; }
}
__global__ void k_log(uint32_t start, uint32_t stride, float* o, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) o[i] = logf(__uint_as_float(start + (uint32_t)i * stride));
}
__global__ void k_sqrt(uint32_t start, int n, unsigned long long* bad) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    float x = __uint_as_float(start + (uint32_t)i);
    float a = sqrtf(x);
    float b = __double2float_rn(sqrt((double)x));
    if (__float_as_uint(a) != __float_as_uint(b)) atomicAdd(bad, 1ull);
  }
}
int main() {
  uint32_t vb[4] = {0x40C90FD9u, 0x40C90FDAu, 0x40C90FDBu, 0x40C90FDCu};
  float *dv, *ds, *dc; cudaMalloc(&dv, 16); cudaMalloc(&ds, 16); cudaMalloc(&dc, 16);
  cudaMemcpy(dv, vb, 16, cudaMemcpyHostToDevice);
  k_sc<<<1, 4>>>(dv, ds, dc, 4);
  uint32_t hs[4], hc[4]; cudaMemcpy(hs, ds, 16, cudaMemcpyDeviceToHost); cudaMemcpy(hc, dc, 16, cudaMemcpyDeviceToHost);
  for (int i = 0; i < 4; i++) printf("sincos(%08x) = %08x %08x\n", vb[i], hs[i], hc[i]);
  uint32_t lo = 0x2f000000u, hi = 0x3f800000u, st = 97;
  int n = (int)((hi - lo) / st) + 1;
  float* o; cudaMalloc(&o, (size_t)n * 4);
  k_log<<<(n + 255) / 256, 256>>>(lo, st, o, n);
  std::vector<uint32_t> h(n); cudaMemcpy(h.data(), o, (size_t)n * 4, cudaMemcpyDeviceToHost);
  unsigned long long sum = 0; for (int i = 0; i < n; i++) sum = sum * 1000003ull + h[i];
  printf("logf stride-97 hash (gpu) %llu n=%d\n", sum, n);
  unsigned long long* bad; cudaMalloc(&bad, 8); cudaMemset(bad, 0, 8);
  uint32_t s0 = 0x33800000u; int m = (int)(0x42800000u - s0);
  k_sqrt<<<(m + 255) / 256, 256>>>(s0, m, bad);
  unsigned long long hb; cudaMemcpy(&hb, bad, 8, cudaMemcpyDeviceToHost);
  printf("sqrtf vs correctly rounded over [2^-24, 64): %llu mismatches of %d (%s)\n", hb, m, cudaGetErrorString(cudaGetLastError()));
  return 0;
}
