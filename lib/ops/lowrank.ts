// ops/lowrank.ts — the lowrank family (DESIGN §4) and its gradients, on csrc/ops/lowrank.cc.
//
//   linear(x, A [r, in], B [out, r], {bias?, rank?})           y = (x·A[:k]ᵀ)·B[:, :k]ᵀ + bias, k = rank ?? r
//   lora(x, W [out, in], A, B, {scale = 1, bias?, rank?})      y = x·Wᵀ + scale·(x·A[:k]ᵀ)·B[:, :k]ᵀ + bias
//   loraBatched(x [M, in], W, A [E, r, in], B [E, out, r], ids int32 [M], {scale, bias?})   row m uses adapter ids[m] (−1: none)
//   loraMixture(x [M, in], W, A, B, gates [M, E], {scale, bias?})   y = x·Wᵀ + Σ_e gates[:, e]·scale·(x·A_eᵀ)·B_eᵀ + bias
//   sparsePlusLowRank(x, A, B, S {indices, values, shape}, {bias?})   y = x·(B·A + S)ᵀ + bias
//   sparse(S)                                                   S with its support checked and compressed once
//   svd(W, {rank?, energy?})                                    {A, B, s}, W ≈ B·A (no grad)
// x may be [..., in] for linear, lora and sparsePlusLowRank (the leading dimensions are rows).
// The rank prefix is read in place by the kernel (no copy). W gets a gradient only if it requires one.
//
// Gradients (P = g·B, T = x·Aᵀ recomputed rather than kept):
//   dX = g·W + scale·P·A,   dA = scale·Pᵀ·x,   dB = scale·gᵀ·T,   dW = gᵀ·x,   dbias = Σ_rows g;
//   with a rank prefix k < r, dA and dB are zero outside the first k rows / columns. The mixture weights
//   P_e and T_e by the gates (batched LoRA is the mixture with one-hot gates), and dgates[:, e] =
//   scale·Σ_j P_e ⊙ T_e. sparsePlusLowRank adds g·S to dX (the transposed SpMM) and gives S.values the
//   SDDMM of g and x at S's support only; the dense [out, in] matrix is never formed.
import { native, DTYPE_CODES, type PatternHandle } from '../native';
import { Tensor, fromHandle, checkTensor, checkSameKind, checkFloating } from '../tensor';
import { record, needsGrad } from '../autograd';
import { shapeStr, describe, typeError, rangeError, checkNumber, optionsOf, numel } from '../errors';
import { matmul } from './dense';
import { mul, add } from './elementwise';
import { sum } from './reduce';
import { reshape, transpose, narrow, concat, contiguous } from './shape';
import { zeros, tensor } from './creation';

export interface LowRankLinearOptions {
  bias?: Tensor | null;
  /** Use the first `rank` rows of A and columns of B (default: all r). */
  rank?: number;
}
export interface LoraOptions extends LowRankLinearOptions {
  scale?: number;
}
export interface LoraBatchOptions {
  scale?: number;
  /** [out], added to every row in the GEMM's epilogue (as lora's). */
  bias?: Tensor | null;
}
/** A sparse [out, in] matrix: sorted, unique int32 flat indices row·in + col, and their values. */
export interface SparseMatrix {
  indices: Tensor;
  values: Tensor;
  shape: readonly [number, number] | number[];
}
/** A SparseMatrix whose support was checked, copied and compressed once (lowrank.sparse). */
export interface PreparedSparseMatrix extends SparseMatrix {
  readonly shape: readonly [number, number];
  /** Frees the pattern (its copy of the indices and their compressed forms) now; values stay the caller's. */
  dispose(): void;
}
interface SvdCommonOptions {
  /** Keep this many singular triplets. */
  rank?: number;
  /** Keep the fewest triplets whose σ² sum to at least this fraction of ‖W‖²_F (0 < energy ≤ 1). */
  energy?: number;
  /** Seed of the random sketch (default 0). */
  seed?: number;
  /** Power iterations of the range finder (default 4). */
  powerIters?: number;
}
/** lowrank.svd's options: `rank`, `energy` or both (the smaller k wins). */
export type SvdOptions = SvdCommonOptions & ({ rank: number } | { energy: number });

// ---------------------------------------------------------------------------------------------
// argument checks

function checkNd(fn: string, arg: string, t: Tensor, nd: number, what: string): void {
  if (t._shape.length !== nd) rangeError(fn, `'${arg}' must be ${what}, got ${shapeStr(t._shape)}`);
}

/** opts (optional) must be an object of the known keys: loraBatched's {bias} was ignored silently. */
function checkOpts(fn: string, opts: unknown, known: readonly string[]): Record<string, unknown> {
  return optionsOf(fn, opts as Record<string, unknown> | undefined, known);
}

function scaleOf(fn: string, v: unknown): number {
  if (v === undefined) return 1;
  return checkNumber(fn, 'scale', v, { finite: true });
}

function biasOf(fn: string, v: unknown, out: number): Tensor | null {
  if (v === undefined || v === null) return null;
  checkTensor(fn, 'bias', v);
  if (v._shape.length !== 1 || v._shape[0] !== out) rangeError(fn, `'bias' ${shapeStr(v._shape)} must have shape [${out}] (out)`);
  return v;
}

/** x [..., in] with its last dimension `inF`; returns the rows M. */
function rowsOf(fn: string, x: Tensor, inF: number, from: string): number {
  if (x._shape.length === 0) rangeError(fn, `'x' must be [..., in], got a 0-d tensor`);
  const last = x._shape[x._shape.length - 1];
  if (last !== inF) rangeError(fn, `'x' ${shapeStr(x._shape)} has ${last} features but ${from} takes in = ${inF}`);
  return numel(x._shape.slice(0, -1));
}

function checkFactors(fn: string, x: Tensor, A: Tensor, B: Tensor): { r: number; inF: number; out: number } {
  checkNd(fn, 'A', A, 2, '[r, in]');
  checkNd(fn, 'B', B, 2, '[out, r]');
  const [r, inF] = A._shape;
  const out = B._shape[0];
  if (r < 1) rangeError(fn, `'A' ${shapeStr(A._shape)} has rank r = 0; r must be at least 1`);
  if (B._shape[1] !== r) rangeError(fn, `'B' ${shapeStr(B._shape)} must be [out, r] with r = ${r} (from 'A' ${shapeStr(A._shape)})`);
  rowsOf(fn, x, inF, `'A' ${shapeStr(A._shape)}`);
  return { r, inF, out };
}

function rankOf(fn: string, v: unknown, r: number, A: Tensor): number {
  if (v === undefined) return r;
  if (typeof v !== 'number') typeError(fn, `'rank' must be an integer, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < 1 || v > r)
    rangeError(fn, `'rank' must be an integer in [1, ${r}] (r of 'A' ${shapeStr(A._shape)}), got ${v}`);
  return v;
}

/** Runs core on x viewed as [M, in] and gives the result x's leading dimensions. */
function overRows(x: Tensor, inF: number, out: number, core: (x2: Tensor) => Tensor): Tensor {
  if (x._shape.length === 2) return core(x);
  const lead = x._shape.slice(0, -1);
  const x2 = reshape(x, [numel(lead), inF]);
  try {
    const y2 = core(x2);
    const y = reshape(y2, [...lead, out]);
    y2.dispose();
    return y;
  } finally {
    x2.dispose();
  }
}

const scaled = (t: Tensor, s: number): Tensor => (s === 1 ? t : mul(t, s));

/** g [rows, k] padded with zeros to [rows, n] along `axis` (a rank prefix's gradient). */
function padTo(g: Tensor, axis: 0 | 1, n: number): Tensor {
  const k = g._shape[axis];
  if (k === n) return g;
  const shape = g._shape.slice();
  shape[axis] = n - k;
  return concat([g, zeros(shape, { dtype: g.dtype, device: g.device })], axis);
}

// ---------------------------------------------------------------------------------------------
// linear and lora

function loraCore(name: string, x: Tensor, W: Tensor | null, A: Tensor, B: Tensor, k: number, scale: number, bias: Tensor | null): Tensor {
  const [M] = x._shape;
  const [r] = A._shape;
  const N = B._shape[0];
  const h = native().lowrankLora(x._h, W ? W._h : null, A._h, B._h, k, scale, bias ? bias._h : null);
  const out = fromHandle(h, x.dtype, [M, N], x._dev);
  const save = W ? [x, A, B, W] : [x, A, B];
  return record(name, [x, W, A, B, bias], out, save, (g, saved, needs) => {
    const [xs, As, Bs, Ws] = saved;
    const Ak = k === r ? As : narrow(As, 0, 0, k);
    const Bk = k === r ? Bs : narrow(Bs, 1, 0, k);
    const P = needs[0] || needs[2] ? matmul(g, Bk) : null; // [M, k]
    let dx: Tensor | null = null;
    if (needs[0]) {
      const low = scaled(matmul(P!, Ak), scale);
      dx = Ws ? add(matmul(g, Ws), low) : low;
    }
    const gT = needs[1] || needs[3] ? transpose(g, 0, 1) : null;
    const dW = needs[1] ? matmul(gT!, xs) : null;
    const dA = needs[2] ? padTo(scaled(matmul(transpose(P!, 0, 1), xs), scale), 0, r) : null;
    const dB = needs[3] ? padTo(scaled(matmul(gT!, matmul(xs, transpose(Ak, 0, 1))), scale), 1, r) : null;
    const db = needs[4] ? sum(g, 0) : null;
    return [dx, dW, dA, dB, db];
  });
}

/**
 * A factorized linear layer: y = (x·A[:k]ᵀ)·B[:, :k]ᵀ + bias with A [r, in], B [out, r], k = rank ?? r.
 * The prefix is read in place (Maestro's ordered truncation costs nothing).
 */
export function linear(x: Tensor, A: Tensor, B: Tensor, opts?: LowRankLinearOptions): Tensor {
  const fn = 'lowrank.linear';
  checkTensor(fn, 'x', x);
  checkTensor(fn, 'A', A);
  checkTensor(fn, 'B', B);
  const o = checkOpts(fn, opts, ['bias', 'rank']);
  checkSameKind(fn, ['x', 'A', 'B'], [x, A, B]);
  checkFloating(fn, 'x', x);
  const { r, inF, out } = checkFactors(fn, x, A, B);
  const bias = biasOf(fn, o.bias, out);
  if (bias) checkSameKind(fn, ['x', 'bias'], [x, bias]);
  const k = rankOf(fn, o.rank, r, A);
  return overRows(x, inF, out, (x2) => loraCore('LowRankLinear', x2, null, A, B, k, 1, bias));
}

/**
 * LoRA: y = x·Wᵀ + scale·(x·A[:k]ᵀ)·B[:, :k]ᵀ + bias, W [out, in], A [r, in], B [out, r]. Fused: the
 * rank-k term is added in the epilogue of the one pass over W.
 */
export function lora(x: Tensor, W: Tensor, A: Tensor, B: Tensor, opts?: LoraOptions): Tensor {
  const fn = 'lowrank.lora';
  checkTensor(fn, 'x', x);
  checkTensor(fn, 'W', W);
  checkTensor(fn, 'A', A);
  checkTensor(fn, 'B', B);
  const o = checkOpts(fn, opts, ['bias', 'rank', 'scale']);
  checkSameKind(fn, ['x', 'W', 'A', 'B'], [x, W, A, B]);
  checkFloating(fn, 'x', x);
  checkNd(fn, 'W', W, 2, '[out, in]');
  const { r, inF, out } = checkFactors(fn, x, A, B);
  if (W._shape[1] !== inF)
    rangeError(fn, `'W' ${shapeStr(W._shape)} takes in = ${W._shape[1]} but 'A' ${shapeStr(A._shape)} takes in = ${inF}`);
  if (W._shape[0] !== out)
    rangeError(fn, `'W' ${shapeStr(W._shape)} has out = ${W._shape[0]} but 'B' ${shapeStr(B._shape)} has out = ${out}`);
  const bias = biasOf(fn, o.bias, out);
  if (bias) checkSameKind(fn, ['x', 'bias'], [x, bias]);
  const k = rankOf(fn, o.rank, r, A);
  const scale = scaleOf(fn, o.scale);
  return overRows(x, inF, out, (x2) => loraCore('Lora', x2, W, A, B, k, scale, bias));
}

// ---------------------------------------------------------------------------------------------
// many adapters: batched (per-row ids) and mixture (per-row gates)

/**
 * The checks both multi-adapter ops share: x, W, A, B (and any `same` tensors that must match their
 * dtype and device) are live tensors of one floating dtype and device with stacked-adapter shapes.
 */
function checkStacked(
  fn: string, x: Tensor, W: Tensor, A: Tensor, B: Tensor, same: Record<string, Tensor> = {},
): { M: number; E: number; r: number; inF: number; out: number } {
  checkTensor(fn, 'x', x);
  checkTensor(fn, 'W', W);
  checkTensor(fn, 'A', A);
  checkTensor(fn, 'B', B);
  for (const [name, t] of Object.entries(same)) checkTensor(fn, name, t);
  checkSameKind(fn, ['x', 'W', 'A', 'B', ...Object.keys(same)], [x, W, A, B, ...Object.values(same)]);
  checkFloating(fn, 'x', x);
  checkNd(fn, 'x', x, 2, '[M, in]');
  checkNd(fn, 'W', W, 2, '[out, in]');
  checkNd(fn, 'A', A, 3, '[E, r, in]');
  checkNd(fn, 'B', B, 3, '[E, out, r]');
  const [M, inF] = x._shape;
  const [out, wIn] = W._shape;
  const [E, r, aIn] = A._shape;
  if (wIn !== inF) rangeError(fn, `'x' ${shapeStr(x._shape)} has ${inF} features but 'W' ${shapeStr(W._shape)} takes in = ${wIn}`);
  if (aIn !== inF) rangeError(fn, `'A' ${shapeStr(A._shape)} must be [E, r, in] with in = ${inF} (from 'x' ${shapeStr(x._shape)})`);
  if (r < 1) rangeError(fn, `'A' ${shapeStr(A._shape)} has rank r = 0; r must be at least 1`);
  if (B._shape[0] !== E || B._shape[1] !== out || B._shape[2] !== r)
    rangeError(fn, `'B' ${shapeStr(B._shape)} must be [E, out, r] = [${E}, ${out}, ${r}] (from 'A' ${shapeStr(A._shape)} and 'W' ${shapeStr(W._shape)})`);
  return { M, E, r, inF, out };
}

/** The backward of the mixture with gates G [M, E] (saved or one-hot): needs and the result are
 * [x, W, A, B, gates, bias]; dgates only if wanted. */
function mixtureBackward(g: Tensor, x: Tensor, W: Tensor, A: Tensor, B: Tensor, G: Tensor, scale: number, needs: readonly boolean[]): (Tensor | null)[] {
  const [E] = A._shape;
  const [M] = x._shape;
  const Ge = reshape(contiguous(transpose(G, 0, 1)), [E, M, 1]);
  const P = matmul(g, B); // [E, M, r]
  const GP = mul(P, Ge);
  const gT = transpose(g, 0, 1);
  const dx = needs[0] ? add(matmul(g, W), scaled(sum(matmul(GP, A), 0), scale)) : null;
  const dW = needs[1] ? matmul(gT, x) : null;
  const dA = needs[2] ? scaled(matmul(transpose(GP, 1, 2), x), scale) : null;
  const T = needs[3] || needs[4] ? matmul(x, transpose(A, 1, 2)) : null; // [E, M, r]
  const dB = needs[3] ? scaled(matmul(gT, mul(T!, Ge)), scale) : null;
  const dG = needs[4] ? contiguous(transpose(scaled(sum(mul(P, T!), 2), scale), 0, 1)) : null;
  const db = needs[5] ? sum(g, 0) : null;
  return [dx, dW, dA, dB, dG, db];
}

/**
 * Many adapters in one batch (Punica's BGMV/SGMV): row m of x [M, in] uses adapter ids[m] of
 * A [E, r, in], B [E, out, r] (−1: the base layer only). y = x·Wᵀ + scale·(x·A_idᵀ)·B_idᵀ + bias. ids may be on
 * x's device or on the CPU; the launch is planned from their values on the host, so ids on a device
 * are read back (the host waits for the device), and ids on the CPU are not.
 */
export function loraBatched(x: Tensor, W: Tensor, A: Tensor, B: Tensor, ids: Tensor, opts?: LoraBatchOptions): Tensor {
  const fn = 'lowrank.loraBatched';
  checkTensor(fn, 'ids', ids);
  const o = checkOpts(fn, opts, ['scale', 'bias']);
  const { M, E, out } = checkStacked(fn, x, W, A, B);
  const bias = biasOf(fn, o.bias, out);
  if (bias) checkSameKind(fn, ['x', 'bias'], [x, bias]);
  if (ids.dtype !== 'int32') typeError(fn, `'ids' must be int32, got ${ids.dtype}`);
  // ids on the CPU serve x on any device: the op plans from host ids without reading them back
  if (ids._dev.name !== 'cpu' && (ids._dev.type !== x._dev.type || ids._dev.index !== x._dev.index)) typeError(fn, `'ids' is on ${ids.device} but 'x' is on ${x.device} (ids may be on the CPU)`);
  if (ids._shape.length !== 1 || ids._shape[0] !== M) rangeError(fn, `'ids' ${shapeStr(ids._shape)} must have shape [${M}] (rows of 'x' ${shapeStr(x._shape)})`);
  const scale = scaleOf(fn, o.scale);
  // The native op checks the ids' range (the same RangeError) and plans from them: one read to the host
  // when they are on the device (a synchronization), none when they are on the CPU.
  // Only training reads them here again, for the backward's one-hot, taken now (ids may change later).
  const h = native().lowrankLoraBatched(x._h, W._h, A._h, B._h, ids._h, scale, bias ? bias._h : null);
  const y = fromHandle(h, x.dtype, [M, out], x._dev);
  if (!needsGrad(x, W, A, B, bias)) return y;
  const idv = ids.dataSync() as Int32Array;
  return record('LoraBatched', [x, W, A, B, bias], y, [x, W, A, B], (g, [xs, Ws, As, Bs], needs) => {
    // the mixture's backward with one-hot gates (zero rows for −1)
    const oneHot = new Float64Array(M * E);
    for (let m = 0; m < M; m++) if (idv[m] >= 0) oneHot[m * E + idv[m]] = 1;
    const G = tensor(oneHot, { shape: [M, E], dtype: x.dtype, device: x.device });
    const [dx, dW, dA, dB, , db] = mixtureBackward(g, xs, Ws, As, Bs, G, scale, [needs[0], needs[1], needs[2], needs[3], false, needs[4]]);
    return [dx, dW, dA, dB, db];
  });
}

/** X-LoRA's mixture: y = x·Wᵀ + Σ_e gates[:, e] ⊙ scale·(x·A_eᵀ)·B_eᵀ + bias, gates [M, E]. Gradients for the gates too. */
export function loraMixture(x: Tensor, W: Tensor, A: Tensor, B: Tensor, gates: Tensor, opts?: LoraBatchOptions): Tensor {
  const fn = 'lowrank.loraMixture';
  const o = checkOpts(fn, opts, ['scale', 'bias']);
  const { M, E, out } = checkStacked(fn, x, W, A, B, { gates });
  const bias = biasOf(fn, o.bias, out);
  if (bias) checkSameKind(fn, ['x', 'bias'], [x, bias]);
  if (gates._shape.length !== 2 || gates._shape[0] !== M || gates._shape[1] !== E)
    rangeError(fn, `'gates' ${shapeStr(gates._shape)} must be [M, E] = [${M}, ${E}] (from 'x' ${shapeStr(x._shape)} and 'A' ${shapeStr(A._shape)})`);
  const scale = scaleOf(fn, o.scale);
  const h = native().lowrankLoraMixture(x._h, W._h, A._h, B._h, gates._h, scale, bias ? bias._h : null);
  const y = fromHandle(h, x.dtype, [M, out], x._dev);
  return record('LoraMixture', [x, W, A, B, gates, bias], y, [x, W, A, B, gates], (g, [xs, Ws, As, Bs, Gs], needs) =>
    mixtureBackward(g, xs, Ws, As, Bs, Gs, scale, needs),
  );
}

// ---------------------------------------------------------------------------------------------
// sparse plus low rank

/** Checks S's parts against [out, in]; returns nnz. Whether the indices are sorted, unique and in range is checked natively. */
function checkSparse(fn: string, S: unknown, out: number, inF: number, x: Tensor, xName = 'x'): number {
  if (S === null || typeof S !== 'object') typeError(fn, `'S' must be {indices, values, shape}, got ${describe(S)}`);
  const { indices, values, shape } = S as SparseMatrix;
  checkTensor(fn, 'S.indices', indices);
  checkTensor(fn, 'S.values', values);
  if (!Array.isArray(shape) || shape.length !== 2) typeError(fn, `'S.shape' must be [out, in], got ${describe(shape)}`);
  if (shape[0] !== out || shape[1] !== inF)
    rangeError(fn, `'S.shape' ${shapeStr(shape)} must be [out, in] = [${out}, ${inF}] (from 'B' and 'A')`);
  if (indices.dtype !== 'int32') typeError(fn, `'S.indices' must be int32, got ${indices.dtype}`);
  if (values !== x) checkSameKind(fn, [xName, 'S.values'], [x, values]);
  if (indices._dev.type !== x._dev.type || indices._dev.index !== x._dev.index) typeError(fn, `'S.indices' is on ${indices.device} but '${xName}' is on ${x.device}`);
  if (indices._shape.length !== 1) rangeError(fn, `'S.indices' must be 1-D [nnz], got ${shapeStr(indices._shape)}`);
  const nnz = indices._shape[0];
  if (values._shape.length !== 1 || values._shape[0] !== nnz)
    rangeError(fn, `'S.values' ${shapeStr(values._shape)} must have shape [${nnz}] (the length of 'S.indices')`);
  if (out * inF > 2 ** 31 - 1) rangeError(fn, `'S.shape' ${shapeStr(shape)} has more positions than int32 indices can address`);
  // The indices themselves (in range, sorted, unique) are scanned natively, once: on a device that is a
  // read back to the host, which a second scan here would repeat.
  return nnz;
}

const PATTERN = Symbol('structura.sparsePattern');
/** The indices tensor each pattern was made from: a pattern travels with spreads ({...S, values}), and
 * must not with other indices. */
const patternIndices = new WeakMap<PatternHandle, Tensor>();
/** Each pattern's own copy of its indices, taken with it: a graph saves this one, so that a backward
 * after the pattern's dispose() computes from the same support (the caller's indices may have been
 * written since). Not in any tidy scope; disposed with the pattern (the graph's alias keeps it). */
const patternSnapshot = new WeakMap<PatternHandle, Tensor>();
/** Patterns whose dispose() ran: a graph recorded before that falls back to its saved snapshot. */
const disposedPatterns = new WeakSet<PatternHandle>();
function patternOf(fn: string, S: SparseMatrix): PatternHandle | undefined {
  const h = (S as { [PATTERN]?: PatternHandle })[PATTERN];
  if (h !== undefined && patternIndices.get(h) !== S.indices)
    typeError(fn, "'S' carries the prepared pattern (lowrank.sparse) of other indices than its 'S.indices': prepare it again");
  return h;
}

/**
 * S with its support checked (in range, sorted, unique) and copied once — and on a device compressed
 * (CSR and CSC) for the spmm — for sparsePlusLowRank's forward and backward, which otherwise scan the
 * indices on every call (on a device: a read back to the host, which waits for the device) and
 * compress them again. Later writes to `S.indices` are not seen; `S.values` is read on every call (it
 * is what trains), and the pattern goes with a spread ({...S, values: other} reuses it; other indices
 * with it are refused). dispose() frees the pattern now (else it goes with the object).
 */
export function sparse(S: SparseMatrix): PreparedSparseMatrix {
  const fn = 'lowrank.sparse';
  if (S === null || typeof S !== 'object') typeError(fn, `'S' must be {indices, values, shape}, got ${describe(S)}`);
  const { indices, values, shape } = S;
  checkTensor(fn, 'S.values', values);
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 0))
    typeError(fn, `'S.shape' must be [out, in] (two non-negative integers), got ${describe(shape)}`);
  const [rows, cols] = shape as [number, number];
  checkSparse(fn, S, rows, cols, values, 'S.values');
  const h = native().lowrankSparsePattern(indices._h, rows, cols);
  patternIndices.set(h, indices);
  const snapshot = fromHandle(native().cast(indices._h, DTYPE_CODES.int32), 'int32', indices._shape, indices._dev, false);
  patternSnapshot.set(h, snapshot);
  let disposed = false;
  return Object.freeze({
    indices, values, shape: Object.freeze([rows, cols] as const),
    dispose() {
      if (!disposed) {
        native().lowrankSparsePatternDispose(h);
        snapshot.dispose();
      }
      disposed = true;
      disposedPatterns.add(h);
    },
    [PATTERN]: h,
  }) as PreparedSparseMatrix;
}

/**
 * SLTrain's layer without the dense matrix: y = x·(B·A + S)ᵀ + bias, A [r, in], B [out, r], S sparse
 * [out, in]. Forward: (x·Aᵀ)·Bᵀ + an SpMM; backward: SpMMs and an SDDMM for S.values (its support only).
 */
export function sparsePlusLowRank(x: Tensor, A: Tensor, B: Tensor, S: SparseMatrix, opts?: { bias?: Tensor | null }): Tensor {
  const fn = 'lowrank.sparsePlusLowRank';
  checkTensor(fn, 'x', x);
  checkTensor(fn, 'A', A);
  checkTensor(fn, 'B', B);
  const o = checkOpts(fn, opts, ['bias']);
  checkSameKind(fn, ['x', 'A', 'B'], [x, A, B]);
  checkFloating(fn, 'x', x);
  const { inF, out } = checkFactors(fn, x, A, B);
  checkSparse(fn, S, out, inF, x);
  const bias = biasOf(fn, o.bias, out);
  if (bias) checkSameKind(fn, ['x', 'bias'], [x, bias]);
  const { indices, values } = S;
  const pattern = patternOf(fn, S);  // lowrank.sparse: checked and compressed once
  return overRows(x, inF, out, (x2) => {
    const M = x2._shape[0];
    const h = native().lowrankSparsePlusLowRank(x2._h, A._h, B._h, pattern ?? indices._h, values._h, bias ? bias._h : null);
    const y = fromHandle(h, x.dtype, [M, out], x._dev);
    const saved = pattern !== undefined ? patternSnapshot.get(pattern)! : indices;
    return record('SparsePlusLowRank', [x2, A, B, values, bias], y, [x2, A, B, saved, values], (g, [xs, As, Bs, is, vs], needs) => {
      // the prepared pattern, unless disposed since the forward (then its snapshot of the indices,
      // which the graph saved: the same support, checked and compressed again), so disposing it never
      // breaks a later backward
      const support = pattern !== undefined && !disposedPatterns.has(pattern) ? pattern : is._h;
      const P = needs[0] || needs[1] ? matmul(g, Bs) : null; // [M, r]
      let dx: Tensor | null = null;
      if (needs[0]) {
        const gS = fromHandle(native().lowrankSpmm(g._h, support, vs._h, out, inF, true), g.dtype, [M, inF], g._dev);
        dx = add(matmul(P!, As), gS);
      }
      const dA = needs[1] ? matmul(transpose(P!, 0, 1), xs) : null;
      const dB = needs[2] ? matmul(transpose(g, 0, 1), matmul(xs, transpose(As, 0, 1))) : null;
      const dv = needs[3] ? fromHandle(native().lowrankSddmm(g._h, xs._h, support), g.dtype, [is._shape[0]], g._dev) : null;
      const db = needs[4] ? sum(g, 0) : null;
      return [dx, dA, dB, dv, db];
    });
  });
}

// ---------------------------------------------------------------------------------------------
// svd

/**
 * W [out, in] ≈ B·A, B [out, k], A [k, in], from a randomized truncated SVD accumulated in float64
 * (Halko–Martinsson–Tropp range finder with power iterations, then an exact small SVD by one-sided
 * Jacobi). Truncated by `rank` and/or `energy` (kept fraction of Σσ²). The split is balanced:
 * B = U·√Σ, A = √Σ·Vᵀ; s holds σ (descending). No grad.
 */
export function svd(W: Tensor, opts: SvdOptions): { A: Tensor; B: Tensor; s: Tensor } {
  const fn = 'lowrank.svd';
  checkTensor(fn, 'W', W);
  const o = checkOpts(fn, opts, ['rank', 'energy', 'seed', 'powerIters']) as SvdCommonOptions;
  checkFloating(fn, 'W', W);
  checkNd(fn, 'W', W, 2, '[out, in]');
  const [m, n] = W._shape;
  const mn = Math.min(m, n);
  if (mn < 1) rangeError(fn, `'W' ${shapeStr(W._shape)} must not be empty`);
  if (o.rank === undefined && o.energy === undefined) typeError(fn, "give 'rank' or 'energy' (or both)");
  let rank = 0;
  if (o.rank !== undefined) {
    if (typeof o.rank !== 'number') typeError(fn, `'rank' must be an integer, got ${describe(o.rank)}`);
    if (!Number.isInteger(o.rank) || o.rank < 1 || o.rank > mn)
      rangeError(fn, `'rank' must be an integer in [1, ${mn}] (min of 'W' ${shapeStr(W._shape)}), got ${o.rank}`);
    rank = o.rank;
  }
  let energy = -1;
  if (o.energy !== undefined) {
    if (typeof o.energy !== 'number') typeError(fn, `'energy' must be a number, got ${describe(o.energy)}`);
    if (!(o.energy > 0 && o.energy <= 1)) rangeError(fn, `'energy' must be in (0, 1], got ${o.energy}`);
    energy = o.energy;
  }
  const seed = o.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) rangeError(fn, `'seed' must be a non-negative integer, got ${describe(seed)}`);
  const iters = o.powerIters ?? 4;
  if (typeof iters !== 'number' || !Number.isInteger(iters) || iters < 0 || iters > 64)
    rangeError(fn, `'powerIters' must be an integer in [0, 64], got ${describe(iters)}`);
  const r = native().lowrankSvd(W._h, rank, energy, seed, iters);
  const read = (h: typeof r.A, shape: number[]): Tensor => fromHandle(h, W.dtype, shape, W._dev);
  // the number of kept triplets k is the length of s
  const k = native().read(r.s).length;
  return { A: read(r.A, [k, n]), B: read(r.B, [m, k]), s: read(r.s, [k]) };
}

