// dense.bench.ts — float32 matmul C[M, N] = A[M, K]·B[K, N] on the shared GEMM core: squares 256³ to
// 4096³ and the skinny shapes of inference (1×4096×4096, a matrix-vector product; 16×4096×4096).
// Shapes are written M×K×N; one call is 2·M·K·N flops. Baselines: PyTorch's matmul on the same shapes
// (bench/torch/dense.py) and a naive i-k-j loop in JavaScript, timed on a sample of the rows of the
// same product (rows are independent, so the time scales with M) to keep large shapes affordable.
import type { BenchCase, BenchContext } from './run';
import { matmul, randn, type Tensor } from '../lib/index';

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

export function cases(ctx: BenchContext): BenchCase[] {
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
