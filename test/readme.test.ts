// readme.test.ts — the README tells the truth: its examples run as written (against lib/), the
// install/test commands are the ones .ci/run uses, and every function the API overview names
// (outside "Planned") is exported by the package.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as structura from '../lib/index';

const root = path.resolve(__dirname, '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has no section '## ${title}'`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

test('the install and test commands are `npm ci` and `npm test`, as .ci/run runs them', () => {
  const s = section('Install and test');
  assert.match(s, '```sh\nnpm ci\nnpm test\n```');
  assert.match(s, '```sh\nnpm install structura\n```');
  const ci = fs.readFileSync(path.join(root, '.ci', 'run'), 'utf8');
  assert.match(ci, /^npm ci$/m);
  assert.match(ci, /^npm test 2>&1/m);
  assert.match(section('Benchmark'), '```sh\nnpm run bench\n```');
});

/** Runs a ```ts block of ## Example (its imports of 'structura' pointed at lib/), returning its stdout. */
function runExample(n: number): string {
  const blocks = [...section('Example').matchAll(/```ts\n([\s\S]*?)```/g)];
  assert.ok(blocks.length > n, `no ${n + 1}th \`\`\`ts block in ## Example`);
  const src = blocks[n][1];
  const lines = src.trimEnd().split('\n');
  assert.ok(lines.length <= 30, `example ${n + 1} has ${lines.length} lines`);
  const indexPath = path.join(root, 'lib', 'index.ts');
  const code = src.replace(/from 'structura'/g, `from ${JSON.stringify(indexPath)}`);
  assert.is.not(code, src, `example ${n + 1} does not import from 'structura'`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'structura-readme-'));
  try {
    const file = path.join(dir, 'example.ts');
    fs.writeFileSync(file, code);
    // plain text: uvu forces colour (FORCE_COLOR) for itself, and console.log would colour the array
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.FORCE_COLOR;
    const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8', env });
    assert.is(r.status, 0, `example ${n + 1} failed:\n${r.stderr}`);
    return r.stdout;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the example runs as written', () => {
  const out = runExample(0);
  assert.match(out, /Float32Array\(3\) \[ 2, 4, 6 \]/);
  const loss = out.match(/loss (\S+)/);
  assert.ok(loss && Number.isFinite(Number(loss[1])), `no finite loss printed:\n${out}`);
});

test('the LoRA example runs as written: the loss falls, the saved adapter reloads to the same outputs', () => {
  const out = runExample(1);
  assert.match(out, /\[ '0', '2' \]/);
  const losses = [...out.matchAll(/loss (\S+)/g)].map((m) => Number(m[1]));
  assert.is(losses.length, 2, out);
  assert.ok(losses[1] < losses[0] / 2, `the loss did not fall: ${losses}`);
  assert.match(out, /difference after reload 0\n/);
});

test('the serving example runs as written: each request equals its own fine-tune', () => {
  const out = runExample(2);
  assert.match(out, /\[ 'support', 'legal' \]/);
  const d = out.match(/largest difference (\S+)/);
  assert.ok(d && Number(d[1]) <= 1e-6, `the served outputs differ from the fine-tunes':\n${out}`);
});

test('every function and class the API overview names is exported', () => {
  const s = section('API overview');
  const current = s.slice(0, s.indexOf('- **Planned**'));
  const dtypes = new Set(['float32', 'float64', 'float16', 'bfloat16', 'int32', 'uint8', 'uint16']);
  const names = new Set<string>();
  // One bullet at a time: "- **Ops** — `add sub mul div neg`, `matmul` (…), `sum(t, axis?)`, …".
  for (const bullet of current.split(/\n- \*\*/).slice(1)) {
    const title = bullet.slice(0, bullet.indexOf('**'));
    // nn and optim bullets also list methods (parameters(), step()): only their nn.X / optim.X count.
    const prefixedOnly = title === 'nn' || title === 'optim';
    for (const [, raw] of bullet.matchAll(/`([^`]+)`/g)) {
      const span = raw.replace(/\s+/g, ' ');
      const call = span.match(/^(?:new )?((?:nn\.|optim\.)?[A-Za-z]+)\(/);
      let words: string[] = [];
      if (call) words = [call[1]];
      else if (/^((nn|optim)\.)?[a-zA-Z]+( [a-zA-Z]+)*$/.test(span)) {
        const [first, ...rest] = span.split(' ');
        const prefix = first.includes('.') ? first.slice(0, first.indexOf('.') + 1) : '';
        words = [first, ...rest.map((w) => prefix + w)];
      }
      for (const w of words) if (!dtypes.has(w) && (!prefixedOnly || w.includes('.'))) names.add(w);
    }
  }
  const missing: string[] = [];
  for (const n of names) {
    const v = n.split('.').reduce<unknown>((o, k) => (o == null ? undefined : (o as Record<string, unknown>)[k]), structura);
    if (v === undefined) missing.push(n);
  }
  assert.ok(names.size > 30, `only ${names.size} names found: ${[...names].join(' ')}`);
  assert.equal(missing, [], `named in the README but not exported: ${missing.join(', ')}`);
});

test.run();
