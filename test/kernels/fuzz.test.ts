// fuzz.test.ts — every function the addon exports (enumerated at run time, so functions added later
// are covered too) is called with garbage argument lists: missing and extra arguments, undefined,
// null, numbers (negative, fractional, huge, NaN, ±inf), strings, objects, arrays (also of garbage),
// booleans, functions, symbols, bigints, typed arrays of the wrong type or length, handles of the
// wrong dtype or shape, disposed handles, and arrays whose getter disposes a handle of the same call.
// Each call must return or throw an Error (TypeError/RangeError/Error); the calls run in a child
// process, so a crash (a signal or a non-zero exit) fails this test instead of killing the runner.
// A failure names the function and, from a verbose rerun, the exact call. The child also checks that
// no native buffer outlives the run (error paths must free what they allocated).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native, nativePath } from '../../lib/native';
import { SEED } from './kernel_util';

// The child: plain CommonJS, run by the same node binary.
const CHILD = String.raw`
'use strict';
const fs = require('fs');
const n = require(process.env.FUZZ_BINARY);
const verbose = !!process.env.FUZZ_VERBOSE, only = process.env.FUZZ_ONLY || '';
let s = Number(process.env.FUZZ_SEED) >>> 0;
function rand() {
  s = (s + 0x6d2b79f5) >>> 0;
  let t = Math.imul(s ^ (s >>> 15), s | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const say = (line) => fs.writeSync(1, line + '\n');

const names = Object.keys(n).filter((k) => typeof n[k] === 'function').sort();
const threads0 = n.getNumThreads();
const simd0 = n.backend().simd;
const buffers0 = n.memory().cpu.buffers;

// Fresh handles for one call (a call may dispose them).
function handles() {
  const h = {};
  const add = (k, f) => { try { h[k] = f(); } catch (e) { say('setup ' + k + ' failed: ' + e.message); process.exit(3); } };
  add('f32', () => n.fromArray(0, [2, 3], new Float32Array([1, 2, 3, 4, 5, 6]), 0, 0));
  add('f32b', () => n.fromArray(0, [3], new Float32Array([1, -2, 3]), 0, 0));
  add('f32t', () => n.fromArray(0, [3, 2], new Float32Array(6).fill(0.5), 0, 0));
  add('f64', () => n.fromArray(1, [3], new Float64Array([1, 2, 3]), 0, 0));
  add('f16', () => n.fromArray(2, [2, 2], new Uint16Array([15360, 16384, 0, 48128]), 0, 0));
  add('bf16', () => n.fromArray(3, [3], new Float32Array([1, 2, 3]), 0, 0));
  add('i32', () => n.fromArray(4, [2], new Int32Array([1, 0]), 0, 0));
  add('lab', () => n.fromArray(4, [2], new Int32Array([0, 2]), 0, 0));
  add('u8', () => n.fromArray(5, [3], new Uint8Array([1, 0, 1]), 0, 0));
  add('u16', () => n.fromArray(6, [2], new Uint16Array([7, 8]), 0, 0));
  add('scalar', () => n.fromArray(0, [], new Float32Array([2]), 0, 0));
  add('empty', () => n.fromArray(0, [0, 3], new Float32Array(0), 0, 0));
  add('view', () => n.view(h.f32, [3, 2], [1, 3], 0));
  add('gone', () => { const g = n.fromArray(0, [2], new Float32Array(2), 0, 0); n.dispose(g); return g; });
  return h;
}

// An array (or array of arrays) whose element getter disposes handle h mid-call.
function evil(h, v) {
  const a = [v, v];
  Object.defineProperty(a, 0, { get() { try { n.dispose(h); } catch (e) {} return v; }, enumerable: true });
  return a;
}

function garbage(h) {
  return [
    undefined, null, 0, 1, -1, 2, 3, 0.5, -0.5, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53), 1e308, 2 ** 40,
    '', 'x', 'add', 'exp', 'sum', 'argmax', 'normal', 'scalar', 'float32',
    {}, [], [0], [1, 2], [-1], [0.5], [NaN], [2 ** 40, 2 ** 40], [2 ** 53], ['a'], [[1]], [null], [undefined],
    new Array(100).fill(1), true, false, () => 1, Symbol('s'), 10n,
    new Float32Array(3), new Int32Array(1), new Uint8Array(0), new Float64Array(5), new Uint16Array(6), new Int8Array(2),
    new BigInt64Array(1), new ArrayBuffer(8), new DataView(new ArrayBuffer(4)), new Proxy({}, {}), Object.create(null),
    new Error('e'), new Date(0), /re/,
    h.f32, h.f64, h.f16, h.bf16, h.i32, h.u8, h.u16, h.scalar, h.empty, h.view, h.gone, [h.f32, h.f64], [h.gone], [h.f32, 1],
    evil(h.f32, 1), evil(h.f32, 0), evil(h.f32b, 2), evil(h.view, 1), evil(h.f32, h.f32b),
  ];
}

// Plausible argument lists of the functions in lib/native.ts, so that garbage in one position reaches
// the checks behind the others. Functions without one get random argument lists only.
function templates(h) {
  return {
    fromArray: [0, [2, 3], new Float32Array(6), 0, 0], empty: [0, [2, 3], 0, 0], full: [0, [2], 1.5, 0, 0],
    arange: [0, 0, 1, 5, 0, 0], random: ['normal', 0, [3], 1, 0, 0], view: [h.f32, [3, 2], [1, 3], 0], viewPacked: [h.f32, new Float64Array([3, 2, 1, 3]), 2, 0], alias: [h.view], item: [h.scalar],
    read: [h.f32], readRaw: [h.f16], dispose: [h.f32], isDisposed: [h.f32], storageId: [h.f32], contiguous: [h.view],
    cast: [h.f32, 1], copyInto: [h.f32, h.f32b], concat: [[h.f32, h.f32], 0],
    binary: ['add', h.f32, h.f32b], unary: ['clamp', h.f32, -1, 2], where: [h.u8, h.f32, h.f32b],
    reduce: ['sum', h.f32, [0, 1], false], argReduce: ['argmax', h.f32, 1, false], softmax: [h.f32, -1, false],
    crossEntropy: [h.f32, h.lab], crossEntropyBackward: [h.f32, h.lab, h.scalar],
    matmul: [h.f32, h.f32t, false, false], gemm: [h.f32, h.f32t, false, false],
    setNumThreads: [2], getNumThreads: [], setSimd: ['avx2'], backend: [], memory: [],
  };
}

function describe(v) {
  if (typeof v === 'symbol' || typeof v === 'bigint') return String(v) + (typeof v === 'bigint' ? 'n' : '');
  if (typeof v === 'function') return 'function';
  if (v === undefined) return 'undefined';
  if (ArrayBuffer.isView(v)) return v.constructor.name + '(' + (v.length ?? v.byteLength) + ')';
  if (Array.isArray(v)) {
    // never read an element through a getter here: that would dispose its handle before the call
    if (Object.getOwnPropertyDescriptor(v, 0)?.get) return '<array whose getter disposes a handle>';
    return '[' + v.slice(0, 5).map(describe).join(', ') + (v.length > 5 ? ', …' : '') + ']';
  }
  if (typeof v === 'number') {
    try { return n.isDisposed(v) ? '<disposed handle>' : '<handle>'; } catch (e) {}
  }
  if (v !== null && typeof v === 'object') {
    try { if (n.isDisposed(v)) return '<disposed handle>'; return '<handle>'; } catch (e) {}
    return '{' + (Object.getPrototypeOf(v)?.constructor?.name ?? 'null-proto') + '}';
  }
  return JSON.stringify(v) ?? String(v);
}

let calls = 0, threw = 0, returned = 0;
const nonErrors = [];
function call(name, args) {
  if (verbose) say('call ' + name + '(' + args.map(describe).join(', ') + ')');
  calls++;
  let r;
  try {
    r = n[name](...args);
    returned++;
  } catch (e) {
    if (e instanceof Error) threw++;
    else nonErrors.push(name + ' threw a non-Error: ' + String(e));
    return;
  } finally {
    if (name === 'setNumThreads') n.setNumThreads(threads0);
    if (name === 'setSimd') n.setSimd(simd0);
  }
  // tensor handles are numbers: dispose refuses any other number (or object) with a TypeError
  const rs = Array.isArray(r) ? r : [r];
  for (const x of rs) if (x !== null && (typeof x === 'object' || typeof x === 'number')) { try { n.dispose(x); } catch (e) {} }
  if (r && typeof r === 'object' && !Array.isArray(r)) for (const k of Object.keys(r)) { try { n.dispose(r[k]); } catch (e) {} }
}

function release(h) { for (const k of Object.keys(h)) { try { n.dispose(h[k]); } catch (e) {} } }

const leaks = {};
for (const name of names) {
  if (only && name !== only) continue;
  say('fn ' + name);
  const before = n.memory().cpu.buffers;
  const tmpl = templates({ f32: 0, f32b: 0, f32t: 0, f64: 0, f16: 0, bf16: 0, i32: 0, lab: 0, u8: 0, u16: 0, scalar: 0, empty: 0, view: 0, gone: 0 })[name];
  const h0 = handles();
  const ngarbage = garbage(h0).length;
  release(h0);
  if (tmpl) {
    // the template itself, then each position replaced by each garbage value
    { const h = handles(); call(name, templates(h)[name].slice()); release(h); }
    for (let p = 0; p <= tmpl.length; p++) {
      for (let g = 0; g < ngarbage; g++) {
        const h = handles();
        const args = templates(h)[name].slice();
        args[p] = garbage(h)[g];
        call(name, args);
        release(h);
      }
    }
  }
  // random argument lists of 0 to 6 arguments
  for (let trial = 0; trial < 1000; trial++) {
    const h = handles();
    const pool = garbage(h);
    const args = [];
    const arity = Math.floor(rand() * 7);
    for (let i = 0; i < arity; i++) args.push(pick(pool));
    if (tmpl && rand() < 0.5 && arity > 0) args[0] = templates(h)[name][0];
    call(name, args);
    release(h);
  }
  const d = n.memory().cpu.buffers - before;
  if (d) leaks[name] = d;
}
const leaked = n.memory().cpu.buffers - buffers0;
say(JSON.stringify({ names, calls, threw, returned, nonErrors: nonErrors.slice(0, 20), leaked, leaks }));
`;

function runChild(script: string, env: Record<string, string>) {
  return spawnSync(process.execPath, [script], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 64 << 20,
  });
}

test('fuzz: every exported function, called with garbage, returns or throws an Error; never crashes or leaks', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'structura-fuzz-'));
  const script = path.join(dir, 'fuzz.cjs');
  fs.writeFileSync(script, CHILD);
  const env = { FUZZ_BINARY: nativePath(), FUZZ_SEED: String(SEED) };
  try {
    const r = runChild(script, env);
    const lines = (r.stdout ?? '').trim().split('\n');
    if (r.status !== 0 || r.signal) {
      const fns = lines.filter((l) => l.startsWith('fn '));
      const last = fns.length ? fns[fns.length - 1].slice(3) : '?';
      // Find the exact call: rerun the last function alone, printing each call before making it.
      const v = runChild(script, { ...env, FUZZ_ONLY: last, FUZZ_VERBOSE: '1' });
      const vcalls = (v.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('call '));
      assert.unreachable(
        `the fuzz child died (status ${r.status}, signal ${r.signal}) in ${last}; ` +
          `last call: ${vcalls[vcalls.length - 1] ?? '(not reproduced alone)'} (seed ${SEED})\n${(r.stderr ?? '').slice(-2000)}`,
      );
    }
    const summary = JSON.parse(lines[lines.length - 1]) as {
      names: string[]; calls: number; threw: number; returned: number; nonErrors: string[]; leaked: number;
      leaks: Record<string, number>;
    };
    const exported = Object.keys(native()).filter((k) => typeof (native() as unknown as Record<string, unknown>)[k] === 'function');
    assert.equal(summary.names, exported.sort(), 'the child fuzzed every exported function');
    for (const fn of ['binary', 'unary', 'where', 'reduce', 'argReduce', 'softmax', 'crossEntropy', 'crossEntropyBackward'])
      assert.ok(summary.names.includes(fn), `${fn} is exported`);
    assert.equal(summary.nonErrors, [], `every throw is an Error (seed ${SEED})`);
    assert.ok(summary.threw > summary.calls / 2, `most garbage calls throw (${summary.threw} of ${summary.calls})`);
    assert.is(summary.leaked, 0, `native buffers left after the fuzz, by function ${JSON.stringify(summary.leaks)} (seed ${SEED})`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
