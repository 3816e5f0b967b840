// run.ts — `npm run bench`: times every bench/*.bench.ts case on one device and prints a table
// (op, shape, dtype, device, median ms, GFLOP/s or GB/s, and the ratio to each baseline measured in
// the same run), then writes bench/results/<cpu-or-card>-<YYYY-MM-DD>.json and an SVG chart beside it.
//
//   node --import tsx bench/run.ts [--device cpu|cuda] [--filter <regex>] [--quick] [--threads N]
//                                  [--no-torch] [--no-write] [bench files...]
//
// Timing: warm-up (at least 2 calls and 10% of the budget), then the median of N samples, N scaled so
// that a case takes about 0.75 s (0.15 s with --quick), at least 5 samples (3 with --quick); calls
// under 1 ms are batched inside a sample. bench/torch/common.py times PyTorch the same way.
// Baselines: 'torch' — one python process per script (bench/torch/<script>) stays up for the run and
// times each case right after ours (close in time, since the machine may be shared; never at the same
// time, since both use every thread), with OPENBLAS_NUM_THREADS etc. and torch.set_num_threads set to
// our thread count before torch is imported. 'local' baselines (a naive loop) run in this process.
// A "×" ratio is throughput relative to the baseline: baseline time / our time (> 1: we are faster).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as readline from 'node:readline';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backend, getNumThreads, setNumThreads } from '../lib/index';

// ---------------------------------------------------------------- the contract of a *.bench.ts file

export interface BenchContext {
  device: string;
  threads: number;
  quick: boolean;
}

/** A baseline measured in this process. Its time is multiplied by `scale` to stand for the whole case
 * (e.g. a naive loop timed on a sample of the rows of a large product: rows are independent). */
export interface LocalBaseline {
  kind: 'local';
  label: string;
  run(): void;
  scale?: number;
  setup?(): void;
  teardown?(): void;
}

/** A baseline measured by bench/torch/<script> on the same shape; `spec` is passed to it (JSON). */
export interface TorchBaseline {
  kind: 'torch';
  script: string;
  spec: Record<string, unknown>;
}

export type Baseline = LocalBaseline | TorchBaseline;

export interface BenchCase {
  op: string;
  shape: string;
  dtype: string;
  device: string;
  /** Floating-point operations of one run(), for GFLOP/s. */
  flops?: number;
  /** Bytes moved by one run(), for GB/s (when flops is not given). */
  bytes?: number;
  /** Allocates the inputs; called only for the cases that pass --filter. */
  setup?(): void;
  /** One call of the op, complete when it returns (CUDA cases synchronise). */
  run(): void;
  teardown?(): void;
  baselines?: Record<string, Baseline>;
}

export interface BenchModule {
  cases(ctx: BenchContext): BenchCase[];
}

// ---------------------------------------------------------------- options

interface Options {
  device: string;
  filter?: RegExp;
  quick: boolean;
  threads?: number;
  torch: boolean;
  write: boolean;
  files: string[];
}

function parseArgs(argv: string[]): Options {
  const o: Options = { device: 'cpu', quick: false, torch: true, write: true, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--device') o.device = val();
    else if (a === '--filter') o.filter = new RegExp(val());
    else if (a === '--quick') o.quick = true;
    else if (a === '--threads') o.threads = Number(val());
    else if (a === '--no-torch') o.torch = false;
    else if (a === '--no-write') o.write = false;
    else if (a === '-h' || a === '--help') {
      console.log('usage: npm run bench -- [--device cpu|cuda] [--filter <regex>] [--quick] [--threads N] [--no-torch] [--no-write] [files]');
      process.exit(0);
    } else if (a.startsWith('-')) die(`unknown option ${a}`);
    else o.files.push(a);
  }
  if (!/^(cpu|cuda(:\d+)?)$/.test(o.device)) die(`--device must be cpu, cuda or cuda:N, got '${o.device}'`);
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads >= 1)) die('--threads must be a positive integer');
  return o;
}

function die(msg: string): never {
  console.error(`bench: ${msg}`);
  process.exit(1);
}

// ---------------------------------------------------------------- timing

export interface Timing {
  median_ms: number;
  min_ms: number;
  runs: number;
  inner: number;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

export function measure(fn: () => void, budget: number, minRuns: number, maxRuns = 200): Timing {
  const warm: number[] = [];
  const start = now();
  while (warm.length < 2 || (now() - start < 0.1 * budget && warm.length < 1000)) {
    const t = now();
    fn();
    warm.push(now() - t);
    if (now() - start > budget && warm.length >= 2) break;
  }
  const est = Math.max(Math.min(...warm), 1e-9);
  const inner = est < 1e-3 ? Math.ceil(1e-3 / est) : 1;
  const runs = Math.min(maxRuns, Math.max(minRuns, Math.floor(budget / (est * inner))));
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t = now();
    for (let i = 0; i < inner; i++) fn();
    samples.push((now() - t) / inner);
  }
  samples.sort((a, b) => a - b);
  const mid = samples.length >> 1;
  const median = samples.length % 2 ? samples[mid] : 0.5 * (samples[mid - 1] + samples[mid]);
  return { median_ms: median * 1e3, min_ms: samples[0] * 1e3, runs, inner };
}

// ---------------------------------------------------------------- PyTorch

interface TorchInfo {
  python: string;
  version: string;
}

/** The python to use for the torch baselines: STRUCTURA_BENCH_PYTHON if set, else the first of python3 and /usr/bin/python3 (Debian's python3-torch) that imports torch. */
function findTorch(): TorchInfo | { error: string } {
  const tried: string[] = [];
  const candidates = (process.env.STRUCTURA_BENCH_PYTHON ? [process.env.STRUCTURA_BENCH_PYTHON] : ['python3', '/usr/bin/python3']).filter(
    (c, i, all): c is string => !!c && all.indexOf(c) === i,
  );
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 120_000 });
    if (r.status === 0) return { python: py, version: r.stdout.trim() };
    tried.push(`${py}: ${r.error ? r.error.message : (r.stderr || '').trim().split('\n').pop()}`);
  }
  return { error: tried.join('; ') };
}

interface TorchMeta {
  torch: string;
  python: string;
  threads: number;
  threads_requested: number;
  blas: string;
  blas_library: string;
}

/** A bench/torch/<script> process answering one JSON case spec per line (protocol in common.py). */
class TorchServer {
  private proc: ChildProcessWithoutNullStreams;
  private lines: AsyncIterableIterator<string>;
  private stderr = '';
  private nextId = 0;

  private constructor(proc: ChildProcessWithoutNullStreams) {
    this.proc = proc;
    this.proc.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    this.lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  }

  static async start(py: string, script: string, threads: number, budget: number, minRuns: number): Promise<{ server: TorchServer; meta: TorchMeta } | { error: string }> {
    const file = path.join(__dirname, 'torch', script);
    const env = {
      ...process.env,
      OPENBLAS_NUM_THREADS: String(threads),
      OMP_NUM_THREADS: String(threads),
      MKL_NUM_THREADS: String(threads),
      PYTHONUNBUFFERED: '1',
    };
    const proc = spawn(py, [file, '--threads', String(threads), '--budget', String(budget), '--min-runs', String(minRuns)], { cwd: path.dirname(file), env });
    const server = new TorchServer(proc);
    const first = await server.readLine();
    if ('error' in first) return { error: String(first.error) };
    return { server, meta: first as unknown as TorchMeta };
  }

  private async readLine(): Promise<Record<string, unknown> | { error: string }> {
    const r = await this.lines.next();
    if (r.done) {
      await new Promise((res) => (this.proc.exitCode === null ? this.proc.once('exit', res) : res(null)));
      return { error: `exited (${this.proc.exitCode}): ${this.stderr.trim().split('\n').slice(-2).join(' / ')}` };
    }
    try {
      return JSON.parse(r.value) as Record<string, unknown>;
    } catch {
      return { error: `printed something that is not JSON: ${r.value.slice(0, 200)}` };
    }
  }

  async time(spec: Record<string, unknown>): Promise<Timing | { error: string }> {
    const id = String(this.nextId++);
    this.proc.stdin.write(JSON.stringify({ ...spec, id }) + '\n');
    const r = await this.readLine();
    if ('error' in r) return { error: String(r.error) };
    if (r.id !== id) return { error: `answered case ${String(r.id)} instead of ${id}` };
    return r as unknown as Timing;
  }

  close(): void {
    this.proc.stdin.end();
  }
}

// ---------------------------------------------------------------- machine

function cpuModel(): string {
  try {
    const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m);
    if (m) return m[1].trim();
  } catch {
    /* not Linux */
  }
  return os.cpus()[0]?.model?.trim() || `${os.arch()} cpu`;
}

const slug = (s: string) =>
  s.toLowerCase().replace(/\(r\)|\(tm\)|cpu @.*$|processor/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'unknown';

function today(): string {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

// ---------------------------------------------------------------- output

interface Row {
  op: string;
  shape: string;
  dtype: string;
  device: string;
  flops?: number;
  bytes?: number;
  timing: Timing;
  rate: number; // GFLOP/s or GB/s
  unit: 'GFLOP/s' | 'GB/s';
  baselines: Record<string, { label: string; median_ms: number; rate: number; ratio: number; runs: number } | { error: string }>;
}

function fmtRatio(r: number): string {
  return `${r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)}×`;
}

function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(4);
}

function table(rows: Row[], baselineNames: string[]): string {
  const head = ['op', 'shape', 'dtype', 'device', 'median ms', 'rate', ...baselineNames.flatMap((b) => [`${b} ms`, `vs ${b}`])];
  const body = rows.map((r) => [
    r.op,
    r.shape,
    r.dtype,
    r.device,
    fmtMs(r.timing.median_ms),
    `${r.rate.toFixed(1)} ${r.unit}`,
    ...baselineNames.flatMap((b) => {
      const x = r.baselines[b];
      if (!x) return ['', ''];
      if ('error' in x) return ['error', ''];
      return [fmtMs(x.median_ms), fmtRatio(x.ratio)];
    }),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const left = new Set([0, 1, 2, 3]);
  const line = (cells: string[]) => cells.map((c, i) => (left.has(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One panel per baseline: a horizontal bar per case, its length the ratio (log scale when ratios span > 20×). */
function svgChart(rows: Row[], baselineNames: string[], title: string): string {
  const labelW = 250;
  const barW = 420;
  const rowH = 22;
  const width = labelW + barW + 90;
  const parts: string[] = [];
  let y = 34;
  parts.push(`<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`);
  for (const b of baselineNames) {
    const pts = rows
      .map((r) => ({ r, x: r.baselines[b] }))
      .filter((p): p is { r: Row; x: { label: string; median_ms: number; rate: number; ratio: number; runs: number } } => !!p.x && !('error' in p.x));
    if (pts.length === 0) continue;
    const maxR = Math.max(1.25, ...pts.map((p) => p.x.ratio));
    const minR = Math.min(1, ...pts.map((p) => p.x.ratio));
    const log = maxR / minR > 20;
    const lo = log ? Math.log10(Math.min(0.5, minR / 1.5)) : 0;
    const hi = log ? Math.log10(maxR * 1.5) : maxR * 1.1;
    const xOf = (v: number) => labelW + (barW * ((log ? Math.log10(v) : v) - lo)) / (hi - lo);
    y += 18;
    parts.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">throughput vs ${esc(pts[0].x.label.replace(/ \(.*\)$/, ''))} (×, ${log ? 'log' : 'linear'} scale; &gt; 1 is faster)</text>`);
    y += 8;
    const top = y;
    for (const p of pts) {
      const x1 = xOf(p.x.ratio);
      const x0 = log ? labelW : xOf(0);
      parts.push(`<text x="${labelW - 8}" y="${y + 15}" font-size="12" text-anchor="end">${esc(`${p.r.op} ${p.r.shape} ${p.r.dtype}`)}</text>`);
      parts.push(`<rect x="${Math.min(x0, x1)}" y="${y + 4}" width="${Math.max(1, Math.abs(x1 - x0))}" height="${rowH - 8}" fill="${p.x.ratio >= 1 ? '#2b8a3e' : p.x.ratio >= 0.8 ? '#e67700' : '#c92a2a'}"/>`);
      parts.push(`<text x="${Math.max(x0, x1) + 5}" y="${y + 15}" font-size="11">${fmtRatio(p.x.ratio)}</text>`);
      y += rowH;
    }
    const x1 = xOf(1);
    parts.push(`<line x1="${x1}" y1="${top}" x2="${x1}" y2="${y}" stroke="#000" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${x1}" y="${y + 12}" font-size="10" text-anchor="middle">1×</text>`);
    y += 18;
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`
  );
}

// ---------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const b0 = backend();
  if (opts.device.startsWith('cuda') && !b0.cuda) {
    die(`--device ${opts.device} needs a CUDA GPU, but backend().cuda is false: ${b0.reason}`);
  }
  if (opts.threads) setNumThreads(opts.threads);
  const threads = getNumThreads();
  const budget = opts.quick ? 0.15 : 0.75;
  const minRuns = opts.quick ? 3 : 5;
  const ctx: BenchContext = { device: opts.device, threads, quick: opts.quick };

  const files = opts.files.length
    ? opts.files.map((f) => path.resolve(f))
    : fs.readdirSync(__dirname).filter((f) => f.endsWith('.bench.ts')).sort().map((f) => path.join(__dirname, f));
  const cases: BenchCase[] = [];
  for (const f of files) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const mod = require(f) as BenchModule;
    if (typeof mod.cases !== 'function') die(`${f} exports no cases(ctx) function`);
    for (const c of mod.cases(ctx)) {
      if (opts.filter && !opts.filter.test(`${c.op} ${c.shape} ${c.dtype} ${c.device}`)) continue;
      cases.push(c);
    }
  }
  if (cases.length === 0) die(`no bench case matches${opts.filter ? ` --filter ${opts.filter.source}` : ''}`);

  const device = opts.device === 'cpu' ? cpuModel() : b0.devices[Number(opts.device.split(':')[1] || 0)]?.name || opts.device;
  console.log(`structura bench: ${cases.length} cases on ${opts.device} (${device}), ${threads} threads, simd ${b0.simd}, ${b0.binary}`);
  const loadBefore = os.loadavg()[0];
  if (loadBefore > 0.5) {
    console.log(`WARNING: the machine is busy (load average ${loadBefore.toFixed(1)} over the last minute, ${os.cpus().length} cores): timings will be low and noisy`);
  }

  // PyTorch: one server per script, started up front (importing torch takes seconds).
  const servers = new Map<string, TorchServer | { error: string }>();
  let torchMeta: TorchMeta | { error: string } | undefined;
  const scripts = new Set(cases.flatMap((c) => Object.values(c.baselines || {}).flatMap((x) => (x.kind === 'torch' ? [x.script] : []))));
  if (scripts.size && opts.torch) {
    const found = findTorch();
    if ('error' in found) {
      torchMeta = { error: `no python with torch (${found.error})` };
      console.log(`PyTorch baseline: not available (${found.error}); install python3-torch (Debian) for it`);
    } else {
      for (const script of scripts) {
        const r = await TorchServer.start(found.python, script, threads, budget, minRuns);
        if ('error' in r) {
          console.log(`PyTorch baseline ${script}: ${r.error}`);
          servers.set(script, r);
          torchMeta = torchMeta ?? r;
          continue;
        }
        servers.set(script, r.server);
        torchMeta = { ...r.meta, python: found.python };
        console.log(`PyTorch ${r.meta.torch} (${found.python}), ${r.meta.threads} threads, BLAS ${r.meta.blas_library || r.meta.blas}`);
        if (/\/blas\/libblas\.so/.test(r.meta.blas_library)) {
          console.log('  WARNING: PyTorch is using the REFERENCE BLAS (libblas3): the baseline is meaningless. Install libopenblas0-pthread.');
        }
      }
    }
  }

  const rows: Row[] = [];
  const baselineNames: string[] = [];
  for (const c of cases) {
    c.setup?.();
    const timing = measure(() => c.run(), budget, minRuns);
    const unit = c.flops !== undefined ? 'GFLOP/s' : 'GB/s';
    const work = c.flops ?? c.bytes ?? 0;
    const rate = work / (timing.median_ms * 1e-3) / 1e9;
    const row: Row = { op: c.op, shape: c.shape, dtype: c.dtype, device: c.device, flops: c.flops, bytes: c.bytes, timing, rate, unit, baselines: {} };
    for (const [name, x] of Object.entries(c.baselines || {})) {
      let t: Timing | { error: string } | undefined;
      let label = name;
      if (x.kind === 'torch') {
        if (!opts.torch) continue;
        const server = servers.get(x.script);
        if (!server) continue; // no python with torch here: the naive baseline stands alone
        if (server instanceof TorchServer) t = await server.time(x.spec);
        else t = { error: server.error };
        label = `PyTorch ${torchMeta && !('error' in torchMeta) ? torchMeta.torch : ''}`.trim();
      } else {
        label = x.label;
        x.setup?.();
        const m = measure(() => x.run(), opts.quick ? 0.1 : 0.3, 3);
        x.teardown?.();
        const s = x.scale ?? 1;
        t = { ...m, median_ms: m.median_ms * s, min_ms: m.min_ms * s };
      }
      if (!baselineNames.includes(name)) baselineNames.push(name);
      if ('error' in t) row.baselines[name] = { error: t.error };
      else row.baselines[name] = { label, median_ms: t.median_ms, rate: work / (t.median_ms * 1e-3) / 1e9, ratio: t.median_ms / timing.median_ms, runs: t.runs };
    }
    c.teardown?.();
    rows.push(row);
    const bl = Object.entries(row.baselines)
      .map(([n, x]) => ('error' in x ? `${n}: error` : `${n} ${fmtMs(x.median_ms)} ms (${fmtRatio(x.ratio)})`))
      .join(', ');
    console.log(`  ${c.op} ${c.shape} ${c.dtype}: ${fmtMs(timing.median_ms)} ms, ${rate.toFixed(1)} ${unit} (${timing.runs}×${timing.inner})${bl ? '; ' + bl : ''}`);
  }

  for (const server of servers.values()) if (server instanceof TorchServer) server.close();

  console.log('');
  console.log(table(rows, baselineNames));

  const partial = !!opts.filter || opts.quick || opts.files.length > 0;
  const name = `${slug(device)}-${today()}${partial ? '-partial' : ''}`;
  const result = {
    date: new Date().toISOString(),
    device: opts.device,
    deviceName: device,
    machine: { cpu: cpuModel(), cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), platform: `${process.platform}-${process.arch}`, node: process.version },
    structura: { version: b0.version, binary: b0.binary, simd: b0.simd, threads, cudaCompiled: b0.cudaCompiled },
    torch: torchMeta ?? null,
    options: { quick: opts.quick, filter: opts.filter?.source ?? null, budgetS: budget, minRuns },
    loadAverage: { before: loadBefore, after: os.loadavg()[0] },
    cases: rows,
  };
  if (opts.write) {
    const dir = path.join(__dirname, 'results');
    fs.mkdirSync(dir, { recursive: true });
    const jsonFile = path.join(dir, `${name}.json`);
    const svgFile = path.join(dir, `${name}.svg`);
    fs.writeFileSync(jsonFile, JSON.stringify(result, null, 2) + '\n');
    fs.writeFileSync(svgFile, svgChart(rows, baselineNames, `structura ${b0.version} on ${device} (${threads} threads), ${today()}`));
    console.log(`\nwrote ${path.relative(process.cwd(), jsonFile)} and ${path.relative(process.cwd(), svgFile)}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
