#!/usr/bin/env node
// build-release.js — `npm run build:release`: the binary the npm tarball ships, at
// prebuilds/<platform>-<arch>/structura.napi.<libc>.node, where node-gyp-build (and so the install
// script) finds it on a user's machine that has no compiler.
//
//   node scripts/build-release.js [--from FILE] [--cpu-only]
//     (default)   a clean cmake-js build into build-release/ with the CUDA kernels for every
//                 architecture the package supports (sm_80, 86, 89, 90a + compute_90 PTX; the CUDA
//                 runtime linked statically, so users need only the driver). nvcc must be on PATH and
//                 STRUCTURA_CUDA_ARCHS unset: a release binary with fewer GPUs would fail users silently.
//     --from FILE take a binary built elsewhere (CI's build/Release/structura.node) instead of building;
//                 it must have CUDA compiled in unless --cpu-only.
//     --cpu-only  allow a binary without CUDA (a platform nvcc does not target).
// Then strips it, loads it in a child process to print what it is, and says to run the release check.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const tuple = `${process.platform}-${process.arch}`;

function log(msg) {
  console.log(`build-release: ${msg}`);
}
function die(msg) {
  console.error(`build-release: ${msg}`);
  process.exit(1);
}

function parseArgs(argv) {
  const o = { from: null, cpuOnly: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--from') o.from = path.resolve(argv[++i] || die('--from needs a file'));
    else if (argv[i] === '--cpu-only') o.cpuOnly = true;
    else die(`unknown argument ${argv[i]} (usage: node scripts/build-release.js [--from FILE] [--cpu-only])`);
  }
  return o;
}

// The install script's PATH search, and the release check's name for this machine's prebuild.
const { which } = require('./install.js');
const { prebuildName } = require('./release-check.js');

function build(cpuOnly) {
  const outDir = path.join(root, 'build-release');
  const env = { ...process.env };
  if (!cpuOnly) {
    if (!which('nvcc')) die('nvcc is not on PATH: a release binary carries the CUDA kernels (pass --cpu-only to build one without)');
    if (env.STRUCTURA_CUDA_ARCHS) die(`STRUCTURA_CUDA_ARCHS=${env.STRUCTURA_CUDA_ARCHS} narrows the GPU architectures: unset it for a release binary`);
  }
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  const jobs = String(require('node:os').availableParallelism());
  const args = [cmakeJs, 'rebuild', '--out', outDir, '--config', 'Release', '--parallel', jobs, `--CDSTRUCTURA_CUDA=${cpuOnly ? 'OFF' : 'ON'}`];
  log(`$ node ${args.map((a) => path.relative(root, a) || a).join(' ')}`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) die(`the build failed after ${((Date.now() - t0) / 1000).toFixed(0)} s (see above)`);
  log(`built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return path.join(outDir, 'Release', 'structura.node');
}

// Loads a binary in a fresh process (a broken one cannot take this script down) and returns its
// backend() description.
function describe(file) {
  const code = `const b = require(${JSON.stringify(file)}); process.stdout.write(JSON.stringify(b.backend()));`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  if (r.status !== 0) die(`${file} does not load:\n${(r.stderr || '').trim().split('\n').slice(0, 5).join('\n')}`);
  return JSON.parse(r.stdout);
}

// The newest glibc / libstdc++ symbol versions the binary links against: the oldest Linux it loads
// on (older ones fall back to a source build at install). README states them for the release.
function needs(file) {
  const objdump = which('objdump');
  if (!objdump || process.platform !== 'linux') return '';
  const r = spawnSync(objdump, ['-T', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return '';
  const newest = (prefix) => {
    const vs = [...r.stdout.matchAll(new RegExp(`\\b${prefix}_([0-9.]+)\\b`, 'g'))].map((m) => m[1]);
    return vs.sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).pop() || null;
  };
  const g = newest('GLIBC');
  const cxx = newest('GLIBCXX');
  return g ? `; needs glibc ${g}${cxx ? ` and libstdc++ GLIBCXX_${cxx}` : ''}` : '';
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const src = o.from || build(o.cpuOnly);
  if (!fs.existsSync(src)) die(`${src} does not exist`);
  const info = describe(src);
  if (!info.cudaCompiled && !o.cpuOnly) die(`${path.relative(root, src)} has no CUDA compiled in (${info.reason}); pass --cpu-only if that is meant`);

  // Only this C library's binary is replaced (a musl build may sit beside a glibc one); the source is
  // copied aside first, since it may be that very file (an artifact downloaded into prebuilds/).
  const dir = path.join(root, 'prebuilds', tuple);
  fs.mkdirSync(dir, { recursive: true });
  const dest = path.join(dir, prebuildName());
  const staged = path.join(root, 'build-release', `staged-${process.pid}.node`);
  fs.mkdirSync(path.dirname(staged), { recursive: true });
  fs.copyFileSync(src, staged);
  fs.rmSync(dest, { force: true });
  // Debug symbols are a third of an unstripped binary; a user's stack trace names the JS op anyway.
  const strip = which('strip');
  if (strip && process.platform === 'linux') {
    const r = spawnSync(strip, ['--strip-unneeded', '-o', dest, staged], { stdio: 'inherit' });
    if (r.status !== 0) die('strip failed');
  } else fs.copyFileSync(staged, dest);
  fs.rmSync(staged, { force: true });
  const after = describe(dest);
  const mib = (fs.statSync(dest).size / 1048576).toFixed(1);
  const cuda = after.cudaCompiled ? `CUDA runtime ${after.cudaRuntimeVersion} compiled in` : 'CPU only';
  log(`${path.relative(root, dest)}: ${mib} MiB, version ${after.version}, ${cuda}${needs(dest)}`);
  log('now `npm run release-check` packs the package and installs it where nothing can build');
}

main();
