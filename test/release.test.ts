// release.test.ts — DESIGN §7's release check, run on every `npm test`: the package packed with the
// binary this suite loads as its prebuild installs into an empty project by `npm ci --offline` with
// only node and sh on PATH (no compiler), and there require(), import and tsc all work
// (scripts/release-check.js does the work; here it runs on a staged copy, so the repository is untouched).
// And a source build installed as a dependency keeps only its binary of build/.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backend } from '../lib/index';

const root = path.resolve(__dirname, '..');
const { pruneBuildTree } = require('../scripts/install.js') as { pruneBuildTree: (dir: string) => number };

test('the packed tarball installs without a compiler and loads its prebuilt binary', () => {
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'release-check.js'), '--binary', backend().binary], {
    cwd: root,
    encoding: 'utf8',
    timeout: 300_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.is(r.status, 0, out);
  assert.match(out, /release-check: installed with PATH=.* \(node and sh only\): using prebuilds\//);
  assert.match(out, /require\(\) and import of 'structura' load node_modules\/structura\/prebuilds\//);
  assert.match(out, /tsc on an import of the installed package: ok/);
  assert.match(out, /release-check: passed/);
});

// A build tree as cmake-js leaves it, under base/<where>/.
function fakeBuild(base: string, where: string): string {
  const dir = path.join(base, where);
  const files = ['build/Release/structura.node', 'build/Release/obj/a.o', 'build/CMakeFiles/x/b.o', 'build/CMakeCache.txt'];
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), 'x'.repeat(100));
  }
  return dir;
}
const listBuild = (dir: string) =>
  (fs.readdirSync(path.join(dir, 'build'), { recursive: true }) as string[]).map((f) => f.split(path.sep).join('/')).sort();

test("install's clean-up: under node_modules only build/Release/structura.node stays; a checkout keeps its build tree", () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'structura-prune-'));
  try {
    const dep = fakeBuild(base, 'app/node_modules/structura');
    assert.is(pruneBuildTree(dep), 300);
    assert.equal(listBuild(dep), ['Release', 'Release/structura.node']);
    assert.is(fs.readFileSync(path.join(dep, 'build/Release/structura.node'), 'utf8').length, 100);

    const checkout = fakeBuild(base, 'src/structura');
    assert.is(pruneBuildTree(checkout), 0);
    assert.is(listBuild(checkout).length, 8);

    const failed = path.join(base, 'b/node_modules/structura');
    fs.mkdirSync(path.join(failed, 'build', 'CMakeFiles'), { recursive: true });
    assert.is(pruneBuildTree(failed), 0, 'no binary: the tree stays for the user to read');
    assert.ok(fs.existsSync(path.join(failed, 'build', 'CMakeFiles')));

    // a git checkout under node_modules (a dependency being patched) keeps its incremental build
    const patched = fakeBuild(base, 'c/node_modules/structura');
    fs.mkdirSync(path.join(patched, '.git'));
    assert.is(pruneBuildTree(patched), 0);
    assert.is(listBuild(patched).length, 8);

    // build/ as a symlink to a folder outside the package: nothing there is touched
    const outside = fakeBuild(base, 'scratch');
    const linked = path.join(base, 'd/node_modules/structura');
    fs.mkdirSync(linked, { recursive: true });
    fs.symlinkSync(path.join(outside, 'build'), path.join(linked, 'build'));
    assert.is(pruneBuildTree(linked), 0);
    assert.is(listBuild(outside).length, 8);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('install.js takes a loadable STRUCTURA_BINARY without building; a broken one is said and passed over', () => {
  const env = (extra: Record<string, string>) => {
    const e: Record<string, string | undefined> = { ...process.env, ...extra };
    for (const k of Object.keys(e)) if (/^npm_config_build_from_source$/i.test(k)) delete e[k];
    return e as NodeJS.ProcessEnv;
  };
  const script = path.join(root, 'scripts', 'install.js');
  const ok = spawnSync(process.execPath, [script], { cwd: root, encoding: 'utf8', env: env({ STRUCTURA_BINARY: backend().binary }) });
  assert.is(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /structura install: using STRUCTURA_BINARY=.*structura\.node; nothing to build/);
  // (a broken one falls through to the usual search, which finds this checkout's build: only where it
  // has one, so that the test never starts a build)
  if (!fs.existsSync(path.join(root, 'build', 'Release', 'structura.node'))) return;
  const missing = path.join(os.tmpdir(), 'no-such-structura.node');
  const bad = spawnSync(process.execPath, [script], { cwd: root, encoding: 'utf8', env: env({ STRUCTURA_BINARY: missing }) });
  assert.is(bad.status, 0, bad.stdout + bad.stderr); // this checkout's own build/Release loads
  assert.match(bad.stdout, /STRUCTURA_BINARY=.*no-such-structura\.node does not load \(.*\); going on without it/);
  assert.match(bad.stdout, /structura install: using build\/Release\/structura\.node/);
});

test.run();
