// emu_profile.ts — the memory-access profile of every CUDA kernel family, without a GPU (the model and
// the cases: bench/emu_profile_cases.ts). Per case and kernel: shared-memory wavefronts per ideal one
// (1.00 = no bank conflicts) for loads and stores, global sectors per ideal one (1.00 = coalesced), and
// the code sites that lose, by file:line when the addon has the emulator's line tables.
//
//   npm run profile:emu [-- --filter <regexp>] [--json <file>] [--all-sites]
//   (file:line: build with  npx cmake-js compile -O build-prof --CDSTRUCTURA_CUDA=OFF --CDSTRUCTURA_EMU_LINES=ON
//    and run with STRUCTURA_BINARY=build-prof/Release/structura.node)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { backend } from '../lib/index';
import { factor, profileCases, profileOf, type KernelProfile, type SiteProfile } from './emu_profile_cases';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const filter = new RegExp(opt('--filter') ?? '.');
const allSites = args.includes('--all-sites');

if (!backend().cudaEmu) throw new Error("bench/emu_profile.ts needs the emulated device 'cuda-emu' (CMake option STRUCTURA_CUDA_EMU)");

/** file:line (function) of each site, through addr2line (one call per module); the function only without line tables. */
function symbolize(sites: SiteProfile[]): void {
  const byModule = new Map<string, SiteProfile[]>();
  for (const s of sites) if (s.module) byModule.set(s.module, [...(byModule.get(s.module) ?? []), s]);
  for (const [module, list] of byModule) {
    const r = spawnSync('addr2line', ['-f', '-C', '-i', '-a', '-e', module, ...list.map((s) => s.offset)], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    // -a: each address starts a block "0x…" followed by (function, file:line) pairs, innermost first
    const blocks = r.stdout.split(/^0x[0-9a-f]+\n/m).slice(1);
    list.forEach((s, i) => {
      const lines = (blocks[i] ?? '').trim().split('\n');
      const frames: { fn: string; loc: string }[] = [];
      for (let j = 0; j + 1 < lines.length; j += 2) frames.push({ fn: lines[j], loc: lines[j + 1] });
      // the frames in kernel sources (cuda/*.cu, *.cuh), not the emulator's own: the access, then up to
      // two callers it was inlined into
      const loc = (x: { loc: string }) => x.loc.replace(/^.*\/(cuda\/)/, '$1').replace(/ \(discriminator \d+\)/, '');
      const inKernel = frames.filter((x) => /cuda\/[^/]+\.(cu|cuh):\d+/.test(x.loc));
      if (inKernel.length) s.where = inKernel.slice(0, 3).map(loc).join(' ← ');
      else if (frames.length) s.where = frames[0].fn.replace(/\(.*$/, '');
    });
  }
}

const fmt = (x: number) => x.toFixed(2);
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
const results: { case: string; kernels: KernelProfile[] }[] = [];
const rows: string[][] = [['case', 'kernel', 'smem ld', 'smem st', 'gmem ld', 'gmem st', 'gmem ld eff']];
const flagged: string[] = [];

for (const pc of profileCases()) {
  if (!filter.test(pc.name)) continue;
  const kernels = profileOf(pc.run);
  results.push({ case: pc.name, kernels });
  for (const k of kernels) {
    const s = k.shared, g = k.global;
    const eff = g.loads.actual ? g.loads.bytes / (32 * g.loads.actual) : 1;
    rows.push([pc.name, k.name.replace(/^.*::/, ''), fmt(factor(s.loads)), fmt(factor(s.stores)), fmt(factor(g.loads)), fmt(factor(g.stores)), pct(eff)]);
    const bad = k.sites.filter((x) => allSites || x.counts.actual > x.counts.ideal);
    symbolize(bad);
    for (const x of bad)
      flagged.push(`  ${k.name.replace(/^.*::/, '')}: ${x.space} ${x.access} ×${x.width} B at ${x.where ?? x.offset}: ` +
        `${x.counts.requests} requests, ${fmt(factor(x.counts))} ${x.space === 'shared' ? 'wavefronts' : 'sectors'} per ideal one`);
  }
}

const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
for (const r of rows) console.log(r.map((v, j) => (j < 2 ? v.padEnd(widths[j]) : v.padStart(widths[j]))).join('  '));
console.log(flagged.length ? `\nsites above their ideal (${flagged.length}):\n${flagged.join('\n')}` : '\nno site above its ideal');
const out = opt('--json');
if (out) fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString().slice(0, 10), device: 'cuda-emu', model: 'cuda/emu/profile.h', cases: results }, null, 1) + '\n');
