#!/usr/bin/env node
// release-check.js — DESIGN §7's release check (classic-level's test-prebuild): the packed tarball
// installs in an empty folder and loads its prebuilt binary with no compiler on PATH.
//
//   node scripts/release-check.js [--binary FILE] [--keep]
//     (default)      pack the repository as it is: prebuilds/<platform>-<arch>/ must hold the binary
//                    (`npm run build:release` makes it); `npm publish` runs this first (prepublishOnly).
//     --binary FILE  pack a staged copy of the package's files with FILE as its prebuild, leaving the
//                    repository untouched (the test suite passes the binary it loaded).
//     --keep         leave the temporary folder (its path is printed) for a look.
//
// Steps: npm pack → the tarball's file list (what must and must not be in it) → an empty project
// that depends on the tarball, installed by `npm ci --offline` from a lockfile whose runtime
// dependencies are tarballs packed from this repository's node_modules (exactly the versions its lock
// names), with an empty npm cache and config of its own: nothing is fetched and no registry, mirror or
// user setting matters. PATH holds only node and sh, so a build could not even start → require() and
// import of 'structura' there load the binary from its prebuilds/, compute, and load nothing from
// outside the project → tsc resolves the declarations. Exit 0 when every step passed; each step
// prints one line. Temporary folders of runs killed before their clean-up are removed after an hour.
'use strict';

const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const tuple = `${process.platform}-${process.arch}`;

function fail(msg) {
  const e = new Error(msg);
  e.releaseCheck = true;
  throw e;
}
function step(msg) {
  console.log(`release-check: ${msg}`);
}

function parseArgs(argv) {
  const o = { binary: null, keep: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--binary') o.binary = path.resolve(argv[++i] || fail('--binary needs a file'));
    else if (argv[i] === '--keep') o.keep = true;
    else fail(`unknown argument ${argv[i]} (usage: node scripts/release-check.js [--binary FILE] [--keep])`);
  }
  return o;
}

// npm's own CLI beside this Node (the official tarballs and distributions put it there), else the
// one running this script.
function npmCli() {
  const beside = path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  if (fs.existsSync(beside)) return beside;
  if (process.env.npm_execpath && /npm-cli\.js$/.test(process.env.npm_execpath)) return process.env.npm_execpath;
  fail(`npm's npm-cli.js was not found beside ${process.execPath}`);
}

// The environment of a child: none of what an outer `npm run` exports (npm_config_local_prefix would
// point the inner npm at this repository, npm_config_build_from_source would force a build), none of
// what would let a module or binary come from elsewhere (NODE_PATH, NODE_OPTIONS, STRUCTURA_BINARY,
// node-gyp-build's PREBUILDS_ONLY / STRUCTURA_PREBUILD), PATH as given, and with `isolated` npm's
// cache and config files of the temporary folder (an empty cache, empty user and global configs).
const DROP = new Set(['STRUCTURA_BINARY', 'INIT_CWD', 'NODE_PATH', 'NODE_OPTIONS', 'PREBUILDS_ONLY', 'STRUCTURA_PREBUILD']);
function childEnv(PATH, isolated) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || DROP.has(k)) continue;
    env[k] = v;
  }
  env.PATH = PATH;
  env.NO_COLOR = '1';
  if (isolated) {
    env.npm_config_cache = path.join(isolated, 'npm-cache');
    env.npm_config_userconfig = path.join(isolated, 'user-npmrc');
    env.npm_config_globalconfig = path.join(isolated, 'global-npmrc');
    fs.writeFileSync(env.npm_config_userconfig, '');
    fs.writeFileSync(env.npm_config_globalconfig, '');
  }
  return env;
}

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) fail(`could not run ${cmd}: ${r.error.message}`);
  return r;
}
function npm(args, cwd, env) {
  return run(process.execPath, [npmCli(), ...args], { cwd, env });
}
function tail(text, n = 25) {
  return (text || '').trim().split('\n').slice(-n).join('\n');
}

// Copies the files `npm pack` would take from the repository into dir, then binary as the prebuild.
function stage(dir, binary) {
  if (!fs.existsSync(binary)) fail(`--binary ${binary} does not exist`);
  const r = npm(['pack', '--dry-run', '--json', '--ignore-scripts'], root, childEnv(process.env.PATH));
  if (r.status !== 0) fail(`npm pack --dry-run failed:\n${tail(r.stderr)}`);
  const files = JSON.parse(r.stdout)[0].files.map((f) => f.path).filter((p) => !p.startsWith('prebuilds/'));
  for (const p of files) {
    fs.mkdirSync(path.join(dir, path.dirname(p)), { recursive: true });
    fs.copyFileSync(path.join(root, p), path.join(dir, p));
  }
  const dest = path.join(dir, 'prebuilds', tuple, prebuildName());
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(binary, dest);
  return files.length + 1;
}

// node-gyp-build picks prebuilds/<platform>-<arch>/<name>.<tags>.node by its tags; "glibc" / "musl"
// keeps a glibc binary away from Alpine, where it would not load.
function prebuildName() {
  if (process.platform !== 'linux') return 'structura.napi.node';
  const glibc = process.report && process.report.getReport().header.glibcVersionRuntime;
  return glibc ? 'structura.napi.glibc.node' : 'structura.napi.musl.node';
}

function pack(fromDir, dest, ignoreScripts) {
  const args = ['pack', '--json', '--pack-destination', dest];
  if (ignoreScripts) args.push('--ignore-scripts');
  const r = npm(args, fromDir, childEnv(process.env.PATH));
  if (r.status !== 0) fail(`npm pack failed:\n${tail(r.stderr)}`);
  const info = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')))[0];
  return { file: path.join(dest, info.filename), files: info.files.map((f) => f.path), size: info.size };
}

// What a user's install needs, and what must stay out of it.
function checkContents(files) {
  const need = [
    'package.json',
    'README.md',
    'LICENSE',
    'dist/cjs/index.js',
    'dist/cjs/index.d.ts',
    'dist/esm/index.mjs',
    'dist/esm/index.d.mts',
    'scripts/install.js',
    'CMakeLists.txt',
    'binding.gyp',
  ];
  const missing = need.filter((f) => !files.includes(f));
  if (missing.length) fail(`the tarball lacks ${missing.join(', ')}`);
  const prebuilt = files.filter((f) => f.startsWith(`prebuilds/${tuple}/`) && f.endsWith('.node'));
  // one per C library at most (a glibc and a musl build may ship side by side), and one for this one
  const libcOf = (f) => (/\.musl\./.test(f) ? 'musl' : /\.glibc\./.test(f) ? 'glibc' : 'any');
  const mine = prebuilt.filter((f) => f.endsWith(`/${prebuildName()}`));
  if (mine.length !== 1 || new Set(prebuilt.map(libcOf)).size !== prebuilt.length)
    fail(`the tarball should hold prebuilds/${tuple}/${prebuildName()} and at most one binary per C library, it holds ${prebuilt.join(', ') || 'none'}`);
  const banned = files.filter((f) => /^(test|bench|build|node_modules|\.gpu|\.ci|lib)\//.test(f) || f.endsWith('.tsbuildinfo'));
  if (banned.length) fail(`the tarball holds development files: ${banned.slice(0, 5).join(', ')}${banned.length > 5 ? ', …' : ''}`);
  return mine[0];
}

// An empty project depending on the tarball, with a lockfile of this package's runtime dependencies
// exactly as this repository resolved them, so `npm ci --offline` needs nothing but npm's cache.
// Removes the temporary folders of earlier runs that were killed before their clean-up (older than an hour).
function sweepStale() {
  const now = Date.now();
  for (const e of fs.readdirSync(os.tmpdir())) {
    if (!e.startsWith('structura-release-')) continue;
    const p = path.join(os.tmpdir(), e);
    try {
      if (now - fs.statSync(p).mtimeMs > 3600e3) fs.rmSync(p, { recursive: true, force: true });
    } catch (_) {
      /* another user's, or gone */
    }
  }
}

function makeApp(tmp, app, tarball) {
  const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8'));
  const runtime = Object.keys(lock.packages).filter((k) => k !== '' && !lock.packages[k].dev && !lock.packages[k].link);
  // Each runtime dependency as a tarball packed from node_modules (one npm call for all of them).
  const deps = path.join(tmp, 'deps');
  fs.mkdirSync(deps);
  for (const k of runtime) {
    const have = path.join(root, k, 'package.json');
    if (!fs.existsSync(have)) fail(`${k} is not installed here: run \`npm ci\` in the repository first`);
    const v = JSON.parse(fs.readFileSync(have, 'utf8')).version;
    if (v !== lock.packages[k].version) fail(`${k} is ${v} here but package-lock.json says ${lock.packages[k].version}: run \`npm ci\``);
  }
  const r = npm(['pack', '--json', '--ignore-scripts', '--pack-destination', deps, ...runtime.map((k) => `./${k}`)], root, childEnv(process.env.PATH, tmp));
  if (r.status !== 0) fail(`npm pack of the runtime dependencies failed:\n${tail(r.stderr)}`);
  const packed = new Map(JSON.parse(r.stdout.slice(r.stdout.indexOf('['))).map((p) => [`${p.name}@${p.version}`, p.filename]));
  const sha512 = (f) => `sha512-${crypto.createHash('sha512').update(fs.readFileSync(f)).digest('base64')}`;
  const spec = `file:../${path.basename(tarball)}`;
  const integrity = sha512(tarball);
  const packages = {
    '': { name: 'structura-release-check', dependencies: { structura: spec } },
    'node_modules/structura': {
      version: pkg.version,
      resolved: spec,
      integrity,
      hasInstallScript: true,
      license: pkg.license,
      dependencies: pkg.dependencies,
      engines: pkg.engines,
    },
  };
  for (const k of runtime) {
    const name = JSON.parse(fs.readFileSync(path.join(root, k, 'package.json'), 'utf8')).name;
    const file = packed.get(`${name}@${lock.packages[k].version}`);
    if (!file) fail(`npm pack made no tarball for ${k}`);
    packages[k] = { ...lock.packages[k], resolved: `file:../deps/${file}`, integrity: sha512(path.join(deps, file)) };
  }
  fs.mkdirSync(app, { recursive: true });
  const manifest = { name: 'structura-release-check', private: true, dependencies: { structura: spec } };
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify(manifest, null, 2));
  fs.writeFileSync(
    path.join(app, 'package-lock.json'),
    JSON.stringify({ name: manifest.name, lockfileVersion: 3, requires: true, packages }, null, 2),
  );
}

// A folder whose only programs are node and sh: no cc, c++, make, cmake, python3 or nvcc.
function barePath(tmp) {
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  const sh = ['/bin/sh', '/usr/bin/sh'].find((f) => fs.existsSync(f));
  if (sh) fs.symlinkSync(sh, path.join(bin, 'sh'));
  return bin;
}

const SMOKE = `
  const s = SOURCE;
  const b = s.backend();
  const x = s.tensor([[1, 2, 3], [4, 5, 6]]);
  const w = s.tensor([[1, 0, 1], [0, 1, 0]]);
  const y = s.matmul(x, w.transpose(0, 1));
  const got = Array.from(y.dataSync());
  if (JSON.stringify(got) !== JSON.stringify([4, 2, 10, 5])) throw new Error('x·wᵀ = ' + got);
  const outside = typeof require === 'function' ? Object.keys(require.cache).filter((f) => !f.startsWith(process.cwd() + '/') && !f.startsWith('node:')) : [];
  console.log(JSON.stringify({ binary: b.binary, simd: b.simd, cudaCompiled: b.cudaCompiled, cuda: b.cuda, reason: b.reason, version: b.version, outside }));`;

function smoke(app, env) {
  const cjs = run(process.execPath, ['-e', SMOKE.replace('SOURCE', "require('structura')")], { cwd: app, env });
  if (cjs.status !== 0) fail(`require('structura') in the installed project failed:\n${tail(cjs.stderr)}`);
  const esmCode = `import * as structura from 'structura';\n${SMOKE.replace('SOURCE', 'structura')}`;
  const esm = run(process.execPath, ['--input-type=module', '-e', esmCode], { cwd: app, env });
  if (esm.status !== 0) fail(`import 'structura' in the installed project failed:\n${tail(esm.stderr)}`);
  const info = JSON.parse(cjs.stdout.trim().split('\n').pop());
  // a dependency found through a folder above the project (a node_modules there, NODE_PATH) would hide
  // one the tarball forgot to declare
  if (info.outside.length) fail(`require('structura') loaded modules from outside the project: ${info.outside.slice(0, 3).join(', ')}`);
  const where = path.join(fs.realpathSync(app), 'node_modules', 'structura', 'prebuilds', tuple) + path.sep;
  if (!fs.realpathSync(info.binary).startsWith(where)) fail(`the installed package loaded ${info.binary}, not its prebuild under ${where}`);
  if (info.version !== pkg.version) fail(`backend().version is ${info.version}, package.json says ${pkg.version}`);
  return info;
}

function typecheck(app) {
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  } catch (_) {
    return 'skipped (typescript is a devDependency, not installed here)';
  }
  // One ESM and one CommonJS file: nodenext resolves each through its own "exports" condition.
  const src = [
    "import { tensor, matmul, backend, type Tensor } from 'structura';",
    'const x: Tensor = tensor([[1, 2], [3, 4]]);',
    'const y: Tensor = matmul(x, x);',
    'const binary: string = backend().binary;',
    'console.log(y.shape, binary);',
    '{',
    '  using t = tensor([1, 2]);',
    '  console.log(t.shape);',
    '}',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(app, 'check.mts'), src);
  fs.writeFileSync(path.join(app, 'check.cts'), src);
  const config = {
    compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', types: [] },
    files: ['check.mts', 'check.cts'],
  };
  fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify(config, null, 2));
  const r = run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app, env: childEnv(process.env.PATH) });
  if (r.status !== 0) fail(`tsc could not type-check an import of the installed package:\n${tail(r.stdout + r.stderr)}`);
  return 'ok';
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  sweepStale();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'structura-release-'));
  try {
    // 1. the tarball
    let tarball;
    if (o.binary) {
      const pkgDir = path.join(tmp, 'package');
      fs.mkdirSync(pkgDir);
      const n = stage(pkgDir, o.binary);
      tarball = pack(pkgDir, tmp, true);
      step(`packed a staged copy (${n} files, prebuild ${path.relative(root, o.binary) || o.binary})`);
    } else {
      const dir = path.join(root, 'prebuilds', tuple);
      if (!fs.existsSync(dir) || !fs.readdirSync(dir).some((f) => f.endsWith('.node')))
        fail(`prebuilds/${tuple}/ holds no binary: run \`npm run prebuild\` first (or pass --binary FILE)`);
      tarball = pack(root, tmp, false);
      step('packed the repository');
    }
    const prebuilt = checkContents(tarball.files);
    step(`${path.basename(tarball.file)}: ${(tarball.size / 1048576).toFixed(1)} MiB, ${tarball.files.length} files, prebuild ${prebuilt}`);

    // 2. install it where nothing could build it
    const app = path.join(tmp, 'app');
    makeApp(tmp, app, tarball.file);
    const bare = barePath(tmp);
    const env = childEnv(bare, tmp);
    const r = npm(['ci', '--offline', '--ignore-scripts=false', '--no-audit', '--no-fund', '--foreground-scripts'], app, env);
    const out = `${r.stdout}\n${r.stderr}`;
    // the install script's own lines first: they say why (node-gyp's search for Python is noise)
    const ours = out.split('\n').filter((l) => /structura install:/.test(l));
    const why = `${ours.join('\n')}${ours.length ? '\n' : ''}${tail(out, 12)}`;
    const noexec = /failed to map segment from shared object/.test(out) ? ` (${os.tmpdir()} looks mounted noexec: set TMPDIR to a folder that may hold programs)` : '';
    if (r.status !== 0) fail(`npm ci of the tarball failed${noexec}:\n${why}`);
    const used = ours.find((l) => /structura install: using /.test(l));
    if (!used) fail(`the install script did not take the prebuilt binary${noexec}:\n${why}`);
    step(`installed with PATH=${bare} (node and sh only): ${used.replace(/^.*structura install: /, '')}`);

    // 3. load and compute, both module systems; then the declarations
    const info = smoke(app, env);
    const cuda = info.cudaCompiled ? `CUDA compiled in, ${info.cuda ? 'GPU in use' : `no GPU here (${info.reason})`}` : 'CPU only';
    step(`require() and import of 'structura' load ${path.relative(app, info.binary)} (${info.simd}, ${cuda}) and compute x·wᵀ`);
    step(`tsc on an import of the installed package: ${typecheck(app)}`);
    step('passed');
    return 0;
  } catch (e) {
    if (!e.releaseCheck) throw e;
    console.error(`release-check: FAILED: ${e.message}`);
    return 1;
  } finally {
    if (o.keep) step(`kept ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module) process.exitCode = main();
else module.exports = { prebuildName };
