// gpu/core.test.ts — the 'cuda' device itself: what backend() says, round trips of every dtype
// cpu → cuda → cpu bit-exact (odd sizes, a 64 MiB tensor, views), add on the GPU equal to the CPU's
// bit for bit (float4 path and the scalar path of a view one element in, 2^22 elements), memory()
// counting the device's buffers and the caching allocator's reuse. (Out-of-memory and its retry are
// tested on 'cuda-emu' in test/device.test.ts, whose memory size can be set: here it would mean
// filling the whole card.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../../lib/index';
import { native, DEVICE_CODES, DTYPE_CODES } from '../../lib/native';
import { freshSeed, rng } from '../helpers';

const DEV = 'cuda';

test('backend() reports a usable GPU with its name and compute capability', () => {
  const b = S.backend();
  assert.ok(b.cuda, `backend().cuda is false: ${b.reason}`);
  assert.ok(b.devices.length >= 1, 'no device listed');
  console.log(`  ${JSON.stringify(b.devices)}`);
});

test('every dtype round-trips cpu → cuda → cpu bit-exactly (sizes 0 … 16M elements)', () => {
  const N = native();
  const r = rng(freshSeed());
  const SIZE = { float32: 4, float64: 8, float16: 2, bfloat16: 2, int32: 4, uint8: 1, uint16: 2 } as const;
  for (const dt of Object.keys(SIZE) as (keyof typeof SIZE)[])
    for (const n of [0, 1, 3, 17, 1001, 65537, dt === 'uint8' ? 1 << 26 : 1 << 24]) {
      // every bit pattern (NaN payloads included) in the first 64 KiB, a cheap hash after
      const bytes = new Uint8Array(n * SIZE[dt]);
      for (let i = 0; i < Math.min(bytes.length, 1 << 16); i++) bytes[i] = Math.floor(r() * 256);
      for (let i = 1 << 16; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
      const Ctor = { float32: Float32Array, float64: Float64Array, float16: Uint16Array, bfloat16: Uint16Array, int32: Int32Array, uint8: Uint8Array, uint16: Uint16Array }[dt];
      const cpu = N.fromArray(DTYPE_CODES[dt], [n], new Ctor(bytes.buffer), DEVICE_CODES.cpu, 0);
      const dev = N.to(cpu, DEVICE_CODES.cuda, 0);
      const back = N.to(dev, DEVICE_CODES.cpu, 0);
      const raw = N.readRaw(back);
      const got = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
      assert.is(got.length, bytes.length, `${dt} × ${n}: byte length`);
      for (let i = 0; i < bytes.length; i++) if (got[i] !== bytes[i]) assert.unreachable(`${dt} × ${n}: byte ${i} is ${got[i]}, expected ${bytes[i]}`);
      for (const h of [cpu, dev, back]) N.dispose(h);
    }
});

test('add on the GPU equals the CPU add bit for bit (aligned float4 path, odd sizes, 2^22)', () => {
  const seed = freshSeed();
  for (const n of [1, 3, 4, 5, 17, 129, 1001, 4099, 1 << 22]) {
    const a = S.randn([n], { seed }), b = S.randn([n], { seed: seed + 1 });
    const want = a.add(b).dataSync();
    const da = a.to(DEV), db = b.to(DEV);
    const got = da.add(db).to('cpu').dataSync();
    for (let i = 0; i < n; i++) if (!Object.is(got[i], want[i])) assert.unreachable(`n = ${n}: element ${i} is ${got[i]}, CPU ${want[i]} (seed ${seed})`);
    for (const t of [a, b, da, db]) t.dispose();
  }
});

test('memory() counts the GPU buffers; the cache reuses a freed block; emptyCache gives it back', () => {
  native().emptyCache(DEVICE_CODES.cuda);
  const m0 = native().memory().cuda;
  const t = S.zeros([1 << 20], { device: DEV });
  const m1 = native().memory().cuda;
  assert.ok(m1 && m1.buffers === (m0?.buffers ?? 0) + 1, `buffers ${m0?.buffers} → ${m1?.buffers}`);
  t.dispose();
  const u = S.zeros([1 << 20], { device: DEV });
  const m2 = native().memory().cuda!;
  assert.is(m2.reserved, m1!.reserved, 'a block of the same size class is reused, not allocated again');
  u.dispose();
});

test.run();
