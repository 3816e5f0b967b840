// io.test.ts — safetensors: round trip of every dtype with metadata through a file; a PEFT adapter
// file written byte by byte (PyTorch's key names and layout, float16) loaded onto nn.LoRALinear
// layers; malformed files rejected with RangeErrors (overlapping or unindexed bytes, duplicate names,
// bad __metadata__ or UTF-8, file-system failures); "__proto__" as a plain name; loadLoraAdapter's
// refusals (a merged layer, two adapters for one parameter, lora_bias) and its device moves; leak checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as S from '../lib/index';
import { liveCounts, assertNoLeak, throwsLike } from './helpers';

const { io, nn } = S;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'structura-io-'));

test('saveSafetensors / loadSafetensors round trip (float32, float16, bfloat16, float64, int32, uint8) with metadata', () => {
  const before = liveCounts();
  const ts: Record<string, S.Tensor> = {
    f32: S.randn([3, 5], { seed: 1 }),
    f16: S.tensor([0.5, -1.25, 3, 65504, 1e-4, 0], { dtype: 'float16', shape: [2, 3] }),
    bf16: S.tensor([0.5, -1.25, 3, 1e30], { dtype: 'bfloat16' }),
    f64: S.randn([4], { seed: 2, dtype: 'float64' }),
    i32: S.tensor([1, -2, 2147483647], { dtype: 'int32' }),
    u8: S.tensor([0, 7, 255], { dtype: 'uint8' }),
    scalar: S.tensor(2.5),
  };
  const file = path.join(tmp, 'round.safetensors');
  io.saveSafetensors(file, ts, { format: 'pt' });
  const bytes = fs.readFileSync(file);
  const hlen = Number(bytes.readBigUInt64LE(0));
  assert.is((8 + hlen) % 8, 0, 'the header is padded to 8 bytes');
  const header = JSON.parse(bytes.subarray(8, 8 + hlen).toString());
  assert.equal(header.__metadata__, { format: 'pt' });
  assert.equal(header.f16, { dtype: 'F16', shape: [2, 3], data_offsets: header.f16.data_offsets });
  assert.is(header.bf16.dtype, 'BF16');
  const back = io.loadSafetensors(file);
  assert.equal(Object.keys(back).sort(), Object.keys(ts).sort());
  for (const [k, t] of Object.entries(ts)) {
    assert.is(back[k].dtype, t.dtype, k);
    assert.equal(back[k].shape, t.shape, k);
    assert.equal(Array.from(back[k].rawDataSync()), Array.from(t.rawDataSync()), k);
  }
  S.dispose([ts, back]);
  assertNoLeak(before, 'round trip');
});

/** IEEE half bits of v (exactly representable normal numbers and 0, as the test values are). */
function halfBits(v: number): number {
  if (v === 0) return 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  const mant = Math.round((a / 2 ** e - 1) * 1024);
  return sign | ((e + 15) << 10) | mant;
}

test('a PEFT adapter_model.safetensors written byte by byte loads onto nn.LoRALinear layers', () => {
  const before = liveCounts();
  const r = 2, inF = 6, out = 4;
  const aVals = Array.from({ length: r * inF }, (_, i) => (i - 5) / 8); // exact in float16
  const bVals = Array.from({ length: out * r }, (_, i) => (3 - i) / 4);
  // PyTorch/PEFT's layout: keys sorted, F16 little-endian, row-major, offsets into the byte buffer
  const keyA = 'base_model.model.block.fc.lora_A.weight';
  const keyB = 'base_model.model.block.fc.lora_B.weight';
  const data = Buffer.alloc(2 * (aVals.length + bVals.length));
  aVals.forEach((v, i) => data.writeUInt16LE(halfBits(v), 2 * i));
  bVals.forEach((v, i) => data.writeUInt16LE(halfBits(v), 2 * (aVals.length + i)));
  let json = JSON.stringify({
    __metadata__: { format: 'pt' },
    [keyA]: { dtype: 'F16', shape: [r, inF], data_offsets: [0, 2 * aVals.length] },
    [keyB]: { dtype: 'F16', shape: [out, r], data_offsets: [2 * aVals.length, data.length] },
  });
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const file = path.join(tmp, 'adapter_model.safetensors');
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), data]));

  class Block extends nn.Module {
    declare fc: InstanceType<typeof nn.LoRALinear>;
    constructor() {
      super();
      this.registerModule('fc', new nn.LoRALinear(new nn.Linear(inF, out, { seed: 1 }), { r, alpha: 4 }));
    }
  }
  class Net extends nn.Module {
    declare block: Block;
    constructor() {
      super();
      this.registerModule('block', new Block());
    }
  }
  const net = new Net();
  const tensors = io.loadSafetensors(file);
  assert.is(tensors[keyA].dtype, 'float16');
  const res = io.loadLoraAdapter(net, { ...tensors, 'base_model.model.other.lora_A.weight': tensors[keyA] });
  assert.equal(res.loaded, ['block.fc']);
  assert.equal(res.unexpected, ['base_model.model.other.lora_A.weight']);
  assert.equal(Array.from(net.block.fc.loraA.dataSync()), aVals);
  assert.equal(Array.from(net.block.fc.loraB.dataSync()), bVals);
  // shapes are checked before anything is copied
  throwsLike(() => io.loadLoraAdapter(net, { [keyA]: tensors[keyB] }), RangeError, /'base_model\.model\.block\.fc\.lora_A\.weight' \[4, 2\] does not fit 'block\.fc' \(lora_A is \[2, 6\]\)/);
  S.dispose(tensors);
  net.dispose();
  assertNoLeak(before, 'PEFT adapter');
});

test('malformed files are RangeErrors', () => {
  const before = liveCounts();
  const mk = (header: string, data = Buffer.alloc(0)) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    return new Uint8Array(Buffer.concat([len, Buffer.from(header), data]));
  };
  throwsLike(() => io.parseSafetensors(new Uint8Array(3)), RangeError, /^structura\.io\.parseSafetensors: the file has 3 bytes, fewer than the 8-byte header length/);
  throwsLike(() => io.parseSafetensors(mk('{nope')), RangeError, /not valid JSON/);
  // a byte-order mark before the JSON: refused, as by the reference reader (TextDecoder dropped it)
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{}')]), blen = Buffer.alloc(8);
  blen.writeBigUInt64LE(BigInt(bom.length));
  throwsLike(() => io.parseSafetensors(new Uint8Array(Buffer.concat([blen, bom]))), RangeError, /not valid JSON/);
  throwsLike(() => io.parseSafetensors(mk(`{"a":{"dtype":"F32","shape":[${Array(65).fill(1).join(',')}],"data_offsets":[0,4]}}`, Buffer.alloc(4))), RangeError,
    /io\.parseSafetensors: tensor 'a' has an invalid shape .*at most 64 of them/);
  throwsLike(() => io.parseSafetensors(mk('{"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', Buffer.alloc(1))), RangeError, /dtype "F8"/);
  throwsLike(() => io.parseSafetensors(mk('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', Buffer.alloc(4))), RangeError, /needs 8 bytes/);
  throwsLike(() => io.parseSafetensors(mk('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}', Buffer.alloc(4))), RangeError, /outside the 4-byte buffer/);
  const big = mk('{}');
  new DataView(big.buffer).setBigUint64(0, 1n << 40n, true);
  throwsLike(() => io.parseSafetensors(big), RangeError, /exceeds the file/);
  // the tensors must tile the byte buffer (the format's rule; huggingface's reader refuses these too)
  const two = (a: number[], b: number[], n: number) => mk(`{"a":{"dtype":"F32","shape":[${(a[1] - a[0]) / 4}],"data_offsets":[${a}]},"b":{"dtype":"F32","shape":[${(b[1] - b[0]) / 4}],"data_offsets":[${b}]}}`, Buffer.alloc(n));
  throwsLike(() => io.parseSafetensors(two([0, 8], [4, 12], 12)), RangeError, /'b' starts at byte 4 of the buffer, expected 8 \(it overlaps/);
  throwsLike(() => io.parseSafetensors(two([4, 8], [8, 12], 12)), RangeError, /'a' starts at byte 4 of the buffer, expected 0 \(bytes in between belong to no tensor/);
  throwsLike(() => io.parseSafetensors(two([0, 4], [4, 8], 12)), RangeError, /end at byte 8 of the 12-byte buffer/);
  S.dispose(Object.values(io.parseSafetensors(two([4, 8], [0, 4], 8)).tensors)); // any order of entries is fine
  throwsLike(() => io.parseSafetensors(mk('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "a" :{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', Buffer.alloc(4))), RangeError, /names "a" twice/);
  throwsLike(() => io.parseSafetensors(mk('{"__metadata__":42}')), RangeError, /__metadata__ must be an object of strings, got 42/);
  throwsLike(() => io.parseSafetensors(mk('{"__metadata__":{"n":1}}')), RangeError, /__metadata__ must be an object of strings/);
  const badUtf8 = mk('{"a\u0000":{}}');
  badUtf8[11] = 0xff; // the NUL after the name's first letter
  throwsLike(() => io.parseSafetensors(badUtf8), RangeError, /not valid UTF-8/);
  throwsLike(() => io.parseSafetensors(mk('{"a":{"dtype":"toString","shape":[1],"data_offsets":[0,4]}}', Buffer.alloc(4))), RangeError, /dtype "toString", not one of/);
  throwsLike(() => io.parseSafetensors(mk('{"a":{"dtype":"F32","shape":[0,1e300],"data_offsets":[0,0]}}')), RangeError, /invalid shape \[0,1e\+300\]/);
  // a good tensor before a bad one is disposed
  throwsLike(() => io.parseSafetensors(mk('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I64","shape":[1],"data_offsets":[4,12]}}', Buffer.alloc(12))), RangeError, /dtype "I64"/);
  // files: a missing one, a directory
  throwsLike(() => io.loadSafetensors(path.join(tmp, 'missing.safetensors')), RangeError, /io\.loadSafetensors: 'path' ".*missing\.safetensors": ENOENT/);
  throwsLike(() => io.loadSafetensors(tmp), RangeError, /io\.loadSafetensors: 'path' .*EISDIR/);
  throwsLike(() => io.saveSafetensors(path.join(tmp, 'no', 'x.safetensors'), {}), RangeError, /io\.saveSafetensors: 'path' .*ENOENT/);
  assertNoLeak(before, 'malformed');
});

test('tensor names are plain keys ("__proto__" too); tensors and metadata must be plain objects', () => {
  const before = liveCounts();
  const named: Record<string, S.Tensor> = Object.create(null);
  named['__proto__'] = S.tensor([1, 2]);
  named.u = S.tensor([3]);
  const back = io.parseSafetensors(io.serializeSafetensors(named));
  assert.equal(Object.keys(back.tensors), ['__proto__', 'u']);
  assert.equal(Array.from(back.tensors['__proto__'].dataSync()), [1, 2]);
  assert.not.instance(Object.getPrototypeOf(back.tensors), S.Tensor);
  S.dispose([...Object.values(back.tensors), ...Object.values(named)]);
  const t = S.tensor([1]);
  throwsLike(() => io.serializeSafetensors(new Map([['a', t]]) as never), TypeError, /'tensors' must be a plain object \{name: Tensor\}, got a Map/);
  throwsLike(() => io.serializeSafetensors([t] as never), TypeError, /'tensors' must be a plain object/);
  throwsLike(() => io.serializeSafetensors({ t }, ['x'] as never), TypeError, /'metadata' must be a plain object/);
  throwsLike(() => io.loadLoraAdapter(new nn.Sequential(), new Map() as never), TypeError, /'tensors' must be a plain object/);
  t.dispose();
  assertNoLeak(before, 'plain keys');
});

test('loadLoraAdapter: a merged layer, two adapters for one layer, lora_bias and another device are refused or handled before anything is copied', () => {
  const before = liveCounts();
  const fc1 = new nn.LoRALinear(new nn.Linear(3, 2, { seed: 1 }), { r: 1, alpha: 1 });
  const fc2 = new nn.LoRALinear(new nn.Linear(3, 2, { seed: 2 }), { r: 1, alpha: 1 });
  const net = new nn.Sequential(fc1, fc2);
  const A = S.tensor([[1, 2, 3]]), B = S.tensor([[0.5], [0.25]]);
  const a0 = Array.from(fc1.loraA.dataSync());
  // two adapters' keys for the same parameter: refused, nothing copied
  throwsLike(() => io.loadLoraAdapter(net, { '0.lora_A.default.weight': A, '0.lora_A.other.weight': A }), RangeError, /'0\.lora_A\.default\.weight' and '0\.lora_A\.other\.weight' are both lora_A of '0'/);
  // PEFT's lora_bias: not read as an adapter named "bias"
  const bias = S.tensor([0, 0]);
  throwsLike(() => io.loadLoraAdapter(net, { '0.lora_B.bias': bias }), RangeError, /'0\.lora_B\.bias' is a bias of the adapter \(PEFT's lora_bias\)/);
  assert.equal(Array.from(fc1.loraA.dataSync()), a0);
  // a merged layer: loading would leave unmerge() subtracting another delta than the one merged
  fc2.merge();
  throwsLike(() => io.loadLoraAdapter(net, { '0.lora_A.weight': A, '1.lora_A.weight': A }), RangeError, /the layer '1' is merged; unmerge\(\) it before loading '1\.lora_A\.weight'/);
  assert.equal(Array.from(fc1.loraA.dataSync()), a0, 'layer 0 untouched');
  fc2.unmerge();
  // adapter tensors on the CPU, a layer on another device: moved, as PyTorch's copy_ does
  if (S.backend().cudaEmu) {
    const onDev = new nn.LoRALinear(new nn.Linear(3, 2, { seed: 3, device: 'cuda-emu' }), { r: 1, alpha: 1 });
    const mixed = new nn.Sequential(new nn.LoRALinear(new nn.Linear(3, 2, { seed: 4 }), { r: 1, alpha: 1 }), onDev);
    const res = io.loadLoraAdapter(mixed, { 'base_model.model.0.lora_A.weight': A, 'base_model.model.1.lora_A.weight': A, 'base_model.model.1.lora_B.weight': B });
    assert.equal(res.loaded, ['0', '1']);
    assert.is(onDev.loraA.device, 'cuda-emu');
    assert.equal(Array.from(onDev.loraA.dataSync()), [1, 2, 3]);
    assert.equal(Array.from(onDev.loraB.dataSync()), [0.5, 0.25]);
    mixed.dispose();
  }
  S.dispose([A, B, bias]);
  net.dispose();
  assertNoLeak(before, 'loadLoraAdapter refusals');
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
test.run();
