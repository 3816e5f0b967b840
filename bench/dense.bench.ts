// dense.bench.ts — matmul C[M, N] = A[M, K]·B[K, N]. Shapes are written M×K×N; one call is 2·M·K·N flops.
// CPU: float32 on the shared GEMM core, squares 256³ to 4096³ and the skinny shapes of inference
// (1×4096×4096, a matrix-vector product; 16×4096×4096). Baselines: PyTorch's matmul on the same shapes
// (bench/torch/dense.py) and a naive i-k-j loop in JavaScript, timed on a sample of the rows of the
// same product (rows are independent, so the time scales with M) to keep large shapes affordable.
// CUDA (cuda/dense.cu): bfloat16 and float16 (tensor cores, float32 accumulation) at 2048³, 4096³ and
// 8192³; float32 (the SIMT kernel) at 4096³ against torch with TF32 off; the decode shapes 1×4096×4096
// and 16×4096×4096 in bfloat16, which are bandwidth-bound: they also report GB/s (B read once, A and C
// moved once) and rotate over 4 copies of B (128 MiB) so that B is not served from the 50 MiB L2 call
// after call, with our device-to-device copy of 2^26 float32 as the measure of DRAM bandwidth.
// Baseline: PyTorch's cuBLAS on the same shapes (bench/torch/cuda.py, CUDA events). Target (issue 3):
// bfloat16 4096³ at least 0.6× cuBLAS. The 16-bit cases also time each tensor-core kernel forced
// (mma.sync; on sm_90 wgmma fed by cp.async and wgmma fed by TMA: x·Wᵀ as is, A·B with B transposed first) — 'auto' takes mma.sync until
// the wgmma kernel has passed on a GPU — and bfloat16 4096³ runs as x·Wᵀ too. The decode x·Wᵀ cases
// also run on the decode kernel v2 (streaming loads of W with an L2 prefetch hint, not the default)
// and without programmatic dependent launches (by default each call starts while the previous ends).
// On 'cuda-emu' (--quick only) the same cases at tiny shapes.
import type { BenchCase, BenchContext } from './run';
import { matmul, randn, type DType, type Tensor } from '../lib/index';
import { copyBandwidthBaseline } from './bandwidth';
import { native } from '../lib/native';
import { forcedKernel, noPdl, switched } from './switches';

const SHAPES: [number, number, number][] = [
  [256, 256, 256],
  [512, 512, 512],
  [1024, 1024, 1024],
  [2048, 2048, 2048],
  [4096, 4096, 4096],
  [1, 4096, 4096],
  [16, 4096, 4096],
];

// Rows of C computed per naive call: about 30 ms of work at ~1 GFLOP/s.
function naiveRows(m: number, k: number, n: number): number {
  return Math.min(m, Math.max(1, Math.ceil(3e7 / (2 * k * n))));
}

/** C[0:rows] = A[0:rows]·B, i-k-j order (unit-stride inner loop; the textbook loop without blocking). */
function naiveMatmul(A: Float32Array, B: Float32Array, C: Float32Array, rows: number, k: number, n: number) {
  for (let i = 0; i < rows; i++) {
    const ci = i * n;
    C.fill(0, ci, ci + n);
    for (let p = 0; p < k; p++) {
      const a = A[i * k + p];
      const bp = p * n;
      for (let j = 0; j < n; j++) C[ci + j] += a * B[bp + j];
    }
  }
}

const BYTES: Record<string, number> = { float32: 4, float16: 2, bfloat16: 2 };

/**
 * One matmul on the device. rotate > 1: that many copies of B, used in turn (decode shapes).
 * wt: B is a Linear weight W stored [n, k] and the product is x·Wᵀ (a transposed view, read in place):
 * the layout of inference, which the decode kernel of cuda/dense.cu streams for M ≤ 16.
 */
function deviceCase(ctx: BenchContext, dtype: DType, m: number, k: number, n: number, rotate = 1, wt = false): BenchCase {
  let a: Tensor | undefined;
  let bs: Tensor[] = [];
  let next = 0;
  const decode = rotate > 1;
  const c: BenchCase = {
    op: 'matmul',
    shape: `${m}×${k}×${n}${wt ? ' x·Wᵀ' : ''}`,
    dtype,
    device: ctx.device,
    flops: 2 * m * k * n,
    bytes: decode ? BYTES[dtype] * (m * k + k * n + m * n) : undefined,
    setup() {
      a = randn([m, k], { seed: 1, device: ctx.device, dtype });
      for (let i = 0; i < rotate; i++) bs.push(randn(wt ? [n, k] : [k, n], { seed: 2 + i, device: ctx.device, dtype }));
    },
    run() {
      const b = bs[next];
      next = (next + 1) % bs.length;
      if (wt) {
        const t = b.T;
        matmul(a!, t).dispose();
        t.dispose();
      } else matmul(a!, b).dispose();
    },
    teardown() {
      a?.dispose();
      for (const b of bs) b.dispose();
      bs = [];
    },
    baselines: {
      'torch-cuda': wt
        ? { kind: 'torch', script: 'cuda.py', spec: { op: 'linear', m, in: k, out: n, dtype, rotate }, label: 'F.linear (cuBLAS)' }
        : { kind: 'torch', script: 'cuda.py', spec: { op: 'matmul', m, k, n, dtype, rotate }, label: dtype === 'float32' ? '(cuBLAS, TF32 off)' : '(cuBLAS)' },
      ...(decode ? { hbm: copyBandwidthBaseline(ctx) } : {}),
      // x·Wᵀ at decode: the same product launched in plain stream order (no programmatic dependent
      // launch: no overlap of one call's launch and L2 prefetch with the previous call), and on decode
      // kernel v2 (W through streaming loads; setDecodeKernel)
      ...(decode && wt && dtype !== 'float32'
        ? {
            'no-pdl': noPdl(() => c.run(), 'the same product'),
            'decode-v2': switched('our decode kernel v2 (W streamed with ld.global.nc.L1::no_allocate.L2::256B)',
              (v: 0 | 1 | 2) => native().setDecodeKernel(v), 2, () => c.run()),
          }
        : {}),
      // x·W (W stored [K, N]: the N-major decode kernels) and x·Wᵀ in float32 (the SIMT decode
      // kernel) against the same product on the tile kernels, which ran them before those kernels
      // existed (setDecodeKernel(0))
      ...(decode && !(wt && dtype !== 'float32')
        ? { tiles: switched('our tile kernels (no decode kernel: setDecodeKernel(0))', (v: 0 | 1 | 2) => native().setDecodeKernel(v), 0, () => c.run()) }
        : {}),
      // the same product forced onto each tensor-core kernel (setGemmKernel; wgmma needs sm_90)
      ...(dtype !== 'float32' && !decode ? { mma: forcedKernel('mma', () => c.run()), wgmma: forcedKernel('wgmma', () => c.run()), 'wgmma-tma': forcedKernel('wgmma-tma', () => c.run()) } : {}),
    },
  };
  if (!ctx.emu && dtype === 'bfloat16' && m === 4096 && k === 4096 && n === 4096)
    c.targets = [{ baseline: 'torch-cuda', min: 0.6, goal: 'bfloat16 matmul 4096³ ≥ 0.6× cuBLAS (issue 3)' }];
  return c;
}

function deviceCases(ctx: BenchContext): BenchCase[] {
  if (ctx.emu) {
    // the emulator runs every thread of every block on the CPU: tiny shapes, odd ones included
    return [
      deviceCase(ctx, 'bfloat16', 64, 64, 64),
      deviceCase(ctx, 'float16', 64, 64, 64),
      deviceCase(ctx, 'float32', 33, 40, 17),
      deviceCase(ctx, 'bfloat16', 1, 64, 64, 2),
      deviceCase(ctx, 'bfloat16', 16, 64, 64, 2),
      deviceCase(ctx, 'bfloat16', 1, 64, 64, 2, true),
      deviceCase(ctx, 'float32', 5, 64, 64, 2, true),
      deviceCase(ctx, 'bfloat16', 130, 64, 300, 1, true),
    ];
  }
  const out: BenchCase[] = [];
  for (const dt of ['bfloat16', 'float16'] as const) for (const s of [4096, 2048, 8192]) out.push(deviceCase(ctx, dt, s, s, s));
  out.push(deviceCase(ctx, 'bfloat16', 4096, 4096, 4096, 1, true)); // x·Wᵀ: the wgmma kernel's own layout, no transpose
  out.push(deviceCase(ctx, 'float32', 4096, 4096, 4096));
  out.push(deviceCase(ctx, 'bfloat16', 1, 4096, 4096, 4), deviceCase(ctx, 'bfloat16', 16, 4096, 4096, 4));
  out.push(deviceCase(ctx, 'bfloat16', 1, 4096, 4096, 4, true), deviceCase(ctx, 'bfloat16', 16, 4096, 4096, 4, true));
  out.push(deviceCase(ctx, 'bfloat16', 1, 4096, 1024, 16, true)); // a GQA k/v projection: 64 column tiles, K split over CTAs
  out.push(deviceCase(ctx, 'float32', 1, 4096, 4096, 4, true), deviceCase(ctx, 'float32', 16, 4096, 4096, 4, true));
  out.push(deviceCase(ctx, 'float32', 1, 4096, 4096, 4));
  return out;
}

/**
 * CPU, a bfloat16 Linear: x [m, k]·Wᵀ with W [n, k] read in place by the GEMM (gemm_half: widened in
 * registers at decode; from 17 rows on, bfloat16 pairs into vdpbf16ps where the CPU has AVX512-BF16,
 * else widened while packing). Baselines: the same product of float32 copies in this process (at
 * decode the 16-bit one reads half the bytes), and PyTorch's F.linear in bfloat16.
 * wt = false: x·W with W stored [k, n] (a Linear's backward dY·W has this layout): k is strided in W,
 * so gemm_half makes a k-contiguous copy for the pair kernels; torch.matmul is the baseline.
 */
function halfCase(ctx: BenchContext, dtype: DType, m: number, k: number, n: number, wt = true): BenchCase {
  let x: Tensor | undefined, w: Tensor | undefined, x32: Tensor | undefined, w32: Tensor | undefined;
  const product = (a: Tensor, b: Tensor) => (wt ? matmul(a, b.transpose(0, 1)) : matmul(a, b));
  return {
    op: 'matmul',
    shape: `${m}×${k}×${n}${wt ? ' x·Wᵀ' : ' x·W'}`,
    dtype,
    device: ctx.device,
    flops: 2 * m * k * n,
    bytes: m <= 16 ? 2 * (m * k + k * n + m * n) : undefined,
    setup() {
      x = randn([m, k], { seed: 1, device: ctx.device, dtype });
      w = randn(wt ? [n, k] : [k, n], { seed: 2, device: ctx.device, dtype });
    },
    run() {
      product(x!, w!).dispose();
    },
    teardown() {
      x!.dispose();
      w!.dispose();
    },
    baselines: {
      torch: { kind: 'torch', script: 'dense.py', spec: { m, k, n, dtype, wt }, label: wt ? 'F.linear' : 'torch.matmul' },
      float32: {
        kind: 'local',
        label: 'the same product in float32',
        setup() {
          x32 = x!.cast('float32');
          w32 = w!.cast('float32');
        },
        run() {
          product(x32!, w32!).dispose();
        },
        teardown() {
          x32!.dispose();
          w32!.dispose();
        },
      },
    },
  };
}

export function cases(ctx: BenchContext): BenchCase[] {
  if (ctx.onDevice) return deviceCases(ctx);
  return [
    ...cpuCases(ctx),
    ...[1, 16, 512].map((m) => halfCase(ctx, 'bfloat16', m, 4096, 4096)),
    halfCase(ctx, 'bfloat16', 512, 4096, 4096, false),
  ];
}

function cpuCases(ctx: BenchContext): BenchCase[] {
  return SHAPES.map(([m, k, n]) => {
    let a: Tensor | undefined;
    let b: Tensor | undefined;
    let A: Float32Array, B: Float32Array, C: Float32Array;
    const rows = naiveRows(m, k, n);
    return {
      op: 'matmul',
      shape: `${m}×${k}×${n}`,
      dtype: 'float32',
      device: ctx.device,
      flops: 2 * m * k * n,
      setup() {
        a = randn([m, k], { seed: 1, device: ctx.device });
        b = randn([k, n], { seed: 2, device: ctx.device });
      },
      run() {
        matmul(a!, b!).dispose();
      },
      teardown() {
        a!.dispose();
        b!.dispose();
      },
      baselines: {
        torch: { kind: 'torch', script: 'dense.py', spec: { m, k, n, dtype: 'float32' } },
        naive: {
          kind: 'local',
          label: `naive JS loop${rows < m ? ` (${rows} of ${m} rows, scaled)` : ''}`,
          scale: m / rows,
          setup() {
            A = a!.dataSync() as Float32Array;
            B = b!.dataSync() as Float32Array;
            C = new Float32Array(rows * n);
          },
          run() {
            naiveMatmul(A, B, C, rows, k, n);
          },
        },
      },
    };
  });
}
