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
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test.run();
