// gpu_probe.test.ts — the kernel switches of STRUCTURA_CUDA_DISABLE (cuda/structura_cuda.h, read once
// a process, so each case runs in a child) and test/gpu/probe.ts, which names the kernels a GPU run
// should switch off, on the emulated device 'cuda-emu': every verdict ok there, and a planted failure,
// hang and crash each named and listed, and a pair failing together switches off 'pdl'.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as S from '../lib/index';

const root = path.resolve(__dirname, '..');
const emu = S.backend().cudaEmu;

function node(args: string[], env: Record<string, string>, timeoutMs = 120_000) {
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, ...env }, timeout: timeoutMs });
  return { status: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}
const js = (code: string, env: Record<string, string>) => node(['--require', 'tsx/cjs', '-e', code], env);

test('STRUCTURA_CUDA_DISABLE: listed by backend(), setters refused with the switch named, unknown names reported', () => {
  const code = `const S = require('./lib/index'); const { native } = require('./lib/native');
    const tries = [() => native().setGemmKernel('wgmma-tma'), () => native().setLoraDecode('fused'), () => native().setDependentLaunch(true),
      () => native().setDecodeKernel(2), () => native().setGemmKernel('wgmma'), () => native().setLoraDecode('chain'), () => native().setDependentLaunch(false)];
    const out = tries.map((f) => { try { return 'ok ' + f(); } catch (e) { return e.constructor.name + ': ' + e.message; } });
    console.log(JSON.stringify({ off: S.backend().cudaDisabled, out }));`;
  const r = js(code, { STRUCTURA_CUDA_DISABLE: 'wgmma-tma, lora-decode,pdl,decode-stream,bogus' });
  assert.is(r.status, 0, r.err);
  const { off, out } = JSON.parse(r.out.trim().split('\n').pop()!) as { off: string[]; out: string[] };
  if (!emu) {
    assert.equal(off, [], 'without a CUDA build nothing runs to switch off');
    return;
  }
  assert.equal(off, ['wgmma-tma', 'lora-decode', 'decode-stream', 'pdl']);
  assert.match(out[0], /^Error: structura\.setGemmKernel\('wgmma-tma'\): the kernel 'wgmma-tma' is switched off by STRUCTURA_CUDA_DISABLE=/);
  assert.match(out[1], /setLoraDecode\('fused'\): the kernel 'lora-decode' is switched off/);
  assert.match(out[2], /setDependentLaunch\(true\): the kernel 'pdl' is switched off/);
  assert.match(out[3], /setDecodeKernel\(2\): the kernel 'decode-stream' is switched off/);
  // what was not switched off still switches; a disabled default reads back as not in effect
  assert.equal(out.slice(4), ['ok auto', 'ok chain', 'ok false']);
  assert.match(r.err, /STRUCTURA_CUDA_DISABLE: unknown kernel 'bogus' \(ignored; known: wgmma, wgmma-tma, lora-decode/);
  // once, though the CUDA runtime and its emulated twin both parse the variable
  assert.is((r.err.match(/unknown kernel/g) || []).length, 1, r.err);
});

test('STRUCTURA_CUDA_DISABLE: a switched-off default takes the kernel it replaced, with the right result', () => {
  if (!emu) return;
  // lora at decode through the chain, split-K off, the float32 and N-major decode kernels off: the
  // products still match float64 (test/conformance's checks)
  const code = `const { checkLora } = require('./test/conformance/lowrank'); const { checkMatmul } = require('./test/conformance/dense');
    checkLora('cuda-emu', 'bfloat16', { m: 3, k: 1560, n: 24, r: 16, bias: true }, 7);
    checkMatmul('cuda-emu', 'bfloat16', { m: 16, k: 4096, n: 24, transB: true }, 8);
    checkMatmul('cuda-emu', 'float32', { m: 4, k: 36, n: 21, transB: true }, 9);
    checkMatmul('cuda-emu', 'bfloat16', { m: 16, k: 264, n: 136 }, 10);
    checkMatmul('cuda-emu', 'float32', { m: 6, k: 37, n: 12 }, 11);
    console.log('done');`;
  const r = js(code, { STRUCTURA_CUDA_DISABLE: 'lora-decode,decode-splitk,decode-f32,decode-nmajor,decode-nmajor-f32,pdl' });
  assert.is(r.status, 0, r.err);
  assert.match(r.out, /done/);
});

test('probe: every kernel passes on cuda-emu; a planted failure, hang and crash are each named and switched off', () => {
  if (!emu) return;
  const probe = (env: Record<string, string>, args: string[] = []) =>
    node(['--import', 'tsx', 'test/gpu/probe.ts', '--device', 'cuda-emu', ...args], env, 300_000);
  const all = probe({});
  assert.is(all.status, 0, all.err);
  const lines = all.out.trim().split('\n');
  for (const name of ['base', 'wgmma', 'wgmma-tma', 'lora-decode', 'decode-splitk', 'decode-stream', 'decode-f32', 'decode-nmajor', 'decode-nmajor-f32', 'pdl',
    'lora-decode\\+pdl', 'decode-splitk\\+pdl'])
    assert.ok(lines.some((l) => new RegExp(`^${name} +ok `).test(l)), `${name} is not ok:\n${all.out}`);
  assert.is(lines.pop(), 'STRUCTURA_CUDA_DISABLE=');

  const planted = probe({ STRUCTURA_PROBE_FAIL: 'wgmma', STRUCTURA_PROBE_HANG: 'pdl', STRUCTURA_PROBE_CRASH: 'decode-f32' },
    ['--timeout', '8', 'wgmma', 'decode-f32', 'pdl', 'decode-nmajor']);
  assert.is(planted.status, 0, planted.err);
  const p = planted.out.trim().split('\n');
  assert.match(p.find((l) => l.startsWith('wgmma '))!, /^wgmma +error .*planted failure/);
  assert.match(p.find((l) => l.startsWith('decode-f32 '))!, /^decode-f32 +crash .*exit/);
  assert.match(p.find((l) => l.startsWith('pdl '))!, /^pdl +timeout .*no answer in 8 s/);
  assert.match(p.find((l) => l.startsWith('decode-nmajor '))!, /^decode-nmajor +ok /);
  assert.is(p.pop(), 'STRUCTURA_CUDA_DISABLE=wgmma,decode-f32,pdl');

  // a pair that fails together while each passed alone switches off the dependent launches they share
  const pair = probe({ STRUCTURA_PROBE_FAIL: 'lora-decode+pdl' }, ['lora-decode', 'pdl']);
  assert.is(pair.status, 0, pair.err);
  const q = pair.out.trim().split('\n');
  assert.match(q.find((l) => l.startsWith('lora-decode '))!, /^lora-decode +ok /);
  assert.match(q.find((l) => l.startsWith('lora-decode+pdl '))!, /^lora-decode\+pdl +error .*planted failure/);
  assert.is(q.pop(), 'STRUCTURA_CUDA_DISABLE=pdl');
});

test.run();
