#!/usr/bin/env node
// build.js — builds the emulator-fidelity binary (test/gpu/fidelity; issue 4 item 7). No dependencies.
//
//   node test/gpu/fidelity/build.js [--emu-only | --fake-gpu] [--force]
//
// full (default): build/emu-fidelity/emu-fidelity — fidelity_kernels.cu twice: g++ against cuda/emu
//   (fid_emu_*, with cuda/emu/*.cc) and nvcc for the GPU (fid_gpu_*; -gencode per STRUCTURA_CUDA_ARCHS,
//   default "90a"; e.g. "80;90a"), main.cc with g++, linked by nvcc with the static CUDA runtime and
//   static libstdc++/libgcc, so the binary needs only the NVIDIA driver where it runs.
// --emu-only: build/emu-fidelity/emu-fidelity-emu-only — no nvcc: main.cc with -DFIDELITY_EMU_ONLY,
//   checks the emulator against the host references (what `npm test` runs, test/kernels/fidelity.test.ts).
// --fake-gpu: build/emu-fidelity/emu-fidelity-fake-gpu — no nvcc: the "GPU" half is a second emulator
//   copy (fid_gpu_* compiled by g++), so the GPU-vs-emulator comparison, the worker processes and their
//   restarts (EMU_FIDELITY_FAKE_CRASH / _ERROR=<case>) can be tested without a GPU.
// Compiles two files at a time; skips everything when the binary's stamp (a hash of every source,
// header, flag and compiler version) matches. Env: CXX (default g++), NVCC (default nvcc).
// Prints the binary's path as its last line. Exported: build({ emuOnly, force, log }) → path.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..', '..');
const outDir = path.join(root, 'build', 'emu-fidelity');
const CXX = process.env.CXX || 'g++';
const NVCC = process.env.NVCC || 'nvcc';
const WARN = ['-Wall', '-Wno-unknown-pragmas'];
const EMU_FLAGS = ['-std=c++17', '-O1', '-g0', ...WARN, '-DSTRUCTURA_CUDA_EMU', '-Icuda', '-Icuda/emu', '-Itest/gpu/fidelity'];
const MAIN_FLAGS = ['-std=c++17', '-O1', '-g0', ...WARN, '-Itest/gpu/fidelity'];

function archFlags() {
  const archs = (process.env.STRUCTURA_CUDA_ARCHS || '90a').split(/[;,\s]+/).filter(Boolean);
  return archs.flatMap((a) => ['-gencode', `arch=compute_${a},code=sm_${a}`]);
}
const NVCC_FLAGS = () => ['-std=c++17', '-O3', '--expt-relaxed-constexpr', ...archFlags(), '-Icuda', '-Itest/gpu/fidelity'];

const list = (dir, re) =>
  fs
    .readdirSync(path.join(root, dir))
    .filter((f) => re.test(f))
    .sort()
    .map((f) => path.join(dir, f));

function hasCommand(cmd) {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return r.status === 0;
}

function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => resolve({ code: 127, out: String(e) }));
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
  });
}

// jobs: [{ cmd, args }] two at a time; throws with every failure's output.
async function runAll(jobs, log) {
  const queue = jobs.slice();
  const errors = [];
  const worker = async () => {
    for (let j = queue.shift(); j; j = queue.shift()) {
      log(`  ${j.cmd} ${j.args.join(' ')}`);
      const r = await run(j.cmd, j.args);
      if (r.code !== 0) errors.push(`${j.cmd} ${j.args.join(' ')}\n${r.out}`);
      else if (r.out.trim()) log(r.out.trim());
    }
  };
  await Promise.all([worker(), worker()]);
  if (errors.length) throw new Error(`emu-fidelity build failed:\n${errors.join('\n')}`);
}

async function build({ emuOnly = false, fakeGpu = false, force = false, log = (s) => console.log(s) } = {}) {
  const name = emuOnly ? 'emu-fidelity-emu-only' : fakeGpu ? 'emu-fidelity-fake-gpu' : 'emu-fidelity';
  const nvcc = !emuOnly && !fakeGpu;
  const bin = path.join(outDir, name);
  const emuSources = ['test/gpu/fidelity/fidelity_kernels.cu', ...list('cuda/emu', /\.cc$/)];
  const headers = [...list('cuda', /\.(h|cuh)$/), ...list('cuda/emu', /\.h$/), ...list('test/gpu/fidelity', /\.h$/)];
  const inputs = [...emuSources, 'test/gpu/fidelity/main.cc', ...headers, 'test/gpu/fidelity/build.js'];

  const h = createHash('sha256');
  h.update([name, CXX, ...EMU_FLAGS, ...MAIN_FLAGS].join(' '));
  h.update(spawnSync(CXX, ['--version'], { encoding: 'utf8' }).stdout || '');
  if (nvcc) {
    if (!hasCommand(NVCC)) throw new Error(`emu-fidelity: '${NVCC}' not found; the full build needs the CUDA toolkit (or use --emu-only)`);
    h.update(NVCC_FLAGS().join(' '));
    h.update(spawnSync(NVCC, ['--version'], { encoding: 'utf8' }).stdout || '');
  }
  for (const f of inputs) h.update(f + '\0').update(fs.readFileSync(path.join(root, f)));
  const stamp = h.digest('hex');
  const stampFile = `${bin}.stamp`;
  if (!force && fs.existsSync(bin) && fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === stamp) {
    log(`emu-fidelity: ${path.relative(root, bin)} is up to date`);
    return bin;
  }

  const t0 = Date.now();
  const objDir = path.join(outDir, `obj-${name}-${process.pid}`);
  fs.mkdirSync(objDir, { recursive: true });
  const obj = (src, tag) => path.join(objDir, src.replace(/[\/.]/g, '_') + `.${tag}.o`);
  const jobs = emuSources.map((s) => ({ cmd: CXX, args: [...EMU_FLAGS, '-x', 'c++', '-c', s, '-o', obj(s, 'emu')] }));
  const mainObj = obj('test/gpu/fidelity/main.cc', emuOnly ? 'emuonly' : 'full');
  const mainDefs = emuOnly ? ['-DFIDELITY_EMU_ONLY'] : fakeGpu ? ['-DFIDELITY_FAKE_GPU'] : [];
  jobs.unshift({ cmd: CXX, args: [...MAIN_FLAGS, ...mainDefs, '-c', 'test/gpu/fidelity/main.cc', '-o', mainObj] });
  const gpuObj = obj('test/gpu/fidelity/fidelity_kernels.cu', 'gpu');
  if (nvcc) jobs.unshift({ cmd: NVCC, args: [...NVCC_FLAGS(), '-c', 'test/gpu/fidelity/fidelity_kernels.cu', '-o', gpuObj] });
  else if (fakeGpu)
    jobs.push({ cmd: CXX, args: [...EMU_FLAGS, '-DFID_FN(name)=fid_gpu_##name', '-x', 'c++', '-c', 'test/gpu/fidelity/fidelity_kernels.cu', '-o', gpuObj] });
  log(`emu-fidelity: building ${path.relative(root, bin)}`);
  try {
    await runAll(jobs, log);
    const objs = [mainObj, ...emuSources.map((s) => obj(s, 'emu')), ...(emuOnly ? [] : [gpuObj])];
    const tmpBin = path.join(objDir, name);
    const link = !nvcc
      ? { cmd: CXX, args: ['-o', tmpBin, ...objs, '-lpthread'] }
      : { cmd: NVCC, args: ['-o', tmpBin, ...objs, '-cudart', 'static', '-Xcompiler', '-static-libstdc++,-static-libgcc', '-lpthread'] };
    await runAll([link], log);
    fs.renameSync(tmpBin, bin);
    fs.writeFileSync(stampFile, stamp);
  } finally {
    fs.rmSync(objDir, { recursive: true, force: true });
  }
  log(`emu-fidelity: built in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return bin;
}

module.exports = { build, hasCommand };

if (require.main === module) {
  const args = process.argv.slice(2);
  build({ emuOnly: args.includes('--emu-only'), fakeGpu: args.includes('--fake-gpu'), force: args.includes('--force') })
    .then((bin) => console.log(bin))
    .catch((e) => {
      console.error(e.message);
      process.exit(1);
    });
}
