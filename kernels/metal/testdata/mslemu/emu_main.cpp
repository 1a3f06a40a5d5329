// emu_main.cpp runs the kernels of the library (library.cpp, the MSL sources
// as TestMSLEmulated rewrites them) on the CPU through the emulation in
// metal_stdlib, on small awkward cases, and compares them with plain loops in
// double precision. It prints one line per failed check and exits 1 if any.

#include <metal_stdlib>
#include "library.cpp"

#include <cstdio>
#include <cstdint>
#include <random>
#include <vector>

using namespace metal;

static int failures = 0;
static std::mt19937 rng(12345);

static std::vector<float> rnd(size_t n, float lo = -2, float hi = 2) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

static ushort f16bits(float f) { half h = (half)f; ushort u; std::memcpy(&u, &h, 2); return u; }
static float f16val(ushort u) { half h; std::memcpy(&h, &u, 2); return (float)h; }

static void check(const char* what, const std::vector<float>& got, const std::vector<double>& want, double tol) {
    double mx = 0;
    for (double w : want) mx = std::max(mx, std::fabs(w));
    size_t bad = 0, worst = 0;
    double worstd = 0;
    for (size_t i = 0; i < want.size(); i++) {
        double d = std::fabs(got[i] - want[i]);
        if (!(d <= tol * std::max(mx, 1e-30))) {
            bad++;
            if (!(d <= worstd)) { worstd = d; worst = i; }
        }
    }
    if (bad) {
        failures++;
        std::printf("FAIL %s: %zu of %zu values off; worst at %zu: got %g, want %g (max %g)\n", what, bad,
                    want.size(), worst, got[worst], want[worst], mx);
    } else {
        std::printf("ok   %s (%zu values)\n", what, want.size());
    }
}

static uint groups(long n, long per) { return uint((n + per - 1) / per); }

static void test_conversions() {
    std::vector<uint32_t> pats = {0, 0x80000000u, 0x3f800000u, 0x477fe000u, 0x477fefffu, 0x477ff000u, 0x7f800000u,
                                  0xff800000u, 0x7fc00001u, 0x7f800001u, 0x33000000u, 0x33000001u, 0x38800000u,
                                  0x387fffffu, 0x3f801000u, 0x3f803000u, 0x3f808000u, 0x3f818000u, 0x00000001u};
    std::uniform_int_distribution<uint32_t> d;
    for (int i = 0; i < 2000000; i++) pats.push_back(d(rng));
    for (int e = 100; e < 145; e++)
        for (int i = 0; i < 2000; i++) pats.push_back(uint32_t(e) << 23 | (d(rng) & 0x807fffffu));
    size_t bad16 = 0, bad16b = 0;
    for (uint32_t p : pats) {
        float f;
        std::memcpy(&f, &p, 4);
        ushort got = f32_to_f16(p), want = f16bits(f);
        bool gotNaN = (got & 0x7fff) > 0x7c00, wantNaN = (want & 0x7fff) > 0x7c00;
        if (gotNaN != wantNaN || (!wantNaN && got != want)) {
            if (bad16++ < 5) std::printf("f32_to_f16(%#x = %g) = %#x, want %#x\n", p, f, got, want);
        }
        // bfloat16: round to nearest even on the bits.
        ushort b = f32_to_bf16(p);
        uint32_t bb = uint32_t(b) << 16;
        float bf;
        std::memcpy(&bf, &bb, 4);
        if (std::isnan(f)) {
            if (!std::isnan(bf)) bad16b++;
            continue;
        }
        // Round to nearest, ties to even, on the dropped 16 bits (a carry out
        // of the largest finite values gives an infinity, as IEEE rounding does).
        uint32_t rem = p & 0xffffu, up = rem > 0x8000u || (rem == 0x8000u && ((p >> 16) & 1u));
        uint32_t want16 = ((p >> 16) + up) << 16;
        if (bb != want16) {
            if (bad16b++ < 5) std::printf("f32_to_bf16(%#x) = %#x, want %#x\n", p, b, want16 >> 16);
        }
    }
    if (bad16 || bad16b) {
        failures++;
        std::printf("FAIL conversions: %zu F16 and %zu BF16 of %zu patterns wrong\n", bad16, bad16b, pats.size());
    } else {
        std::printf("ok   conversions (%zu patterns)\n", pats.size());
    }
}

static void test_copy() {
    // src F32 [3,5,7] read transposed (2,1,0) into a contiguous F16 [7,5,3].
    auto x = rnd(105);
    std::vector<ushort> out(105);
    CopyParams p{};
    p.n = 105; p.rank = 3; p.ddt = DT_F16; p.sdt = DT_F32; p.doff = 0; p.soff = 0;
    int sh[3] = {7, 5, 3}, ds[3] = {15, 3, 1}, ss[3] = {1, 7, 35};
    for (int i = 0; i < 3; i++) { p.shape[i] = sh[i]; p.dstride[i] = ds[i]; p.sstride[i] = ss[i]; }
    dispatch({groups(105, 256), 1, 1}, 256, [&](uint3 tg, uint t) {
        copy_strided((char*)out.data(), (const char*)x.data(), p, tg.x * 256 + t);
    });
    std::vector<float> got(105);
    std::vector<double> want(105);
    for (int a = 0; a < 7; a++)
        for (int b = 0; b < 5; b++)
            for (int c = 0; c < 3; c++) {
                int i = a * 15 + b * 3 + c;
                got[i] = f16val(out[i]);
                want[i] = f16val(f16bits(x[c * 35 + b * 7 + a]));
            }
    check("copy_strided F32->F16 transposed", got, want, 0);
}

static void test_binary() {
    // a [4,1,3] broadcast to [4,5,3]; b [5,1] to [4,5,3]; Div.
    auto a = rnd(12), b = rnd(5, 0.5f, 2);
    std::vector<float> out(60);
    BinaryParams p{};
    p.n = 60; p.op = OP_DIV; p.rank = 3; p.doff = 0; p.adt = DT_F32; p.bdt = DT_F32;
    int sh[3] = {4, 5, 3}, as[3] = {3, 0, 1}, bs[3] = {0, 1, 0};
    for (int i = 0; i < 3; i++) { p.shape[i] = sh[i]; p.astride[i] = as[i]; p.bstride[i] = bs[i]; }
    dispatch({1, 1, 1}, 256, [&](uint3 tg, uint t) { binary(out.data(), (const char*)a.data(), (const char*)b.data(), p, t); });
    std::vector<double> want(60);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 5; j++)
            for (int k = 0; k < 3; k++) want[(i * 5 + j) * 3 + k] = (double)a[i * 3 + k] / b[j];
    check("binary div broadcast", out, want, 1e-6);
}

static void test_gemm(int batch, int m, int k, int n, bool ta, bool tb, bool bshared, bool bias, float alpha, bool f16 = false) {
    auto a = rnd((size_t)batch * m * k);
    auto bf = rnd((size_t)(bshared ? 1 : batch) * k * n);
    std::vector<ushort> b(bf.size());
    for (size_t i = 0; i < b.size(); i++) { b[i] = f16bits(bf[i]); bf[i] = f16val(b[i]); }
    auto bi = rnd(n);
    std::vector<float> out((size_t)batch * m * (n + 3), 7.0f); // rows of stride n+3
    GemmParams p{};
    p.m = m; p.n = n; p.k = k; p.batch = batch; p.alpha = alpha;
    p.adt = DT_F32; p.aoff = 0; p.abat = m * k; p.ars = ta ? 1 : k; p.acs = ta ? m : 1;
    p.bdt = DT_F16; p.boff = 0; p.bbat = bshared ? 0 : k * n; p.brs = tb ? 1 : n; p.bcs = tb ? k : 1;
    p.biasdt = bias ? DT_F32 : 0; p.biasoff = 0; p.biasst = 1;
    p.doff = 0; p.dbat = m * (n + 3); p.drs = n + 3;
    dispatch({groups(n, 32), groups(m, 32), (uint)batch}, 128, [&](uint3 tg, uint t) {
        if (f16)
            gemm_f16(out.data(), (const char*)a.data(), (const char*)b.data(), (const char*)bi.data(), p, tg, t, t / 32);
        else
            gemm(out.data(), (const char*)a.data(), (const char*)b.data(), (const char*)bi.data(), p, tg, t, t / 32);
    });
    std::vector<float> got;
    std::vector<double> want;
    for (int z = 0; z < batch; z++)
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int q = 0; q < k; q++) {
                    double av = a[z * m * k + (ta ? q * m + i : i * k + q)];
                    if (f16) av = f16val(f16bits(float(av)));
                    double bv = bf[(bshared ? 0 : z * k * n) + (tb ? j * k + q : q * n + j)];
                    s += av * bv;
                }
                want.push_back(alpha * s + (bias ? bi[j] : 0));
                got.push_back(out[(size_t)z * m * (n + 3) + (size_t)i * (n + 3) + j]);
            }
    // the padding between rows stays untouched
    for (int z = 0; z < batch; z++)
        for (int i = 0; i < m; i++)
            for (int j = n; j < n + 3; j++) {
                want.push_back(7.0);
                got.push_back(out[(size_t)z * m * (n + 3) + (size_t)i * (n + 3) + j]);
            }
    char name[128];
    std::snprintf(name, sizeof name, "gemm%s %dx[%dx%d]x[%dx%d] ta=%d tb=%d shared=%d bias=%d", f16 ? "_f16" : "", batch, m, k, k, n, ta, tb, bshared, bias);
    check(name, got, want, 1e-5);
}

static void test_conv(int nb, int c, int h, int w, int o, int kh, int kw, int stride, int pad, int padEnd, bool f16 = false) {
    int ho = (h + 2 * pad + padEnd - kh) / stride + 1, wo = (w + 2 * pad + padEnd - kw) / stride + 1;
    auto x = rnd((size_t)nb * c * h * w);
    auto wt = rnd((size_t)o * c * kh * kw, -0.5f, 0.5f);
    auto bias = rnd(o);
    std::vector<float> out((size_t)nb * o * ho * wo);
    ConvParams p{};
    p.c = c; p.h = h; p.w = w; p.o = o; p.kh = kh; p.kw = kw; p.ho = ho; p.wo = wo; p.stride = stride; p.pad = pad;
    p.xoff = 0; p.wdt = DT_F32; p.woff = 0; p.biasdt = DT_F32; p.biasoff = 0; p.biasst = 1; p.doff = 0;
    dispatch({groups(ho * wo, 32), groups(o, 32), (uint)nb}, 128, [&](uint3 tg, uint t) {
        if (f16)
            conv2d_f16(out.data(), x.data(), (const char*)wt.data(), (const char*)bias.data(), p, tg, t, t / 32);
        else
            conv2d(out.data(), x.data(), (const char*)wt.data(), (const char*)bias.data(), p, tg, t, t / 32);
    });
    std::vector<double> want(out.size());
    for (int n = 0; n < nb; n++)
        for (int oc = 0; oc < o; oc++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double s = bias[oc];
                    for (int ic = 0; ic < c; ic++)
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++) {
                                int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                double xv = x[((n * c + ic) * h + iy) * w + ix], wv = wt[((oc * c + ic) * kh + ky) * kw + kx];
                                if (f16) xv = f16val(f16bits(float(xv))), wv = f16val(f16bits(float(wv)));
                                s += xv * wv;
                            }
                    want[((n * o + oc) * ho + oy) * wo + ox] = s;
                }
    char name[128];
    std::snprintf(name, sizeof name, "conv2d%s [%d,%d,%d,%d]*[%d,%d,%d,%d] s%d p%d+%d", f16 ? "_f16" : "", nb, c, h, w, o, c, kh, kw, stride, pad, padEnd);
    check(name, out, want, 1e-5);
}

static void test_attention(int b, int h, int lq, int lk, int d, int dv, bool causal) {
    // q, k, v as [B,L,H,D] buffers read as [B,H,L,D]; k in F16.
    auto q = rnd((size_t)b * lq * h * d), kf = rnd((size_t)b * lk * h * d), v = rnd((size_t)b * lk * h * dv);
    std::vector<ushort> k(kf.size());
    for (size_t i = 0; i < k.size(); i++) { k[i] = f16bits(kf[i]); kf[i] = f16val(k[i]); }
    std::vector<float> out((size_t)b * h * lq * dv);
    float scale = 1.0f / std::sqrt((float)d);
    AttentionParams p{};
    p.lq = lq; p.lk = lk; p.d = d; p.dv = dv; p.scale = scale; p.causal = causal;
    p.qdt = DT_F32; p.qoff = 0; p.qbs = lq * h * d; p.qhs = d; p.qrs = h * d;
    p.kdt = DT_F16; p.koff = 0; p.kbs = lk * h * d; p.khs = d; p.krs = h * d;
    p.vdt = DT_F32; p.voff = 0; p.vbs = lk * h * dv; p.vhs = dv; p.vrs = h * dv;
    p.doff = 0; p.dbs = h * lq * dv; p.dhs = lq * dv; p.drs = dv;
    dispatch({groups(lq, 4), (uint)h, (uint)b}, 128, [&](uint3 tg, uint t) {
        attention(out.data(), (const char*)q.data(), (const char*)k.data(), (const char*)v.data(), p, tg, t % 32, t / 32);
    });
    std::vector<double> want(out.size());
    for (int z = 0; z < b; z++)
        for (int hh = 0; hh < h; hh++)
            for (int i = 0; i < lq; i++) {
                int end = causal ? std::min(i + 1, lk) : lk;
                std::vector<double> s(end);
                double mx = -1e300, sum = 0;
                for (int j = 0; j < end; j++) {
                    double dot = 0;
                    for (int c = 0; c < d; c++)
                        dot += (double)q[((z * lq + i) * h + hh) * d + c] * kf[((z * lk + j) * h + hh) * d + c];
                    s[j] = dot * scale;
                    mx = std::max(mx, s[j]);
                }
                for (int j = 0; j < end; j++) { s[j] = std::exp(s[j] - mx); sum += s[j]; }
                for (int c = 0; c < dv; c++) {
                    double o = 0;
                    for (int j = 0; j < end; j++) o += s[j] * v[((z * lk + j) * h + hh) * dv + c];
                    want[((z * h + hh) * lq + i) * dv + c] = o / sum;
                }
            }
    char name[128];
    std::snprintf(name, sizeof name, "attention b%d h%d lq%d lk%d d%d dv%d causal=%d", b, h, lq, lk, d, dv, causal);
    check(name, out, want, 1e-5);
}

static void test_rows() {
    int rows = 3, n = 1031;
    auto x = rnd((size_t)rows * n, -5, 5);
    std::vector<float> out(x.size());
    RowParams rp{rows, n, 0, 0};
    dispatch({(uint)rows, 1, 1}, 256, [&](uint3 tg, uint t) { softmax(out.data(), x.data(), rp, tg.x, t, 256, t % 32, t / 32, 8); });
    std::vector<double> want(x.size());
    for (int r = 0; r < rows; r++) {
        double mx = -1e300, s = 0;
        for (int i = 0; i < n; i++) mx = std::max(mx, (double)x[r * n + i]);
        for (int i = 0; i < n; i++) s += std::exp(x[r * n + i] - mx);
        for (int i = 0; i < n; i++) want[r * n + i] = std::exp(x[r * n + i] - mx) / s;
    }
    check("softmax", out, want, 1e-5);

    // layer norm with an F16 gamma and no beta, on rows offset by 20
    for (auto& v : x) v += 20;
    auto g = rnd(n);
    std::vector<ushort> gh(n);
    for (int i = 0; i < n; i++) { gh[i] = f16bits(g[i]); g[i] = f16val(gh[i]); }
    LayerNormParams lp{};
    lp.rows = rows; lp.n = n; lp.eps = 1e-5f; lp.gdt = DT_F16; lp.gst = 1; lp.bdt = 0;
    dispatch({(uint)rows, 1, 1}, 256, [&](uint3 tg, uint t) {
        layer_norm(out.data(), x.data(), (const char*)gh.data(), nullptr, lp, tg.x, t, 256, t % 32, t / 32, 8);
    });
    std::vector<double> mean(rows), var(rows);
    for (int r = 0; r < rows; r++) {
        double s = 0, q = 0;
        for (int i = 0; i < n; i++) s += x[r * n + i];
        mean[r] = s / n;
        for (int i = 0; i < n; i++) q += (x[r * n + i] - mean[r]) * (x[r * n + i] - mean[r]);
        var[r] = q / n;
        for (int i = 0; i < n; i++) want[r * n + i] = (x[r * n + i] - mean[r]) / std::sqrt(var[r] + 1e-5) * g[i];
    }
    check("layer_norm", out, want, 1e-5);

    std::vector<float> m(rows + 1, -1), v(rows + 2, -1);
    MomentsParams mp{rows, n, 1, 2, 0};
    dispatch({(uint)rows, 1, 1}, 256, [&](uint3 tg, uint t) { moments(m.data(), v.data(), x.data(), mp, tg.x, t, 256, t % 32, t / 32, 8); });
    check("moments mean", std::vector<float>(m.begin() + 1, m.end()), mean, 1e-6);
    check("moments variance", std::vector<float>(v.begin() + 2, v.end()), var, 1e-5);

    // group norm with SiLU: x [2, 6, 37], 3 groups
    int nb = 2, c = 6, sp = 37, gr = 3;
    auto gx = rnd((size_t)nb * c * sp);
    auto gg = rnd(c), gb = rnd(c);
    std::vector<float> gout(gx.size());
    GroupNormParams gp{};
    gp.c = c; gp.groups = gr; gp.spatial = sp; gp.eps = 1e-5f; gp.silu = 1;
    gp.gdt = DT_F32; gp.gst = 1; gp.bdt = DT_F32; gp.bst = 1;
    dispatch({(uint)(nb * gr), 1, 1}, 256, [&](uint3 tg, uint t) {
        group_norm(gout.data(), gx.data(), (const char*)gg.data(), (const char*)gb.data(), gp, tg.x, t, 256, t % 32, t / 32, 8);
    });
    std::vector<double> gw(gx.size());
    int cg = c / gr, len = cg * sp;
    for (int blk = 0; blk < nb * gr; blk++) {
        double s = 0, q = 0;
        for (int i = 0; i < len; i++) s += gx[blk * len + i];
        double mu = s / len;
        for (int i = 0; i < len; i++) q += (gx[blk * len + i] - mu) * (gx[blk * len + i] - mu);
        double rstd = 1 / std::sqrt(q / len + 1e-5);
        for (int i = 0; i < len; i++) {
            int ch = (blk % gr) * cg + i / sp;
            double y = (gx[blk * len + i] - mu) * rstd * gg[ch] + gb[ch];
            gw[blk * len + i] = y / (1 + std::exp(-y));
        }
    }
    check("group_norm silu", gout, gw, 1e-5);
}

static void test_misc() {
    // unary GELU (erf) and GEGLU
    auto x = rnd(300, -6, 6);
    std::vector<float> out(300);
    UnaryParams up{300, OP_GELU, 0, 0};
    dispatch({2, 1, 1}, 256, [&](uint3 tg, uint t) { unary(out.data(), x.data(), up, tg.x * 256 + t); });
    std::vector<double> want(300);
    for (int i = 0; i < 300; i++) want[i] = 0.5 * x[i] * (1 + std::erf(x[i] / std::sqrt(2.0)));
    check("unary gelu", out, want, 1e-6);

    std::vector<float> gout(150);
    GegluParams gp{3, 50, 0, 0};
    dispatch({1, 1, 1}, 256, [&](uint3 tg, uint t) { geglu(gout.data(), x.data(), gp, t); });
    std::vector<double> gw(150);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 50; i++) {
            double g = x[r * 100 + 50 + i];
            gw[r * 50 + i] = x[r * 100 + i] * 0.5 * g * (1 + std::erf(g / std::sqrt(2.0)));
        }
    check("geglu", gout, gw, 1e-6);

    // nearest resize [2, 5, 6] -> [2, 7, 3] and embedding of a BF16 table read transposed
    auto src = rnd(60);
    std::vector<float> rout(42);
    ResizeParams rp{2, 5, 6, 7, 3, 5.0f / 7.0f, 6.0f / 3.0f, 0, 0};
    dispatch({1, 1, 1}, 256, [&](uint3 tg, uint t) { resize_nearest(rout.data(), src.data(), rp, t); });
    std::vector<double> rw(42);
    for (int pl = 0; pl < 2; pl++)
        for (int y = 0; y < 7; y++)
            for (int xx = 0; xx < 3; xx++)
                rw[(pl * 7 + y) * 3 + xx] = src[(pl * 5 + std::min(int(float(y) * (5.0f / 7.0f)), 4)) * 6 + std::min(int(float(xx) * 2.0f), 5)];
    check("resize_nearest", rout, rw, 0);

    std::vector<ushort> table(9 * 13);
    std::vector<float> tv(table.size());
    for (size_t i = 0; i < table.size(); i++) { table[i] = ushort(rng() & 0x7f7f); uint32_t u = uint32_t(table[i]) << 16; std::memcpy(&tv[i], &u, 4); }
    int ids[3] = {12, 0, 8};
    std::vector<float> eout(27);
    EmbeddingParams ep{3, 9, DT_BF16, 0, 1, 13, 0}; // table [13, 9] as the transpose of [9, 13]
    dispatch({1, 1, 1}, 256, [&](uint3 tg, uint t) { embedding(eout.data(), (const char*)table.data(), ids, ep, t); });
    std::vector<double> ew(27);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 9; c++) ew[r * 9 + c] = tv[c * 13 + ids[r]];
    check("embedding", eout, ew, 0);

    std::vector<ushort> fill16(37, 0);
    FillParams fp{30, DT_BF16, 7, 1.7f};
    dispatch({1, 1, 1}, 256, [&](uint3 tg, uint t) { fill((char*)fill16.data(), fp, t); });
    std::vector<float> fg(37);
    std::vector<double> fw(37);
    for (int i = 0; i < 37; i++) {
        uint32_t u = uint32_t(fill16[i]) << 16;
        std::memcpy(&fg[i], &u, 4);
        fw[i] = (i >= 7) ? 1.703125 : 0;
    }
    check("fill bf16", fg, fw, 0);
}

// test_timestep runs timestep_embedding on [3, dim] for an odd and an even dim,
// both orders, at an offset into t and dst, and compares with sin and cos in
// double of the same float arguments (the host's sinf and cosf stand in for
// precise::sin and cos: a few ulp).
static void test_timestep(int dim, bool flip) {
    float ts[5] = {-1, 0, 999.5f, 0.25f, -1};
    int nf = dim / 2;
    std::vector<float> freqs(nf);
    float c = float(-std::log(10000.0)), d = float(double(nf) - 1);
    for (int i = 0; i < nf; i++) freqs[i] = float(std::exp(double(c * float(i) / d)));
    std::vector<float> out(2 + 3 * dim, 7.0f);
    TimestepParams p{3, dim, flip ? 1 : 0, 1, 2};
    dispatch({groups(3 * dim, 256), 1, 1}, 256, [&](uint3 tg, uint t) {
        timestep_embedding(out.data(), ts, freqs.data(), p, tg.x * 256 + t);
    });
    std::vector<float> got(out.begin() + 2, out.end());
    std::vector<double> want(3 * dim);
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < nf; i++) {
            double arg = double(ts[1 + r] * freqs[i]);
            want[r * dim + (flip ? nf : 0) + i] = std::sin(arg);
            want[r * dim + (flip ? 0 : nf) + i] = std::cos(arg);
        }
        if (dim % 2) want[r * dim + dim - 1] = 0;
    }
    char what[64];
    std::snprintf(what, sizeof what, "timestep_embedding dim %d flip %d", dim, int(flip));
    check(what, got, want, 1e-6);
    if (out[0] != 7.0f || out[1] != 7.0f) {
        failures++;
        std::printf("FAIL %s: wrote before its offset\n", what);
    }
}

int main() {
    test_conversions();
    test_copy();
    test_binary();
    test_gemm(1, 1, 1, 1, false, false, false, false, 1);
    test_gemm(1, 33, 17, 65, false, false, false, true, 1);
    test_gemm(2, 40, 70, 31, true, true, true, true, 0.5f);
    test_gemm(3, 9, 16, 8, false, true, false, false, -2);
    test_conv(2, 5, 9, 11, 7, 3, 3, 1, 1, 0);
    test_conv(1, 4, 8, 7, 6, 3, 3, 2, 0, 1);
    test_conv(1, 33, 6, 6, 40, 3, 3, 1, 1, 0);
    test_conv(1, 2, 10, 9, 3, 5, 3, 2, 2, 0);
    test_gemm(2, 40, 70, 31, true, true, true, true, 0.5f, true);
    test_gemm(1, 33, 17, 65, false, false, false, true, 1, true);
    test_conv(1, 4, 8, 7, 6, 3, 3, 2, 0, 1, true);
    test_conv(1, 33, 6, 6, 40, 3, 3, 1, 1, 0, true);
    test_attention(1, 1, 1, 1, 1, 1, false);
    test_attention(2, 3, 9, 13, 40, 24, false);
    test_attention(1, 2, 13, 9, 8, 5, true);
    test_attention(1, 1, 5, 7, 160, 160, false);
    test_rows();
    test_misc();
    test_timestep(7, false);
    test_timestep(320, true);
    return failures ? 1 : 0;
}
