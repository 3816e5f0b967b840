// emu.test.ts — the CUDA emulator (cuda/emu/) and the real cuda/*.cu kernels run through it on the CPU.
// Builds test/emu/ + cuda/*.cu + cuda/emu/*.cc with g++ as host C++ (-DSTRUCTURA_CUDA_EMU), one object
// per source compiled in parallel, cached under build/emu-test/<hash of every source and flag>/, runs
// the harness once, and asserts on its PASS/FAIL lines: correct kernels must match their float64
// references, and every planted bug must be reported with the right error kind and a message naming
// kernel, block, thread and address. The harness prints its seed; STRUCTURA_TEST_SEED reproduces a run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const CXX = process.env.CXX || 'g++';
const FLAGS = ['-std=c++17', '-O1', '-g0', '-Wall', '-Wno-unknown-pragmas', '-DSTRUCTURA_CUDA_EMU', '-Icuda', '-Icuda/emu'];

function listFiles(dir: string, re: RegExp): string[] {
  return fs
    .readdirSync(path.join(root, dir))
    .filter((f) => re.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

// Every .cu kernel file (the real kernels), the emulator's sources, and the test harness.
const SOURCES = [...listFiles('cuda', /\.cu$/), ...listFiles('cuda/emu', /\.cc$/), ...listFiles('test/emu', /\.(cc|cu)$/)];
const HEADERS = [...listFiles('cuda', /\.(h|cuh)$/), ...listFiles('cuda/emu', /\.h$/), ...listFiles('test/emu', /\.h$/)];

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

let buildSeconds = 0;
let cached = false;
async function build(): Promise<string> {
  const h = createHash('sha256');
  h.update(CXX + ' ' + FLAGS.join(' ') + spawnSync(CXX, ['--version']).stdout);
  for (const f of [...SOURCES, ...HEADERS]) h.update(f + '\0').update(fs.readFileSync(path.join(root, f)));
  const dir = path.join(root, 'build', 'emu-test', h.digest('hex').slice(0, 16));
  const bin = path.join(dir, 'emu_test');
  if (fs.existsSync(bin)) {
    cached = true;
    return bin;
  }
  const t0 = Date.now();
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.mkdirSync(tmp, { recursive: true });
  const objs = SOURCES.map((s) => path.join(tmp, s.replace(/[\/.]/g, '_') + '.o'));
  // two at a time (CI machines have 2 cores)
  const queue = SOURCES.map((s, i) => [s, objs[i]] as const);
  const errors: string[] = [];
  const worker = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const r = await run(CXX, [...FLAGS, '-x', 'c++', '-c', job[0], '-o', job[1]]);
      if (r.code !== 0) errors.push(`${job[0]}:\n${r.out}`);
    }
  };
  await Promise.all([worker(), worker()]);
  if (errors.length) throw new Error(`emulator build failed:\n${errors.join('\n')}`);
  const link = await run(CXX, ['-o', path.join(tmp, 'emu_test'), ...objs, '-lpthread', '-ldl']);
  if (link.code !== 0) throw new Error(`emulator link failed:\n${link.out}`);
  // keep only this build: older hashes are stale sources
  for (const old of fs.readdirSync(path.dirname(dir))) if (!old.includes('.tmp-')) fs.rmSync(path.join(path.dirname(dir), old), { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  buildSeconds = (Date.now() - t0) / 1000;
  return bin;
}

type Line = { status: 'PASS' | 'FAIL'; name: string; detail: string };
let lines: Map<string, Line> | undefined;
let summary = '';
async function results(): Promise<Map<string, Line>> {
  if (lines) return lines;
  const bin = await build();
  const r = await run(bin, []);
  lines = new Map();
  for (const l of r.out.split('\n')) {
    const m = /^(PASS|FAIL) (\S+) \| (.*)$/.exec(l);
    if (m) lines.set(m[2], { status: m[1] as 'PASS' | 'FAIL', name: m[2], detail: m[3] });
    if (l.startsWith('SUMMARY')) summary = l;
  }
  if (!summary) throw new Error(`emulator test binary did not finish (exit ${r.code}):\n${r.out.slice(-4000)}`);
  return lines;
}

function expectPass(name: string): void {
  test(name, async () => {
    const l = (await results()).get(name);
    assert.ok(l, `case ${name} did not run (${summary})`);
    assert.is(l!.status, 'PASS', `${name}: ${l!.detail} (${summary})`);
  });
}

// A planted bug: the harness already required the error kind; also require that the message names the
// kernel, the block and thread (or warp), and the address or lanes.
function expectPlanted(name: string, kind: string, kernel: string, mustContain: RegExp[]): void {
  test(name, async () => {
    const l = (await results()).get(name);
    assert.ok(l, `case ${name} did not run (${summary})`);
    assert.is(l!.status, 'PASS', `${name}: ${l!.detail} (${summary})`);
    if (kind === 'wrong-result') return;
    assert.match(l!.detail, `structura-emu: ${kind} in kernel '${kernel}`);
    assert.match(l!.detail, /block \(\d+,\d+,\d+\)/);
    for (const re of mustContain) assert.match(l!.detail, re);
  });
}

test('build', async () => {
  await results();
  console.log(`  emulator tests: ${summary}; build ${cached ? 'cached' : `${buildSeconds.toFixed(1)} s`}`);
});

// correct kernels against references
for (const name of [
  'elementwise_add_f32_odd_sizes',
  'elementwise_selftest',
  'runtime_bounds_checks',
  'block_reduce_static_smem',
  'block_reduce_dynamic_smem',
  'warp_shuffle_reduce',
  'mma_m16n8k16_bf16_gemm',
  'mma_m16n8k16_f16_gemm',
  'mma_m16n8k8_f16',
  'mma_m16n8k8_bf16',
  'mma_m16n8k8_tf32',
  'ldmatrix_round_trips',
  'cp_async_wait_group',
  'wgmma_m64n256k16_all_ones',
  'pdl_chain_waits_before_reading',
  'grid_flag_hand_over',
  'tma_mbarrier_pipeline',
  'mma_sp_valid_metadata',
  'mma_sp_notes_worked_example',
  'launch_config_checks',
  'all_wrappers_run',
  // cuda/dense.cu (test/emu/dense_cases.cu)
  'dense_bf16_shapes',
  'dense_f16_shapes',
  'dense_f32_shapes',
  'dense_bf16_layouts_batched',
  'dense_f32_layouts_batched',
  'dense_bf16_epilogue',
  'dense_f16_epilogue',
  'dense_f32_epilogue',
  'dense_decode_epilogue',
  'dense_multi_tile',
  'dense_bad_arguments',
  // the memory-access profile (cuda/emu/profile.h; test/emu/profile_cases.cu)
  'profile_shared_bank_conflicts',
  'profile_global_sectors',
  'profile_ldmatrix_rows',
  'profile_off_records_nothing',
])
  expectPass(name);

// planted bugs
const THREAD = /thread \(\d+,\d+,\d+\) \[warp \d+ lane \d+\]/;
const ADDR = /at 0x[0-9a-f]+/;
expectPlanted('planted_off_by_one_tile_index', 'out-of-bounds', 'mma_gemm_kernel<__nv_bfloat16, 1>', [THREAD, ADDR, /past the end/]);
expectPlanted('planted_off_by_one_global_read', 'out-of-bounds', 'shift_kernel', [THREAD, ADDR, /past the end of the 400-byte allocation/]);
expectPlanted('planted_removed_syncthreads', 'shared-race', 'block_reduce_kernel<128, false, true>', [THREAD, ADDR, /'sbuf'/]);
expectPlanted('planted_cp_async_no_barrier', 'shared-race', 'cp_async_kernel', [THREAD, ADDR]);
expectPlanted('planted_read_before_wait_group', 'async-copy', 'cp_async_kernel', [THREAD, ADDR, /wait_group/]);
expectPlanted('planted_shuffle_partial_mask', 'collective-divergence', 'warp_reduce_kernel', [THREAD, /mask 0x0000ffff/, /lane 16/]);
expectPlanted('planted_shuffle_skipped_by_half_warp', 'collective-divergence', 'warp_reduce_kernel', [/warp 0/, /lanes 0-15 only/, /lanes 16-31 waiting at __syncthreads/]);
expectPlanted('planted_return_before_barrier', 'barrier-divergence', 'warp_reduce_kernel', [THREAD, /exited/]);
expectPlanted('planted_invalid_metadata', 'invalid-metadata', 'mma_sp_kernel<32, true, 1>', [THREAD, /nibble 0x5/]);
expectPlanted('planted_wrong_ldmatrix_mapping', 'wrong-result', '', []);
expectPlanted('planted_write_during_wgmma', 'shared-race', 'wgmma_kernel', [THREAD, ADDR, /wgmma of warp 0/, /wait_group/]);
expectPlanted('planted_pdl_read_before_wait', 'dependent-launch', 'pdl_consume_kernel', [THREAD, ADDR, /before griddepcontrol.wait/, /launch #\d+ wrote/]);
expectPlanted('planted_pdl_write_before_wait', 'dependent-launch', 'pdl_consume_kernel', [THREAD, ADDR, /global write .* before griddepcontrol.wait/]);
expectPlanted('planted_pdl_read_of_chain_start', 'dependent-launch', 'pdl_consume_kernel', [THREAD, ADDR, /chain began at #\d+/]);
expectPlanted('planted_flag_never_raised', 'barrier-divergence', 'flag_kernel', [THREAD, /flag_wait on a flag that no block ahead of this one raised/]);
expectPlanted('planted_tma_read_before_wait', 'async-copy', 'tma_pipe_kernel', [THREAD, ADDR, /TMA load/, /mbarrier/]);
expectPlanted('planted_tma_refill_before_release', 'mbarrier', 'tma_pipe_kernel', [THREAD, /phases completed since this thread's previous wait/]);
expectPlanted('planted_mbarrier_never_completes', 'barrier-divergence', 'tma_pipe_kernel', [THREAD, /never completes/, /transaction bytes/]);
expectPlanted('planted_wgmma_descriptor_without_swizzle', 'invalid-argument', 'wgmma_kernel', [THREAD, /swizzle mode 0/]);

test('every harness case is asserted here', async () => {
  const src = fs.readFileSync(__filename, 'utf8');
  for (const name of (await results()).keys()) assert.ok(src.includes(`'${name}'`), `case ${name} has no assertion in emu.test.ts`);
});

test.run();
