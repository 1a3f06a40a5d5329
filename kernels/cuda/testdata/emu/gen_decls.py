#!/usr/bin/env python3
"""Writes K(name, parameters) for every extern "C" __global__ kernel of the
given .cu files, expanding the GEMM(...) and CONV(...) macros of gemm.cu and
the FLASH_TC(...) macro of attention.cu."""
import re
import sys

GEMM = ("float *C, const {a} *A, const {b} *B, int M, int N, int K, int nb, long long sar, long long sac, "
        "long long sab, long long sbr, long long sbc, long long sbb, long long ldc, long long scb, float alpha, float beta")
CONV = ("float *y, const float *x, const {w} *w, const float *bias, int C, int H, int W, int O, int KH, int KW, "
        "int Ho, int Wo, int stride, int pad, long long ncols")
FLASH_TC = ("float *o, const unsigned short *q, const unsigned short *k, const unsigned short *v, int H, int Lq, "
            "int Lk, int D, int Dv, int aligned, long long qsb, long long qsh, long long qsl, long long ksb, "
            "long long ksh, long long ksl, long long vsb, long long vsh, long long vsl, long long osb, "
            "long long osh, long long osl, float scale, int causal")

for path in sys.argv[1:]:
    s = open(path).read()
    for m in re.finditer(r'extern "C" __global__ void (\w+)\(([^)]*)\)', s):
        if m.group(1) != "NAME":
            print(f"K({m.group(1)}, {' '.join(m.group(2).split())})")
    for m in re.finditer(r'^GEMM\((\w+), ([\w ]+), ([\w ]+)\)', s, re.M):
        print(f"K({m.group(1)}, {GEMM.format(a=m.group(2), b=m.group(3))})")
    for m in re.finditer(r'^CONV\((\w+), ([\w ]+)\)', s, re.M):
        print(f"K({m.group(1)}, {CONV.format(w=m.group(2))})")
    for m in re.finditer(r'^FLASH_TC\((\w+),', s, re.M):
        print(f"K({m.group(1)}, {FLASH_TC})")
