// emu-fidelity.test.ts — issue 4 item 7 on a real GPU: runs build/emu-fidelity/emu-fidelity (every
// cuda/ptx.cuh wrapper and the emulated intrinsics, on the GPU and in the emulator, on the same seeded
// inputs; see test/gpu/fidelity/main.cc), prints its table, and fails unless every case passes. One uvu
// test per case, so a failure names it. Builds the binary first if it is missing and nvcc exists
// (test/gpu/fidelity/build.js). Without a usable GPU the binary exits 2 and this suite fails.
// Env: STRUCTURA_TEST_SEED (default 1), STRUCTURA_GPU_OUT (a folder: emu-fidelity.json and
// emu-fidelity.txt are written there), EMU_FIDELITY_BIN (another binary).
// Runs under `node scripts/test.js --gpu` and as `node --import tsx test/gpu/emu-fidelity.test.ts`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const buildJs = path.join(root, 'test', 'gpu', 'fidelity', 'build.js');
const bin = process.env.EMU_FIDELITY_BIN || path.join(root, 'build', 'emu-fidelity', 'emu-fidelity');
const seed = process.env.STRUCTURA_TEST_SEED || '1';

type Case = { case: string; compared: number; mismatches: number; max_ulp: number | null; status: string; detail: string; examples: string[] };
type Report = { gpu: boolean; device: string; mode: string; seed: number; summary: { line: string; failed: number }; cases: Case[] };

let buildError = '';
if (!fs.existsSync(bin)) {
  const nvcc = spawnSync(process.env.NVCC || 'nvcc', ['--version']);
  if (nvcc.status !== 0) buildError = `${bin} is missing and nvcc is not available to build it (node test/gpu/fidelity/build.js)`;
  else {
    const r = spawnSync(process.execPath, [buildJs], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) buildError = `building ${bin} failed:\n${r.stdout}\n${r.stderr}`;
  }
}

const outDir = process.env.STRUCTURA_GPU_OUT;
const jsonPath = outDir ? path.join(outDir, 'emu-fidelity.json') : path.join(os.tmpdir(), `emu-fidelity-${process.pid}.json`);
let run: { code: number | null; out: string } = { code: null, out: '' };
let report: Report | undefined;
if (!buildError) {
  if (outDir) fs.mkdirSync(outDir, { recursive: true });
  const t0 = Date.now();
  const r = spawnSync(bin, [seed, '--json', jsonPath], { cwd: root, encoding: 'utf8', timeout: 600_000 });
  run = { code: r.status, out: (r.stdout || '') + (r.stderr || '') + (r.error ? String(r.error) : '') };
  console.log(run.out.trimEnd());
  console.log(`(emu-fidelity exit ${r.status}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (outDir) fs.writeFileSync(path.join(outDir, 'emu-fidelity.txt'), run.out);
  if (fs.existsSync(jsonPath)) {
    report = JSON.parse(fs.readFileSync(jsonPath, 'utf8')) as Report;
    if (!outDir) fs.rmSync(jsonPath, { force: true });
  }
}

test('emu-fidelity ran on a GPU', () => {
  assert.ok(!buildError, buildError);
  assert.ok(report, `no JSON report (exit ${run.code}):\n${run.out.slice(-3000)}`);
  assert.ok(report!.gpu, `no usable GPU: ${report!.device} (exit ${run.code})`);
  assert.is(run.code, 0, `${report!.summary.line} (exit ${run.code})`);
});

for (const c of report?.cases ?? []) {
  test(`${c.case}`, () => {
    assert.ok(c.status === 'PASS' || c.status === 'INFO', `${c.case}: ${c.mismatches} of ${c.compared} differ; ${c.detail}\n  ${c.examples.join('\n  ')} (seed ${seed})`);
  });
}

test.run();
