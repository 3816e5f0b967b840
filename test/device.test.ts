// device.test.ts — tensors on devices: 'cuda-emu' (the cuda/*.cu code run on the CPU by cuda/emu/,
// compiled into the test build) and, without a GPU, the errors of 'cuda'. Round trips of every dtype
// cpu → cuda-emu → cpu bit-exact (odd sizes, 0 and 1, strided views), creation on the device equal to
// the CPU's (random: the same counter-based draws), add on the device equal to the CPU add bit for bit
// (the float4 path on aligned storage, the scalar path on views one element in), memory() per device,
// the caching allocator's reuse and its out-of-memory retry, and the TypeErrors for unsupported ops,
// a missing device and mixed devices. Inputs are seeded; the seed is printed on failure.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native, DTYPE_CODES, DEVICE_CODES, type DType, type Handle } from '../lib/native';
import * as S from '../lib/index';
import { freshSeed, rng } from './helpers';
const SANITIZER = !!process.env.STRUCTURA_SANITIZER;

const N = native();
const EMU = DEVICE_CODES['cuda-emu'];
const CPU = DEVICE_CODES.cpu;
const info = N.backend();
const SIZES = [0, 1, 3, 4, 5, 17, 129, 1001, 4099];

// Random bytes for n elements of dtype (every bit pattern, NaN payloads included: copies must keep them).
function randomBits(dt: DType, n: number, r: () => number) {
  const bytes = { float32: 4, float64: 8, float16: 2, bfloat16: 2, int32: 4, uint8: 1, uint16: 2 }[dt];
  const u8 = new Uint8Array(n * bytes);
  for (let i = 0; i < u8.length; i++) u8[i] = Math.floor(r() * 256);
  const ctor = { float32: Float32Array, float64: Float64Array, float16: Uint16Array, bfloat16: Uint16Array, int32: Int32Array, uint8: Uint8Array, uint16: Uint16Array }[dt];
  return new ctor(u8.buffer);
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
function sameBits(got: ArrayBufferView, want: ArrayBufferView, what: string) {
  const g = bytesOf(got), w = bytesOf(want);
  assert.is(g.length, w.length, `${what}: byte length`);
  for (let i = 0; i < w.length; i++) if (g[i] !== w[i]) assert.unreachable(`${what}: byte ${i} is ${g[i]}, expected ${w[i]}`);
}

function emuBytes() {
  const m = N.memory()['cuda-emu'];
  return m ?? { buffers: 0, bytes: 0, cached: 0, cachedBlocks: 0, reserved: 0 };
}

function withSeed(name: string, fn: (r: () => number) => void) {
  test(name, () => {
    const seed = freshSeed();
    try {
      fn(rng(seed));
    } catch (e) {
      console.error(`  ${name}: seed ${seed} (STRUCTURA_TEST_SEED=${seed} replays it)`);
      throw e;
    }
  });
}

if (!info.cudaEmu) {
  // Only a binary built without STRUCTURA_CUDA_EMU gets here (the node-gyp build); npm test's build has it.
  console.log(`device.test.ts: the cuda-emu tests are skipped: this binary (${S.backend().binary}) was built without 'cuda-emu'; build with cmake-js (STRUCTURA_CUDA_EMU=ON, the default)`);
  test('cuda-emu is refused with a TypeError saying how to build it', () => {
    assert.throws(() => S.tensor([1, 2], { device: 'cuda-emu' }), (e: Error) => e instanceof TypeError && /STRUCTURA_CUDA_EMU/.test(e.message));
  });
} else {
  withSeed('every dtype round-trips cpu → cuda-emu → cpu bit-exactly, odd sizes, 0 and 1', (r) => {
    for (const dt of Object.keys(DTYPE_CODES) as DType[]) {
      for (const n of SIZES) {
        const bits = randomBits(dt, n, r);
        const h = N.fromArray(DTYPE_CODES[dt], [n], bits, EMU, 0);
        sameBits(N.readRaw(h), bits, `${dt}[${n}] fromArray → readRaw`);
        const back = N.to(h, CPU, 0);
        sameBits(N.readRaw(back), bits, `${dt}[${n}] to('cpu')`);
        const cpu = N.fromArray(DTYPE_CODES[dt], [n], bits, CPU, 0);
        const up = N.to(cpu, EMU, 0);
        sameBits(N.readRaw(up), bits, `${dt}[${n}] cpu.to('cuda-emu')`);
        // read() widens float16/bfloat16 the same way on both devices
        sameBits(N.read(up), N.read(cpu), `${dt}[${n}] read()`);
        for (const x of [h, back, cpu, up]) N.dispose(x);
      }
    }
  });

  withSeed('host copies through the pinned staging buffers (cuda/runtime.cu) are bit-exact: one chunk, several, odd lengths', (r) => {
    // the threshold down to 1 KiB so that these sizes take the staged path (8 MiB chunks, two buffers);
    // 2.5M + 3 float32 is 10 MB: two chunks, the second partial; 5M + 1 uint8 one partial chunk; 2.1M + 1
    // float64 three chunks (both buffers reused)
    const old = N.setCopyStaging(1024);
    try {
      for (const [dt, n] of [['float32', 2_500_003], ['uint8', 5_000_001], ['float64', 2_100_001], ['float32', 300]] as [DType, number][]) {
        const bits = randomBits(dt, n, r);
        const cpu = N.fromArray(DTYPE_CODES[dt], [n], bits, CPU, 0);
        const up = N.to(cpu, EMU, 0);
        const back = N.to(up, CPU, 0);
        sameBits(N.readRaw(back), bits, `${dt}[${n}] cpu → cuda-emu → cpu, staged`);
        sameBits(N.readRaw(up), bits, `${dt}[${n}] readRaw of the device copy, staged`);
        for (const x of [cpu, up, back]) N.dispose(x);
      }
    } finally {
      assert.is(N.setCopyStaging(old), 1024);
    }
    assert.is(old, 32 * 2 ** 20, 'the default threshold is 32 MiB');
  });

  withSeed('same-device copies (cuda/copy.cu copy_bytes: clone, same-dtype cast, copyInto) are bit-exact at 16-, 4- and 1-byte alignment and write nothing past the end', (r) => {
    // A view `off` elements into a storage sets the alignment: float32 one element in is 4-byte
    // aligned (the word path), uint8 three in is odd (the byte path), float64 two in is 16-byte (vectors,
    // with a tail of 8 bytes at odd n). The destination of copyInto sits inside a storage poisoned with
    // 0xA5 one element on either side, which must survive.
    const cases: [DType, number, number][] = [['float32', 1, 0], ['float32', 4099, 1], ['float32', 4099, 0], ['uint8', 1001, 3],
      ['uint8', 70_001, 0], ['float64', 17, 2], ['float16', 5, 1], ['bfloat16', 1_000_003, 0], ['int32', 129, 3]];
    for (const mode of ['kernel', 'driver'] as const) {
      const old = N.setDeviceCopy(mode);
      try {
        for (const [dt, n, off] of cases) {
          const code = DTYPE_CODES[dt];
          const bits = randomBits(dt, n + off, r);
          const cpu = N.fromArray(code, [n + off], bits, CPU, 0);
          const dev = N.to(cpu, EMU, 0);
          const src = N.view(dev, [n], [1], off);
          const want = bytesOf(bits).slice(off * bits.BYTES_PER_ELEMENT);
          const what = `${dt}[${n}] ${off} in, ${mode}`;
          const c = N.cast(src, code);  // clone() of a device tensor
          sameBits(N.readRaw(c), want, `cast ${what}`);
          const pad = new Uint8Array((n + 2) * bits.BYTES_PER_ELEMENT).fill(0xa5);
          const dstAll = N.to(N.fromArray(code, [n + 2], new (bits.constructor as Uint8ArrayConstructor)(pad.buffer), CPU, 0), EMU, 0);
          N.copyInto(N.view(dstAll, [n], [1], 1), src);
          const got = bytesOf(N.readRaw(dstAll)), e = bits.BYTES_PER_ELEMENT;
          for (let i = 0; i < e; i++) {
            if (got[i] !== 0xa5) assert.unreachable(`copyInto ${what}: byte ${i} before the destination was overwritten`);
            if (got[got.length - 1 - i] !== 0xa5) assert.unreachable(`copyInto ${what}: a byte after the destination was overwritten`);
          }
          sameBits(got.subarray(e, got.length - e), want, `copyInto ${what}`);
          for (const x of [cpu, dev, src, c, dstAll]) N.dispose(x);
        }
      } finally {
        N.setDeviceCopy(old);
      }
    }
    assert.is(N.setDeviceCopy('kernel'), 'kernel', 'the kernel is the default');
    assert.throws(() => N.setDeviceCopy('dma' as 'kernel'), (e: Error) => e instanceof RangeError && /'kernel' or 'driver', got 'dma'/.test(e.message));
  });

  withSeed('contiguous() of a transposed device view (cuda/copy.cu tiled transpose, batched too) equals the CPU bit for bit', (r) => {
    for (const dt of ['float32', 'float16', 'int32', 'uint8', 'float64'] as DType[])
      for (const shape of [[1, 1], [5, 3], [33, 70], [64, 32], [3, 40, 33]]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const bits = randomBits(dt, n, r);
        // the transposed view: last two dims swapped, strides likewise
        const nd = shape.length, rows = shape[nd - 2], cols = shape[nd - 1];
        const tshape = [...shape.slice(0, -2), cols, rows];
        const tstrides = [...(nd === 3 ? [rows * cols] : []), 1, cols];
        const hs: Handle[] = [];
        const keep = (h: Handle) => (hs.push(h), h);
        const cpu = keep(N.fromArray(DTYPE_CODES[dt], shape, bits, CPU, 0));
        const dev = keep(N.to(cpu, EMU, 0));
        const want = keep(N.contiguous(keep(N.view(cpu, tshape, tstrides, 0))));
        const got = keep(N.contiguous(keep(N.view(dev, tshape, tstrides, 0))));
        sameBits(N.readRaw(got), N.readRaw(want), `${dt} ${JSON.stringify(shape)}ᵀ contiguous()`);
        for (const h of hs) N.dispose(h);
      }
  });

  withSeed('the public API moves tensors between devices; strided device views read in logical order', (r) => {
    for (const [m, k] of [[1, 1], [3, 5], [17, 4], [2, 129]]) {
      const vals = Array.from({ length: m * k }, () => Math.round((r() - 0.5) * 1000) / 8);
      const c = S.tensor(vals, { shape: [m, k] });
      const e = c.to('cuda-emu');
      assert.is(e.device, 'cuda-emu');
      assert.equal(e.shape, [m, k]);
      sameBits(e.dataSync(), c.dataSync(), `[${m}, ${k}] dataSync`);
      const et = e.transpose(), ct = c.transpose();
      sameBits(et.dataSync(), ct.dataSync(), `[${m}, ${k}]ᵀ dataSync`);
      const back = et.to('cpu');
      assert.is(back.device, 'cpu');
      sameBits(back.dataSync(), ct.dataSync(), `[${m}, ${k}]ᵀ.to('cpu')`);
      const n1 = e.narrow(1, k > 1 ? 1 : 0, k > 1 ? k - 1 : 1);
      const c1 = c.narrow(1, k > 1 ? 1 : 0, k > 1 ? k - 1 : 1);
      sameBits(n1.dataSync(), c1.dataSync(), `[${m}, ${k}] narrow`);
      S.dispose([c, e, et, ct, back, n1, c1]);
    }
  });

  test('creation on cuda-emu equals creation on the CPU (random: the same counter-based draws)', () => {
    for (const dt of ['float32', 'float64', 'float16', 'bfloat16'] as DType[]) {
      for (const n of [0, 1, 17, 1001]) {
        for (const kind of ['normal', 'uniform'] as const) {
          const a = N.random(kind, DTYPE_CODES[dt], [n], 1234 + n, CPU, 0);
          const b = N.random(kind, DTYPE_CODES[dt], [n], 1234 + n, EMU, 0);
          sameBits(N.readRaw(b), N.readRaw(a), `random ${kind} ${dt}[${n}]`);
          N.dispose(a), N.dispose(b);
        }
      }
    }
    for (const dt of Object.keys(DTYPE_CODES) as DType[]) {
      const f0 = N.full(DTYPE_CODES[dt], [3, 7], 5, CPU, 0), f1 = N.full(DTYPE_CODES[dt], [3, 7], 5, EMU, 0);
      sameBits(N.readRaw(f1), N.readRaw(f0), `full ${dt}`);
      const a0 = N.arange(DTYPE_CODES[dt], 1, 2, 33, CPU, 0), a1 = N.arange(DTYPE_CODES[dt], 1, 2, 33, EMU, 0);
      sameBits(N.readRaw(a1), N.readRaw(a0), `arange ${dt}`);
      const e = N.empty(DTYPE_CODES[dt], [2, 0, 3], EMU, 0);
      assert.is(N.readRaw(e).length, 0);
      for (const x of [f0, f1, a0, a1, e]) N.dispose(x);
    }
    const r0 = S.randn([5, 9], { seed: 7 }), r1 = S.randn([5, 9], { seed: 7, device: 'cuda-emu' });
    sameBits(r1.dataSync(), r0.dataSync(), 'randn');
    S.dispose([r0, r1]);
  });

  withSeed('add on cuda-emu equals the CPU add bit for bit: float4 path, scalar path, odd sizes', (r) => {
    for (const n of SIZES) {
      const a = new Float32Array(n + 1), b = new Float32Array(n + 1);
      for (let i = 0; i <= n; i++) {
        a[i] = (r() - 0.5) * 2 ** Math.floor(r() * 40 - 20);
        b[i] = (r() - 0.5) * 2 ** Math.floor(r() * 40 - 20);
      }
      const ca = N.fromArray(0, [n + 1], a, CPU, 0), cb = N.fromArray(0, [n + 1], b, CPU, 0);
      const ea = N.fromArray(0, [n + 1], a, EMU, 0), eb = N.fromArray(0, [n + 1], b, EMU, 0);
      // aligned storage: the float4 kernel (with its scalar tail)
      const hs: Handle[] = [ca, cb, ea, eb];
      const keep = (h: Handle) => (hs.push(h), h);
      const want = N.read(keep(N.binary('add', ca, cb)));
      sameBits(N.read(keep(N.binary('add', ea, eb))), want, `add[${n + 1}] float4`);
      // views one element in: 4-byte aligned pointers, the scalar kernel
      const va = keep(N.view(ea, [n], [1], 1)), vb = keep(N.view(eb, [n], [1], 1));
      const wantv = N.read(keep(N.binary('add', keep(N.view(ca, [n], [1], 1)), keep(N.view(cb, [n], [1], 1)))));
      sameBits(N.read(keep(N.binary('add', va, vb))), wantv, `add[${n}] scalar`);
      // in place (out = a), as the optimizers do
      const out = N.binary('add', ea, eb, ea);
      assert.is(out, ea);
      sameBits(N.read(ea), want, `add[${n + 1}] out = a`);
      for (const x of hs) N.dispose(x);
    }
    // through the public API, with a 2-D shape
    const x = S.tensor([[1, 2, 3], [4, 5, 6]], { device: 'cuda-emu' });
    const y = S.add(x, x);
    assert.is(y.device, 'cuda-emu');
    assert.equal(Array.from(y.dataSync()), [2, 4, 6, 8, 10, 12]);
    S.dispose([x, y]);
  });

  (SANITIZER ? test.skip : test)('memory() counts live buffers per device, caches freed blocks separately, and nothing leaks', () => {
    N.emptyCache(EMU);
    const m0 = emuBytes();
    const cpu0 = N.memory().cpu;
    const hs: Handle[] = [];
    for (const n of [1, 100, 1000]) hs.push(N.empty(0, [n], EMU, 0));
    const m1 = emuBytes();
    assert.is(m1.buffers, m0.buffers + 3);
    assert.is(m1.bytes, m0.bytes + 4 * 1101);
    assert.is(N.memory().cpu.buffers, cpu0.buffers, 'device tensors hold no host buffer');
    const v = N.view(hs[2], [10], [1], 5);
    assert.is(emuBytes().buffers, m1.buffers, 'a view is not a buffer');
    for (const h of hs) N.dispose(h);
    assert.is(emuBytes().buffers, m0.buffers + 1, 'the view keeps its storage');
    N.dispose(v);
    const m2 = emuBytes();
    assert.is(m2.buffers, m0.buffers);
    assert.is(m2.bytes, m0.bytes);
    assert.ok(m2.cached! >= 4 * 1101, `freed blocks are cached (${m2.cached})`);
    assert.is(m2.reserved! - m2.cached!, m0.reserved ?? 0, 'the freed blocks are all cached');
    N.emptyCache(EMU);
    const m3 = emuBytes();
    assert.is(m3.cached ?? 0, 0);
    assert.is(m3.reserved ?? 0, m0.reserved ?? 0, 'emptyCache gives every cached block back');
  });

  (SANITIZER ? test.skip : test)('the caching allocator reuses a freed block of the same size class', () => {
    N.emptyCache(EMU);
    const a = N.empty(0, [1000], EMU, 0);
    const r1 = emuBytes().reserved!;
    N.dispose(a);
    assert.is(emuBytes().cachedBlocks, 1);
    const b = N.empty(0, [999], EMU, 0); // 3996 bytes: the same 512-byte class as 4000
    assert.is(emuBytes().cachedBlocks, 0, 'the cached block was taken');
    assert.is(emuBytes().reserved, r1, 'nothing new was reserved');
    // the reused block is bounded to its new size: the values written are the ones read
    const vals = new Float32Array(999).map((_, i) => i * 0.5);
    const c = N.fromArray(0, [999], vals, EMU, 0);
    N.copyInto(b, c);
    sameBits(N.read(b), vals, 'reused block');
    N.dispose(b), N.dispose(c);
    N.emptyCache(EMU);
  });

  (SANITIZER ? test.skip : test)('out of memory: the cache is freed and the allocation retried once, then a catchable Error', () => {
    const MiB = 1 << 20;
    const before = process.env.STRUCTURA_EMU_MEMORY_MB;
    process.env.STRUCTURA_EMU_MEMORY_MB = '64'; // the emulated device's size, read at each cudaMalloc
    try {
      N.emptyCache(EMU);
      const a = N.empty(0, [10 * MiB], EMU, 0); // 40 MiB
      N.dispose(a);
      assert.is(emuBytes().cached, 40 * MiB);
      const b = N.empty(0, [12 * MiB], EMU, 0); // 48 MiB: fits only once the cached 40 MiB are freed
      assert.is(emuBytes().cached, 0, 'the cache was emptied for the retry');
      // PyTorch's message says what holds the memory; so does this one (earlier tests may leave a few
      // live tensors on the device, so the held / free figures come from memory()).
      const mib = (b: number) => `${(b / MiB).toFixed(2)} MiB`;
      const held = () => (emuBytes().reserved ?? 0) - (emuBytes().cached ?? 0);
      let expect = `structura: out of memory on cuda-emu allocating 100.00 MiB (${100 * MiB} bytes, rounded to a ` +
        `104.00 MiB block): this process's tensors hold ${mib(held())} there, the device has ${mib(64 * MiB - held())} ` +
        'free of 64.00 MiB; free tensors with dispose() or tidy()';
      assert.throws(() => N.empty(0, [25 * MiB], EMU, 0), (e: Error) => !(e instanceof TypeError) && e.message === expect);
      const small = N.empty(0, [MiB], EMU, 0); // 4 MiB, cached once disposed: the next failure empties the cache first
      N.dispose(small);
      expect = `structura: out of memory on cuda-emu allocating 20.00 MiB (${20 * MiB} bytes): this process's tensors ` +
        `hold ${mib(held())} there, the device has ${mib(64 * MiB - held())} free of 64.00 MiB (after emptying the ` +
        "allocator's cache); free tensors with dispose() or tidy()";
      assert.throws(() => N.empty(0, [5 * MiB], EMU, 0), (e: Error) => e.message === expect);
      assert.is(emuBytes().cached, 0);
      assert.throws(() => S.zeros([25 * MiB], { device: 'cuda-emu' }), /out of memory on cuda-emu/);
      N.dispose(b);
      // the device still works after the failures, and no error is reported late
      const c = S.tensor([1, 2, 3], { device: 'cuda-emu' });
      S.cuda.synchronize();
      assert.equal(Array.from(S.add(c, c).dataSync()), [2, 4, 6]);
      S.dispose(c);
    } finally {
      if (before === undefined) delete process.env.STRUCTURA_EMU_MEMORY_MB;
      else process.env.STRUCTURA_EMU_MEMORY_MB = before;
      N.emptyCache(EMU);
    }
  });

  test('float64 has no device kernel: matmul, gemm and the lowrank ops say so with a TypeError, allocating nothing', () => {
    // Every op runs on the devices in float32 / float16 / bfloat16 (test/device_ops.test.ts,
    // test/dense_devices.test.ts, test/lowrank_devices.test.ts); float64 is refused by name.
    const f64 = (shape: number[]) => N.fromArray(DTYPE_CODES.float64, shape, new Float64Array(shape.reduce((a, b) => a * b, 1)).fill(0.5), EMU, 0);
    const i32 = (vals: number[]) => N.fromArray(DTYPE_CODES.int32, [vals.length], Int32Array.from(vals), EMU, 0);
    const hs = [f64([2, 2]), f64([3, 4]), f64([5, 4]), f64([2, 2, 4]), f64([2, 5, 2]), i32([0, 1, -1]), i32([0, 3]), f64([2]), f64([3, 5]), f64([3, 2]), f64([4, 2]), f64([2, 4]), f64([5, 2])];
    const [c22, x34, w54, a224, b252, ids, idx, vals, g35, g32, b42, a24, b52] = hs;
    const cases: [string, () => unknown][] = [
      ['matmul', () => N.matmul(c22, c22, false, false)],
      ['gemm', () => N.gemm(g32, x34, b42, 1, 0, false, false)],
      ['lowrank.lora', () => N.lowrankLora(x34, w54, a24, b52, 2, 1, null)],
      ['lowrank.loraBatched', () => N.lowrankLoraBatched(x34, w54, a224, b252, ids, 1)],
      ['lowrank.loraMixture', () => N.lowrankLoraMixture(x34, w54, a224, b252, g32, 1)],
      ['lowrank.spmm', () => N.lowrankSpmm(x34, idx, vals, 5, 4, false)],
      ['lowrank.sddmm', () => N.lowrankSddmm(g35, x34, idx)],
    ];
    const before = N.memory()['cuda-emu']?.buffers;
    for (const [op, fn] of cases)
      assert.throws(fn, (e: Error) => e instanceof TypeError && e.message.startsWith(`structura.${op}: float64 is not implemented on cuda-emu`), op);
    assert.is(N.memory()['cuda-emu']?.buffers, before, 'a refused op allocates nothing');
    for (const h of hs) N.dispose(h);
  });

  test('gemm on the device: C = alpha·op(A)·op(B) + beta·C + bias in place, equal to the CPU within float32 rounding', () => {
    const seed = freshSeed();
    const r = rng(seed);
    const M = 7, K = 13, Nn = 9;
    const fill = (n: number) => Float32Array.from({ length: n }, () => Math.round((2 * r() - 1) * 64) / 64);
    for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const av = fill(M * K), bv = fill(K * Nn), cv = fill(M * Nn), biasv = fill(Nn);
      const run = (dev: string) => {
        const A = S.tensor(av, { shape: ta ? [K, M] : [M, K], device: dev }), B = S.tensor(bv, { shape: tb ? [Nn, K] : [K, Nn], device: dev });
        const C = S.tensor(cv, { shape: [M, Nn], device: dev }), bias = S.tensor(biasv, { device: dev });
        N.gemm(C._h, A._h, B._h, 0.5, -1.25, ta, tb, bias._h);
        const out = C.to('cpu').dataSync();
        S.dispose([A, B, C, bias]);
        return out;
      };
      const cpu = run('cpu'), dev = run('cuda-emu');
      // inputs are multiples of 1/64 below 1: every product is exact in float32 and the K + 2 sums are
      // exact too (|sum| < 2^24 / 64^2) — the devices must agree bit for bit
      for (let i = 0; i < cpu.length; i++) assert.is(dev[i], cpu[i], `ta=${ta} tb=${tb}: element ${i} (seed ${seed})`);
    }
    // a row slice of a wider C is written in place, its neighbours untouched; alpha = 0 reads neither A nor B
    const wide = S.tensor(Float32Array.from({ length: 4 * 6 }, (_, i) => i), { shape: [4, 6], device: 'cuda-emu' });
    const view = wide.narrow(1, 1, 3);
    const A = S.full([4, 2], NaN, { device: 'cuda-emu' }), B = S.full([2, 3], NaN, { device: 'cuda-emu' });
    N.gemm(view._h, A._h, B._h, 0, 2, false, false);
    const got = wide.to('cpu').dataSync();
    for (let i = 0; i < 24; i++) assert.is(got[i], i % 6 >= 1 && i % 6 <= 3 ? 2 * i : i, `wide C element ${i}`);
    // a column-major C is refused with the reason; the CPU test hook 'probe' too
    const c34 = S.zeros([3, 4], { device: 'cuda-emu' }), ct = c34.T, z42 = S.zeros([4, 2], { device: 'cuda-emu' }), z23 = S.zeros([2, 3], { device: 'cuda-emu' });
    assert.throws(() => N.gemm(ct._h, z42._h, z23._h, 1, 0, false, false), (e: Error) => e instanceof RangeError && /unit column stride/.test(e.message));
    assert.throws(() => N.gemm(view._h, A._h, B._h, 1, 0, false, false, null, 'check'), (e: Error) => e instanceof RangeError && /probe/.test(e.message));
    S.dispose([wide, view, A, B, c34, ct, z42, z23]);
  });

  test('mixing devices throws a TypeError; cuda.synchronize() waits', () => {
    const a = S.tensor([1, 2, 3]), b = S.tensor([1, 2, 3], { device: 'cuda-emu' });
    assert.throws(() => S.add(a, b), (e: Error) => e instanceof TypeError && /cpu/.test(e.message) && /cuda-emu/.test(e.message));
    assert.throws(() => N.binary('add', b._h, a._h), (e: Error) => e instanceof TypeError && /different devices/.test(e.message));
    assert.throws(() => N.copyInto(b._h, a._h), (e: Error) => e instanceof TypeError && /different devices/.test(e.message));
    S.cuda.synchronize();
    N.synchronize();
    S.dispose([a, b]);
  });
}

test("to() is in the graph: the gradient goes back to the source device, as PyTorch's", () => {
  if (!S.backend().cudaEmu) return;
  S.tidy(() => {
    const x = S.tensor([1, 2, 3], { requiresGrad: true });
    const y = x.to('cuda-emu');
    assert.ok(y.requiresGrad && !y.isLeaf);
    y.mul(y).sum().backward();
    assert.is(x.grad!.device, 'cpu');
    assert.equal(Array.from(x.grad!.dataSync()), [2, 4, 6]);
    const w = S.tensor([1, -1], { device: 'cuda-emu', requiresGrad: true });
    w.to('cpu').mul(3).sum().backward();
    assert.is(w.grad!.device, 'cuda-emu');
    assert.equal(Array.from(w.grad!.dataSync()), [3, 3]);
  });
});

test('backward: a gradient on another device than its tensor is refused where it enters (argument, hook, custom backward)', () => {
  if (!S.backend().cudaEmu) return;
  S.tidy(() => {
    const x = S.tensor([1, 2, 3], { device: 'cuda-emu', requiresGrad: true });
    const y = x.mul(2);
    assert.throws(() => y.backward(S.ones([3])), (e: Error) => e instanceof TypeError && /structura\.backward: 'grad' is on cpu but the tensor is on cuda-emu/.test(e.message));
    const h = x.registerHook((g) => g.to('cpu'));
    assert.throws(() => x.mul(2).sum().backward(), (e: Error) => e instanceof TypeError && /a hook on a leaf \[3\] returned \[3\] float32 on cpu; it must return nothing or a gradient \[3\] float32 on cuda-emu/.test(e.message));
    h.remove();
    const away = S.customOp({ name: 'Away', forward: (_c, t: S.Tensor) => t.mul(1), backward: (_c, g) => g.to('cpu') });
    assert.throws(() => away(x).sum().backward(), (e: Error) => e instanceof TypeError && /the backward of Away returned a gradient on cpu for input 0, which is on cuda-emu/.test(e.message));
    assert.is(x.grad, null);
  });
});

test('zeros / ones / full on a device are made there, every dtype (out of memory names the device)', () => {
  if (!S.backend().cudaEmu) return;
  S.tidy(() => {
    for (const [dt, v] of [['float32', -2.5], ['float64', 1e300], ['float16', 0.1], ['bfloat16', -3], ['int32', -7], ['uint8', 200], ['uint16', 40000]] as const) {
      const a = S.full([3, 1, 5], v, { dtype: dt, device: 'cuda-emu' });
      const want = S.full([3, 1, 5], v, { dtype: dt });
      assert.is(a.device, 'cuda-emu');
      assert.equal(Array.from(a.to('cpu').rawDataSync()), Array.from(want.rawDataSync()), dt);
      assert.equal(S.zeros([0, 4], { dtype: dt, device: 'cuda-emu' }).shape, [0, 4]);
      assert.equal(S.ones([], { dtype: dt, device: 'cuda-emu' }).item(), 1);
    }
    assert.throws(() => S.zeros([2 ** 36], { device: 'cuda-emu' }), (e: Error) => /out of memory on cuda-emu/.test(e.message));
  });
});

// Under compute-sanitizer every block is exact and freed at once (csrc/device.cc exact_blocks): the
// cache's own tests do not apply, and one below checks that instead.
test('under STRUCTURA_SANITIZER the device allocator caches nothing (exact blocks for memcheck)', () => {
  if (!SANITIZER || !S.backend().cudaEmu) return;
  const before = (N.memory() as Record<string, { cached?: number }>)['cuda-emu']?.cached ?? 0;
  S.zeros([1000], { device: 'cuda-emu' }).dispose();
  assert.is((N.memory() as Record<string, { cached?: number }>)['cuda-emu']?.cached ?? 0, before);
});

test("'cuda' without a GPU is a TypeError carrying backend().reason", () => {
  if (info.cuda) {
    console.log(`device.test.ts: a CUDA device is present (${info.devices[0]?.name}); checked by the round trip instead`);
    const x = S.tensor([1, 2, 3], { device: 'cuda' });
    assert.equal(Array.from(S.add(x, x).to('cpu').dataSync()), [2, 4, 6]);
    S.dispose(x);
    return;
  }
  assert.ok(info.reason && info.reason.length > 0, 'backend().reason says why');
  const why = (e: Error) => e instanceof TypeError && e.message.includes(info.reason!);
  assert.throws(() => S.tensor([1, 2], { device: 'cuda' }), why);
  assert.throws(() => S.zeros([2], { device: 'cuda:1' }), why);
  assert.throws(() => N.empty(0, [2], DEVICE_CODES.cuda, 0), why);
  const c = S.tensor([1]);
  assert.throws(() => c.to('cuda'), why);
  assert.throws(() => N.to(c._h, DEVICE_CODES.cuda, 0), why);
  S.dispose(c);
});

test.run();
