// device_ops.test.ts — conformance of the core ops on the devices (cuda/copy.cu, cuda/elementwise.cu,
// cuda/reduce.cu) against the CPU and the float64 references of test/reference/ops.ts:
//   cast / contiguous / clone / copyInto / concat / to() of views: bit for bit equal to the CPU, every
//     pair of the 7 dtypes, NaN payloads, subnormals (kept by both, the CPU's FTZ/DAZ pool included: the
//     [64, 512] cast is split over it), saturating integers
//   binary (13 ops, broadcasting) and unary (26 ops): equal to the CPU bit for bit where both compute the
//     same IEEE operations (NaN counts as equal to NaN); exp, log, tanh, erf, pow, sin, cos and the ops
//     built on them within DEFAULT_TOL of the float64 reference
//   sum / mean / max / min over axes, softmax / logSoftmax, crossEntropy and its backward: within
//     DEFAULT_TOL (or the stated tolerance) of the float64 reference; max/min equal to the CPU
//   mixed devices → TypeError naming the arguments; ops still without a kernel → the "not implemented" TypeError
// Odd sizes (1, 3, 17, 129, 1001), broadcasting, transposed / offset / strided views, every element checked.
// Devices: STRUCTURA_TEST_DEVICES (comma list, e.g. 'cuda' for the GPU run), default 'cuda-emu' plus
// 'cuda' when backend().cuda; a requested device that is not available fails the suite.
// Inputs are seeded; the seed is printed on failure (STRUCTURA_TEST_SEED replays it).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native, DTYPE_CODES, DEVICE_CODES, type DType, type Handle } from '../lib/native';
import * as S from '../lib/index';
import * as R from './reference/ops';
import { freshSeed, rng, assertClose, DEFAULT_TOL, type Tol } from './helpers';

const N = native();
const CPU = DEVICE_CODES.cpu;
const info = N.backend();
type Dev = 'cuda' | 'cuda-emu';
const requested = process.env.STRUCTURA_TEST_DEVICES;
const DEVICES: Dev[] = requested
  ? (requested.split(',').map((s) => s.trim()).filter(Boolean) as Dev[])
  : ([...(info.cudaEmu ? ['cuda-emu'] : []), ...(info.cuda ? ['cuda'] : [])] as Dev[]);

const ALL = Object.keys(DTYPE_CODES) as DType[];
const FLOATS: DType[] = ['float32', 'float64', 'float16', 'bfloat16'];
const CTOR = { float32: Float32Array, float64: Float64Array, float16: Uint16Array, bfloat16: Uint16Array, int32: Int32Array, uint8: Uint8Array, uint16: Uint16Array };
type Arr = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

// ---- helpers -------------------------------------------------------------------------------------

function withSeed(name: string, fn: (r: () => number) => void) {
  test(name, () => {
    const seed = freshSeed();
    const before = buffers();
    try {
      fn(rng(seed));
    } catch (e) {
      console.error(`  ${name}: seed ${seed} (STRUCTURA_TEST_SEED=${seed} replays it)`);
      throw e;
    } finally {
      disposeAll();
    }
    const after = buffers();
    assert.equal(after, before, `${name}: live native buffers before/after`);
  });
}

const memKey = (d: Dev) => d;
function buffers(): Record<string, number> {
  const m = N.memory() as unknown as Record<string, { buffers: number } | undefined>;
  const out: Record<string, number> = { cpu: m.cpu?.buffers ?? 0 };
  for (const d of DEVICES) out[d] = m[memKey(d)]?.buffers ?? 0;
  return out;
}

// Every handle a test makes is tracked and disposed at its end.
let live: Handle[] = [];
const keep = (h: Handle) => (live.push(h), h);
function disposeAll() {
  for (const h of live) if (!N.isDisposed(h)) N.dispose(h);
  live = [];
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const stridesOf = (s: number[]) => R.stridesOf(s);

/** Random element bits of dtype dt (every pattern, NaN payloads included), with the special values first. */
function randomBits(dt: DType, n: number, r: () => number): Arr {
  const C = CTOR[dt];
  const bytes = C.BYTES_PER_ELEMENT;
  const u8 = new Uint8Array(n * bytes);
  for (let i = 0; i < u8.length; i++) u8[i] = Math.floor(r() * 256);
  const a = new C(u8.buffer);
  const specials: number[] =
    dt === 'float32' ? [0x7fc00000, 0x7f800001, 0xffa00001, 0x7f800000, 0xff800000, 0x80000000, 0x00000001, 0x7f7fffff, 0x477ff000, 0x477fefff, 0x33000001, 0x38800000, 0x4f000000, 0xcf000001, 0x437f8000, 0x477fff00]
    : dt === 'float16' ? [0x7e00, 0x7c01, 0xfd55, 0x7c00, 0xfc00, 0x8000, 0x0001, 0x03ff, 0x7bff]
    : dt === 'bfloat16' ? [0x7fc0, 0x7f81, 0xffa1, 0x7f80, 0xff80, 0x8000, 0x0001, 0x7f7f, 0x4f00, 0xcf00]
    : [];
  if (dt === 'float32') {
    const u = new Uint32Array(a.buffer);
    specials.forEach((v, i) => i < n && (u[i] = v >>> 0));
  } else if (dt === 'float64') {
    const f = a as Float64Array;
    const sp = [NaN, -NaN, Infinity, -Infinity, -0, 5e-324, 1e300, -1e300, 3e9, -3e9, 70000, 65519.99, 255.7, -0.9, 2147483647.5, -2147483648.5];
    sp.forEach((v, i) => i < n && (f[i] = v));
    const u = new Uint32Array(a.buffer);
    if (n > sp.length + 1) (u[2 * sp.length + 1] = 0x7ff00000), (u[2 * sp.length] = 1); // a signalling NaN
  } else {
    specials.forEach((v, i) => i < n && (a[i] = v));
  }
  return a;
}

/** Values → element bits of dt (float16/bfloat16 rounded by the CPU's conversion). */
function toBits(dt: DType, vals: ArrayLike<number>): Arr {
  if (dt === 'float16' || dt === 'bfloat16') {
    const h = N.fromArray(DTYPE_CODES[dt], [vals.length], Float32Array.from(vals), CPU, 0);
    const b = N.readRaw(h);
    N.dispose(h);
    return b;
  }
  return CTOR[dt].from(vals as ArrayLike<number>);
}

/** n random values: uniform in [lo, hi], with ~1/16 of them special (±0, ±inf, NaN) when `specials`. */
function randomVals(dt: DType, n: number, r: () => number, lo = -3, hi = 3, specials = false): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    if (dt === 'int32') out.push(r() < 0.05 ? (r() < 0.5 ? 2147483647 : -2147483648) : Math.round(lo * 300 + (hi - lo) * 300 * r()));
    else if (specials && r() < 1 / 16) out.push([0, -0, Infinity, -Infinity, NaN][Math.floor(r() * 5)]);
    else out.push(lo + (hi - lo) * r());
  }
  return out;
}

interface Layout {
  name: string;
  base: number[];
  strides: number[];
  offset: number;
}
/** Ways a tensor of `shape` can be laid out: fresh, one element in (unaligned), transposed, every other element. */
function layoutsFor(shape: number[]): Layout[] {
  const n = numel(shape);
  const cs = stridesOf(shape);
  const out: Layout[] = [{ name: 'contiguous', base: shape, strides: cs, offset: 0 }];
  out.push({ name: 'offset 1', base: [n + 1], strides: cs, offset: 1 });
  const nd = shape.length;
  if (nd >= 2) {
    const b = shape.slice();
    [b[nd - 2], b[nd - 1]] = [b[nd - 1], b[nd - 2]];
    const bs = stridesOf(b);
    const st = bs.slice();
    [st[nd - 2], st[nd - 1]] = [bs[nd - 1], bs[nd - 2]];
    out.push({ name: 'transposed', base: b, strides: st, offset: 0 });
  }
  if (nd >= 1) {
    const b = shape.slice();
    b[nd - 1] *= 2;
    const st = stridesOf(b);
    st[nd - 1] = 2;
    out.push({ name: 'step 2', base: b, strides: st, offset: 0 });
  }
  return out;
}

/** One input on the CPU and on dev, both the view L of a base holding `bits` (logical order) where the view reads. */
function pair(dt: DType, shape: number[], bits: Arr, L: Layout, dev: Dev): { cpu: Handle; dev: Handle } {
  const C = CTOR[dt];
  const baseN = numel(L.base) + (L.offset && L.base.length === 1 ? 0 : L.offset);
  const base = new C(Math.max(baseN, 1));
  const n = numel(shape);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let off = L.offset;
    for (let d = shape.length - 1; d >= 0; d--) {
      off += (rem % shape[d]) * L.strides[d];
      rem = Math.floor(rem / shape[d]);
    }
    base[off] = bits[i];
  }
  const cb = keep(N.fromArray(DTYPE_CODES[dt], [base.length], base, CPU, 0));
  const db = keep(N.to(cb, DEVICE_CODES[dev], 0));
  return { cpu: keep(N.view(cb, shape, L.strides, L.offset)), dev: keep(N.view(db, shape, L.strides, L.offset)) };
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
function sameBits(got: ArrayBufferView, want: ArrayBufferView, what: string) {
  const g = bytesOf(got), w = bytesOf(want);
  assert.is(g.length, w.length, `${what}: byte length`);
  for (let i = 0; i < w.length; i++) if (g[i] !== w[i]) assert.unreachable(`${what}: byte ${i} is ${g[i]}, expected ${w[i]}`);
}

function isNaNBits(dt: DType, v: number): boolean {
  if (dt === 'float16') return (v & 0x7c00) === 0x7c00 && (v & 0x3ff) !== 0;
  if (dt === 'bfloat16') return (v & 0x7f80) === 0x7f80 && (v & 0x7f) !== 0;
  return Number.isNaN(v);
}
/** Equal element by element (bits), except that any NaN equals any NaN (the GPU's NaNs carry no payload). */
function sameOrNaN(dt: DType, got: Arr, want: Arr, what: string) {
  assert.is(got.length, want.length, `${what}: length`);
  const gi = dt === 'float32' ? new Uint32Array(got.buffer, got.byteOffset, got.length) : got;
  const wi = dt === 'float32' ? new Uint32Array(want.buffer, want.byteOffset, want.length) : want;
  for (let i = 0; i < want.length; i++) {
    if (isNaNBits(dt, got[i]) && isNaNBits(dt, want[i])) continue;
    if (dt === 'float64' ? Object.is(got[i], want[i]) : gi[i] === wi[i]) continue;
    const show = (v: number) => (Object.is(v, -0) ? '-0' : String(v));
    assert.unreachable(`${what}: element ${i} is ${show(got[i])}, the CPU has ${show(want[i])}`);
  }
}

const values = (h: Handle) => Float64Array.from(N.read(h) as ArrayLike<number>);
const ndOf = (h: Handle, shape: number[]): R.NDArray => ({ data: values(h), shape });
const tolOf = (dt: DType): Tol => DEFAULT_TOL[dt] ?? { atol: 0, rtol: 0 };

// ---- the suite, per device -------------------------------------------------------------------------

test('the requested devices are available', () => {
  if (!requested && DEVICES.length === 0) {
    console.log(`device_ops.test.ts: no device to test (this binary has neither 'cuda-emu' nor a GPU)`);
    return;
  }
  for (const d of DEVICES) {
    assert.ok(d === 'cuda' || d === 'cuda-emu', `STRUCTURA_TEST_DEVICES names '${d}'; expected cuda or cuda-emu`);
    const ok = d === 'cuda' ? info.cuda : info.cudaEmu;
    assert.ok(ok, `device '${d}' was asked for but is not available: ${JSON.stringify(info)}`);
  }
});

for (const dev of DEVICES) {
  const D = DEVICE_CODES[dev];

  withSeed(`${dev}: cast between every pair of dtypes equals the CPU's bit for bit (NaN payloads, saturation, views)`, (r) => {
    for (const src of ALL) {
      for (const [shape, layouts] of [[[1], 1], [[17], 2], [[1001], 2], [[3, 5, 7], 4], [[64, 512], 1]] as [number[], number][]) {
        const bits = randomBits(src, numel(shape), r);
        for (const L of layoutsFor(shape).slice(0, layouts)) {
          const p = pair(src, shape, bits, L, dev);
          for (const dst of ALL) {
            const want = N.readRaw(keep(N.cast(p.cpu, DTYPE_CODES[dst])));
            const got = N.readRaw(keep(N.cast(p.dev, DTYPE_CODES[dst])));
            sameBits(got, want, `${src}→${dst} ${JSON.stringify(shape)} ${L.name}`);
          }
        }
      }
    }
  });

  withSeed(`${dev}: contiguous, clone and to('cpu') of views equal the CPU's, every dtype`, (r) => {
    for (const dt of ALL) {
      for (const shape of [[1], [3], [129], [17, 9], [3, 5, 7], [2, 1, 3, 1, 2]]) {
        const bits = randomBits(dt, numel(shape), r);
        for (const L of layoutsFor(shape)) {
          const p = pair(dt, shape, bits, L, dev);
          const want = N.readRaw(keep(N.contiguous(p.cpu)));
          sameBits(N.readRaw(keep(N.contiguous(p.dev))), want, `${dt} contiguous ${JSON.stringify(shape)} ${L.name}`);
          sameBits(N.readRaw(keep(N.to(p.dev, CPU, 0))), want, `${dt} to(cpu) ${JSON.stringify(shape)} ${L.name}`);
          sameBits(N.readRaw(p.dev), want, `${dt} readRaw ${JSON.stringify(shape)} ${L.name}`);
        }
      }
    }
    // broadcast views (stride 0) and the public clone()
    S.tidy(() => {
      const x = S.tensor([[1, 2, 3]], { device: dev });
      assert.equal(Array.from(x.expand([4, 3]).contiguous().dataSync()), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
      const c = S.tensor([[1, 2], [3, 4], [5, 6]], { device: dev }).transpose().clone();
      assert.is(c.device, dev === 'cuda' ? 'cuda:0' : dev); // the canonical name: 'cuda' is 'cuda:0'
      assert.equal(Array.from(c.dataSync()), [1, 3, 5, 2, 4, 6]);
    });
  });

  withSeed(`${dev}: copyInto (strided dst, broadcast src, casting, overlap) and concat equal the CPU's`, (r) => {
    for (const [sd, dd] of [['float32', 'float32'], ['float64', 'float16'], ['bfloat16', 'int32'], ['int32', 'float32'], ['uint8', 'bfloat16']] as [DType, DType][]) {
      for (const [dshape, sshape] of [[[17, 9], [9]], [[3, 5, 7], [5, 1]], [[129], [1]], [[4, 6], [4, 6]]]) {
        for (const L of layoutsFor(dshape)) {
          const dst = pair(dd, dshape, randomBits(dd, numel(dshape), r), L, dev);
          const src = pair(sd, sshape, toBits(sd, randomVals(sd, numel(sshape), r)), layoutsFor(sshape)[0], dev);
          N.copyInto(dst.cpu, src.cpu);
          N.copyInto(dst.dev, src.dev);
          sameBits(N.readRaw(dst.dev), N.readRaw(dst.cpu), `copyInto ${sd}→${dd} ${JSON.stringify(sshape)}→${JSON.stringify(dshape)} ${L.name}`);
        }
      }
    }
    // x.copyInto(xᵀ): the same storage, read before written
    const sq = toBits('float32', randomVals('float32', 49, r));
    const a = pair('float32', [7, 7], sq, layoutsFor([7, 7])[0], dev);
    N.copyInto(a.cpu, keep(N.view(a.cpu, [7, 7], [1, 7], 0)));
    N.copyInto(a.dev, keep(N.view(a.dev, [7, 7], [1, 7], 0)));
    sameBits(N.readRaw(a.dev), N.readRaw(a.cpu), 'copyInto(xᵀ)');
    // into an expanded view (elements sharing memory): refused on every device, as PyTorch's copy_ (on a
    // GPU the writes would race)
    for (const d of ['cpu', dev])
      S.tidy(() => {
        const x = S.zeros([3], { device: d }).expand([2, 3]);
        assert.throws(() => N.copyInto(x._h, S.ones([2, 3], { device: d })._h), (e: Error) => e instanceof RangeError && /'dst' \[2, 3\] \(strides \[0, 1\]\) has elements that share one memory location/.test(e.message));
      });
    // concat of a fresh tensor, a transposed view and an offset view along each axis
    for (const dt of ['float32', 'float16', 'int32'] as DType[]) {
      const parts = [[3, 4], [3, 4], [3, 4]].map((s, i) => pair(dt, s, randomBits(dt, 12, r), layoutsFor(s)[i], dev));
      for (const axis of [0, 1, -1]) {
        const want = N.readRaw(keep(N.concat(parts.map((p) => p.cpu), axis)));
        sameBits(N.readRaw(keep(N.concat(parts.map((p) => p.dev), axis))), want, `concat ${dt} axis ${axis}`);
      }
    }
  });

  const BIN_OPS = ['add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
  const BIN_SHAPES: [number[], number[]][] = [[[1001], [1001]], [[17, 129], [129]], [[3, 1, 17], [1, 5, 1]], [[1], [129]], [[129, 3], [129, 1]], [[], [3]], [[2, 1, 2, 1, 2, 1, 2, 1, 2, 1], [1, 2, 1, 2, 1, 2, 1, 2, 1, 2]]];

  withSeed(`${dev}: binary ops broadcast and equal the CPU's (pow: the reference), every float dtype and int32`, (r) => {
    for (const dt of [...FLOATS, 'int32'] as DType[]) {
      for (const op of BIN_OPS) {
        if (dt === 'int32' && (op === 'div' || op === 'pow')) continue;
        BIN_SHAPES.forEach(([sa, sb], k) => {
          const isPow = op === 'pow';
          // ±0, ±inf and NaN among the inputs (a broadcast −0 included: x·(−0), x/(−0))
          const va = isPow ? randomVals(dt, numel(sa), r, 0.1, 3) : randomVals(dt, numel(sa), r, -3, 3, true);
          const vb = isPow ? randomVals(dt, numel(sb), r, -2, 2) : randomVals(dt, numel(sb), r, -3, 3, true);
          if (!isPow && dt !== 'int32') for (let i = 0; i < Math.min(va.length, vb.length); i += 7) vb[i] = va[i]; // ties for eq/max
          const la = layoutsFor(sa), lb = layoutsFor(sb);
          const A = pair(dt, sa, toBits(dt, va), la[k % la.length], dev);
          const B = pair(dt, sb, toBits(dt, vb), lb[(k + 1) % lb.length], dev);
          const what = `${op} ${dt} ${JSON.stringify(sa)} (${la[k % la.length].name}) ∘ ${JSON.stringify(sb)} (${lb[(k + 1) % lb.length].name})`;
          const got = keep(N.binary(op, A.dev, B.dev));
          if (isPow) {
            const shape = R.broadcastShape(sa, sb);
            const ref = R.zip([ndOf(A.cpu, sa), ndOf(B.cpu, sb)], Math.pow);
            assertClose(values(got), ref, shape, tolOf(dt), what);
          } else {
            sameOrNaN(dt, N.readRaw(got), N.readRaw(keep(N.binary(op, A.cpu, B.cpu))), what);
          }
        });
      }
    }
    // int32 refuses div and pow on the device as on the CPU
    const i = pair('int32', [3], Int32Array.of(1, 2, 3), layoutsFor([3])[0], dev);
    assert.throws(() => N.binary('div', i.dev, i.dev), (e: Error) => e instanceof TypeError && /int32/.test(e.message));
  });

  withSeed(`${dev}: float16 / bfloat16 results on exact rounding ties equal the CPU's (to nearest even), every path`, (r) => {
    // x with a random mantissa in [1, 2) (odd and even last bits), y = ±half an ulp of x: x ± y is
    // exact in float32 and exactly halfway between two neighbours of the dtype, so only the rounding
    // rule decides; likewise x + alpha for alpha = half an ulp. Contiguous (vector path) and offset
    // (indexed path) layouts.
    for (const dt of ['float16', 'bfloat16'] as DType[]) {
      const mant = dt === 'float16' ? 10 : 7;
      const half = 2 ** -(mant + 1);
      const n = 1001;
      const xs = Array.from({ length: n }, () => (r() < 0.5 ? -1 : 1) * (1 + Math.floor(r() * 2 ** mant) / 2 ** mant) * 2 ** (Math.floor(r() * 3) - 1));
      const ys = xs.map((x) => (r() < 0.5 ? -1 : 1) * half * 2 ** Math.floor(Math.log2(Math.abs(x))));
      for (const [la, lb] of [[0, 0], [1, 0], [0, 1]]) {
        const L = layoutsFor([n]);
        const A = pair(dt, [n], toBits(dt, xs), L[la], dev), B = pair(dt, [n], toBits(dt, ys), L[lb], dev);
        for (const op of ['add', 'sub'] as const)
          sameOrNaN(dt, N.readRaw(keep(N.binary(op, A.dev, B.dev))), N.readRaw(keep(N.binary(op, A.cpu, B.cpu))), `${op} ${dt} ties (${L[la].name} ∘ ${L[lb].name})`);
        if (lb === 0) {
          const xs1 = xs.map((x) => 1 + Math.abs(x) / 4 - (Math.abs(x) / 4) % 2 ** -mant); // in [1, 2): alpha = half an ulp of every one
          const P = pair(dt, [n], toBits(dt, xs1), L[la], dev);
          for (const [op, alpha] of [['add_scalar', half], ['add_scalar', -half], ['rsub_scalar', half]] as [string, number][])
            sameOrNaN(dt, N.readRaw(keep(N.unary(op as never, P.dev, alpha))), N.readRaw(keep(N.unary(op as never, P.cpu, alpha))), `${op} ${alpha} ${dt} ties (${L[la].name})`);
        }
      }
    }
  });

  withSeed(`${dev}: binary with out: in place, and an input overlapping out is read first`, (r) => {
    for (const dt of ['float32', 'bfloat16'] as DType[]) {
      const n = 129;
      const vals = toBits(dt, randomVals(dt, 2 * n, r));
      const L: Layout = { name: 'flat', base: [2 * n], strides: [1], offset: 0 };
      const base = pair(dt, [2 * n], vals, L, dev);
      const b = pair(dt, [n], toBits(dt, randomVals(dt, n, r)), layoutsFor([n])[0], dev);
      for (const h of [base.cpu, base.dev]) {
        const isDev = h === base.dev;
        const x = keep(N.view(h, [n], [1], 0)), shifted = keep(N.view(h, [n], [1], 1));
        const bb = isDev ? b.dev : b.cpu;
        N.binary('add', x, bb, x); // in place
        N.binary('mul', shifted, bb, x); // shifted overlaps x
      }
      sameOrNaN(dt, N.readRaw(base.dev), N.readRaw(base.cpu), `${dt} out=`);
    }
  });

  const EXACT_UNARY = ['neg', 'sqrt', 'rsqrt', 'abs', 'relu', 'square', 'reciprocal', 'sign', 'step', 'add_scalar', 'mul_scalar', 'rsub_scalar', 'rdiv_scalar', 'clamp'] as const;
  const erf = (x: number) => (Number.isFinite(x) ? R.erf(x) : Number.isNaN(x) ? NaN : Math.sign(x)); // R.erf(±inf) is NaN
  const gcdf = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2));
  const MATH_UNARY: [string, (x: number) => number, number?][] = [
    ['exp', Math.exp], ['log', Math.log], ['tanh', Math.tanh], ['sigmoid', R.sigmoid], ['silu', R.silu], ['gelu', (x) => x * gcdf(x)],
    ['erf', erf], ['sin', Math.sin], ['cos', Math.cos],
    ['gelu_grad', (x) => gcdf(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI)],
    ['silu_grad', (x) => { const s = R.sigmoid(x); return s * (1 + x * (1 - s)); }],
    ['pow_scalar', (x) => Math.pow(x, 1.7), 1.7],
  ];

  withSeed(`${dev}: unary ops equal the CPU's (exact ones) or the reference (transcendental), views, every float dtype`, (r) => {
    for (const dt of FLOATS) {
      for (const shape of [[1], [1001], [17, 9]]) {
        for (const L of layoutsFor(shape).slice(0, shape.length === 2 ? 4 : 2)) {
          const p = pair(dt, shape, toBits(dt, randomVals(dt, numel(shape), r, -3, 3, true)), L, dev);
          const what = (op: string) => `${op} ${dt} ${JSON.stringify(shape)} ${L.name}`;
          for (const op of EXACT_UNARY) {
            const alpha = op === 'clamp' ? -0.5 : 1.25, beta = 0.75;
            sameOrNaN(dt, N.readRaw(keep(N.unary(op, p.dev, alpha, beta))), N.readRaw(keep(N.unary(op, p.cpu, alpha, beta))), what(op));
          }
          for (const e of [2, 3, 0.5, -0.5, -1, -2])
            sameOrNaN(dt, N.readRaw(keep(N.unary('pow_scalar', p.dev, e))), N.readRaw(keep(N.unary('pow_scalar', p.cpu, e))), what(`pow_scalar ${e}`));
          const x = ndOf(p.cpu, shape);
          for (const [op, f, alpha] of MATH_UNARY) {
            const got = keep(N.unary(op as never, p.dev, alpha));
            assertClose(values(got), R.map(x, f), shape, tolOf(dt), what(op));
          }
        }
      }
    }
    for (const L of layoutsFor([17, 9])) {
      const p = pair('int32', [17, 9], toBits('int32', randomVals('int32', 153, r)), L, dev);
      for (const [op, alpha, beta] of [['neg'], ['abs'], ['sign'], ['square'], ['add_scalar', 7], ['mul_scalar', -3], ['clamp', -100, 100], ['clamp', -Infinity, 5]] as [string, number?, number?][])
        sameBits(N.readRaw(keep(N.unary(op as never, p.dev, alpha, beta))), N.readRaw(keep(N.unary(op as never, p.cpu, alpha, beta))), `int32 ${op} ${alpha} ${L.name}`);
    }
  });

  withSeed(`${dev}: where (any cond dtype, broadcasting, views) and argmax / argmin (NaN, ties) equal the CPU's`, (r) => {
    const shapes: [number[], number[], number[]][] = [[[17, 1], [1, 9], [9]], [[1001], [1001], [1]], [[3, 1, 5], [4, 1], [3, 4, 5]], [[], [3], []]];
    for (const [cd, dt] of [['float32', 'float32'], ['float16', 'float64'], ['int32', 'bfloat16'], ['uint8', 'int32'], ['float64', 'uint16']] as [DType, DType][]) {
      shapes.forEach(([sc, sa, sb], k) => {
        const cv = randomVals(cd, numel(sc), r, -1, 1, true).map((v) => (cd === 'int32' || cd === 'uint8' ? (r() < 0.5 ? 0 : 1) : r() < 0.3 ? 0 : v));
        const lc = layoutsFor(sc), la = layoutsFor(sa);
        const C = pair(cd, sc, toBits(cd, cv), lc[k % lc.length], dev);
        const A = pair(dt, sa, randomBits(dt, numel(sa), r), la[(k + 1) % la.length], dev);
        const B = pair(dt, sb, randomBits(dt, numel(sb), r), layoutsFor(sb)[0], dev);
        sameBits(N.readRaw(keep(N.where(C.dev, A.dev, B.dev))), N.readRaw(keep(N.where(C.cpu, A.cpu, B.cpu))), `where ${cd} ${dt} ${JSON.stringify([sc, sa, sb])}`);
      });
    }
    const cases: [number[], number][] = [[[1], 0], [[17], 0], [[17, 129], 0], [[17, 129], 1], [[3, 5, 7], 1], [[2, 1500], 1], [[], 0], [[4, 3], -1]];
    for (const dt of [...FLOATS, 'int32'] as DType[]) {
      cases.forEach(([shape, axis], k) => {
        const ls = layoutsFor(shape);
        // few distinct values (ties), and now and then a NaN
        const vals = Array.from({ length: numel(shape) }, () => (dt !== 'int32' && r() < 0.01 ? NaN : Math.floor(r() * 7) - 3));
        const p = pair(dt, shape, toBits(dt, vals), ls[k % ls.length], dev);
        for (const op of ['argmax', 'argmin'] as const)
          for (const keepDims of [false, true]) {
            const want = N.readRaw(keep(N.argReduce(op, p.cpu, axis, keepDims)));
            sameBits(N.readRaw(keep(N.argReduce(op, p.dev, axis, keepDims))), want, `${op} ${dt} ${JSON.stringify(shape)} axis ${axis} ${ls[k % ls.length].name}`);
          }
      });
    }
  });

  const RED_CASES: [number[], number[]][] = [
    [[1], [0]], [[3], [0]], [[1001], [0]], [[17, 129], [0]], [[17, 129], [1]], [[17, 129], [0, 1]], [[3, 5, 7], [1]],
    [[3, 5, 7], [0, 2]], [[2, 1500], [1]], [[3, 1100], [0]], [[4, 0, 3], [1]], [[], []], [[5, 3], []], [[3, 8200], [0]], [[2, 3, 4100], [0, 1]], [[70001], [0]], [[2, 65537], [1]],
    // few wide columns (reduce_cols_kernel), cut into pieces combined by a second kernel
    [[300, 40], [0]], [[1000, 70], [0]], [[130, 3, 33], [0]], [[5, 200, 7], [0, 1]],
  ];
  const SUM_TOL: Record<string, Tol> = { float32: { atol: 1e-9, rtol: 1e-6 }, float64: DEFAULT_TOL.float64, float16: DEFAULT_TOL.float16, bfloat16: DEFAULT_TOL.bfloat16, int32: { atol: 0, rtol: 0 } };

  withSeed(`${dev}: sum, mean, max, min over axes (keepDims, views) match the reference; max/min equal the CPU's`, (r) => {
    for (const dt of [...FLOATS, 'int32'] as DType[]) {
      RED_CASES.forEach(([shape, axes], k) => {
        const ls = layoutsFor(shape);
        const L = ls[k % ls.length];
        const vals = dt === 'int32' ? randomVals(dt, numel(shape), r).map((v) => Math.max(-3000, Math.min(3000, v))) : randomVals(dt, numel(shape), r);
        const p = pair(dt, shape, toBits(dt, vals), L, dev);
        const x = ndOf(p.cpu, shape);
        for (const op of ['sum', 'mean', 'max', 'min'] as const) {
          if (dt === 'int32' && op === 'mean') continue;
          if ((op === 'max' || op === 'min') && numel(shape) === 0) continue;
          for (const keepDims of [false, true]) {
            const what = `${op} ${dt} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)} keepDims ${keepDims} ${L.name}`;
            const got = keep(N.reduce(op, p.dev, axes, keepDims));
            const ref = op === 'sum' ? R.sum(x, axes, keepDims) : op === 'mean' ? R.mean(x, axes, keepDims) : op === 'max' ? R.max(x, axes, keepDims) : R.min(x, axes, keepDims);
            const cpu = keep(N.reduce(op, p.cpu, axes, keepDims));
            if (op === 'max' || op === 'min') sameOrNaN(dt, N.readRaw(got), N.readRaw(cpu), what);
            else assertClose(values(got), ref, ref.shape, SUM_TOL[dt], what);
            assert.is(values(got).length, values(cpu).length, `${what}: element count`);
          }
        }
      });
    }
    // NaN wins max/min; an empty sum is 0 and an empty mean NaN; int32 sums wrap like the CPU's
    const q = pair('float32', [2, 3], Float32Array.of(1, NaN, 3, 4, 5, 6), layoutsFor([2, 3])[0], dev);
    assert.ok(Number.isNaN(values(keep(N.reduce('max', q.dev, [1], false)))[0]));
    assert.is(values(keep(N.reduce('min', q.dev, [1], false)))[1], 4);
    const z = pair('float32', [2, 0], new Float32Array(0), layoutsFor([2, 0])[0], dev);
    assert.equal(Array.from(values(keep(N.reduce('sum', z.dev, [1], false)))), [0, 0]);
    assert.ok(values(keep(N.reduce('mean', z.dev, [1], false))).every(Number.isNaN));
    const w = pair('int32', [4], Int32Array.of(2147483647, 2147483647, 5, -1), layoutsFor([4])[0], dev);
    sameBits(N.readRaw(keep(N.reduce('sum', w.dev, [0], false))), N.readRaw(keep(N.reduce('sum', w.cpu, [0], false))), 'int32 sum wraps');
  });

  withSeed(`${dev}: softmax and logSoftmax along any axis match the reference (views, long rows)`, (r) => {
    const cases: [number[], number][] = [[[1, 1], 1], [[3, 17], 1], [[3, 17], 0], [[17, 129], -1], [[3, 5, 7], 1], [[2, 1025], 1], [[7], 0], [[], 0], [[1001], -1], [[3, 8200], 0]];
    for (const dt of FLOATS) {
      cases.forEach(([shape, axis], k) => {
        const ls = layoutsFor(shape);
        const L = ls[k % ls.length];
        const p = pair(dt, shape, toBits(dt, randomVals(dt, numel(shape), r, -4, 4)), L, dev);
        const x = ndOf(p.cpu, shape);
        for (const log of [false, true]) {
          const got = keep(N.softmax(p.dev, axis, log));
          const ref = shape.length ? R.softmax(x, axis, log) : { data: Float64Array.of(log ? 0 : 1), shape: [] };
          assertClose(values(got), ref, shape, tolOf(dt), `${log ? 'logSoftmax' : 'softmax'} ${dt} ${JSON.stringify(shape)} axis ${axis} ${L.name}`);
        }
      });
    }
  });

  withSeed(`${dev}: crossEntropy and its backward match the reference; bad labels and mixed devices throw`, (r) => {
    for (const dt of FLOATS) {
      for (const [m, c] of [[1, 1], [3, 17], [17, 3], [129, 10], [4, 1025]]) {
        for (const L of layoutsFor([m, c]).filter((l) => l.name !== 'step 2')) {
          const p = pair(dt, [m, c], toBits(dt, randomVals(dt, m * c, r, -4, 4)), L, dev);
          const labels = Int32Array.from({ length: m }, () => Math.floor(r() * c));
          const lab = keep(N.fromArray(DTYPE_CODES.int32, [m], labels, D, 0));
          const x = ndOf(p.cpu, [m, c]);
          const what = `${dt} [${m}, ${c}] ${L.name}`;
          const loss = keep(N.crossEntropy(p.dev, lab));
          assertClose(values(loss), R.crossEntropy(x, { data: Float64Array.from(labels), shape: [m] }), [], tolOf(dt), `crossEntropy ${what}`);
          const g = keep(N.full(DTYPE_CODES[dt], [], 1.5, D, 0));
          const grad = keep(N.crossEntropyBackward(p.dev, lab, g));
          const sm = R.softmax(x, 1);
          const want = R.nd(sm.data.map((v, i) => ((v - (labels[Math.floor(i / c)] === i % c ? 1 : 0)) * 1.5) / m), [m, c]);
          assertClose(values(grad), want, [m, c], tolOf(dt), `crossEntropyBackward ${what}`);
        }
      }
    }
    const x = keep(N.fromArray(DTYPE_CODES.float32, [0, 3], new Float32Array(0), D, 0));
    const none = keep(N.fromArray(DTYPE_CODES.int32, [0], new Int32Array(0), D, 0));
    assert.ok(Number.isNaN(values(keep(N.crossEntropy(x, none)))[0]), 'the mean over no rows is NaN');
    const y = keep(N.fromArray(DTYPE_CODES.float32, [2, 3], new Float32Array(6), D, 0));
    const bad = keep(N.fromArray(DTYPE_CODES.int32, [2], Int32Array.of(0, 3), D, 0));
    assert.throws(() => N.crossEntropy(y, bad), (e: Error) => e instanceof RangeError && /labels\[1\] = 3/.test(e.message));
    const cpuLabels = keep(N.fromArray(DTYPE_CODES.int32, [2], Int32Array.of(0, 1), CPU, 0));
    assert.throws(() => N.crossEntropy(y, cpuLabels), (e: Error) => e instanceof TypeError && /'labels' is on cpu/.test(e.message));
  });

  test(`${dev}: mixed devices throw a TypeError naming the arguments`, () => {
    const a = keep(N.fromArray(DTYPE_CODES.float32, [3], Float32Array.of(1, 2, 3), CPU, 0));
    const b = keep(N.fromArray(DTYPE_CODES.float32, [3], Float32Array.of(1, 2, 3), D, 0));
    const isType = (re: RegExp) => (e: Error) => e instanceof TypeError && re.test(e.message);
    assert.throws(() => N.binary('add', a, b), isType(/'a' is on cpu but 'b' is on cuda/));
    assert.throws(() => N.binary('mul', b, a), isType(/'a' is on cuda.* but 'b' is on cpu.*different devices/));
    assert.throws(() => N.unary('exp', b, undefined, undefined, keep(N.empty(DTYPE_CODES.float32, [3], CPU, 0))), isType(/'out' is on cpu/));
    assert.throws(() => N.copyInto(b, a), isType(/'dst' is on cuda.* but 'src' is on cpu/));
    assert.throws(() => N.concat([b, a], 0), isType(/tensors\[1\] is on cpu/));
    assert.throws(() => N.where(b, b, a), isType(/'a' is on cuda.* but 'b' is on cpu/));
    assert.throws(() => N.where(a, b, b), isType(/'a' is on cuda.* but 'cond' is on cpu/));
    const g = keep(N.fromArray(DTYPE_CODES.float32, [], Float32Array.of(1), CPU, 0));
    const l2 = keep(N.fromArray(DTYPE_CODES.int32, [1], Int32Array.of(0), D, 0));
    const x2 = keep(N.fromArray(DTYPE_CODES.float32, [1, 3], Float32Array.of(1, 2, 3), D, 0));
    assert.throws(() => N.crossEntropyBackward(x2, l2, g), isType(/'g' is on cpu/));
    assert.throws(() => S.add(S.tensor([1]), S.tensor([1], { device: dev })), (e: Error) => e instanceof TypeError);
    disposeAll();
  });

  withSeed(`${dev}: gradients through elementwise ops, softmax and crossEntropy equal the CPU's`, (r) => {
    const vx = Array.from({ length: 17 * 9 }, () => r() * 4 - 2), vw = Array.from({ length: 9 }, () => r() * 2 - 1);
    const labels = Int32Array.from({ length: 17 }, () => Math.floor(r() * 9));
    const grads = (device: 'cpu' | Dev) =>
      S.tidy(() => {
        const x = S.tensor(vx, { shape: [17, 9], device, requiresGrad: true });
        const w = S.tensor(vw, { shape: [9], device, requiresGrad: true });
        const lab = S.tensor(Array.from(labels), { dtype: 'int32', device });
        const h = S.tanh(S.add(S.mul(x, w), 0.5));
        const loss = S.add(S.crossEntropy(h, lab), S.mean(S.mul(S.softmax(h, 0), h)));
        loss.backward();
        const out = [loss.dataSync(), x.grad!.dataSync(), w.grad!.dataSync()].map((a) => Float64Array.from(a));
        S.dispose([x.grad!, w.grad!]);
        return out;
      });
    const want = grads('cpu'), got = grads(dev);
    ['loss', 'x.grad', 'w.grad'].forEach((name, i) =>
      assertClose(got[i], { data: want[i], shape: [want[i].length] }, [got[i].length], { atol: 1e-6, rtol: 1e-5 }, name));
  });
}

test.run();
