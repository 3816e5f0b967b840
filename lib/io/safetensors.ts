// io/safetensors.ts — tensors in the safetensors format (huggingface/safetensors), so weights and
// adapters move between structura and PyTorch / PEFT; and loadLoraAdapter, which puts a PEFT adapter
// (adapter_model.safetensors: `base_model.model.<layer>.lora_A.weight` [r, in], `….lora_B.weight`
// [out, r], optionally `….lora_magnitude_vector` for DoRA) onto the nn.LoRALinear layers of a module.
//
// The format: 8 bytes little-endian u64 N, then N bytes of JSON {name: {dtype, shape, data_offsets:
// [begin, end]}, "__metadata__"?: {string: string}} (padded with spaces to a multiple of 8), then the
// byte buffer; data_offsets are relative to the start of that buffer; elements are little-endian,
// row-major. dtypes: F64 F32 F16 BF16 I32 U8 U16 here.
import * as fs from 'node:fs';
import { native, DTYPE_CODES, DTYPE_BYTES, type DType } from '../native';
import { Tensor, fromHandle, checkTensor, CPU } from '../tensor';
import { describe, shapeStr, typeError, rangeError, numel, MAX_NUMEL, MAX_DIMS } from '../errors';
import { Module } from '../nn/module';
import { LoRALinear } from '../nn/lowrank';

const TO_ST: Record<DType, string> = {
  float64: 'F64', float32: 'F32', float16: 'F16', bfloat16: 'BF16', int32: 'I32', uint8: 'U8', uint16: 'U16',
};
const FROM_ST: Record<string, DType> = Object.fromEntries(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
  throw new Error('structura.io: safetensors needs a little-endian platform');

/** A plain {key: value} object (not an array, a Map or a class instance), else a TypeError. */
export function checkRecord(fn: string, arg: string, v: unknown, what: string): asserts v is Record<string, unknown> {
  const proto = v !== null && typeof v === 'object' ? Object.getPrototypeOf(v) : undefined;
  if (proto !== Object.prototype && proto !== null) typeError(fn, `'${arg}' must be a plain object ${what}, got ${describe(v)}`);
}

/** Runs a file-system call; its failure (no such file, a directory, no permission) as a RangeError
 * naming the path, the system error as its cause. */
export function onFile<T>(fn: string, path: string, io: () => T): T {
  try {
    return io();
  } catch (e) {
    throw new RangeError(`structura.${fn}: 'path' ${JSON.stringify(path)}: ${(e as Error).message}`, { cause: e });
  }
}

/** The keys of the header's top-level object in order, duplicates kept (JSON.parse keeps only the last
 * of a duplicated key, which the format forbids). `text` is valid JSON whose value is an object. */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === '\\') i++;
      if (depth === 1) {
        let j = i + 1;
        while (j < text.length && ' \t\n\r'.includes(text[j])) j++;
        if (text[j] === ':') keys.push(JSON.parse(text.slice(start, i + 1)));
      }
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return keys;
}

/** The file's bytes for `tensors` (and string `metadata`). */
export function serializeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const fn = 'io.saveSafetensors';
  checkRecord(fn, 'tensors', tensors, '{name: Tensor}');
  // null prototype: a tensor named "__proto__" is an entry like any other
  const header: Record<string, unknown> = Object.create(null);
  if (metadata !== undefined) {
    checkRecord(fn, 'metadata', metadata, '{key: string}');
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') typeError(fn, `metadata '${k}' must be a string, got ${describe(v)}`);
    header.__metadata__ = metadata;
  }
  const parts: Uint8Array[] = [];
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') rangeError(fn, "'__metadata__' is reserved and cannot name a tensor");
    checkTensor(fn, name, t);
    const raw = t.rawDataSync();
    const bytes = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    header[name] = { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [at, at + bytes.length] };
    parts.push(bytes);
    at += bytes.length;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const head = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + head.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const b of parts) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}

/** Writes `tensors` to `path` in the safetensors format. */
export function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  if (typeof path !== 'string') typeError('io.saveSafetensors', `'path' must be a string, got ${describe(path)}`);
  const bytes = serializeSafetensors(tensors, metadata);
  onFile('io.saveSafetensors', path, () => fs.writeFileSync(path, bytes));
}

/** Parses a safetensors file's bytes into CPU tensors (and its metadata). Malformed files are RangeErrors. */
export function parseSafetensors(bytes: Uint8Array): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  return parseImpl('io.parseSafetensors', bytes);
}

/** parseSafetensors with the messages naming fn (loadSafetensors names itself). */
function parseImpl(fn: string, bytes: Uint8Array): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  if (!(bytes instanceof Uint8Array)) typeError(fn, `'bytes' must be a Uint8Array, got ${describe(bytes)}`);
  if (bytes.length < 8) rangeError(fn, `the file has ${bytes.length} bytes, fewer than the 8-byte header length`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(bytes.length - 8)) rangeError(fn, `the header length ${n} exceeds the file (${bytes.length} bytes)`);
  const hlen = Number(n);
  let text: string;
  try {
    // ignoreBOM keeps a byte-order mark in the text, where JSON.parse refuses it (as the reference reader does)
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + hlen));
  } catch {
    return rangeError(fn, 'the header is not valid UTF-8');
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(text, function (this: unknown, key, value) {
      // the top level (and only it) as a null-prototype object: "__proto__" names an entry
      return key === '' && value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.assign(Object.create(null), value) : value;
    });
  } catch (e) {
    return rangeError(fn, `the header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) rangeError(fn, 'the header must be a JSON object');
  const seen = new Set<string>();
  for (const k of topLevelKeys(text)) {
    if (seen.has(k)) rangeError(fn, `the header names ${JSON.stringify(k)} twice`);
    seen.add(k);
  }
  const data = bytes.subarray(8 + hlen);
  const metadata = (header.__metadata__ ?? Object.create(null)) as Record<string, string>;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata) || !Object.values(metadata).every((v) => typeof v === 'string'))
    rangeError(fn, `__metadata__ must be an object of strings, got ${JSON.stringify(header.__metadata__)}`);
  // Check every entry first, then require the tensors to tile the byte buffer exactly (no overlap, no
  // hole, nothing past the end), as the format does, before any tensor is made.
  const entries: { name: string; dtype: DType; shape: number[]; off: [number, number] }[] = [];
  for (const name of Object.keys(header)) {
    if (name === '__metadata__') continue;
    const info = header[name];
    const { dtype: st, shape, data_offsets: off } = (info ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof st === 'string' && Object.hasOwn(FROM_ST, st) ? FROM_ST[st] : undefined;
    if (!dtype) rangeError(fn, `tensor '${name}' has dtype ${JSON.stringify(st)}, not one of ${Object.keys(FROM_ST).join(', ')}`);
    if (!Array.isArray(shape) || shape.length > MAX_DIMS || !shape.every((d) => Number.isInteger(d) && d >= 0 && d <= MAX_NUMEL) || numel(shape) > MAX_NUMEL)
      rangeError(fn, `tensor '${name}' has an invalid shape ${JSON.stringify(shape)} (sizes are integers, at most ${MAX_DIMS} of them and 2^40 elements)`);
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[1] < off[0] || off[1] > data.length)
      rangeError(fn, `tensor '${name}' has data_offsets ${JSON.stringify(off)} outside the ${data.length}-byte buffer`);
    const nbytes = numel(shape) * DTYPE_BYTES[dtype];
    if (off[1] - off[0] !== nbytes)
      rangeError(fn, `tensor '${name}' ${shapeStr(shape)} ${st} needs ${nbytes} bytes but data_offsets ${JSON.stringify(off)} span ${off[1] - off[0]}`);
    entries.push({ name, dtype, shape, off: off as [number, number] });
  }
  const order = entries.slice().sort((a, b) => a.off[0] - b.off[0] || a.off[1] - b.off[1]);
  let end = 0;
  for (const e of order) {
    if (e.off[0] !== end)
      rangeError(fn, `tensor '${e.name}' starts at byte ${e.off[0]} of the buffer, expected ${end} (${e.off[0] < end ? 'it overlaps the tensor before it' : 'bytes in between belong to no tensor'})`);
    end = e.off[1];
  }
  if (end !== data.length) rangeError(fn, `the tensors end at byte ${end} of the ${data.length}-byte buffer; the rest belongs to no tensor`);
  const tensors: Record<string, Tensor> = Object.create(null);
  try {
    for (const { name, dtype, shape, off } of entries) {
      // an owned, aligned copy (a Buffer's slice would be a view into Node's shared pool)
      const copy = new Uint8Array(off[1] - off[0]);
      copy.set(data.subarray(off[0], off[1]));
      const view =
        dtype === 'float64' ? new Float64Array(copy.buffer)
        : dtype === 'float32' ? new Float32Array(copy.buffer)
        : dtype === 'int32' ? new Int32Array(copy.buffer)
        : dtype === 'uint8' ? copy
        : new Uint16Array(copy.buffer);
      tensors[name] = fromHandle(native().fromArray(DTYPE_CODES[dtype], shape, view, CPU.type, CPU.index), dtype, shape, CPU);
    }
  } catch (e) {
    for (const t of Object.values(tensors)) t.dispose();
    throw e;
  }
  return { tensors, metadata };
}

/** Reads a safetensors file: {name: Tensor} on the CPU. */
export function loadSafetensors(path: string): Record<string, Tensor> {
  if (typeof path !== 'string') typeError('io.loadSafetensors', `'path' must be a string, got ${describe(path)}`);
  return parseImpl('io.loadSafetensors', onFile('io.loadSafetensors', path, () => fs.readFileSync(path))).tensors;
}

/** A PEFT adapter key: [base_model.model.]<path>.(lora_A|lora_B|lora_magnitude_vector)[.<adapter>][.weight|.bias]
 * — groups: the layer's path, the kind, the suffix. The adapter name, if any, is one segment that is not
 * "weight" or "bias". */
export const ADAPTER_KEY = /^(?:base_model\.model\.)?(.+)\.(lora_A|lora_B|lora_magnitude_vector)(?:\.(?!weight$|bias$)[A-Za-z0-9_-]+)?(\.weight|\.bias)?$/;

/** The submodule at a dotted path ("model.layers.0.q_proj"), or null. */
export function submodule(root: Module, path: string): Module | null {
  let m: unknown = root;
  for (const seg of path.split('.')) {
    if (!(m instanceof Module)) return null;
    m = (m as unknown as Record<string, unknown>)[seg];
  }
  return m instanceof Module ? m : null;
}

/**
 * Copies a PEFT adapter's tensors onto the nn.LoRALinear layers of `module` (converting dtypes and
 * moving devices, as PyTorch's copy_). Keys: `[base_model.model.]<path>.lora_A[.<adapter>].weight`,
 * `….lora_B….weight`, `<path>.lora_magnitude_vector[.<adapter>][.weight]` (DoRA); <path> names the
 * LoRALinear in `module`. Returns the layer paths loaded and the keys that did not match. Everything is
 * checked (shapes, one key per parameter, no merged layer) before anything is copied.
 */
export function loadLoraAdapter(module: Module, tensors: Record<string, Tensor>): { loaded: string[]; unexpected: string[] } {
  const fn = 'io.loadLoraAdapter';
  if (!(module instanceof Module)) typeError(fn, `'module' must be an nn.Module, got ${describe(module)}`);
  checkRecord(fn, 'tensors', tensors, '{name: Tensor}');
  const plan: [Tensor, Tensor, string][] = [];
  const owner = new Map<Tensor, string>();
  const loaded = new Set<string>();
  const unexpected: string[] = [];
  for (const key of Object.keys(tensors)) {
    const t = tensors[key];
    checkTensor(fn, key, t);
    const m = ADAPTER_KEY.exec(key);
    const layer = m ? submodule(module, m[1]) : null;
    if (!m || !(layer instanceof LoRALinear)) {
      unexpected.push(key);
      continue;
    }
    if (m[3] === '.bias')
      rangeError(fn, `'${key}' is a bias of the adapter (PEFT's lora_bias), which nn.LoRALinear does not have`);
    if (layer.merged) rangeError(fn, `the layer '${m[1]}' is merged; unmerge() it before loading '${key}'`);
    const dst = m[2] === 'lora_A' ? layer.loraA : m[2] === 'lora_B' ? layer.loraB : layer.magnitude;
    if (!dst) rangeError(fn, `'${key}' is a DoRA magnitude but the layer '${m[1]}' was made without dora`);
    const want = dst.shape, got = t.shape;
    if (want.length !== got.length || want.some((d, i) => d !== got[i]))
      rangeError(fn, `'${key}' ${shapeStr(got)} does not fit '${m[1]}' (${m[2]} is ${shapeStr(want)})`);
    const prior = owner.get(dst);
    if (prior !== undefined) rangeError(fn, `'${prior}' and '${key}' are both ${m[2]} of '${m[1]}' (two adapters in one file? load one)`);
    owner.set(dst, key);
    plan.push([dst, t, key]);
    loaded.add(m[1]);
  }
  // Sources on another device are moved first, all of them, so that a failure leaves no layer half loaded.
  const moved: Tensor[] = [];
  try {
    const srcs = plan.map(([dst, src]) => {
      if (src.device === dst.device) return src;
      const c = src.to(dst.device);
      moved.push(c);
      return c;
    });
    plan.forEach(([dst], i) => native().copyInto(dst._h, srcs[i]._h));
  } finally {
    for (const c of moved) c.dispose();
  }
  return { loaded: [...loaded], unexpected };
}
