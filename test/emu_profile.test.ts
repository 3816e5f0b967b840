// emu_profile.test.ts — the memory-access profile of the CUDA kernels on 'cuda-emu' (cuda/emu/profile.h,
// the cases of bench/emu_profile_cases.ts): what the GPU's memory pipeline would make of each warp
// access, held as a property of the code, without a GPU.
//   shared memory: every kernel's loads and stores take exactly the wavefronts their bytes need (no
//     bank conflicts; the GEMM stages, decode reductions, transposes and reductions were checked so);
//   global memory: every warp access touches exactly ⌈bytes / 32⌉ sectors (coalesced), except the
//     accesses listed in ALLOWED with their reason and bound.
// The model itself (wavefront and sector counting) is tested on known patterns in test/emu/profile_cases.cu.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backend } from '../lib/index';
import { factor, profileCases, profileOf, type Counts, type KernelProfile } from '../bench/emu_profile_cases';

// Global accesses allowed above their ideal: [case, kernel, which, most sectors per ideal one, why].
const ALLOWED: [RegExp, RegExp, 'loads' | 'stores', number, string][] = [
  [/^where/, /^where_kernel$/, 'loads', 1.7,
    'each lane reads a or b as its condition says: the sectors of both arrays are touched, partly'],
  [/^(lora|sparsePlusLowRank)\b/, /^lora_t_kernel</, 'loads', 4,
    "T's split partial sums, read once (M·r floats, small)"],
  [/./, /^reduce_cols_kernel</, 'stores', 4,
    'the partial results (≤ 8192 of them) go out output-major for the combining kernel'],
];

const info = backend();
if (!info.cudaEmu) {
  test("memory-access profile: skipped (no 'cuda-emu' in this binary)", () => {});
} else {
  const profiles = new Map<string, KernelProfile[]>();
  for (const c of profileCases()) profiles.set(c.name, profileOf(c.run));

  const allowance = (name: string, kernel: string, which: 'loads' | 'stores') =>
    ALLOWED.find(([cr, kr, w]) => w === which && cr.test(name) && kr.test(kernel));
  const describe = (c: Counts) => `${c.requests} requests, ${c.actual} for an ideal ${c.ideal}`;

  test('every case launched kernels and the profile saw their accesses', () => {
    for (const [name, kernels] of profiles) {
      assert.ok(kernels.length > 0, `${name}: no kernel in the profile`);
      for (const k of kernels) {
        assert.ok(k.launches > 0, `${name}: ${k.name} has no launch`);
        assert.ok(k.global.loads.requests + k.shared.loads.requests > 0, `${name}: ${k.name} read nothing`);
        assert.ok(k.global.stores.requests > 0, `${name}: ${k.name} wrote no global memory`);
      }
    }
    // the forced GEMM kernels really ran (setGemmKernel reached the emulated device)
    const ran = (c: string, re: RegExp) => profiles.get(c)!.some((k) => re.test(k.name));
    assert.ok(ran('matmul bf16 256×256×256 x·Wᵀ (mma)', /^gemm_mma_kernel</));
    assert.ok(ran('matmul bf16 256×256×256 x·Wᵀ (wgmma)', /^gemm_wgmma_kernel</));
    assert.ok(ran('matmul bf16 256×256×256 x·Wᵀ (wgmma-tma)', /^gemm_tma_kernel</));
    assert.ok(ran('matmul bf16 1×512×512 x·Wᵀ (decode v2)', /^gemm_decode_kernel<true, true>/));
    assert.ok(ran('sum f32 [4096, 64] over columns', /^reduce_cols_kernel</));
  });

  test('no kernel has a shared-memory bank conflict', () => {
    const bad: string[] = [];
    for (const [name, kernels] of profiles)
      for (const k of kernels)
        for (const which of ['loads', 'stores'] as const)
          if (factor(k.shared[which]) !== 1) bad.push(`${name}: ${k.name} shared ${which}: ${describe(k.shared[which])}`);
    assert.equal(bad, []);
  });

  test('every global access is coalesced, or within its stated allowance', () => {
    const bad: string[] = [];
    for (const [name, kernels] of profiles)
      for (const k of kernels)
        for (const which of ['loads', 'stores'] as const) {
          const f = factor(k.global[which]);
          const allowed = allowance(name, k.name, which);
          if (f > (allowed ? allowed[3] : 1)) bad.push(`${name}: ${k.name} global ${which}: ${f.toFixed(2)} (${describe(k.global[which])})`);
        }
    assert.equal(bad, []);
  });

  test('the GEMM, decode, elementwise and reduction kernels move whole sectors', () => {
    // the kernels the speed targets rest on (the decode ones: ≥ 80% of the bandwidth at M ≤ 16): exactly
    // their ideal, loads and stores
    for (const [name, kernels] of profiles)
      for (const k of kernels) {
        if (!/^(gemm_(mma|wgmma|tma|f32|decode|decode_nmajor|decode_f32)_kernel<|lora_decode_kernel<|binary_vec_kernel<|unary_vec_kernel<|softmax_kernel<|reduce_kernel<|reduce_cols_kernel<|copy_kernel$)/.test(k.name)) continue;
        if (/^reduce_cols_kernel</.test(k.name) && k.global.stores.actual !== k.global.stores.ideal) {
          // its partial results only (ALLOWED); its reads, the traffic, must be whole sectors
          assert.is(k.global.loads.actual, k.global.loads.ideal, `${name}: ${k.name} global loads`);
          continue;
        }
        for (const which of ['loads', 'stores'] as const)
          assert.is(k.global[which].actual, k.global[which].ideal, `${name}: ${k.name} global ${which}`);
      }
  });
}

test.run();
