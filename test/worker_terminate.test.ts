// worker_terminate.test.ts — a worker terminated while an op runs: the op's output is made after
// terminate() (the environment then refuses new handles) and must be freed, not kept for the life of
// the process (csrc/tensor.cc wrap). A file of its own: the memory counters are process-wide, and here
// the main thread holds no tensors, so any buffer left is a leak.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DTYPE_CODES, native } from '../lib/native';

const root = path.resolve(__dirname, '..');
const F32 = DTYPE_CODES.float32;

test('terminating workers in the middle of ops leaves no native buffers behind', async () => {
  const before = native().memory().cpu;
  for (let i = 0; i < 6; i++) {
    const w = new Worker(
      `const { parentPort } = require('node:worker_threads');
       require(require.resolve('tsx/cjs', { paths: [${JSON.stringify(root)}] }));
       const { native } = require(${JSON.stringify(path.join(root, 'lib', 'native.ts'))});
       const n = native();
       const a = n.random('normal', ${F32}, [256, 256], 1, 0, 0);
       parentPort.postMessage(1);
       for (;;) n.dispose(n.binary('add', a, a));`,
      { eval: true },
    );
    await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await new Promise((r) => setTimeout(r, 20));
    await w.terminate();
  }
  await new Promise((r) => setTimeout(r, 50));
  const after = native().memory().cpu;
  assert.is(after.buffers, before.buffers, `native buffers ${before.buffers} → ${after.buffers} (${after.bytes - before.bytes} bytes)`);
});

test.run();
