// run.ts — `npm run bench`: times every bench/*.bench.ts case on one device and prints a table
// (op, shape, dtype, device, median ms, GFLOP/s or GB/s, and the ratio to each baseline measured in
// the same run), then writes bench/results/<cpu-or-card>-<YYYY-MM-DD>[-N].json and an SVG chart beside it
// (-2, -3, … for a later complete run of the same day).
//
//   node --import tsx bench/run.ts [--device cpu|cuda|cuda:N|cuda-emu] [--filter <regex>] [--quick]
//                                  [--threads N] [--no-torch] [--no-write] [--results <dir>] [bench files...]
//
// Timing: warm-up (at least 2 calls and 10% of the budget; 25% on a GPU), then the median of N
// samples, N scaled so that a case takes about 0.75 s (0.15 s with --quick; 0.4 s on a GPU), at
// least 5 samples (3 with --quick); calls under 1 ms (2 ms on a GPU) are batched inside a sample.
// bench/torch/common.py times PyTorch the same way.
// On a device (cuda, cuda-emu) every warm-up call and every timed sample ends with the device idle
// (cuda.synchronize()), so a sample is wall time from the first launch to the end of the last kernel;
// the calls of a batched sample are queued back to back, as a model would. PyTorch's side
// (bench/torch/cuda.py) times each sample with a pair of torch.cuda.Event instead.
// 'cuda-emu' runs the cuda/ kernels in the CPU emulator: only for smoke-testing this code path, with
// --quick, where the bench files use tiny shapes (it finishes in seconds; its numbers mean nothing).
// A case whose op is not implemented on the device yet is reported as skipped with the reason; one
// that fails otherwise is reported as failed (exit code 1 at the end); neither stops the run. The
// JSON is rewritten after every case, so a run cut short still leaves its results.
// Baselines: 'torch' — one python process per script (bench/torch/<script>) stays up for the run and
// times each case right after ours (close in time, since the machine may be shared; never at the same
// time, since both use every thread), with OPENBLAS_NUM_THREADS etc. and torch.set_num_threads set to
// our thread count before torch is imported. 'local' baselines (a naive loop) run in this process.
// A "×" ratio is throughput relative to the baseline: baseline time / our time (> 1: we are faster).
// A baseline that does other work than the case (a device copy beside an add) states its own bytes or
// flops, and its ratio compares rates instead: our GB/s over its GB/s (0.9× = 90% of its bandwidth).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as readline from 'node:readline';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backend, cuda, getNumThreads, setNumThreads } from '../lib/index';

// ---------------------------------------------------------------- the contract of a *.bench.ts file

export interface BenchContext {
  /** 'cpu', 'cuda', 'cuda:N' or 'cuda-emu'. */
  device: string;
  threads: number;
  quick: boolean;
  /** The device runs kernels (cuda, cuda:N, cuda-emu): cases time device work and may be unimplemented there. */
  onDevice: boolean;
  /** 'cuda-emu': the CPU emulator, only with --quick; bench files must use tiny shapes. */
  emu: boolean;
}

/** The work of one baseline call, when it differs from the case's: its ratio then compares rates. */
export interface BaselineWork {
  /** Bytes moved by one call: the ratio is our GB/s over its GB/s (the case must state bytes). */
  bytes?: number;
  /** Flops of one call: the ratio is our GFLOP/s over its GFLOP/s (the case must state flops). */
  flops?: number;
}

/** A baseline measured in this process. Its time is multiplied by `scale` to stand for the whole case
 * (e.g. a naive loop timed on a sample of the rows of a large product: rows are independent). */
export interface LocalBaseline extends BaselineWork {
  kind: 'local';
  label: string;
  run(): void;
  scale?: number;
  setup?(): void;
  teardown?(): void;
}

/** A baseline measured by bench/torch/<script> on the same shape; `spec` is passed to it (JSON). */
export interface TorchBaseline extends BaselineWork {
  kind: 'torch';
  script: string;
  spec: Record<string, unknown>;
  /** Shown after "PyTorch <version>" (e.g. "copy_"). */
  label?: string;
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
  /** Goals checked at the end of the run: the ratio to `baseline` must be at least `min`. */
  targets?: Target[];
}

export interface Target {
  baseline: string;
  min: number;
  /** What is promised, e.g. "bf16 4096³ ≥ 0.6× cuBLAS (issue 3)". */
  goal: string;
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
  results?: string;
  files: string[];
}

const USAGE = `usage: npm run bench -- [--device cpu|cuda|cuda:N|cuda-emu] [--filter <regex>] [--quick] [--threads N]
                        [--no-torch] [--no-write] [--results <dir>] [bench files...]
  --device    where the cases run (default cpu); cuda times device work with the device synchronised at
              the end of every sample, against PyTorch on CUDA (bench/torch/cuda.py, CUDA events).
              cuda-emu runs the CUDA kernels in the CPU emulator: a smoke test of this code path only,
              allowed with --quick, which then uses tiny shapes (seconds; the numbers mean nothing).
  --filter    only the cases whose "op shape dtype device" matches the regex
  --quick     short budgets (0.15 s a case); the results file is marked -partial
  --no-torch  no PyTorch baselines;  --no-write  no results files;  --results  where to write them
              (default bench/results)`;

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
    else if (a === '--results') o.results = val();
    else if (a === '-h' || a === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else if (a.startsWith('-')) die(`unknown option ${a}`);
    else o.files.push(a);
  }
  if (!/^(cpu|cuda(:\d+)?|cuda-emu)$/.test(o.device)) die(`--device must be cpu, cuda, cuda:N or cuda-emu, got '${o.device}'`);
  if (o.device === 'cuda-emu' && !o.quick)
    die('--device cuda-emu runs the kernels in the CPU emulator, thousands of times slower than a GPU: it is a smoke test of the device code path, allowed only with --quick (tiny shapes)');
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

/**
 * Median seconds of fn(). `sync` (device cases) waits for the device: called before the warm-up, after
 * every warm-up call and at the end of every sample, so each sample ends with the device idle. Calls
 * shorter than `sampleS` are batched `inner` to a sample; on a device the per-call estimate behind
 * `inner` comes from a batch queued back to back, since a single synchronised call also pays the
 * launch and synchronisation latency once. The warm-up lasts `warmFrac` of the budget (a GPU gets a
 * quarter: its clocks rise from idle when a case starts).
 */
export function measure(fn: () => void, budget: number, minRuns: number, maxRuns = 200, sync?: () => void, sampleS = 1e-3, warmFrac = 0.1): Timing {
  const call = sync ? () => { fn(); sync(); } : fn;
  sync?.();
  const warm: number[] = [];
  const start = now();
  while (warm.length < 2 || (now() - start < warmFrac * budget && warm.length < 1000)) {
    const t = now();
    call();
    warm.push(now() - t);
    if (now() - start > budget && warm.length >= 2) break;
  }
  let est = Math.max(Math.min(...warm), 1e-9);
  if (sync && est < sampleS) {
    const k = Math.min(1000, Math.ceil(sampleS / est));
    const t = now();
    for (let i = 0; i < k; i++) fn();
    sync();
    est = Math.max((now() - t) / k, 1e-9);
  }
  const inner = est < sampleS ? Math.ceil(sampleS / est) : 1;
  const runs = Math.min(maxRuns, Math.max(minRuns, Math.floor(budget / (est * inner))));
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t = now();
    for (let i = 0; i < inner; i++) fn();
    sync?.();
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

/** The first line of a bench/torch script: common.py's describe() (CPU) or cuda.py's (CUDA: gpu, cuda, ...). */
interface TorchMeta {
  torch: string;
  python: string;
  threads: number;
  threads_requested: number;
  blas?: string;
  blas_library?: string;
  gpu?: string;
  cuda?: string;
  [key: string]: unknown;
}

/** A bench/torch/<script> process answering one JSON case spec per line (protocol in common.py). */
class TorchServer {
  private proc: ChildProcessWithoutNullStreams;
  private lines: AsyncIterableIterator<string>;
  private stderr = '';
  private nextId = 0;

  private constructor(proc: ChildProcessWithoutNullStreams) {
    this.proc = proc;
    this.proc.stdin.on('error', () => {
      /* the process died: readLine() reports why */
    });
    this.proc.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    this.lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  }

  static async start(py: string, script: string, threads: number, budget: number, minRuns: number, extra: string[] = []): Promise<{ server: TorchServer; meta: TorchMeta } | { error: string }> {
    const file = path.join(__dirname, 'torch', script);
    const env = {
      ...process.env,
      OPENBLAS_NUM_THREADS: String(threads),
      OMP_NUM_THREADS: String(threads),
      MKL_NUM_THREADS: String(threads),
      PYTHONUNBUFFERED: '1',
    };
    const proc = spawn(py, [file, '--threads', String(threads), '--budget', String(budget), '--min-runs', String(minRuns), ...extra], { cwd: path.dirname(file), env });
    const server = new TorchServer(proc);
    const first = await server.readLine(300);
    if ('error' in first) return { error: String(first.error) };
    return { server, meta: first as unknown as TorchMeta };
  }

  private dead = '';

  /** The next line as JSON; after `timeoutS` the process is killed (a hung GPU must not hang the run). */
  private async readLine(timeoutS = 120): Promise<Record<string, unknown> | { error: string }> {
    if (this.dead) return { error: this.dead };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((res) => (timer = setTimeout(() => res('timeout'), timeoutS * 1e3)));
    const r = await Promise.race([this.lines.next(), timeout]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.dead = `no answer in ${timeoutS} s; killed`;
      this.proc.kill('SIGKILL');
      return { error: this.dead };
    }
    if (r.done) {
      await new Promise((res) => (this.proc.exitCode === null ? this.proc.once('exit', res) : res(null)));
      this.dead = `exited (${this.proc.exitCode}): ${this.stderr.trim().split('\n').slice(-2).join(' / ')}`;
      return { error: this.dead };
    }
    try {
      return JSON.parse(r.value) as Record<string, unknown>;
    } catch {
      return { error: `printed something that is not JSON: ${r.value.slice(0, 200)}` };
    }
  }

  async time(spec: Record<string, unknown>): Promise<Timing | { error: string }> {
    if (this.dead) return { error: this.dead };
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

/** The name of a case's device for the results file: the CPU model, the GPU's name, or 'cuda-emu'. */
function deviceName(device: string, b: ReturnType<typeof backend>): string {
  if (device === 'cpu') return cpuModel();
  if (device === 'cuda-emu') return 'cuda-emu';
  return b.devices[Number(device.split(':')[1] || 0)]?.name || device;
}

const notImplemented = (msg: string) => /not implemented on /.test(msg);

function errorMessage(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}

// ---------------------------------------------------------------- output

interface BaselineResult {
  label: string;
  median_ms: number;
  /** Its rate in the unit it is compared in. */
  rate: number;
  unit: 'GFLOP/s' | 'GB/s';
  /** > 1: we are faster. By time when the baseline does the case's work, else by rate. */
  ratio: number;
  compares: 'time' | 'rate';
  runs: number;
}

interface Row {
  file: string;
  op: string;
  shape: string;
  dtype: string;
  device: string;
  flops?: number;
  bytes?: number;
  /** skipped: the op is not implemented on this device yet; failed: any other error (reason says). */
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  timing?: Timing;
  rate?: number; // GFLOP/s or GB/s
  unit?: 'GFLOP/s' | 'GB/s';
  /** GB/s, when the case states both flops and bytes (decode shapes: bandwidth-bound). */
  bandwidth?: number;
  baselines: Record<string, BaselineResult | { error: string; skipped?: boolean }>;
  targets?: (Target & { ratio: number | null; met: boolean })[];
}

function fmtRatio(r: number): string {
  return `${r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)}×`;
}

function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(1) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(4);
}

function fmtRate(rate: number, unit: 'GFLOP/s' | 'GB/s'): string {
  if (unit === 'GFLOP/s' && rate >= 1000) return `${(rate / 1000).toFixed(1)} TFLOP/s`;
  return `${rate.toFixed(rate >= 1000 ? 0 : 1)} ${unit}`;
}

function rowRate(r: Row): string {
  if (r.rate === undefined || !r.unit) return '';
  return fmtRate(r.rate, r.unit) + (r.bandwidth !== undefined ? `, ${fmtRate(r.bandwidth, 'GB/s')}` : '');
}

function table(rows: Row[], baselineNames: string[]): string {
  const head = ['op', 'shape', 'dtype', 'device', 'median ms', 'rate', ...baselineNames.flatMap((b) => [`${b} ms`, `vs ${b}`])];
  const body = rows.map((r) => [
    r.op,
    r.shape,
    r.dtype,
    r.device,
    r.status === 'ok' ? fmtMs(r.timing!.median_ms) : r.status === 'skipped' ? 'skipped' : 'FAILED',
    rowRate(r),
    ...baselineNames.flatMap((b) => {
      const x = r.baselines[b];
      if (!x) return ['', ''];
      if ('error' in x) return [x.skipped ? 'n/i' : 'error', ''];
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
    const pts = rows.map((r) => ({ r, x: r.baselines[b] })).filter((p): p is { r: Row; x: BaselineResult } => !!p.x && !('error' in p.x));
    if (pts.length === 0) continue;
    const maxR = Math.max(1.25, ...pts.map((p) => p.x.ratio));
    const minR = Math.min(1, ...pts.map((p) => p.x.ratio));
    const log = maxR / minR > 20;
    const lo = log ? Math.log10(Math.min(0.5, minR / 1.5)) : 0;
    const hi = log ? Math.log10(maxR * 1.5) : maxR * 1.1;
    const xOf = (v: number) => labelW + (barW * ((log ? Math.log10(v) : v) - lo)) / (hi - lo);
    const byRate = pts.some((p) => p.x.compares === 'rate');
    y += 18;
    parts.push(
      `<text x="10" y="${y}" font-size="13" font-weight="bold">${byRate ? `${esc(pts[0].x.unit)}` : 'throughput'} vs ${esc(pts[0].x.label.replace(/ \(.*\)$/, ''))} (×, ${log ? 'log' : 'linear'} scale; &gt; 1 is faster)</text>`,
    );
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

/** Times one baseline of a case whose own timing is `timing`; never throws. */
async function runBaseline(
  c: BenchCase, name: string, x: Baseline, timing: Timing, opts: Options, servers: Map<string, TorchServer | { error: string }>,
  torchVersion: string, sync: (() => void) | undefined, sampleS: number,
): Promise<Row['baselines'][string] | undefined> {
  let t: Timing | { error: string };
  let label: string;
  if (x.kind === 'torch') {
    if (!opts.torch) return undefined;
    const server = servers.get(x.script);
    if (!server) return undefined; // no python with torch here: the local baselines stand alone
    t = server instanceof TorchServer ? await server.time(x.spec) : { error: server.error };
    label = `PyTorch ${torchVersion}${x.label ? ` ${x.label}` : ''}`.trim();
  } else {
    label = x.label;
    try {
      x.setup?.();
      const m = measure(() => x.run(), opts.quick ? 0.1 : sync ? 0.25 : 0.3, 3, 200, sync, sampleS);
      const s = x.scale ?? 1;
      t = { ...m, median_ms: m.median_ms * s, min_ms: m.min_ms * s };
    } catch (e) {
      const msg = errorMessage(e);
      t = { error: msg };
      if (notImplemented(msg)) return { error: msg, skipped: true };
    } finally {
      try {
        x.teardown?.();
      } catch {
        /* the error above is the one to report */
      }
    }
  }
  if ('error' in t) return { error: t.error };
  const caseWork = c.flops ?? c.bytes ?? 0;
  const caseUnit: BaselineResult['unit'] = c.flops !== undefined ? 'GFLOP/s' : 'GB/s';
  // a baseline doing other work than the case is compared by rate, in the unit it states
  const own = x.bytes !== undefined ? { work: x.bytes, ours: c.bytes, unit: 'GB/s' as const } : x.flops !== undefined ? { work: x.flops, ours: c.flops, unit: 'GFLOP/s' as const } : undefined;
  if (own) {
    if (own.ours === undefined) return { error: `the baseline states its ${own.unit === 'GB/s' ? 'bytes' : 'flops'} but the case does not` };
    const rate = own.work / (t.median_ms * 1e-3) / 1e9;
    const ours = own.ours / (timing.median_ms * 1e-3) / 1e9;
    return { label, median_ms: t.median_ms, rate, unit: own.unit, ratio: ours / rate, compares: 'rate', runs: t.runs };
  }
  return { label, median_ms: t.median_ms, rate: caseWork / (t.median_ms * 1e-3) / 1e9, unit: caseUnit, ratio: t.median_ms / timing.median_ms, compares: 'time', runs: t.runs };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const b0 = backend();
  if (opts.device.startsWith('cuda:') || opts.device === 'cuda') {
    if (!b0.cuda) die(`--device ${opts.device} needs a CUDA GPU, but backend().cuda is false: ${b0.reason}`);
    const idx = Number(opts.device.split(':')[1] || 0);
    if (idx >= b0.devices.length) die(`--device ${opts.device}: this machine has ${b0.devices.length} CUDA device(s)`);
  }
  if (opts.device === 'cuda-emu' && !b0.cudaEmu) die(`--device cuda-emu: ${b0.binary} was built without the emulated device (CMake option STRUCTURA_CUDA_EMU)`);
  if (opts.threads) setNumThreads(opts.threads);
  const threads = getNumThreads();
  const onDevice = opts.device !== 'cpu';
  const budget = opts.quick ? 0.15 : onDevice ? 0.4 : 0.75;
  const minRuns = opts.quick ? 3 : 5;
  // a device sample is at least 2 ms, so the launch and synchronisation latency it pays once stays under 1%
  const sampleS = onDevice ? 2e-3 : 1e-3;
  const sync = onDevice ? () => cuda.synchronize() : undefined;
  const ctx: BenchContext = { device: opts.device, threads, quick: opts.quick, onDevice, emu: opts.device === 'cuda-emu' };
  if (onDevice && b0.cudaDisabled.length)
    console.log(`kernels switched off by STRUCTURA_CUDA_DISABLE: ${b0.cudaDisabled.join(', ')} (their baselines fail; the defaults take the kernels they replaced)`);

  const files = opts.files.length
    ? opts.files.map((f) => path.resolve(f))
    : fs.readdirSync(__dirname).filter((f) => f.endsWith('.bench.ts')).sort().map((f) => path.join(__dirname, f));
  const cases: { file: string; c: BenchCase }[] = [];
  for (const f of files) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const mod = require(f) as BenchModule;
    if (typeof mod.cases !== 'function') die(`${f} exports no cases(ctx) function`);
    for (const c of mod.cases(ctx)) {
      if (opts.filter && !opts.filter.test(`${c.op} ${c.shape} ${c.dtype} ${c.device}`)) continue;
      cases.push({ file: path.basename(f), c });
    }
  }
  if (cases.length === 0) die(`no bench case matches${opts.filter ? ` --filter ${opts.filter.source}` : ''} on ${opts.device}`);

  const device = deviceName(opts.device, b0);
  const gpu = opts.device === 'cpu' || opts.device === 'cuda-emu' ? null : {
    ...b0.devices[Number(opts.device.split(':')[1] || 0)],
    cudaRuntimeVersion: b0.cudaRuntimeVersion ?? null,
    driverVersion: b0.driverVersion ?? null,
  };
  console.log(`structura bench: ${cases.length} cases on ${opts.device} (${device}), ${threads} threads, simd ${b0.simd}, ${b0.binary}`);
  if (opts.device === 'cuda-emu') console.log('cuda-emu: the CUDA kernels run in the CPU emulator on tiny shapes; a smoke test of the device path, not a measurement');
  const loadBefore = os.loadavg()[0];
  if (loadBefore > 0.5) {
    console.log(`WARNING: the machine is busy (load average ${loadBefore.toFixed(1)} over the last minute, ${os.cpus().length} cores): timings will be low and noisy`);
  }

  // PyTorch: one server per script, started up front (importing torch takes seconds).
  const servers = new Map<string, TorchServer | { error: string }>();
  let torchMeta: TorchMeta | { error: string } | undefined;
  const scripts = new Set(cases.flatMap(({ c }) => Object.values(c.baselines || {}).flatMap((x) => (x.kind === 'torch' ? [x.script] : []))));
  if (scripts.size && opts.torch) {
    const found = findTorch();
    if ('error' in found) {
      torchMeta = { error: `no python with torch (${found.error})` };
      console.log(`PyTorch baseline: not available (${found.error}); install python3-torch (Debian) for it`);
    } else {
      for (const script of scripts) {
        const extra = onDevice ? ['--sample-ms', String(sampleS * 1e3), '--device', opts.device.startsWith('cuda:') ? opts.device : 'cuda:0'] : [];
        const r = await TorchServer.start(found.python, script, threads, budget, minRuns, extra);
        if ('error' in r) {
          console.log(`PyTorch baseline ${script}: ${r.error}`);
          servers.set(script, r);
          torchMeta = torchMeta ?? r;
          continue;
        }
        servers.set(script, r.server);
        torchMeta = { ...r.meta, python: found.python };
        if (r.meta.gpu) {
          console.log(`PyTorch ${r.meta.torch} (${found.python}), CUDA ${String(r.meta.cuda)}, ${r.meta.gpu}, float32 matmul ${String(r.meta.fp32_matmul)}; timed with CUDA events`);
        } else {
          console.log(`PyTorch ${r.meta.torch} (${found.python}), ${r.meta.threads} threads, BLAS ${r.meta.blas_library || r.meta.blas}`);
        }
        if (/\/blas\/libblas\.so/.test(r.meta.blas_library ?? '')) {
          console.log('  WARNING: PyTorch is using the REFERENCE BLAS (libblas3): the baseline is meaningless. Install libopenblas0-pthread.');
        }
      }
    }
  }
  const torchVersion = torchMeta && !('error' in torchMeta) ? torchMeta.torch : '';

  const rows: Row[] = [];
  const baselineNames = new Map<string, string[]>(); // per bench file, in order of appearance
  const partial = !!opts.filter || opts.quick || opts.files.length > 0;
  const dir = opts.results ? path.resolve(opts.results) : path.join(__dirname, 'results');
  // A complete run never replaces an earlier one of the same day (they are committed): -2, -3, … after
  // it. A partial run is scratch (git ignores it) and is written over.
  let name = `${slug(device)}-${today()}${partial ? '-partial' : ''}`;
  if (!partial) for (let k = 2, base = name; fs.existsSync(path.join(dir, `${name}.json`)); k++) name = `${base}-${k}`;
  const jsonFile = path.join(dir, `${name}.json`);
  const svgFile = path.join(dir, `${name}.svg`);
  const allNames = () => [...new Set([...baselineNames.values()].flat())];
  const write = (complete: boolean) => {
    if (!opts.write) return;
    const result = {
      date: new Date().toISOString(),
      complete,
      device: opts.device,
      deviceName: device,
      gpu,
      machine: { cpu: cpuModel(), cores: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 2 ** 30), platform: `${process.platform}-${process.arch}`, node: process.version },
      structura: { version: b0.version, binary: b0.binary, simd: b0.simd, threads, cudaCompiled: b0.cudaCompiled, ...(b0.cudaDisabled.length ? { cudaDisabled: b0.cudaDisabled } : {}) },
      torch: torchMeta ?? null,
      options: {
        quick: opts.quick, filter: opts.filter?.source ?? null, budgetS: budget, minRuns, sampleMs: sampleS * 1e3,
        timing: onDevice
          ? 'ours: wall clock per sample of back-to-back calls, device synchronised before the warm-up, after each warm-up call and at the end of each sample; PyTorch: torch.cuda.Event pair around each sample'
          : 'wall clock per sample',
      },
      loadAverage: { before: loadBefore, after: os.loadavg()[0] },
      cases: rows,
    };
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(jsonFile, JSON.stringify(result, null, 2) + '\n');
    fs.writeFileSync(svgFile, svgChart(rows, allNames(), `structura ${b0.version} on ${device}${onDevice ? '' : ` (${threads} threads)`}, ${today()}`));
  };

  for (const { file, c } of cases) {
    const row: Row = { file, op: c.op, shape: c.shape, dtype: c.dtype, device: c.device, flops: c.flops, bytes: c.bytes, status: 'ok', baselines: {} };
    let timing: Timing | undefined;
    try {
      c.setup?.();
      timing = measure(() => c.run(), budget, minRuns, 200, sync, sampleS, onDevice ? 0.25 : 0.1);
    } catch (e) {
      const msg = errorMessage(e);
      row.status = notImplemented(msg) ? 'skipped' : 'failed';
      row.reason = msg;
    }
    if (timing) {
      row.timing = timing;
      row.unit = c.flops !== undefined ? 'GFLOP/s' : 'GB/s';
      row.rate = (c.flops ?? c.bytes ?? 0) / (timing.median_ms * 1e-3) / 1e9;
      if (c.flops !== undefined && c.bytes !== undefined) row.bandwidth = c.bytes / (timing.median_ms * 1e-3) / 1e9;
      const names = baselineNames.get(file) ?? [];
      baselineNames.set(file, names);
      for (const [bname, x] of Object.entries(c.baselines || {})) {
        const r = await runBaseline(c, bname, x, timing, opts, servers, torchVersion, sync, sampleS);
        if (!r) continue;
        if (!names.includes(bname)) names.push(bname);
        row.baselines[bname] = r;
      }
    }
    try {
      c.teardown?.();
    } catch (e) {
      if (row.status === 'ok') {
        row.status = 'failed';
        row.reason = `teardown: ${errorMessage(e)}`;
      }
    }
    if (c.targets?.length) {
      row.targets = c.targets.map((t) => {
        const x = row.baselines[t.baseline];
        const ratio = x && !('error' in x) ? x.ratio : null;
        return { ...t, ratio, met: ratio !== null && ratio >= t.min };
      });
    }
    rows.push(row);
    if (row.status !== 'ok') {
      console.log(`  ${c.op} ${c.shape} ${c.dtype}: ${row.status.toUpperCase()}: ${row.reason}`);
    } else {
      const bl = Object.entries(row.baselines)
        .map(([n, x]) => ('error' in x ? `${n}: ${x.skipped ? 'not implemented' : `error (${x.error})`}` : `${n} ${fmtMs(x.median_ms)} ms (${fmtRatio(x.ratio)}${x.compares === 'rate' ? ` of its ${fmtRate(x.rate, x.unit)}` : ''})`))
        .join(', ');
      console.log(`  ${c.op} ${c.shape} ${c.dtype}: ${fmtMs(timing!.median_ms)} ms, ${rowRate(row)} (${timing!.runs}×${timing!.inner})${bl ? '; ' + bl : ''}`);
    }
    write(false);
  }

  for (const server of servers.values()) if (server instanceof TorchServer) server.close();

  for (const [file, names] of [...new Set(rows.map((r) => r.file))].map((f) => [f, baselineNames.get(f) ?? []] as const)) {
    console.log(`\n${file}`);
    console.log(table(rows.filter((r) => r.file === file), names));
  }
  const notOk = rows.filter((r) => r.status !== 'ok');
  if (notOk.length) {
    console.log('\nnot run:');
    for (const r of notOk) console.log(`  ${r.status} ${r.op} ${r.shape} ${r.dtype}: ${r.reason}`);
  }
  const targets = rows.flatMap((r) => (r.targets ?? []).map((t) => ({ r, t })));
  if (targets.length) {
    console.log('\ntargets:');
    for (const { r, t } of targets) {
      const verdict = r.status !== 'ok' ? r.status : t.ratio === null ? 'no baseline' : t.met ? 'met' : 'MISSED';
      console.log(`  ${verdict.padEnd(11)} ${t.goal}: ${t.ratio === null ? '—' : fmtRatio(t.ratio)} (${r.op} ${r.shape} ${r.dtype} vs ${t.baseline})`);
    }
  }

  write(true);
  if (opts.write) console.log(`\nwrote ${path.relative(process.cwd(), jsonFile)} and ${path.relative(process.cwd(), svgFile)}`);
  if (rows.some((r) => r.status === 'failed')) process.exit(1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
