// threadpool.test.ts — the native thread pool (csrc/threadpool.cc) when setNumThreads races a parallel
// job in another thread: test/native/threadpool_race.cc, compiled here with the C++ compiler that
// builds the addon (CXX, else c++), runs 3 s of it. A job published for 2 threads to a pool resized to
// 1 in between hung forever (and with it every later setNumThreads).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');

test('setNumThreads racing parallel jobs: every job completes, nothing hangs', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'structura-pool-'));
  try {
    const exe = path.join(dir, 'threadpool_race');
    const cxx = process.env.CXX || 'c++';
    const build = spawnSync(cxx, ['-O2', '-std=c++17', '-pthread', '-I', path.join(root, 'csrc'), path.join(root, 'test/native/threadpool_race.cc'), path.join(root, 'csrc/threadpool.cc'), '-o', exe], { encoding: 'utf8' });
    assert.is(build.status, 0, `${cxx} failed: ${build.error ?? ''}${build.stderr}`);
    const run = spawnSync(exe, ['3'], { encoding: 'utf8', timeout: 60_000 });
    assert.is(run.status, 0, `threadpool_race: ${run.stdout}${run.stderr} (status ${run.status}, signal ${run.signal})`);
    assert.match(run.stdout, /^ok \d+ \d+/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
