#!/usr/bin/env node
// install.js — package.json "install": make sure a structura.node that loads is in place.
//
//  1. Unless --build-from-source (or npm_config_build_from_source) is given, load the binary that
//     node-gyp-build would pick (build/Release, build/Debug, then prebuilds/<platform>-<arch>/), in a
//     child process so that a broken binary cannot take this script down. If it loads, stop there.
//  2. Else build from source with cmake-js (CUDA kernels too when nvcc is found; STRUCTURA_CUDA=OFF
//     forces a CPU-only build; STRUCTURA_CUDA_ARCHS narrows the GPU architectures).
//     If the CUDA part of that build fails and CUDA was not asked for explicitly (STRUCTURA_CUDA=ON),
//     build again CPU-only and say so, so an old or broken CUDA toolkit never blocks an install.
//  3. Without cmake on PATH, build the CPU backend with node-gyp and binding.gyp (npm's own node-gyp).
//  4. Load the result and print what was built and how long it took. Installed as a dependency
//     (under node_modules), only the binary is kept of build/: the objects and CMake's files are
//     ~50 MB no one reuses (`npm rebuild` starts over); in a checkout they stay for incremental builds.
// Building never downloads anything: package.json's "binary.napi_versions" makes cmake-js use the
// bundled Node-API headers, and node-gyp is pointed at the running Node's own headers when they exist.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const t0 = Date.now();

function log(msg) {
  console.log(`structura install: ${msg}`);
}

function truthy(v) {
  return v !== undefined && /^(1|on|true|yes)$/i.test(String(v).trim());
}
function falsy(v) {
  return v !== undefined && /^(0|off|false|no)$/i.test(String(v).trim());
}

function buildFromSourceRequested() {
  if (process.argv.includes('--build-from-source')) return true;
  const v = process.env.npm_config_build_from_source;
  // npm passes `--build-from-source` as "true"; `--build-from-source=structura` names the package.
  return v !== undefined && (truthy(v) || v === '' || v.split(',').map((s) => s.trim()).includes('structura'));
}

// Loads the binary node-gyp-build resolves for this package, in a fresh process; returns
// {ok, file, backend} or {ok: false, error}.
function probe() {
  const code = `
    const ngb = require('node-gyp-build');
    const file = ngb.resolve(${JSON.stringify(root)});
    const b = require(file);
    const info = b.backend();
    process.stdout.write(JSON.stringify({ file, info }));`;
  const r = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8', env: process.env });
  if (r.status === 0) {
    try {
      const { file, info } = JSON.parse(r.stdout);
      return { ok: true, file, info };
    } catch (e) {
      return { ok: false, error: `unexpected output: ${r.stdout}` };
    }
  }
  const lines = (r.stderr || '').split('\n').filter(Boolean);
  const err = lines.find((l) => /^\w*Error\b/.test(l)) || lines[0] || `exit ${r.status}`;
  return { ok: false, error: err.trim() };
}

function describe(p) {
  const i = p.info;
  const cuda = i.cudaCompiled
    ? `CUDA compiled in (runtime ${i.cudaRuntimeVersion}); ${i.cuda ? 'GPU available' : 'no GPU now: ' + i.reason}`
    : 'CPU only';
  return `${path.relative(root, p.file) || p.file} (simd ${i.simd}, ${i.threads} threads, ${cuda})`;
}

function which(cmd) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const f = path.join(dir, cmd);
    try {
      fs.accessSync(f, fs.constants.X_OK);
      if (fs.statSync(f).isFile()) return f;
    } catch (_) {
      /* not here */
    }
  }
  return null;
}

function run(cmd, args, env) {
  log(`$ ${[cmd, ...args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env });
  if (r.error) log(`could not run ${cmd}: ${r.error.message}`);
  return r.status === 0;
}

// The running Node's own headers (/usr/include/node for /usr/bin/node, likewise for nvm and the
// official tarballs), so that node-gyp needs no download.
function localNodeDir() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

function buildEnv() {
  const env = { ...process.env };
  if (!env.npm_config_nodedir) {
    const nd = localNodeDir() || (fs.existsSync('/usr/include/node/node_api.h') ? '/usr' : null);
    if (nd) env.npm_config_nodedir = nd;
  }
  return env;
}

function cmakeJsBin() {
  return require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
}

function buildWithCmakeJs(cudaOff) {
  const jobs = String(typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  const args = [cmakeJsBin(), 'rebuild', '--parallel', jobs];
  if (cudaOff) args.push('--CDSTRUCTURA_CUDA=OFF');
  if (/^(off|0|false|no)$/i.test(process.env.STRUCTURA_CUDA_EMU || '')) args.push('--CDSTRUCTURA_CUDA_EMU=OFF');
  return run(process.execPath, args, buildEnv());
}

function nodeGypCommand() {
  // npm sets npm_config_node_gyp to its bundled node-gyp for every script it runs.
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] }));
  } catch (_) {
    /* not a dependency */
  }
  const npmDir = path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm');
  candidates.push(path.join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const c of candidates) if (fs.existsSync(c)) return [process.execPath, c];
  const onPath = which('node-gyp');
  return onPath ? [onPath] : null;
}

function buildWithNodeGyp() {
  const cmd = nodeGypCommand();
  if (!cmd) {
    log('neither cmake nor node-gyp was found: install cmake (https://cmake.org) and a C++17 compiler');
    return false;
  }
  const jobs = String(typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
  return run(cmd[0], [...cmd.slice(1), 'rebuild', '--release', `--jobs=${jobs}`], buildEnv());
}

// Deletes everything under dir/build except build/Release/structura.node, when dir sits inside a
// node_modules folder and is not a git checkout (a dependency's install, not a developer's tree).
// build/ and build/Release must be real folders (a symlink could lead outside the package). Returns
// the bytes freed; a file that cannot be removed is left (the install has succeeded already).
function pruneBuildTree(dir) {
  if (!path.resolve(dir).split(path.sep).includes('node_modules') || fs.existsSync(path.join(dir, '.git'))) return 0;
  const build = path.join(dir, 'build');
  const keep = path.join(build, 'Release', 'structura.node');
  if (!fs.existsSync(keep)) return 0;
  for (const d of [build, path.join(build, 'Release')]) if (!fs.lstatSync(d).isDirectory()) return 0;
  let freed = 0;
  const size = (p) => {
    const st = fs.lstatSync(p);
    return st.isDirectory() ? fs.readdirSync(p).reduce((n, e) => n + size(path.join(p, e)), 0) : st.size;
  };
  const remove = (p) => {
    try {
      const n = size(p);
      fs.rmSync(p, { recursive: true, force: true });
      freed += n;
    } catch (e) {
      log(`could not remove ${p} (${e.code || e.message}); left as it is`);
    }
  };
  for (const e of fs.readdirSync(build)) if (e !== 'Release') remove(path.join(build, e));
  for (const e of fs.readdirSync(path.join(build, 'Release'))) if (e !== 'structura.node') remove(path.join(build, 'Release', e));
  return freed;
}

function seconds() {
  return ((Date.now() - t0) / 1000).toFixed(1);
}

function main() {
  // A binary named by STRUCTURA_BINARY is what the loader takes (lib/native.ts): if it loads, nothing
  // needs building (a machine without a compiler, given a binary built elsewhere).
  if (process.env.STRUCTURA_BINARY) {
    const file = path.resolve(process.env.STRUCTURA_BINARY);
    const code = `process.stdout.write(JSON.stringify(require(${JSON.stringify(file)}).backend()))`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
    if (r.status === 0) {
      log(`using STRUCTURA_BINARY=${file}; nothing to build`);
      return 0;
    }
    log(`STRUCTURA_BINARY=${file} does not load (${(r.stderr || '').trim().split('\n')[0]}); going on without it`);
  }
  const fromSource = buildFromSourceRequested();
  if (!fromSource) {
    const p = probe();
    if (p.ok) {
      log(`using ${describe(p)}; nothing to build (pass --build-from-source to rebuild)`);
      return 0;
    }
    log(`no loadable binary (${p.error}); building from source`);
  } else {
    log('--build-from-source: building from source');
  }

  const cudaEnv = process.env.STRUCTURA_CUDA;
  const cudaOff = falsy(cudaEnv);
  const cudaRequired = truthy(cudaEnv);
  let how;
  if (which('cmake')) {
    const nvcc = which('nvcc');
    log(
      cudaOff
        ? 'cmake-js, CPU only (STRUCTURA_CUDA=OFF)'
        : `cmake-js, ${nvcc ? `with CUDA (nvcc: ${nvcc}; architectures ${process.env.STRUCTURA_CUDA_ARCHS || '80-real;86-real;89-real;90a-real;90-virtual'})` : 'CPU only (no nvcc on PATH)'}`,
    );
    how = cudaOff || !nvcc ? 'cmake-js (CPU)' : 'cmake-js (CPU + CUDA)';
    if (!buildWithCmakeJs(cudaOff)) {
      if (cudaOff || !nvcc || cudaRequired) {
        log(`the build failed after ${seconds()} s (see the compiler output above)`);
        if (!cudaOff && nvcc) log('to build the CPU backend alone, set STRUCTURA_CUDA=OFF and run `npm rebuild structura`');
        return 1;
      }
      log('the build with CUDA failed (see above); building again CPU-only. Set STRUCTURA_CUDA=ON to make this an error.');
      how = 'cmake-js (CPU; the CUDA build failed)';
      if (!buildWithCmakeJs(true)) {
        log(`the CPU-only build failed too after ${seconds()} s`);
        return 1;
      }
    }
  } else {
    log('cmake not found on PATH: building the CPU backend with node-gyp and binding.gyp');
    how = 'node-gyp (CPU)';
    if (!buildWithNodeGyp()) {
      log(`the node-gyp build failed after ${seconds()} s (see the output above)`);
      log('to build, this machine needs cmake (or python3 and make) and a C++17 compiler (nvcc too for CUDA);');
      log('install them and run `npm rebuild structura`, or set STRUCTURA_BINARY to a structura.node built elsewhere');
      return 1;
    }
  }

  const freed = pruneBuildTree(root);
  if (freed) log(`removed the build's intermediate files (${(freed / 1048576).toFixed(0)} MB); build/Release/structura.node stays`);
  const p = probe();
  if (!p.ok) {
    log(`built with ${how}, but the result does not load: ${p.error}`);
    return 1;
  }
  if (cudaRequired && !p.info.cudaCompiled) {
    log(`STRUCTURA_CUDA=ON, but the binary has no CUDA (${p.info.reason}); is nvcc on PATH?`);
    return 1;
  }
  log(`built ${describe(p)} with ${how} in ${seconds()} s`);
  return 0;
}

if (require.main === module) process.exitCode = main();
else module.exports = { pruneBuildTree, which };
