// probe.ts — a first, quick look at each kernel that had not yet passed on a GPU when it was written
// (the switches of STRUCTURA_CUDA_DISABLE, cuda/structura_cuda.h), each in its own process under a
// time limit, before the GPU suites and the bench run. A kernel that gives wrong numbers, fails, hangs
// or kills the CUDA context is named here, and scripts/gpu-check.sh switches it off for the rest of the
// run, which then still tests and times everything else (a GPU run is short and rare: one bad kernel
// must not cost all of it).
//
//   node --import tsx test/gpu/probe.ts [--device cuda|cuda-emu] [--timeout s] [--out file.json] [switch ...]
//
// First a base check (mma.sync and the v1 decode kernel, with every switch off: what the verdicts stand
// on), then one child a switch, run with every *other* switch off, so that a failure is that kernel's
// own; then the pairs that are on together by default (COMBOS: fused lora at decode and split-K decode,
// each launched as a dependent launch), when both passed alone — one that fails switches off 'pdl', the
// part they share, which only overlaps launches. A check forces its kernel where a setter exists and
// otherwise picks shapes that take it (the preconditions in cuda/dense.cu), and compares with float64
// references (test/conformance's checks).
// Prints a line a check — ok, wrong (a mismatch), error (an exception: a CUDA error, a refused switch),
// crash (the process died) or timeout — then `STRUCTURA_CUDA_DISABLE=<the switches that were not ok>`
// as its last line. Exit code 0 whatever the verdicts (they are the output); 2 if the device is missing.
// On 'cuda-emu' the shapes are small (the emulator stands in for the GPU in the probe's own test).
// Test hooks: STRUCTURA_PROBE_FAIL / _HANG / _CRASH (a switch name) make that child fail, hang or abort.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as S from '../../lib/index';
import { native, type GemmKernel } from '../../lib/native';
import { checkMatmul, type DenseCase, type DenseDType } from '../conformance/dense';
import { checkLora, type LoraCase } from '../conformance/lowrank';

export const SWITCHES = [
  'wgmma', 'wgmma-tma', 'lora-decode', 'decode-splitk', 'decode-stream', 'decode-f32', 'decode-nmajor', 'decode-nmajor-f32', 'pdl',
] as const;
export type Switch = (typeof SWITCHES)[number];
export const COMBOS = [['lora-decode', 'pdl'], ['decode-splitk', 'pdl']] as const;
export type Check = 'base' | Switch | `${Switch}+${Switch}`;
export type Verdict = 'ok' | 'wrong' | 'error' | 'crash' | 'timeout';
export interface ProbeResult { check: Check; verdict: Verdict; seconds: number; detail: string }

// ---------------------------------------------------------------------------------------------------
// the checks (run in a child)

/** Runs `run` with a native switch set, putting the old value back. */
function withSetting<T>(set: (v: T) => T, v: T, run: () => void): void {
  const old = set(v);
  try {
    run();
  } finally {
    set(old);
  }
}

function check(name: Check, dev: string, gpu: boolean): void {
  if (name.includes('+')) {  // a pair: each one's checks, with both on
    for (const part of name.split('+')) check(part as Switch, dev, gpu);
    return;
  }
  const mm = (dt: DenseDType, cases: DenseCase[]) => cases.forEach((c, i) => checkMatmul(dev, dt, c, 1000 + i));
  const lora = (dt: 'float16' | 'bfloat16', cases: LoraCase[]) => cases.forEach((c, i) => checkLora(dev, dt, c, 2000 + i));
  // x·Wᵀ products a wgmma kernel takes (N > 128, M > 64 in 'auto'; forced here): tails, several k-tiles,
  // and on a GPU 272 tiles of 128×256, so that the persistent TMA kernel's CTAs take two or three each
  const wide: DenseCase[] = gpu
    ? [{ m: 520, k: 1024, n: 1000, transB: true }, { m: 130, k: 72, n: 300, transB: true }, { m: 2048, k: 200, n: 4352, transB: true }]
    : [{ m: 130, k: 72, n: 300, transB: true }, { m: 70, k: 600, n: 260, transB: true }];
  const wideLora: LoraCase[] = gpu ? [{ m: 300, k: 1024, n: 520, r: 16, bias: true }] : [{ m: 130, k: 64, n: 260, r: 16, bias: true }];
  // decode shapes (M ≤ 16)
  const xWt: DenseCase[] = gpu
    ? [{ m: 1, k: 4096, n: 4096, transB: true }, { m: 16, k: 4096, n: 1000, transB: true }]
    : [{ m: 1, k: 64, n: 37, transB: true }, { m: 16, k: 264, n: 130, transB: true }];
  const xW: DenseCase[] = gpu ? [{ m: 1, k: 4096, n: 4096 }, { m: 16, k: 4104, n: 1000 }] : [{ m: 1, k: 64, n: 40 }, { m: 16, k: 264, n: 136 }];
  const decodeLora: LoraCase[] = gpu
    ? [{ m: 1, k: 4096, n: 4096, r: 16, bias: true }, { m: 16, k: 4096, n: 1000, r: 64, rank: 48 }]
    : [{ m: 1, k: 64, n: 40, r: 8, bias: true }, { m: 16, k: 1032, n: 33, r: 40, rank: 37 }];
  switch (name) {
    case 'base':
      withSetting((k: GemmKernel) => native().setGemmKernel(k), 'mma', () => mm('bfloat16', [...wide.slice(0, 2), { m: 256, k: 264, n: 272 }]));
      mm('bfloat16', xWt);
      mm('float32', gpu ? [{ m: 256, k: 512, n: 300 }] : [{ m: 37, k: 60, n: 45 }]);
      lora('bfloat16', decodeLora); // the chain of three launches, in stream order
      return;
    case 'wgmma':
    case 'wgmma-tma':
      withSetting((k: GemmKernel) => native().setGemmKernel(k), name, () => {
        mm('bfloat16', wide);
        mm('float16', wide.slice(0, 1));
        lora('bfloat16', wideLora);
      });
      return;
    case 'lora-decode':
      withSetting((m: 'fused' | 'chain') => native().setLoraDecode(m), 'fused', () => {
        lora('bfloat16', decodeLora);
        lora('float16', decodeLora.slice(0, 1));
      });
      return;
    case 'decode-splitk': // few column tiles and a long K (on the emulator, which reports 3 SMs, too)
      mm('bfloat16', gpu
        ? [{ m: 1, k: 4096, n: 1024, transB: true }, { m: 8, k: 14336, n: 520, transB: true }]
        : [{ m: 3, k: 2056, n: 40, transB: true }, { m: 16, k: 4096, n: 24, transB: true }]);
      return;
    case 'decode-stream':
      withSetting((v: 0 | 1 | 2) => native().setDecodeKernel(v), 2, () => mm('bfloat16', xWt));
      return;
    case 'decode-f32':
      mm('float32', [...xWt, { m: 4, k: 36, n: 21, transB: true }]);
      return;
    case 'decode-nmajor':
      mm('bfloat16', xW);
      mm('float16', xW.slice(0, 1));
      return;
    case 'decode-nmajor-f32':
      mm('float32', [...xW, { m: 6, k: 37, n: 12 }]);
      return;
    case 'pdl': {
      // dependent launches back to back, each input written by the kernel just before it
      mm('bfloat16', xWt);
      lora('bfloat16', decodeLora);
      const [k, n] = gpu ? [4096, 4096] : [64, 40];
      const x = S.randn([3, k], { seed: 1, dtype: 'bfloat16', device: dev });
      const W1 = S.randn([n, k], { seed: 2, dtype: 'bfloat16', device: dev }), W2 = S.randn([k, n], { seed: 3, dtype: 'bfloat16', device: dev });
      const chain = (t: S.Tensor, w1: S.Tensor, w2: S.Tensor) =>
        S.tidy(() => S.mul(S.matmul(S.gelu(S.matmul(S.mul(t, 0.5), w1.T)), w2.T), 1 / Math.sqrt(n)).cast('float32').to('cpu'));
      const got = chain(x, W1, W2);
      const [xc, W1c, W2c] = [x, W1, W2].map((t) => t.to('cpu').cast('float32'));
      const ref = chain(xc, W1c, W2c);
      const a = got.dataSync(), b = ref.dataSync();
      let num = 0, den = 0;
      for (let i = 0; i < b.length; i++) (num += (a[i] - b[i]) ** 2), (den += b[i] ** 2);
      S.dispose([x, W1, W2, got, ref, xc, W1c, W2c]);
      // bfloat16 rounding of the hidden layer and the outputs against float32 throughout
      if (!(Math.sqrt(num / den) < 2e-2)) throw new Error(`pdl: a chain of decode products is off by ${Math.sqrt(num / den).toExponential(3)} (relative, against the CPU)`);
      return;
    }
  }
}

function child(name: Check, dev: string): void {
  if (process.env.STRUCTURA_PROBE_HANG === name) for (;;);
  if (process.env.STRUCTURA_PROBE_CRASH === name) process.abort();
  if (process.env.STRUCTURA_PROBE_FAIL === name) throw new Error(`planted failure (STRUCTURA_PROBE_FAIL=${name})`);
  check(name, dev, dev.startsWith('cuda') && dev !== 'cuda-emu');
  S.cuda.synchronize();
}

// ---------------------------------------------------------------------------------------------------
// the parent: one child a check

function runChild(name: Check, dev: string, timeoutS: number): Promise<ProbeResult> {
  const on = name.split('+');
  const off = SWITCHES.filter((s) => !on.includes(s)).join(',');
  const t0 = Date.now();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [...process.execArgv, __filename, '--child', name, '--device', dev], {
      env: { ...process.env, STRUCTURA_CUDA_DISABLE: off },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, timeoutS * 1000);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = Math.round((Date.now() - t0) / 100) / 10;
      const verdictLine = out.split('\n').find((l) => l.startsWith('probe-verdict '));
      if (timedOut) return resolve({ check: name, verdict: 'timeout', seconds, detail: `no answer in ${timeoutS} s` });
      if (verdictLine) {
        const v = JSON.parse(verdictLine.slice('probe-verdict '.length)) as { verdict: Verdict; detail: string };
        return resolve({ check: name, verdict: v.verdict, seconds, detail: v.detail });
      }
      const last = out.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
      resolve({ check: name, verdict: 'crash', seconds, detail: `exit ${code ?? signal}: ${last}`.slice(0, 400) });
    });
  });
}

export async function probe(dev: string, names: readonly Switch[], timeoutS: number): Promise<{ base: ProbeResult; results: ProbeResult[]; disable: Switch[] }> {
  const base = await runChild('base', dev, timeoutS);
  const results: ProbeResult[] = [];
  for (const n of names) results.push(await runChild(n, dev, timeoutS));
  const disable = new Set(results.filter((r) => r.verdict !== 'ok').map((r) => r.check as Switch));
  for (const [a, b] of COMBOS) {
    if (!names.includes(a) || !names.includes(b) || disable.has(a) || disable.has(b)) continue;
    const r = await runChild(`${a}+${b}`, dev, timeoutS);
    results.push(r);
    if (r.verdict !== 'ok') disable.add(b);
  }
  return { base, results, disable: SWITCHES.filter((s) => disable.has(s)) };
}

function parseArgs(argv: string[]) {
  const o = { device: 'cuda', timeout: 90, out: '', child: '', names: [] as string[] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--device') o.device = argv[++i];
    else if (a === '--timeout') o.timeout = Number(argv[++i]);
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--child') o.child = argv[++i];
    else o.names.push(a);
  }
  return o;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) {
    let verdict: Verdict = 'ok', detail = '';
    try {
      child(o.child as Check, o.device);
    } catch (e) {
      const err = e as Error;
      // uvu's assertions (a mismatch against the reference) are Assertion errors; anything else failed
      verdict = err?.name === 'Assertion' ? 'wrong' : 'error';
      detail = String(err?.message ?? e).split('\n')[0].slice(0, 400);
    }
    console.log(`probe-verdict ${JSON.stringify({ verdict, detail })}`);
    process.exit(0);
  }
  const b = S.backend();
  if (o.device === 'cuda' ? !b.cuda : o.device === 'cuda-emu' ? !b.cudaEmu : true) {
    console.error(`probe: no device '${o.device}' here (${b.reason || 'cuda-emu not compiled in'})`);
    process.exit(2);
  }
  const bad = o.names.filter((n) => !(SWITCHES as readonly string[]).includes(n));
  if (bad.length) {
    console.error(`probe: unknown switch ${bad.join(', ')} (known: ${SWITCHES.join(', ')})`);
    process.exit(2);
  }
  const names = (o.names.length ? o.names : SWITCHES) as Switch[];
  const { base, results, disable } = await probe(o.device, names, o.timeout);
  for (const r of [base, ...results]) console.log(`${r.check.padEnd(18)} ${r.verdict.padEnd(8)} ${r.seconds.toFixed(1).padStart(6)} s  ${r.detail}`);
  if (base.verdict !== 'ok') console.log('the base check failed: the verdicts above say little about the switches');
  if (o.out) {
    fs.mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
    fs.writeFileSync(o.out, JSON.stringify({ device: o.device, devices: b.devices, date: new Date().toISOString(), base, results, disable }, null, 2) + '\n');
  }
  console.log(`STRUCTURA_CUDA_DISABLE=${disable.join(',')}`);
}

if (require.main === module) void main();
