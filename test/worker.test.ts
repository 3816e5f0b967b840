// worker.test.ts — the addon is context-aware: it loads and computes in the main thread and in
// worker_threads, two workers at once (both driving the shared native thread pool through matmul),
// a worker that is terminated while it holds tensors does not disturb the others, and results are
// the same everywhere (the counter-based random numbers too).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DTYPE_CODES, native } from '../lib/native';

const root = path.resolve(__dirname, '..');
const F32 = DTYPE_CODES.float32;
const F64 = DTYPE_CODES.float64;

// The work, as plain JS source so the very same function runs in the main thread and in workers.
// Returns the max relative error of a float32 matmul [m, k]·[k, n] against a float64 loop, the
// transposed-view check, and the first random numbers of a seed.
const WORK = `
function work(n, m, k, nn, seed, reps) {
  let worst = 0;
  for (let rep = 0; rep < reps; rep++) {
    const a = n.random('normal', ${F32}, [m, k], seed + rep, 0, 0);
    const b = n.random('uniform', ${F32}, [k, nn], seed + 1000 + rep, 0, 0);
    const c = n.matmul(a, b, false, false);
    const A = n.read(a), B = n.read(b), C = n.read(c);
    for (let i = 0; i < m; i++) for (let j = 0; j < nn; j++) {
      let s = 0, sa = 0;
      for (let p = 0; p < k; p++) { s += A[i * k + p] * B[p * nn + j]; sa += Math.abs(A[i * k + p] * B[p * nn + j]); }
      worst = Math.max(worst, Math.abs(C[i * nn + j] - s) / (sa + 1e-30));
    }
    const sum = n.binary('add', c, c);
    const S = n.read(sum);
    for (let i = 0; i < S.length; i++) if (S[i] !== 2 * C[i]) throw new Error('add: element ' + i + ' is ' + S[i] + ', expected ' + 2 * C[i]);
    for (const h of [a, b, c, sum]) n.dispose(h);
  }
  const r = n.arange(${F64}, 0, 1, 12, 0, 0);
  const t = n.view(r, [4, 3], [1, 4], 0);
  const T = Array.from(n.read(n.contiguous(t)));
  const rnd = Array.from(n.read(n.random('normal', ${F64}, [5], 42, 0, 0)));
  return { worst, T, rnd };
}`;

// eslint-disable-next-line @typescript-eslint/no-implied-eval
const work = new Function(`${WORK}; return work;`)() as (
  n: unknown, m: number, k: number, nn: number, seed: number, reps: number,
) => { worst: number; T: number[]; rnd: number[] };

// A worker that loads the addon through the TypeScript loader (lib/native.ts, via tsx) and runs `work`.
function workerSource(m: number, k: number, nn: number, seed: number, reps: number, holdForever: boolean): string {
  return `
    const { parentPort } = require('node:worker_threads');
    require(require.resolve('tsx/cjs', { paths: [${JSON.stringify(root)}] }));
    const { native } = require(${JSON.stringify(path.join(root, 'lib', 'native.ts'))});
    ${WORK}
    const n = native();
    try {
      if (${holdForever}) {
        const held = [];
        for (let i = 0; i < 50; i++) held.push(n.random('normal', ${F32}, [256, 256], i, 0, 0));
        parentPort.postMessage({ holding: held.length });
        setInterval(() => { held.push(n.matmul(held[0], held[1], false, false)); }, 1);
      } else {
        parentPort.postMessage({ ok: true, result: work(n, ${m}, ${k}, ${nn}, ${seed}, ${reps}), threads: n.getNumThreads() });
      }
    } catch (e) {
      parentPort.postMessage({ ok: false, error: String(e && e.stack || e) });
    }`;
}

type Reply = { ok: boolean; error?: string; result?: ReturnType<typeof work>; holding?: number };

function runWorker(src: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const w = new Worker(src, { eval: true });
    w.once('message', (msg: Reply) => {
      resolve(msg);
      void w.terminate();
    });
    w.once('error', reject);
    // After a reply this is a no-op (the promise is settled); before one it is a crash.
    w.once('exit', (code) => reject(new Error(`worker exited with code ${code} before replying`)));
  });
}

const TOL = 1e-5; // |C − C64| / Σ|a·b| for float32 with k ≤ 200 is ~k·2⁻²⁴ at worst

test('the addon loads and computes in the main thread', () => {
  const r = work(native(), 67, 129, 33, 7, 2);
  assert.ok(r.worst < TOL, `matmul relative error ${r.worst}`);
  assert.equal(r.T, [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  assert.is(r.rnd.length, 5);
});

test('two workers at once compute the same results as the main thread', async () => {
  const main = work(native(), 67, 129, 33, 7, 1);
  const [w1, w2] = await Promise.all([
    runWorker(workerSource(67, 129, 33, 7, 20, false)),
    runWorker(workerSource(131, 97, 65, 11, 20, false)),
  ]);
  for (const w of [w1, w2]) {
    assert.ok(w.ok, `worker failed: ${w.error}`);
    assert.ok(w.result!.worst < TOL, `matmul relative error in a worker: ${w.result!.worst}`);
    assert.equal(w.result!.T, main.T);
    assert.equal(w.result!.rnd, main.rnd, 'random numbers differ between threads for the same seed');
  }
});

test('terminating a worker that holds tensors and is computing leaves the others working', async () => {
  const w = new Worker(workerSource(0, 0, 0, 0, 0, true), { eval: true });
  const first = await new Promise<Reply>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  assert.is(first.holding, 50);
  await new Promise((r) => setTimeout(r, 50));
  const code = await w.terminate();
  assert.is(code, 1);
  const again = await runWorker(workerSource(17, 3, 129, 5, 3, false));
  assert.ok(again.ok, `worker failed after another was terminated: ${again.error}`);
  assert.ok(again.result!.worst < TOL);
  const r = work(native(), 17, 3, 129, 5, 1);
  assert.ok(r.worst < TOL);
});

test.run();
