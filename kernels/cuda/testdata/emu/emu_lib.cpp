// emu_lib.cpp: the emulated kernels behind a C ABI, for the fake driver of
// emu_test.go: emu_launch runs a kernel by name with cuLaunchKernel's
// parameter array; emu_malloc, emu_free and emu_memcpy stand for device memory
// (host memory here). decls.h, written by run.sh, lists every kernel's
// signature as K(name, parameters).
#include "emu.h"
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

struct Dims {
    long long rank;
    long long shape[6];
    long long strides[3][6];
};
#define K(name, ...) extern "C" void name(__VA_ARGS__);
#include "decls.h"
#undef K

template <class... A, size_t... I> void callp(void (*f)(A...), void **p, std::index_sequence<I...>) {
    f(*(std::remove_cv_t<std::remove_reference_t<A>> *)p[I]...);
}
template <class... A> std::function<void(void **)> wrap(void (*f)(A...)) {
    return [f](void **p) { callp(f, p, std::index_sequence_for<A...>{}); };
}
static std::map<std::string, std::function<void(void **)>> kernels() {
    std::map<std::string, std::function<void(void **)>> m;
#define K(name, ...) m[#name] = wrap(&name);
#include "decls.h"
#undef K
    return m;
}

extern "C" int emu_launch(const char *name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem, void **params) {
    static auto m = kernels();
    auto it = m.find(name);
    if (it == m.end()) {
        fprintf(stderr, "emu: no kernel %s\n", name);
        return 500; // CUDA_ERROR_NOT_FOUND
    }
    auto f = it->second;
    launch({gx, gy, gz}, {bx, by, bz}, smem, [&] { f(params); });
    return 0;
}
extern "C" unsigned long long emu_malloc(unsigned long long n) { return (unsigned long long)aligned_alloc(512, (n + 511) / 512 * 512); }
extern "C" void emu_free(unsigned long long p) { free((void *)p); }
extern "C" void emu_memcpy(unsigned long long dst, unsigned long long src, unsigned long long n) { memcpy((void *)dst, (void *)src, n); }
