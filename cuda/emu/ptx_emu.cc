// ptx_emu.cc — tensor-core and ldmatrix PTX computed on the CPU, lane by lane, from the fragment
// layouts of the PTX ISA (section numbers of PTX ISA 9.1; /work/shared/notes/ptx_fragments.md has
// the tables and their sources). These layouts rest on the PTX ISA text and the code that encodes its
// figures (CuTe, MLIR); none of this has yet been compared with silicon (issue 4 item 7).
//
// Notation: lane l, g = l >> 2 (groupID), t = l % 4 (threadID_in_group). A 32-bit register holding
// two 16-bit elements keeps the first-listed element in bits 0–15.
//
// mma arithmetic (the PTX leaves accumulation order and rounding unspecified, §9.7.14.5.14): every
// product of the (exactly representable) inputs is formed exactly in double, added to c in k order
// in double, and the sum is rounded once to float (round to nearest even). tf32 operands are taken
// from the f32 bit pattern with the low 13 bits cleared (the mma reads only 19 bits).
#include <cmath>
#include <cstdio>
#include <cstring>

#include "cuda_runtime.h"
#include "ptx_emu.h"

namespace emu {
namespace ptx {
namespace {

double element(Type t, uint32_t bits16) {
  return t == Type::F16 ? (double)f16_to_f32((uint16_t)bits16) : (double)bf16_to_f32((uint16_t)bits16);
}
double half_of(Type t, uint32_t reg, int h) { return element(t, h ? reg >> 16 : reg & 0xffffu); }
double tf32(uint32_t reg) { return (double)bits_f32(reg & 0xffffe000u); }

struct MmaIn {
  int k;
  Type t;
  const uint32_t* a;
  const uint32_t* b;
  const float* c;
  uint32_t e;
  int sel;
  bool sparse;
};

const char* mma_op(int k, Type t, bool sparse) {
  static const char* const dense[3][2] = {
      {"mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32", "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"},
      {"mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32", "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"},
      {"mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32", "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32"}};
  static const char* const sp[2][2] = {
      {"mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
       "mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32"},
      {"mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
       "mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.bf16.bf16.f32"}};
  if (sparse) return sp[t == Type::BF16][k == 32];
  return dense[(int)t][k == 16];
}

// D (16×8) = A (16×K) · B (K×8) + C, then scatter D by the C/D layout (§9.7.14.5.7/8, shared by all
// shapes here): c_i of lane l is (g + 8·(i >> 1), 2t + (i & 1)).
void finish(Collective& c, int K, double A[16][32], double B[32][8]) {
  float C[16][8];
  for (int l = 0; l < 32; l++) {
    const float* cl = static_cast<const MmaIn*>(c.lane[l].in)->c;
    for (int i = 0; i < 4; i++) C[(l >> 2) + 8 * (i >> 1)][2 * (l % 4) + (i & 1)] = cl[i];
  }
  float D[16][8];
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < 8; n++) {
      double acc = C[r][n];
      for (int k = 0; k < K; k++) acc += A[r][k] * B[k][n];
      D[r][n] = (float)acc;
    }
  for (int l = 0; l < 32; l++) {
    float* d = static_cast<float*>(c.lane[l].out);
    for (int i = 0; i < 4; i++) d[i] = D[(l >> 2) + 8 * (i >> 1)][2 * (l % 4) + (i & 1)];
  }
}

void mma_fn(Collective& c) {
  const MmaIn& in0 = *static_cast<const MmaIn*>(c.lane[0].in);
  const int K = in0.k;
  const Type t = in0.t;
  double A[16][32] = {}, B[32][8] = {};
  for (int l = 0; l < 32; l++) {
    const MmaIn& in = *static_cast<const MmaIn*>(c.lane[l].in);
    const int g = l >> 2, q = l % 4;
    if (t == Type::TF32) {
      // §9.7.14.5.7 (.tf32): a_i = (g + 8·(i & 1), t + 4·(i >> 1)); b_i = (k = t + 4i, n = g)
      for (int i = 0; i < 4; i++) A[g + 8 * (i & 1)][q + 4 * (i >> 1)] = tf32(in.a[i]);
      for (int i = 0; i < 2; i++) B[q + 4 * i][g] = tf32(in.b[i]);
    } else if (K == 16) {
      // §9.7.14.5.8: a reg i half h = (g + 8·(i & 1), 2t + h + 8·(i >> 1)); b reg i half h = (2t + h + 8i, g)
      for (int i = 0; i < 4; i++)
        for (int h = 0; h < 2; h++) A[g + 8 * (i & 1)][2 * q + h + 8 * (i >> 1)] = half_of(t, in.a[i], h);
      for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++) B[2 * q + h + 8 * i][g] = half_of(t, in.b[i], h);
    } else {
      // §9.7.14.5.7 (.f16/.bf16): a reg i half h = (g + 8i, 2t + h); b half h = (2t + h, g)
      for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++) A[g + 8 * i][2 * q + h] = half_of(t, in.a[i], h);
      for (int h = 0; h < 2; h++) B[2 * q + h][g] = half_of(t, in.b[0], h);
    }
  }
  finish(c, K, A, B);
}

// §9.7.14.6 (mma.sp): A is given as its 2:4-compressed values plus metadata; see the notes file §2.
void mma_sp_fn(Collective& c) {
  const MmaIn& in0 = *static_cast<const MmaIn*>(c.lane[0].in);
  const int K = in0.k, sel = in0.sel;
  const Type t = in0.t;
  for (int l = 1; l < 32; l++)
    if (static_cast<const MmaIn*>(c.lane[l].in)->sel != sel) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "%s: lanes use different sparsity selectors (%d in lane 0)", c.op, sel);
      fail_thread(ErrorKind::InvalidArgument, c.first_thread + l, msg);
    }
  double A[16][32] = {}, B[32][8] = {};
  // nibble of (row r, chunk ch) — §9.7.14.6.2.1/2 (Figures 119, 122): lane 4·(r mod 8) + sel (k16) or
  // 4·(r mod 8) + 2·sel + (ch >> 2) (k32); bits 16·(r ≥ 8) + 4·(ch mod 4)
  auto meta_lane = [&](int r, int ch) { return 4 * (r % 8) + (K == 16 ? sel : 2 * sel + (ch >> 2)); };
  auto place = [&](int r, int ch, uint32_t lo_bits, uint32_t hi_bits) {
    const int ml = meta_lane(r, ch);
    const uint32_t e = static_cast<const MmaIn*>(c.lane[ml].in)->e;
    const int bit = 16 * (r >= 8) + 4 * (ch % 4);
    const unsigned nib = (e >> bit) & 0xfu, o0 = nib & 3u, o1 = nib >> 2;
    if (o0 >= o1) {
      char msg[400];
      std::snprintf(msg, sizeof msg,
                    "%s: metadata register e = 0x%08x of lane %d has nibble 0x%x at bits %d..%d (row %d, columns %d..%d): %s",
                    c.op, e, ml, nib, bit, bit + 3, r, 4 * ch, 4 * ch + 3,
                    o0 == o1 ? "both offsets equal (0b0000/0b0101/0b1010/0b1111 are invalid 2:4 metadata)"
                             : "offsets not increasing (invalid under ::ordered_metadata)");
      fail_thread(ErrorKind::InvalidMetadata, c.first_thread + ml, msg);
    }
    A[r][4 * ch + (int)o0] = element(t, lo_bits);
    A[r][4 * ch + (int)o1] = element(t, hi_bits);
  };
  for (int l = 0; l < 32; l++) {
    const MmaIn& in = *static_cast<const MmaIn*>(c.lane[l].in);
    const int g = l >> 2, q = l % 4;
    if (K == 16) {
      // §9.7.14.6.2.1 (Fig. 118): reg i = row g + 8i, chunk t; B and C/D as dense m16n8k16
      for (int i = 0; i < 2; i++) place(g + 8 * i, q, in.a[i] & 0xffffu, in.a[i] >> 16);
      for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++) B[2 * q + h + 8 * i][g] = half_of(t, in.b[i], h);
    } else {
      // §9.7.14.6.2.2 (Figs. 120–121): reg i = row g + 8·(i & 1), chunk t + 4·(i >> 1);
      // b reg j half h = (k = 8j + 2t + h, n = g)
      for (int i = 0; i < 4; i++) place(g + 8 * (i & 1), q + 4 * (i >> 1), in.a[i] & 0xffffu, in.a[i] >> 16);
      for (int j = 0; j < 4; j++)
        for (int h = 0; h < 2; h++) B[8 * j + 2 * q + h][g] = half_of(t, in.b[j], h);
    }
  }
  finish(c, K, A, B);
}

struct LdIn {
  const unsigned char* p;
  const Region* r;
  int num;
  bool trans;
  uintptr_t site;  // the kernel's ldmatrix, for the memory-access profile
};

// §9.7.14.5.15 (Figure 104): lane 8i + r gives the address of row r of matrix i (16 bytes, 16-byte
// aligned, shared). Register i of lane l: no .trans → row l >> 2, elements 2(l%4), 2(l%4)+1;
// .trans → elements (2(l%4), l >> 2) and (2(l%4)+1, l >> 2) of matrix i.
void ldmatrix_fn(Collective& c) {
  const LdIn& in0 = *static_cast<const LdIn*>(c.lane[0].in);
  const int num = in0.num;
  uint16_t M[4][8][8];
  for (int i = 0; i < num; i++)
    for (int r = 0; r < 8; r++) {
      const int src = 8 * i + r;
      const LdIn& in = *static_cast<const LdIn*>(c.lane[src].in);
      if (in.r && in.r->space != Space::Shared) {
        char msg[200];
        std::snprintf(msg, sizeof msg, "%s: row address %p (matrix %d row %d) is not shared memory", c.op, (const void*)in.p, i, r);
        fail_thread(ErrorKind::InvalidArgument, c.first_thread + src, msg);
      }
      check_access_at(c.first_thread + src, in.r, in.p, 16, 16, Access::Read, in.site);
      std::memcpy(M[i][r], in.p, 16);
    }
  for (int l = 0; l < 32; l++) {
    uint32_t* out = static_cast<uint32_t*>(c.lane[l].out);
    for (int i = 0; i < num; i++) {
      uint16_t lo, hi;
      if (in0.trans) {
        lo = M[i][2 * (l % 4)][l >> 2];
        hi = M[i][2 * (l % 4) + 1][l >> 2];
      } else {
        lo = M[i][l >> 2][2 * (l % 4)];
        hi = M[i][l >> 2][2 * (l % 4) + 1];
      }
      out[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
  }
}
struct WgIn {
  uint64_t da, db;
  int n;
  Type t;
};

// §9.7.15.5.1 matrix descriptor: start address bits 0–13, LBO 16–29, SBO 32–45 (each in 16-byte
// units), base offset 49–51, swizzle mode 62–63 (1: 128-byte). §9.7.15.5 canonical K-major layout
// with the 128-byte swizzle: element (row, k) of a 16-bit operand is at byte
//   a = start + (row / 8)·SBO + (row % 8)·128 + 2k,  then  a ^= ((a >> 7) & 7) << 4
// (16-byte chunk bits 4–6 XOR the row bits 7–9 of the address: CUTLASS's Swizzle<3,4,3> on bytes).
struct Desc {
  uint32_t start, sbo;
};
Desc decode(Collective& c, uint64_t d, const char* which) {
  const unsigned swz = (unsigned)(d >> 62), base = (unsigned)((d >> 49) & 7);
  if (swz != 1 || base != 0) {
    char msg[240];
    std::snprintf(msg, sizeof msg, "%s: %s descriptor 0x%016llx has swizzle mode %u and base offset %u; only the "
                  "128-byte swizzle (mode 1) with base offset 0 is emulated", c.op, which, (unsigned long long)d, swz, base);
    fail_thread(ErrorKind::InvalidArgument, c.first_thread, msg);
  }
  return Desc{(uint32_t)(d & 0x3fff) << 4, (uint32_t)((d >> 32) & 0x3fff) << 4};
}

double smem_element(Collective& c, Type t, const Desc& d, int row, int k, const unsigned char** where) {
  uint32_t a = d.start + (uint32_t)(row / 8) * d.sbo + (uint32_t)(row % 8) * 128 + 2 * (uint32_t)k;
  a ^= ((a >> 7) & 7u) << 4;
  const ptr<unsigned char> dyn = dynamic_smem();
  const unsigned char* p = dyn.p + ((int64_t)a - (int64_t)kSmemWindowBase);
  check_access_at(c.first_thread, dyn.r, p, 2, 2, Access::Read, /*not profiled*/ 0);
  *where = p;
  uint16_t v;
  std::memcpy(&v, p, 2);
  return element(t, v);
}

void wgmma_fn(Collective& c) {
  const WgIn& in0 = *static_cast<const WgIn*>(c.lane[0].in);
  for (int l = 1; l < 32; l++) {
    const WgIn& in = *static_cast<const WgIn*>(c.lane[l].in);
    if (in.da != in0.da || in.db != in0.db) {
      char msg[200];
      std::snprintf(msg, sizeof msg, "%s: lane %d's descriptors differ from lane 0's (they must be warp-uniform)", c.op, l);
      fail_thread(ErrorKind::InvalidArgument, c.first_thread + l, msg);
    }
  }
  const int N = in0.n, wq = c.warp % 4;  // the warp's place in its warpgroup: accumulator rows 16·wq …
  const Desc da = decode(c, in0.da, "A"), db = decode(c, in0.db, "B");
  double A[16][16], B[256][16];
  const unsigned char* lo = nullptr;
  const unsigned char* hi = nullptr;
  auto read = [&](const Desc& d, int row, int k) {
    const unsigned char* p = nullptr;
    const double v = smem_element(c, in0.t, d, row, k, &p);
    if (!lo || p < lo) lo = p;
    if (!hi || p + 2 > hi) hi = p + 2;
    return v;
  };
  for (int r = 0; r < 16; r++)
    for (int k = 0; k < 16; k++) A[r][k] = read(da, 16 * wq + r, k);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < 16; k++) B[n][k] = read(db, n, k);
  wgmma_track(c, lo, hi);  // in flight until this warp's wgmma.wait_group (a bounding range: conservative)
  // d[4j + v] of lane l: (row l/4 + 8·(v >> 1), column 8j + 2·(l % 4) + (v & 1)) of the warp's 16 rows
  static thread_local float D[16][256];
  for (int l = 0; l < 32; l++) {
    const float* d = static_cast<const float*>(c.lane[l].out);
    for (int j = 0; j < N / 8; j++)
      for (int v = 0; v < 4; v++) D[(l >> 2) + 8 * (v >> 1)][8 * j + 2 * (l % 4) + (v & 1)] = d[4 * j + v];
  }
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < N; n++) {
      double acc = D[r][n];
      for (int k = 0; k < 16; k++) acc += A[r][k] * B[n][k];
      D[r][n] = (float)acc;
    }
  for (int l = 0; l < 32; l++) {
    float* d = static_cast<float*>(c.lane[l].out);
    for (int j = 0; j < N / 8; j++)
      for (int v = 0; v < 4; v++) d[4 * j + v] = D[(l >> 2) + 8 * (v >> 1)][8 * j + 2 * (l % 4) + (v & 1)];
  }
}
}  // namespace

uint32_t smem_addr(ptr<const void> p) {
  const ptr<unsigned char> dyn = dynamic_smem();
  if (p.r != dyn.r) fail(ErrorKind::InvalidArgument, "smem_addr: the pointer is not in the launch's dynamic shared memory (the only shared memory an emulated wgmma reads)");
  return kSmemWindowBase + (uint32_t)(static_cast<const unsigned char*>(p.p) - dyn.p);
}

void wgmma(int n, Type t, float* d, uint64_t desc_a, uint64_t desc_b) {
  if (n != 256 || t == Type::TF32) fail(ErrorKind::InvalidArgument, "wgmma: only m64n256k16 with f16 / bf16 is emulated");
  WgIn in{desc_a, desc_b, n, t};
  const char* op = t == Type::BF16 ? "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16"
                                   : "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16";
  warp_collective(op, 0xffffffffu, Policy::FullWarp, &in, d, wgmma_fn);
}

void mma(int k, Type t, float* d, const uint32_t* a, const uint32_t* b, const float* c) {
  MmaIn in{k, t, a, b, c, 0, 0, false};
  warp_collective(mma_op(k, t, false), 0xffffffffu, Policy::FullWarp, &in, d, mma_fn);
}

void mma_sp(int k, Type t, float* d, const uint32_t* a, const uint32_t* b, const float* c, uint32_t e, int sel) {
  if (t == Type::TF32) fail(ErrorKind::InvalidArgument, "mma.sp with tf32 is not emulated");
  if (sel < 0 || sel >= (k == 16 ? 4 : 2)) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "%s with sparsity selector %d (allowed 0..%d)", mma_op(k, t, true), sel, k == 16 ? 3 : 1);
    fail(ErrorKind::InvalidArgument, msg);
  }
  MmaIn in{k, t, a, b, c, e, sel, true};
  warp_collective(mma_op(k, t, true), 0xffffffffu, Policy::FullWarp, &in, d, mma_sp_fn);
}

__attribute__((noinline)) void ldmatrix(int num, bool trans, uint32_t* r, ptr<const void> row) {
  static const char* const ops[2][3] = {
      {"ldmatrix.sync.aligned.m8n8.x1.shared.b16", "ldmatrix.sync.aligned.m8n8.x2.shared.b16",
       "ldmatrix.sync.aligned.m8n8.x4.shared.b16"},
      {"ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16", "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16",
       "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16"}};
  LdIn in{static_cast<const unsigned char*>(row.p), row.r, num, trans, reinterpret_cast<uintptr_t>(__builtin_return_address(0))};
  warp_collective(ops[trans][num == 1 ? 0 : num == 2 ? 1 : 2], 0xffffffffu, Policy::FullWarp, &in, r, ldmatrix_fn);
}

}  // namespace ptx
}  // namespace emu
