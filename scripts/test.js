#!/usr/bin/env node
// test.js — npm test: every uvu suite under test/ (recursively; test/gpu/ and test/reference/ left
// out), each FILE in its own `uvu -r tsx` process so that a crash or a hang in one file is counted as
// a failure and the others still run; then the type check (tsc --noEmit) as one more counted check.
// Its last line is `N passed, N failed, N skipped`; the exit code is non-zero if anything failed.
//
//   node scripts/test.js [--gpu] [--sanitizer [tool]] [--no-types] [--timeout <s>] [file regex ...]
//     --gpu        run the suites under test/gpu/ instead; FAILS when backend().cuda is false
//     --sanitizer  run each file under NVIDIA's compute-sanitizer (tool memcheck unless named:
//                  racecheck, synccheck, initcheck); a report it makes fails the file. Slow: pair it
//                  with a file regex. compute-sanitizer must be on PATH (it ships with the toolkit).
//     --no-types   skip the type check
//     --timeout s  per-file limit (default 900 s, or STRUCTURA_TEST_TIMEOUT), a hang counts as a failure
//     regex        only the test files whose path (relative to test/) matches one of them
// Runs the same as `node scripts/test.js` outside npm. STRUCTURA_BINARY passes through.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const testDir = path.join(root, 'test');
// uvu's "exports" hide bin.js; it sits beside dist/ (the resolved main is uvu/dist/index.js).
const uvuBin = path.join(path.dirname(require.resolve('uvu', { paths: [root] })), '..', 'bin.js');

function parseArgs(argv) {
  const o = { gpu: false, sanitizer: null, types: true, timeout: Number(process.env.STRUCTURA_TEST_TIMEOUT) || 900, filters: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--gpu') o.gpu = true;
    else if (a === '--sanitizer') {
      o.sanitizer = /^(memcheck|racecheck|synccheck|initcheck)$/.test(argv[i + 1] || '') ? argv[++i] : 'memcheck';
      process.env.STRUCTURA_SANITIZER = o.sanitizer; // suites may shrink their shapes
    }
    else if (a === '--no-types') o.types = false;
    else if (a === '--timeout') o.timeout = Number(argv[++i]);
    else if (a === '-h' || a === '--help') {
      console.log('usage: node scripts/test.js [--gpu] [--sanitizer [memcheck|racecheck|synccheck|initcheck]] [--no-types] [--timeout <s>] [file regex ...]');
      process.exit(0);
    } else o.filters.push(new RegExp(a));
  }
  return o;
}

// *.test.ts files under dir (relative to test/), sorted; `skip` lists top-level folders to leave out.
function findTests(dir, skip) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      const rel = path.relative(testDir, full).split(path.sep).join('/');
      if (e.isDirectory()) {
        if (!skip.some((s) => rel === s)) walk(full);
      } else if (/\.test\.ts$/.test(e.name)) out.push(rel);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}

// uvu forces colour unless told otherwise; plain text keeps the summary parseable.
const childEnv = () => {
  const env = { ...process.env, NO_COLOR: '1' };
  delete env.FORCE_COLOR;
  return env;
};

// Runs one command, streaming its output (tee) and keeping a copy; resolves {code, signal, out, timedOut}.
function runTee(cmd, args, timeoutS) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let timedOut = false;
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.stderr.on('data', (d) => {
      out += d;
      process.stderr.write(d);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, timedOut });
    });
  });
}

// uvu's summary: "  Total:     N", "  Passed:    N", "  Skipped:   N" (no Failed line; skips are not in Total).
function parseUvu(out) {
  const num = (label) => {
    const m = out.match(new RegExp(`^\\s*${label}:\\s+(\\d+)\\s*$`, 'm'));
    return m ? Number(m[1]) : undefined;
  };
  const total = num('Total');
  const passed = num('Passed');
  if (total === undefined || passed === undefined) return undefined;
  return { total, passed, skipped: num('Skipped') || 0 };
}

async function runSuites(files, timeoutS, totals, sanitizer) {
  for (const rel of files) {
    const dir = path.posix.dirname(`test/${rel}`);
    const base = path.posix.basename(rel);
    const pattern = '^' + base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '$';
    console.log(`\n── ${rel}`);
    const t = Date.now();
    const uvuArgs = [uvuBin, '-r', 'tsx', '--no-color', dir, pattern];
    // The sanitizer's exit code 86 marks its own reports (the suite's failures keep their code).
    const r = sanitizer
      ? await runTee('compute-sanitizer', ['--tool', sanitizer, '--error-exitcode', '86', '--print-limit', '20', process.execPath, ...uvuArgs], timeoutS)
      : await runTee(process.execPath, uvuArgs, timeoutS);
    const s = parseUvu(r.out);
    const secs = ((Date.now() - t) / 1000).toFixed(1);
    let failed = 0;
    let why = '';
    if (r.timedOut) {
      failed = Math.max(1, s ? s.total - s.passed : 1);
      why = `timed out after ${timeoutS} s`;
    } else if (!s) {
      failed = 1;
      why = `no uvu summary: the process ${r.signal ? 'was killed by ' + r.signal : 'exited with code ' + r.code}`;
    } else {
      failed = s.total - s.passed;
      if (r.code !== 0 && failed === 0) {
        failed = 1;
        why = r.code === 86 && sanitizer ? `compute-sanitizer (${sanitizer}) reported errors (see its output above)` : `all tests passed but the process exited with code ${r.code}`;
      } else if (s.total === 0 && s.skipped === 0) {
        failed = 1;
        why = 'the file ran no test';
      }
    }
    const passed = s && !r.timedOut ? s.passed : 0;
    totals.passed += passed;
    totals.failed += failed;
    totals.skipped += s ? s.skipped : 0;
    totals.files.push({ rel, passed, failed, skipped: s ? s.skipped : 0, secs, why });
  }
}

async function typeCheck(totals) {
  console.log('\n── type check: tsc -p tsconfig.json --noEmit');
  const t = Date.now();
  const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  const r = await runTee(process.execPath, [tsc, '-p', 'tsconfig.json', '--noEmit'], 300);
  const secs = ((Date.now() - t) / 1000).toFixed(1);
  const ok = r.code === 0 && !r.timedOut;
  if (ok) totals.passed++;
  else totals.failed++;
  totals.files.push({ rel: '(tsc --noEmit)', passed: ok ? 1 : 0, failed: ok ? 0 : 1, skipped: 0, secs, why: ok ? '' : 'type errors' });
}

// backend() of the addon the tests will load, read in a child process (through the TS loader).
function readBackend() {
  const code =
    "const { native, nativePath } = require('./lib/native.ts');" +
    'const b = native().backend(); b.binary = nativePath(); process.stdout.write(JSON.stringify(b));';
  const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', code], { cwd: root, encoding: 'utf8', env: childEnv() });
  if (r.status !== 0) {
    const lines = (r.stderr || '').trim().split('\n');
    const at = Math.max(0, lines.findIndex((l) => /^\w*Error\b/.test(l)));
    return { error: lines.slice(at, at + 12).filter((l) => !/^\s+at /.test(l)).join('\n') };
  }
  return JSON.parse(r.stdout);
}

function summary(totals, t0) {
  console.log('\n── summary');
  for (const f of totals.files) {
    const tag = f.failed ? 'FAIL' : 'ok  ';
    console.log(`${tag} ${f.rel.padEnd(36)} ${String(f.passed).padStart(4)} passed ${String(f.failed).padStart(3)} failed` +
      `${f.skipped ? ` ${f.skipped} skipped` : ''}  ${f.secs} s${f.why ? '  — ' + f.why : ''}`);
  }
  console.log(`(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  const line = `${totals.passed} passed, ${totals.failed} failed` + (totals.skipped ? `, ${totals.skipped} skipped` : '');
  console.log(line);
  return totals.failed ? 1 : 0;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const totals = { passed: 0, failed: 0, skipped: 0, files: [] };
  const b = readBackend();
  if (b.error) {
    console.log(`structura test: the addon does not load:\n${b.error}`);
  } else {
    console.log(`structura test: ${b.binary}\n  simd ${b.simd}, ${b.threads} threads, CUDA ${b.cudaCompiled ? 'compiled' : 'not compiled'}, ` +
      `cuda ${b.cuda}${b.cuda ? '' : ` (${b.reason})`}`);
  }

  let files;
  if (opts.gpu) {
    if (b.error || !b.cuda) {
      console.log(`structura test --gpu: needs a CUDA GPU, but backend().cuda is ${b.error ? 'unknown (the addon did not load)' : `false: ${b.reason}`}.` +
        '\n  Run the GPU suites on a machine with an NVIDIA GPU and a structura.node built with CUDA (nvcc on PATH at install).');
      totals.failed = 1;
      totals.files.push({ rel: '(GPU available)', passed: 0, failed: 1, skipped: 0, secs: '0.0', why: 'no GPU' });
      process.exitCode = summary(totals, t0);
      return;
    }
    files = findTests(path.join(testDir, 'gpu'), []);
    if (files.length === 0) {
      totals.failed = 1;
      totals.files.push({ rel: 'test/gpu', passed: 0, failed: 1, skipped: 0, secs: '0.0', why: 'no GPU suites found' });
    }
  } else {
    files = findTests(testDir, ['gpu', 'reference']);
  }
  if (opts.filters.length) files = files.filter((f) => opts.filters.some((re) => re.test(f)));
  await runSuites(files, opts.timeout, totals, opts.sanitizer);
  if (!opts.gpu && opts.types && opts.filters.length === 0) await typeCheck(totals);
  process.exitCode = summary(totals, t0);
}

main().catch((e) => {
  console.error(e);
  console.log('0 passed, 1 failed');
  process.exitCode = 1;
});
