// memory.test.ts — tensor lifetime: dispose (idempotent; views outlive their base), use after
// dispose, `using`, tidy (nested structures returned, nesting, keep, throwing, Promises refused),
// dispose() of nested values, memory() counts and bytes, external memory reported to V8, and the
// FinalizationRegistry backstop (tensors and graphs collected without dispose release their memory),
// and the CPU's cache of large buffers (host_cache.h: reuse, its limit, emptyCache).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as S from '../lib/index';
import type { Tensor } from '../lib/index';
import { throwsLike, liveCounts, assertNoLeak } from './helpers';
import { native, nativePath as nativePathOf } from '../lib/native';

// global.gc without --expose-gc on the command line
v8.setFlagsFromString('--expose-gc');
const gc: () => void = (globalThis as { gc?: () => void }).gc ?? vm.runInNewContext('gc');

function leakFree(name: string, fn: () => void): void {
  test(name, () => {
    const before = liveCounts();
    fn();
    assertNoLeak(before, name);
  });
}

leakFree('dispose is idempotent; views keep their storage alive; isDisposed', () => {
  const before = S.memory();
  const t = S.zeros([1000]);
  const m1 = S.memory();
  assert.is(m1.numTensors, before.numTensors + 1);
  assert.is(m1.cpu.buffers, before.cpu.buffers + 1);
  assert.is(m1.cpu.bytes, before.cpu.bytes + 4000);
  const v = t.reshape(10, 100);
  assert.is(S.memory().numTensors, before.numTensors + 2, 'a view is a tensor');
  assert.is(S.memory().cpu.buffers, before.cpu.buffers + 1, 'but not a buffer');
  t.dispose();
  t.dispose();
  assert.ok(t.isDisposed);
  assert.is(S.memory().cpu.buffers, before.cpu.buffers + 1, 'the view holds the storage');
  const s = v.sum();
  assert.is(s.item(), 0);
  s.dispose();
  v.dispose();
});

leakFree('using a disposed tensor throws a TypeError naming the argument', () => {
  const a = S.ones([2]);
  const b = S.ones([2]);
  b.dispose();
  throwsLike(() => S.add(a, b), TypeError, /structura\.add: 'b' is a disposed tensor \(shape \[2\], float32\)/);
  throwsLike(() => b.add(a), TypeError, /'a' is a disposed tensor/);
  throwsLike(() => b.dataSync(), TypeError, /structura\.dataSync: 'tensor' is a disposed tensor/);
  throwsLike(() => b.item(), TypeError, /disposed/);
  throwsLike(() => b.reshape(1, 2), TypeError, /structura\.reshape: 'x' is a disposed tensor/);
  throwsLike(() => S.matmul(a, b), TypeError, /structura\.matmul: 'b' is a disposed tensor/);
  throwsLike(() => S.concat([a, b]), TypeError, /'tensors\[1\]' is a disposed tensor/);
  throwsLike(() => { b.requiresGrad = true; }, TypeError, /disposed/);
  throwsLike(() => S.keep(b), TypeError, /disposed/);
  a.dispose();
});

leakFree('raw handles: a stale one is refused even after its slot is reused; foreign numbers are refused', () => {
  const n = native();
  const f32 = (v: number[]) => n.fromArray(0, [v.length], new Float32Array(v), 0, 0);
  const a = f32([1, 2]);
  assert.ok(n.dispose(a));
  assert.not.ok(n.dispose(a), 'dispose is idempotent on a raw handle too');
  // the next tensors take a's slot, under a new generation: a must not read as any of them
  const fresh = [f32([7, 8]), f32([9, 10])];
  throwsLike(() => n.read(a), TypeError, /argument 'tensor' is a disposed tensor/);
  assert.ok(n.isDisposed(a));
  assert.not.ok(n.dispose(a), 'a stale handle does not dispose the tensor now in its slot');
  assert.equal(fresh.map((h) => Array.from(n.read(h))), [[7, 8], [9, 10]]);
  for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 53, (fresh[0] as number) + 2 ** 40, (fresh[0] as number) + 2 ** 30, '1', {}, null]) {
    throwsLike(() => n.read(bad as never), TypeError, /argument 'tensor' must be a tensor handle/);
    throwsLike(() => n.dispose(bad as never), TypeError, /dispose expects a tensor handle/);
    throwsLike(() => n.binary('add', fresh[0], bad as never), TypeError, /argument 'b' must be a tensor handle/);
  }
  for (const h of fresh) n.dispose(h);
});

test('raw handles: a slot is retired, not wrapped, when its generations run out; a stale handle stays stale', () => {
  const n = native();
  const a = n.full(0, [1], 1, 0, 0);
  n.dispose(a);
  // LIFO reuse: each new tensor takes a's slot under the next generation, until the slot retires
  // (2^21 − base generations, base random in [1, 2^20)); then a new slot is used
  const slot = (h: number) => h % 2 ** 32;
  let reuses = 0;
  for (;;) {
    const h = n.full(0, [1], 2, 0, 0) as number;
    if (slot(h) !== slot(a as number)) {
      n.dispose(h as never);
      break;
    }
    assert.ok(h !== (a as number));
    n.dispose(h as never);
    if (++reuses > 2 ** 21) assert.unreachable('the slot never retired');
  }
  assert.ok(reuses >= 2 ** 20, `${reuses} generations before the slot retired`);
  throwsLike(() => n.read(a), TypeError, /is a disposed tensor/);
  assert.not.ok(n.dispose(a), 'dispose of a stale handle is still false');
});

test('the addon loaded twice into one environment (a cleared require cache, as jest does) works, and exits cleanly', () => {
  const code = `const p = require('../lib/native').nativePath();
    const a = require(p); delete require.cache[p]; const b = require(p);
    const x = a.full(0, [2], 3, 0, 0), y = b.full(0, [2], 4, 0, 0);
    console.log(JSON.stringify([Array.from(a.read(x)), Array.from(b.read(y)), a !== b]));`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { cwd: __dirname, encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim()), [[3, 3], [4, 4], true]);
});

test('a handle posted from a worker does not name a tensor of the main thread', async () => {
  const { Worker } = await import('node:worker_threads');
  const n = native();
  const mine = n.full(0, [2], 7, 0, 0);
  const w = new Worker(`const { parentPort, workerData } = require('node:worker_threads');
    const N = require(workerData);
    parentPort.postMessage(N.full(0, [3], 42, 0, 0));`, { eval: true, workerData: nativePathOf() });
  const h = await new Promise((res) => w.once('message', res));
  await w.terminate();
  throwsLike(() => n.read(h as never), TypeError, /must be a tensor handle|is a disposed tensor/);
  assert.equal(Array.from(n.read(mine)), [7, 7]);
  n.dispose(mine);
});

test('a loop that never yields queues one setImmediate for the FinalizationRegistry, not one per flush', () => {
  const orig = globalThis.setImmediate;
  let calls = 0;
  globalThis.setImmediate = ((...a: Parameters<typeof setImmediate>) => (calls++, orig(...a))) as typeof setImmediate;
  try {
    const x = S.randn([16], { seed: 1 });
    for (let i = 0; i < 5000; i++) S.tidy(() => x.add(1).mul(2));
    x.dispose();
  } finally {
    globalThis.setImmediate = orig;
  }
  assert.ok(calls <= 1, `${calls} immediates queued`);
});

test('data() of a disposed tensor rejects', async () => {
  const b = S.ones([2]);
  b.dispose();
  let err: unknown;
  await b.data().catch((e) => (err = e));
  assert.instance(err, TypeError);
  assert.match((err as Error).message, /structura\.data: 'tensor' is a disposed tensor/);
});

leakFree('`using` disposes at the end of the block', () => {
  const before = S.memory().cpu.buffers;
  {
    using t = S.zeros([5]);
    assert.is(S.memory().cpu.buffers, before + 1);
    assert.is(t.size, 5);
  }
  assert.is(S.memory().cpu.buffers, before);
});

leakFree('tidy disposes everything made inside except what it returns (nested arrays, objects, Maps)', () => {
  const x = S.ones([3]);
  const r = S.tidy(() => {
    const a = x.add(1);
    const b = a.mul(2);
    a.mul(3); // dropped
    return { b, list: [a.exp(), [b.neg()]], map: new Map([['k', x.sub(1)]]), n: 5 };
  });
  assert.equal(Array.from(r.b.dataSync()), [4, 4, 4]);
  assert.is(r.n, 5);
  const kept = [r.b, r.list[0] as Tensor, (r.list[1] as Tensor[])[0], r.map.get('k')!];
  assert.ok(kept.every((t) => !t.isDisposed));
  assert.not.ok(x.isDisposed, 'tensors made outside are untouched');
  S.dispose(r);
  assert.ok(kept.every((t) => t.isDisposed));
  x.dispose();
});

leakFree('nested tidy: returned tensors move to the enclosing scope; keep() exempts a tensor', () => {
  let inner: Tensor | undefined;
  let kept: Tensor | undefined;
  const out = S.tidy('outer', () => {
    inner = S.tidy(() => S.ones([2]).mul(2));
    kept = S.keep(S.zeros([2]));
    return inner.add(1);
  });
  assert.ok(inner!.isDisposed, 'disposed by the outer tidy it moved to');
  assert.not.ok(kept!.isDisposed);
  assert.equal(Array.from(out.dataSync()), [3, 3]);
  kept!.dispose();
  out.dispose();
});

leakFree('tidy disposes on a throw and refuses Promises', () => {
  const before = S.memory().cpu.buffers;
  assert.throws(() => S.tidy(() => {
    S.ones([4]);
    throw new Error('inside');
  }), /inside/);
  assert.is(S.memory().cpu.buffers, before);
  throwsLike(() => S.tidy((async () => S.ones([1])) as never), TypeError, /fn returned a Promise/);
  // The types refuse an async fn too (test:types fails if this line compiles).
  // @ts-expect-error an async fn's tensors would outlive the scope
  throwsLike(() => S.tidy('async', async () => S.ones([1])), TypeError, /fn returned a Promise/);
  throwsLike(() => S.tidy(3 as never), TypeError, /'fn' must be a function, got number 3/);
  throwsLike(() => S.tidy('name', 3 as never), TypeError, /'fn' must be a function, got number 3/);
});

test('native bytes are reported to V8: undisposed tensors put pressure on the GC', async () => {
  // 100 × 16 MiB never disposed. V8 sees the bytes (napi_adjust_external_memory) and collects, so the
  // FinalizationRegistry frees them; without the reports the JS heap stays tiny and nothing would run.
  let peak = 0;
  for (let i = 0; i < 100; i++) {
    S.zeros([4 * 1024 * 1024]);
    peak = Math.max(peak, S.memory().cpu.bytes);
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(peak < 800 * 2 ** 20, `peak ${peak / 2 ** 20} MiB of 1600 MiB allocated`);
});

// ---- the CPU's cache of large buffers ---------------------------------------------------------------

const MiB = 2 ** 20;
const classOf = (bytes: number) => Math.ceil(bytes / (2 * MiB)) * 2 * MiB; // 2 MiB multiples

leakFree('large CPU buffers (≥ 16 MiB) are cached on dispose and reused, overwritten; emptyCache frees them', () => {
  S.emptyCache();
  const m0 = S.memory().cpu;
  assert.is(m0.cached, 0, 'emptyCache leaves nothing cached');
  assert.is(m0.cachedBlocks, 0);
  const n = 5_000_001; // 20 MB of float32: a 20 MiB class
  const a = S.randn([n], { seed: 3 });
  assert.is(S.memory().cpu.bytes, m0.bytes + 4 * n, 'bytes counts the tensor, not its class');
  a.dispose();
  const m1 = S.memory().cpu;
  assert.is(m1.cached, classOf(4 * n), 'the freed block is held');
  assert.is(m1.cachedBlocks, 1);
  assert.is(m1.bytes, m0.bytes, 'and not counted as live');
  // the next request of the class takes it back, and zeros() must overwrite the random values in it
  const z = S.zeros([n]);
  assert.is(S.memory().cpu.cachedBlocks, 0, 'the cached block was reused');
  assert.ok((z.dataSync() as Float32Array).every((v) => v === 0), 'a reused block is written in full');
  // another class is not served from it
  const b = S.ones([n + 2 ** 20]);
  z.dispose();
  assert.is(S.memory().cpu.cachedBlocks, 1);
  const c = S.ones([n + 2 ** 20]);
  assert.is(S.memory().cpu.cachedBlocks, 1, 'a block of a smaller class stays cached');
  assert.is(S.tidy(() => S.sum(c).item()), n + 2 ** 20);
  b.dispose();
  c.dispose();
  assert.is(S.memory().cpu.cachedBlocks, 3);
  S.emptyCache();
  assert.is(S.memory().cpu.cached, 0);
  assert.is(S.memory().cpu.cachedBlocks, 0);
});

leakFree('medium CPU buffers (256 KiB to 16 MiB) are cached too, in classes an eighth of a power of two apart', () => {
  S.emptyCache();
  const KiB = 1024;
  S.zeros([70_000]).dispose(); // 280,000 bytes: the class of 288 KiB (256 KiB + 32 KiB steps)
  assert.equal([S.memory().cpu.cached, S.memory().cpu.cachedBlocks], [288 * KiB, 1]);
  S.zeros([50_000]).dispose(); // 200 KB: malloc's, not cached
  assert.is(S.memory().cpu.cachedBlocks, 1);
  const b = S.ones([71_000]); // 284,000 bytes: the same class, served from the cache
  assert.is(S.memory().cpu.cachedBlocks, 0, 'the cached block was reused');
  assert.ok((b.dataSync() as Float32Array).every((v) => v === 1), 'a reused block is written in full');
  b.dispose();
  S.zeros([3 * 2 ** 18 + 1]).dispose(); // 3 MiB + 4 bytes: the class of 3.25 MiB (2 MiB + 256 KiB steps)
  assert.equal([S.memory().cpu.cached, S.memory().cpu.cachedBlocks], [288 * KiB + 3.25 * MiB, 2]);
  S.emptyCache();
  assert.equal([S.memory().cpu.cached, S.memory().cpu.cachedBlocks], [0, 0]);
});

test('STRUCTURA_CPU_CACHE_MB bounds the cache (oldest blocks freed first; 0 turns it off)', () => {
  const root = path.resolve(__dirname, '..');
  const code = `const S = require('./lib/index');
    const out = [];
    for (let i = 0; i < 3; i++) { S.zeros([5_000_001 + i * 2 ** 19]).dispose(); const m = S.memory().cpu; out.push([m.cached, m.cachedBlocks]); }
    console.log(JSON.stringify(out));`;
  const run = (mb: string) => {
    const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', code], {
      cwd: root, encoding: 'utf8', env: { ...process.env, STRUCTURA_CPU_CACHE_MB: mb },
    });
    assert.is(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as [number, number][];
  };
  // classes of 20, 22 and 24 MiB
  const c0 = classOf(4 * 5_000_001), c1 = classOf(4 * (5_000_001 + 2 ** 19)), c2 = classOf(4 * (5_000_001 + 2 ** 20));
  assert.equal(run('0'), [[0, 0], [0, 0], [0, 0]], 'off');
  assert.equal(run('46'), [[c0, 1], [c0 + c1, 2], [c1 + c2, 2]], 'the 20 MiB block goes to make room');
  assert.equal(run('21'), [[c0, 1], [c0, 1], [c0, 1]], 'a block larger than the limit is freed at once');
});

async function collect(until: () => boolean): Promise<boolean> {
  for (let i = 0; i < 50 && !until(); i++) {
    gc();
    await new Promise((r) => setTimeout(r, 5));
  }
  return until();
}

test('FinalizationRegistry: tensors collected without dispose release their buffers', async () => {
  await collect(() => false); // settle earlier garbage
  const before = liveCounts();
  (() => {
    for (let i = 0; i < 20; i++) S.zeros([1000]).add(1);
  })();
  assert.ok(liveCounts().buffers >= before.buffers + 40);
  const ok = await collect(() => liveCounts().buffers === before.buffers);
  assert.ok(ok, `buffers ${liveCounts().buffers}, expected ${before.buffers} after GC`);
  assert.is(liveCounts().tensors, before.tensors);
});

test('FinalizationRegistry: tensors made in a long synchronous loop are collected too', async () => {
  // a new tensor joins the registry only when the pending list is flushed (at 256 tensors, 16 MiB,
  // or the next turn of the event loop): a loop that never yields must still leave them collectable
  await collect(() => false);
  const before = liveCounts();
  (() => {
    for (let i = 0; i < 1000; i++) S.full([3], i);
  })();
  assert.ok(liveCounts().tensors >= before.tensors + 1000);
  gc();
  const ok = await collect(() => liveCounts().buffers === before.buffers);
  assert.ok(ok, `buffers ${liveCounts().buffers}, expected ${before.buffers} after GC`);
  assert.is(liveCounts().tensors, before.tensors);
});

test('FinalizationRegistry: a forward graph dropped without backward releases its saved tensors', async () => {
  await collect(() => false);
  const x = S.randn([100], { requiresGrad: true, seed: 1 });
  const before = liveCounts();
  (() => {
    // exp saves its output, mul saves both inputs: aliases owned by the graph nodes
    x.exp().mul(x).tanh().sum();
  })();
  assert.ok(liveCounts().buffers > before.buffers);
  const ok = await collect(() => liveCounts().buffers === before.buffers);
  assert.ok(ok, `buffers ${liveCounts().buffers}, expected ${before.buffers} after GC`);
  x.dispose();
});

test.run();
