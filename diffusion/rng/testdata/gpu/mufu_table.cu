#include <cstdio>
#include <cstdint>
#include <cmath>
#include <vector>

// Dumps the GPU's __sincosf for every input the special function unit
// distinguishes, the data mufu.go's model was fitted to and checked against.
//
// __sincosf(v) is FMUL.RZ t = v * 0.15915494f; MUFU.SIN/COS t, and MUFU only
// looks at k = floor(t * 2^25). For every k this finds a float v with
// RZ(v * 0.15915494f) in [k, k+1) * 2^-25 and records __sincosf(v), NaN where
// no float v reaches that k. Writes /tmp/sin.raw and /tmp/cos.raw (2^25
// little-endian float32 each). The SHA-256 of the first 2^23 entries of each
// is what TestCUDASineMatchesHardware compares the model against.
//
//   nvcc -O3 -arch=sm_90 -o mufu_table mufu_table.cu && ./mufu_table
__global__ void k_table(float* s, float* c, int n) {
  uint32_t k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= (uint32_t)n) return;
  const float cinv = 0.15915493667125701904f;
  double tm = ((double)k + 0.5) / 33554432.0;
  float v = (float)(tm / (double)cinv);
  bool ok = false;
  int lastDir = 0;
  for (int it = 0; it < 64; it++) {
    float t = __fmul_rz(v, cinv);
    long long kk = (long long)floor((double)t * 33554432.0);
    if (kk == (long long)k) { ok = true; break; }
    int dir = kk < (long long)k ? 1 : -1;
    if (lastDir != 0 && dir != lastDir) break;
    lastDir = dir;
    v = dir > 0 ? nextafterf(v, 1e30f) : nextafterf(v, 0.0f);
  }
  if (!ok) { s[k] = nanf(""); c[k] = nanf(""); return; }
  float ss, cc;
  __sincosf(v, &ss, &cc);
  s[k] = ss; c[k] = cc;
}

int main(int argc, char** argv) {
  const int n = 1 << 25;
  float *s, *c;
  cudaMalloc(&s, n * 4); cudaMalloc(&c, n * 4);
  k_table<<<n / 256, 256>>>(s, c, n);
  std::vector<float> h(n);
  cudaMemcpy(h.data(), s, n * 4, cudaMemcpyDeviceToHost);
  FILE* f = fopen("/tmp/sin.raw", "wb"); fwrite(h.data(), 4, n, f); fclose(f);
  cudaMemcpy(h.data(), c, n * 4, cudaMemcpyDeviceToHost);
  f = fopen("/tmp/cos.raw", "wb"); fwrite(h.data(), 4, n, f); fclose(f);
  printf("table done: %s\n", cudaGetErrorString(cudaGetLastError()));
  return 0;
}
