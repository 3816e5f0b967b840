// build.test.ts — the two native builds agree: CMakeLists.txt (cmake-js, CPU + CUDA) and binding.gyp
// (node-gyp, CPU only) compile the same C++ sources, every listed file exists, every C++ file under
// csrc/ is in the build, and every cuda/*.cu is in STRUCTURA_CUDA_SOURCES. csrc/cuda_none.cc (the CUDA
// probe of a CPU-only binary) is listed in both and removed by CMake when CUDA is compiled in. The
// emulated device (STRUCTURA_CUDA_EMU: cuda/*.cu and cuda/emu/*.cc on the host) is CMake-only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const read = (f: string) => fs.readFileSync(path.join(root, f), 'utf8');

function cmakeList(name: string): string[] {
  const cm = read('CMakeLists.txt').replace(/#[^\n]*/g, '');
  const m = cm.match(new RegExp(`set\\(\\s*${name}\\s+([^)]*)\\)`));
  assert.ok(m, `CMakeLists.txt has no set(${name} ...)`);
  return m![1].split(/\s+/).filter(Boolean);
}

function gypSources(): string[] {
  const gyp = JSON.parse(read('binding.gyp').replace(/#[^\n]*/g, ''));
  const t = gyp.targets.find((x: { target_name: string }) => x.target_name === 'structura');
  assert.ok(t, "binding.gyp has no target 'structura'");
  return t.sources as string[];
}

function filesUnder(dir: string, re: RegExp): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(path.join(root, d), { withFileTypes: true })) {
      const rel = `${d}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (re.test(e.name)) out.push(rel);
    }
  };
  walk(dir);
  return out.sort();
}

test('CMakeLists.txt and binding.gyp list the same C++ sources, in the same order', () => {
  const cmake = cmakeList('STRUCTURA_CPP_SOURCES');
  const gyp = gypSources();
  assert.equal(gyp, cmake, `binding.gyp sources: ${gyp.join(' ')}\nCMake sources: ${cmake.join(' ')}`);
});

test('csrc/cuda_none.cc is in both lists and CMake drops it only when CUDA is compiled', () => {
  assert.ok(cmakeList('STRUCTURA_CPP_SOURCES').includes('csrc/cuda_none.cc'));
  assert.ok(gypSources().includes('csrc/cuda_none.cc'));
  const cm = read('CMakeLists.txt');
  assert.match(cm, /if\(STRUCTURA_HAVE_CUDA\)\s*list\(REMOVE_ITEM STRUCTURA_CPP_SOURCES csrc\/cuda_none\.cc\)/);
});

test('every listed source exists', () => {
  for (const f of [...cmakeList('STRUCTURA_CPP_SOURCES'), ...cmakeList('STRUCTURA_CUDA_SOURCES'), ...gypSources()]) {
    assert.ok(fs.existsSync(path.join(root, f)), `${f} is listed but does not exist`);
  }
});

test('every C++ file under csrc/ is compiled', () => {
  const listed = new Set(cmakeList('STRUCTURA_CPP_SOURCES'));
  for (const f of filesUnder('csrc', /\.(cc|cpp)$/)) assert.ok(listed.has(f), `${f} is not in STRUCTURA_CPP_SOURCES`);
});

test('every cuda/*.cu is in STRUCTURA_CUDA_SOURCES, and cuda/ has no Node headers', () => {
  const listed = new Set(cmakeList('STRUCTURA_CUDA_SOURCES'));
  const cu = filesUnder('cuda', /\.cu$/).filter((f) => !f.startsWith('cuda/emu/'));
  assert.ok(cu.length > 0, 'cuda/ holds no .cu file');
  for (const f of cu) assert.ok(listed.has(f), `${f} is not in STRUCTURA_CUDA_SOURCES`);
  for (const f of filesUnder('cuda', /\.(cu|cuh|h|cc)$/)) {
    assert.not.match(read(f), /#include\s*[<"](napi|node_api|node)\.h[>"]/, `${f} includes a Node header`);
  }
});

test('the CUDA build targets sm_80, sm_86, sm_89, sm_90a and compute_90 PTX, runtime linked statically', () => {
  const cm = read('CMakeLists.txt');
  assert.match(cm, /"80-real;86-real;89-real;90a-real;90-virtual"/);
  assert.match(cm, /CUDA_RUNTIME_LIBRARY Static/);
  assert.match(cm, /CUDA::cudart_static/);
});

test("the emulated device 'cuda-emu' is CMake-only: STRUCTURA_CUDA_EMU (on by default) compiles every CUDA source for the host", () => {
  const cm = read('CMakeLists.txt');
  assert.match(cm, /option\(STRUCTURA_CUDA_EMU "[^"]*" ON\)/);
  assert.match(cm, /foreach\(cu \$\{STRUCTURA_CUDA_SOURCES\}\)/, 'each STRUCTURA_CUDA_SOURCES file gets a host wrapper');
  assert.match(cm, /STRUCTURA_CUDA_EMU=1/);
  assert.match(cm, /cuda\/emu\/\*\.cc/);
  // node-gyp builds the CPU addon only: no cuda/ source, so backend().cudaEmu is false there.
  for (const f of gypSources()) assert.not.match(f, /^cuda\//, `binding.gyp compiles ${f}`);
});

test('package.json ships what a source build needs', () => {
  const pkg = JSON.parse(read('package.json'));
  for (const f of ['dist/', 'csrc/', 'cuda/', 'CMakeLists.txt', 'binding.gyp', 'scripts/install.js']) {
    assert.ok(pkg.files.includes(f), `package.json "files" lacks ${f}`);
  }
  assert.equal(pkg.binary.napi_versions, [8]);
  assert.is(pkg.scripts.install, 'node scripts/install.js');
  for (const dep of ['cmake-js', 'node-addon-api', 'node-gyp-build']) assert.ok(pkg.dependencies[dep], `${dep} must be a dependency`);
});

test.run();
