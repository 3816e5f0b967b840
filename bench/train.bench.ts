// train.bench.ts — whole training steps on the CPU (zeroGrad, forward, backward, optimizer step), each
// against the same step in PyTorch in the same run (bench/torch/train.py):
//   mlp   784 → 1024 → 1024 → 10 (nn.Linear, GELU between), batch 256, crossEntropy, AdamW (lr 1e-3,
//         weight decay 0.01): the GEMMs with their transposed operands, the elementwise ops and their
//         gradients, the optimizer's update, and the allocator under a step's churn of buffers;
//         and 16 → 32 → 32 → 4, batch 8, where the arithmetic is nothing and the per-op cost (checks,
//         handles, graph nodes, tidy) is all
//   lora  x [512, 1024] → nn.LoRALinear(1024 → 4096, r 16, alpha 32) → GELU → nn.LoRALinear(4096 → 1024),
//         mseLoss against a target, AdamW on the adapters only (the base weights frozen, as PEFT does):
//         fused lora forwards, and backwards that skip the frozen weights' gradients; and the same with
//         lora_dropout 0.05 (the adapter's input dropped: PEFT's unfused form, on both sides)
//   clip  nn.utils.clipGradNorm_ over the big MLP's gradients (about 1.9M floats in 6 tensors), against
//         torch.nn.utils.clip_grad_norm_ on the same shapes: the per-gradient norms, their norm, the scaling
// GFLOP/s count the GEMMs only (forward 2·M·N·K each; backward the same for each weight gradient and
// each input gradient that is needed). CPU only: on a device the file has no cases.
import type { BenchCase, BenchContext } from './run';
import { nn, optim, randn, tensor, tidy, zeros, crossEntropy, mseLoss, gelu, type Tensor } from '../lib/index';

function mlpCase(ctx: BenchContext, batch: number, dims: number[]): BenchCase {
  let model: InstanceType<typeof nn.Sequential> | undefined, opt: optim.AdamW | undefined, x: Tensor | undefined, labels: Tensor | undefined;
  let flops = 0;
  for (let i = 0; i + 1 < dims.length; i++) flops += 2 * batch * dims[i] * dims[i + 1] * (i === 0 ? 2 : 3);
  return {
    op: 'train step',
    shape: `mlp ${dims.join('→')} batch ${batch}`,
    dtype: 'float32',
    device: ctx.device,
    flops,
    setup() {
      const layers: InstanceType<typeof nn.Module>[] = [];
      for (let i = 0; i + 1 < dims.length; i++) {
        layers.push(new nn.Linear(dims[i], dims[i + 1], { seed: 10 + i }));
        if (i + 2 < dims.length) layers.push(new nn.GELU());
      }
      model = new nn.Sequential(...layers);
      opt = new optim.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.01 });
      x = randn([batch, dims[0]], { seed: 1 });
      labels = tensor(Int32Array.from({ length: batch }, (_, i) => (i * 7919) % dims[dims.length - 1]), { dtype: 'int32' });
    },
    run() {
      opt!.zeroGrad();
      const loss = tidy(() => crossEntropy(model!.forward(x!) as Tensor, labels!));
      loss.backward();
      loss.dispose();
      opt!.step();
    },
    teardown() {
      model?.dispose();
      x?.dispose();
      labels?.dispose();
    },
    baselines: {
      torch: { kind: 'torch', script: 'train.py', spec: { op: 'mlp', batch, dims }, label: 'nn.Sequential + AdamW step' },
    },
  };
}

function loraCase(ctx: BenchContext, m: number, d: number, h: number, r: number, dropout = 0): BenchCase {
  let l1: nn.LoRALinear | undefined, l2: nn.LoRALinear | undefined, opt: optim.AdamW | undefined;
  let x: Tensor | undefined, target: Tensor | undefined;
  // forward both base products, the input gradient of the second (to reach the first's adapters)
  const flops = 3 * 2 * m * d * h;
  return {
    op: 'train step',
    shape: `lora ${d}→${h}→${d} r=${r} M=${m}${dropout ? ` dropout=${dropout}` : ''}`,
    dtype: 'float32',
    device: ctx.device,
    flops,
    setup() {
      l1 = new nn.LoRALinear(new nn.Linear(d, h, { seed: 3 }), { r, alpha: 2 * r, dropout, seed: 4 });
      l2 = new nn.LoRALinear(new nn.Linear(h, d, { seed: 5 }), { r, alpha: 2 * r, dropout, seed: 6 });
      const params = [...l1.parameters(), ...l2.parameters()].filter((p) => p.requiresGrad);
      opt = new optim.AdamW(params, { lr: 1e-3, weightDecay: 0.01 });
      x = randn([m, d], { seed: 1 });
      target = randn([m, d], { seed: 2 });
    },
    run() {
      opt!.zeroGrad();
      const loss = tidy(() => mseLoss(l2!.forward(gelu(l1!.forward(x!))), target!));
      loss.backward();
      loss.dispose();
      opt!.step();
    },
    teardown() {
      l1?.dispose();
      l2?.dispose();
      x?.dispose();
      target?.dispose();
    },
    baselines: {
      torch: { kind: 'torch', script: 'train.py', spec: { op: 'lora', m, d, h, r, alpha: 2 * r, dropout }, label: 'PEFT-style LoRA + AdamW step' },
    },
  };
}

/** clipGradNorm_ over parameters of `shapes` holding random gradients (clipped to maxNorm each call). */
function clipCase(ctx: BenchContext, shapes: number[][], maxNorm: number): BenchCase {
  let params: Tensor[] = [];
  const n = shapes.reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
  return {
    op: 'nn.utils.clipGradNorm_',
    shape: `${shapes.length} gradients, ${n} floats`,
    dtype: 'float32',
    device: ctx.device,
    bytes: 2 * 4 * n, // each gradient read for its norm, then read and written once scaled
    setup() {
      params = shapes.map((sh, i) => {
        const p = zeros(sh, { requiresGrad: true });
        p.grad = randn(sh, { seed: 20 + i });
        return p;
      });
    },
    run: () => tidy(() => {
      nn.utils.clipGradNorm_(params, maxNorm);
    }),
    teardown() {
      for (const p of params) {
        p.grad?.dispose();
        p.dispose();
      }
    },
    baselines: {
      torch: { kind: 'torch', script: 'train.py', spec: { op: 'clip', shapes, max_norm: maxNorm }, label: 'torch.nn.utils.clip_grad_norm_' },
    },
  };
}

export function cases(ctx: BenchContext): BenchCase[] {
  if (ctx.onDevice) return [];
  // the small MLP measures what a step costs beyond its arithmetic: per-op dispatch, handles, the graph
  return [
    mlpCase(ctx, 256, [784, 1024, 1024, 10]), mlpCase(ctx, 8, [16, 32, 32, 4]), loraCase(ctx, 512, 1024, 4096, 16),
    loraCase(ctx, 512, 1024, 4096, 16, 0.05),
    clipCase(ctx, [[1024, 784], [1024], [1024, 1024], [1024], [10, 1024], [10]], 1),
  ];
}
