// loader.test.ts — the loader explains itself: backend() says which binary loaded, its SIMD level,
// threads and version, whether CUDA was compiled in and, when CUDA is unavailable, why; a bad
// STRUCTURA_BINARY gives an error that says what is wrong and what to do; the package's two entry
// points (require and import of 'structura') are one module instance.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backend, getNumThreads } from '../lib/index';

const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

// Runs a snippet in a fresh Node process (the loader caches, so environment changes need one).
function node(args: string[], env: Record<string, string | undefined> = {}) {
  const e: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', ...env };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: e as NodeJS.ProcessEnv });
}
const tsEval = (code: string, env: Record<string, string | undefined> = {}) => node(['--require', 'tsx/cjs', '-e', code], env);

test('backend() reports the binary, SIMD level, threads, version and CUDA status', () => {
  const b = backend();
  assert.type(b.binary, 'string');
  assert.ok(path.isAbsolute(b.binary) && b.binary.endsWith('.node') && fs.existsSync(b.binary), `binary: ${b.binary}`);
  if (process.env.STRUCTURA_BINARY) assert.is(b.binary, path.resolve(process.env.STRUCTURA_BINARY));
  assert.ok(['avx512', 'avx2', 'scalar'].includes(b.simd), `simd: ${b.simd}`);
  assert.ok(Number.isInteger(b.threads) && b.threads >= 1, `threads: ${b.threads}`);
  assert.is(b.threads, getNumThreads());
  assert.is(b.version, pkg.version);
  assert.type(b.cuda, 'boolean');
  assert.type(b.cudaCompiled, 'boolean');
  assert.ok(Array.isArray(b.devices));
  if (!b.cudaCompiled) assert.not.ok(b.cuda);
  if (b.cuda) assert.ok(b.devices.length > 0);
});

test('when CUDA is unavailable, backend().reason says why', () => {
  const b = backend();
  if (b.cuda) return; // a GPU machine: nothing to explain
  assert.type(b.reason, 'string');
  assert.ok(b.reason!.length > 10, `reason: '${b.reason}'`);
  if (!b.cudaCompiled) assert.match(b.reason!, /without CUDA/);
  // Compiled in but no usable GPU: the CUDA runtime's own error (e.g. cudaErrorInsufficientDriver,
  // cudaErrorNoDevice) or what is missing.
  else if (b.devices.length === 0) assert.match(b.reason!, /cuda|driver|device|GPU/i);
});

test('STRUCTURA_SIMD caps the SIMD level in a fresh process', () => {
  const r = tsEval("process.stdout.write(require('./lib/index.ts').backend().simd)", { STRUCTURA_SIMD: 'scalar' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, 'scalar');
  // a misspelt level is said, not ignored silently
  const bad = tsEval("process.stdout.write(require('./lib/index.ts').backend().simd)", { STRUCTURA_SIMD: 'avx-2' });
  assert.is(bad.status, 0, bad.stderr);
  assert.match(bad.stderr, /STRUCTURA_SIMD='avx-2' is not scalar, avx2 or avx512 \(ignored\)/);
});

test('STRUCTURA_BINARY pointing at a missing file: an actionable error', () => {
  const missing = path.join(os.tmpdir(), `structura-missing-${process.pid}`, 'structura.node');
  const r = tsEval("require('./lib/index.ts').backend()", { STRUCTURA_BINARY: missing });
  assert.is.not(r.status, 0);
  const err = r.stderr;
  assert.match(err, 'structura: could not load its native addon');
  assert.match(err, `STRUCTURA_BINARY=${missing}: no such file`);
  assert.match(err, /unset STRUCTURA_BINARY/);
  assert.match(err, `${process.platform}-${process.arch}, node ${process.version}`);
  assert.match(err, /Possible solutions/);
  assert.match(err, /npm rebuild structura/);
});

test('STRUCTURA_BINARY pointing at a file that is not an addon: the loader error names it', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'structura-bad-'));
  const bad = path.join(dir, 'structura.node');
  fs.writeFileSync(bad, 'not an ELF file');
  try {
    const r = tsEval("require('./lib/index.ts').backend()", { STRUCTURA_BINARY: bad });
    assert.is.not(r.status, 0);
    assert.match(r.stderr, `STRUCTURA_BINARY=${bad}: `);
    assert.match(r.stderr, /Possible solutions/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('STRUCTURA_BINARY pointing at a built addon loads that file', () => {
  const file = backend().binary;
  const r = tsEval("process.stdout.write(require('./lib/index.ts').backend().binary)", { STRUCTURA_BINARY: file });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, file);
});

test("require('structura') and import('structura') are one module instance (dist/, built by npm ci)", () => {
  assert.ok(fs.existsSync(path.join(root, 'dist', 'cjs', 'index.js')), 'dist/ is missing: run `npm run build:ts`');
  const code = `
    import { createRequire } from 'node:module';
    const esm = await import('structura');
    const cjs = createRequire(${JSON.stringify(path.join(root, 'package.json'))})('structura');
    const keys = Object.keys(cjs).filter((k) => k !== '__esModule');
    const missing = keys.filter((k) => !(k in esm));
    const different = keys.filter((k) => k in esm && esm[k] !== cjs[k]);
    process.stdout.write(JSON.stringify({ n: keys.length, missing, different, binary: esm.backend().binary }));`;
  const r = node(['--input-type=module', '-e', code]);
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.ok(out.n > 10, `only ${out.n} exports`);
  assert.equal(out.missing, [], 'exports missing from the ESM entry');
  assert.equal(out.different, [], 'exports that are different objects in ESM and CJS');
  assert.type(out.binary, 'string');
});

test.run();
