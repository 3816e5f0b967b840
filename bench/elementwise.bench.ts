// elementwise.bench.ts — on a device: add of two float32 tensors of 2^26 elements (cuda/elementwise.cu),
// one call moving 3·4·n bytes (two reads, one write), against the device's own device-to-device copy
// of the same n (2·4·n bytes; bench/bandwidth.ts) — the ratio is the add's GB/s over the copy's, and
// the target (issue 3) is at least 85% — and against PyTorch's a + b and copy_ on the same n (CUDA
// events). On 'cuda-emu' (--quick only) n = 2^12.
// On the CPU: add of 2^4 float32 (the cost of a call: checks, a handle, an output), of 2^24 float32
// (64 MiB each: past the caches, and an output the CPU's large-buffer cache serves without page
// faults) and bfloat16 (converted in blocks), the exact-erf GELU and sin
// (of 10·randn: a few periods) of 2^22 float32 (compute-bound), contiguous() of a transposed [4096, 4096] float32 and bfloat16 view (the
// tiled copy's register transposes), and cast of a [4096, 4096] float32 to float64 / bfloat16 / float16
// and back from float64, and of bfloat16 / float16 up to float32 (the upcast of a loaded 16-bit weight),
// where() with a random condition and concat along either axis of [2048, 1024] float32, and randn /
// rand / zeros of [4096, 4096] float32 and arange(4096²), each against PyTorch in the same run
// (bench/torch/core.py); dropout(x, 0.1) of 2^24 float32 against F.dropout (on a device 2^26, beside the
// copy bandwidth).
import type { BenchCase, BenchContext } from './run';
import { add, arange, concat, dropout, gelu, gt, mul, rand, randn, sin, where, zeros, type Tensor } from '../lib/index';
import { copyBandwidthBaseline, copyElements } from './bandwidth';

const LABELS = { add: 'a + b', gelu: 'F.gelu', sin: 'torch.sin' };

function cpuCase(ctx: BenchContext, op: 'add' | 'gelu' | 'sin', n: number, dtype: 'float32' | 'bfloat16'): BenchCase {
  let a: Tensor | undefined, b: Tensor | undefined;
  const size = dtype === 'float32' ? 4 : 2;
  return {
    op,
    shape: `2^${Math.log2(n)}`,
    dtype,
    device: ctx.device,
    bytes: (op === 'add' ? 3 : 2) * size * n,
    setup() {
      a = randn([n], { seed: 1, dtype });
      if (op === 'add') b = randn([n], { seed: 2, dtype });
      if (op === 'sin') {
        const x = a;
        a = mul(x, 10);
        x.dispose();
      }
    },
    run() {
      (op === 'add' ? add(a!, b!) : op === 'gelu' ? gelu(a!) : sin(a!)).dispose();
    },
    teardown() {
      a?.dispose();
      b?.dispose();
    },
    baselines: {
      torch: { kind: 'torch', script: 'core.py', spec: { op, n, dtype }, label: LABELS[op] },
    },
  };
}

/** contiguous() of a transposed [4096, 4096] view (the tiled copy's register transposes), against
 * PyTorch's x.t().contiguous(): one read and one write of the matrix. */
function transposeCase(ctx: BenchContext, dtype: 'float32' | 'bfloat16'): BenchCase {
  let x: Tensor | undefined;
  const n = 4096;
  return {
    op: 'contiguous',
    shape: `[${n}, ${n}]ᵀ`,
    dtype,
    device: ctx.device,
    bytes: 2 * (dtype === 'float32' ? 4 : 2) * n * n,
    setup() {
      x = randn([n, n], { seed: 1, dtype });
    },
    run() {
      const v = x!.T;
      v.contiguous().dispose();
      v.dispose();
    },
    teardown() {
      x?.dispose();
    },
    baselines: { torch: { kind: 'torch', script: 'core.py', spec: { op: 'transpose', n, dtype }, label: 'x.t().contiguous()' } },
  };
}

/** where() with a random condition (x > 0, made once) and concat of two matrices along `axis`, each
 * [2048, 1024] float32 (in cache: the per-element work, not the memory, is what these measure). */
function selectCase(ctx: BenchContext, op: 'where' | 'concat', axis = 0): BenchCase {
  let x: Tensor | undefined, y: Tensor | undefined, c: Tensor | undefined;
  const m = 2048, n = 1024;
  return {
    op,
    shape: op === 'where' ? `[${m}, ${n}]` : `2 × [${m}, ${n}] axis ${axis}`,
    dtype: 'float32',
    device: ctx.device,
    bytes: (op === 'where' ? 4 : 3) * 4 * m * n,
    setup() {
      x = randn([m, n], { seed: 1 });
      y = randn([m, n], { seed: 2 });
      if (op === 'where') c = gt(x, 0);
    },
    run() {
      (op === 'where' ? where(c!, x!, y!) : concat([x!, y!], axis)).dispose();
    },
    teardown() {
      x?.dispose();
      y?.dispose();
      c?.dispose();
    },
    baselines: {
      torch: {
        kind: 'torch',
        script: 'core.py',
        spec: op === 'where' ? { op, m, n, dtype: 'float32' } : { op, m, n, axis, dtype: 'float32' },
        label: op === 'where' ? 'torch.where' : 'torch.cat',
      },
    },
  };
}

/** randn / rand of a fresh [4096, 4096] float32 (the counter-based stream, Box–Muller for randn:
 * compute-bound), against torch.randn / torch.rand. */
/** randn / rand of [4096, 4096], and zeros of it and arange(4096²) (typed parallel fills), against torch's. */
function randomCase(ctx: BenchContext, op: 'randn' | 'rand' | 'zeros' | 'arange'): BenchCase {
  const n = 4096;
  let seed = 1;
  return {
    op,
    shape: `[${n}, ${n}]`,
    dtype: 'float32',
    device: ctx.device,
    bytes: 4 * n * n,
    run() {
      (op === 'zeros' ? zeros([n, n]) : op === 'arange' ? arange(n * n) : (op === 'randn' ? randn : rand)([n, n], { seed: seed++ })).dispose();
    },
    baselines: { torch: { kind: 'torch', script: 'core.py', spec: { op, n, dtype: 'float32' }, label: `torch.${op}` } },
  };
}

type CastDType = 'float32' | 'float64' | 'bfloat16' | 'float16';
/** cast() of a [4096, 4096] matrix (one read and one write; csrc/tensor.cc's typed conversions),
 * against PyTorch's x.to(dtype). */
function castCase(ctx: BenchContext, from: CastDType, to: CastDType): BenchCase {
  let x: Tensor | undefined;
  const n = 4096;
  const size = (d: CastDType) => (d === 'float64' ? 8 : d === 'float32' ? 4 : 2);
  return {
    op: 'cast',
    shape: `[${n}, ${n}] → ${to}`,
    dtype: from,
    device: ctx.device,
    bytes: (size(from) + size(to)) * n * n,
    setup() {
      x = randn([n, n], { seed: 1, dtype: from });
    },
    run() {
      x!.cast(to).dispose();
    },
    teardown() {
      x?.dispose();
    },
    baselines: { torch: { kind: 'torch', script: 'core.py', spec: { op: 'cast', n, dtype: from, to }, label: `x.to(${to})` } },
  };
}

/** dropout(x, 0.1) of [n] float32 (the mask drawn from the counter-based stream, never stored), against
 * PyTorch's F.dropout (which makes and keeps a mask); on a device also against its copy bandwidth. */
function dropoutCase(ctx: BenchContext, n: number): BenchCase {
  let x: Tensor | undefined;
  let seed = 1;
  const p = 0.1;
  return {
    op: 'dropout',
    shape: `2^${Math.log2(n)}`,
    dtype: 'float32',
    device: ctx.device,
    bytes: 2 * 4 * n,
    setup() {
      x = randn([n], { seed: 1, device: ctx.device });
    },
    run() {
      dropout(x!, p, { seed: seed++ }).dispose();
    },
    teardown() {
      x?.dispose();
    },
    baselines: ctx.onDevice
      ? {
          copy: copyBandwidthBaseline(ctx),
          'torch-cuda': { kind: 'torch', script: 'cuda.py', spec: { op: 'dropout', n, p, dtype: 'float32' }, label: 'F.dropout' },
        }
      : { torch: { kind: 'torch', script: 'core.py', spec: { op: 'dropout', n, p, dtype: 'float32' }, label: 'F.dropout' } },
  };
}

export function cases(ctx: BenchContext): BenchCase[] {
  if (!ctx.onDevice)
    return [
      cpuCase(ctx, 'add', 16, 'float32'), cpuCase(ctx, 'add', 1 << 24, 'float32'), cpuCase(ctx, 'add', 1 << 24, 'bfloat16'), cpuCase(ctx, 'gelu', 1 << 22, 'float32'),
      cpuCase(ctx, 'sin', 1 << 22, 'float32'), dropoutCase(ctx, 1 << 24),
      transposeCase(ctx, 'float32'), transposeCase(ctx, 'bfloat16'),
      castCase(ctx, 'float32', 'float64'), castCase(ctx, 'float32', 'bfloat16'), castCase(ctx, 'float32', 'float16'),
      castCase(ctx, 'float64', 'float32'), castCase(ctx, 'bfloat16', 'float32'), castCase(ctx, 'float16', 'float32'),
      selectCase(ctx, 'where'), selectCase(ctx, 'concat', 0), selectCase(ctx, 'concat', 1),
      randomCase(ctx, 'randn'), randomCase(ctx, 'rand'), randomCase(ctx, 'zeros'), randomCase(ctx, 'arange'),
    ];
  const n = copyElements(ctx);
  let a: Tensor | undefined, b: Tensor | undefined;
  return [
    {
      op: 'add',
      shape: `2^${Math.log2(n)}`,
      dtype: 'float32',
      device: ctx.device,
      bytes: 3 * 4 * n,
      setup() {
        a = randn([n], { seed: 1, device: ctx.device });
        b = randn([n], { seed: 2, device: ctx.device });
      },
      run() {
        add(a!, b!).dispose();
      },
      teardown() {
        a?.dispose();
        b?.dispose();
      },
      baselines: {
        copy: copyBandwidthBaseline(ctx),
        'torch-cuda': { kind: 'torch', script: 'cuda.py', spec: { op: 'add', n, dtype: 'float32' }, label: 'a + b' },
        'torch-copy': { kind: 'torch', script: 'cuda.py', spec: { op: 'copy', n, dtype: 'float32' }, label: 'copy_', bytes: 2 * 4 * n },
      },
      targets: ctx.emu ? undefined : [{ baseline: 'copy', min: 0.85, goal: 'float32 add of 2^26 ≥ 85% of the device-to-device copy bandwidth (issue 3)' }],
    },
    dropoutCase(ctx, n),
  ];
}
