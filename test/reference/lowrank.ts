// lowrank.ts — float64 references of the lowrank family, written the obvious way: densify the
// structure (B·A, W + scale·B·A, B·A + S, one adapter per row) and multiply with a plain loop. The test
// oracle only; it shares no code with the kernels.
import { type NDArray, numel } from './ops';

/** y [..., out] = x [..., in] · Wᵀ for a dense W [out, in] given as row-major data, + bias. */
function denseLinear(x: NDArray, W: Float64Array, out: number, inF: number, bias?: NDArray | null): NDArray {
  const M = numel(x.shape.slice(0, -1));
  const y = new Float64Array(M * out);
  for (let m = 0; m < M; m++)
    for (let j = 0; j < out; j++) {
      let s = bias ? bias.data[j] : 0;
      for (let c = 0; c < inF; c++) s += x.data[m * inF + c] * W[j * inF + c];
      y[m * out + j] = s;
    }
  return { data: y, shape: [...x.shape.slice(0, -1), out] };
}

/** B[:, :k]·A[:k] [out, in], scaled. */
export function densify(A: NDArray, B: NDArray, k = A.shape[0], scale = 1): Float64Array {
  const [r, inF] = A.shape;
  const out = B.shape[0];
  const W = new Float64Array(out * inF);
  for (let j = 0; j < out; j++)
    for (let c = 0; c < inF; c++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += B.data[j * r + p] * A.data[p * inF + c];
      W[j * inF + c] = scale * s;
    }
  return W;
}

export function linear(x: NDArray, A: NDArray, B: NDArray, bias: NDArray | null = null, k = A.shape[0]): NDArray {
  return denseLinear(x, densify(A, B, k), B.shape[0], A.shape[1], bias);
}

export function lora(x: NDArray, W: NDArray, A: NDArray, B: NDArray, scale = 1, bias: NDArray | null = null, k = A.shape[0]): NDArray {
  const D = densify(A, B, k, scale);
  for (let i = 0; i < D.length; i++) D[i] += W.data[i];
  return denseLinear(x, D, W.shape[0], W.shape[1], bias);
}

/** Adapter e of stacked A [E, r, in], B [E, out, r] as 2-D arrays. */
function adapter(A: NDArray, B: NDArray, e: number): { a: NDArray; b: NDArray } {
  const [, r, inF] = A.shape;
  const out = B.shape[1];
  return {
    a: { data: A.data.slice(e * r * inF, (e + 1) * r * inF), shape: [r, inF] },
    b: { data: B.data.slice(e * out * r, (e + 1) * out * r), shape: [out, r] },
  };
}

/** Row m uses adapter ids[m] (−1: W alone), plus bias. */
export function loraBatched(x: NDArray, W: NDArray, A: NDArray, B: NDArray, ids: ArrayLike<number>, scale = 1, bias: NDArray | null = null): NDArray {
  const [M, inF] = x.shape;
  const out = W.shape[0];
  const y = new Float64Array(M * out);
  for (let m = 0; m < M; m++) {
    const row: NDArray = { data: x.data.slice(m * inF, (m + 1) * inF), shape: [1, inF] };
    const yr = ids[m] < 0 ? denseLinear(row, W.data, out, inF) : (() => {
      const { a, b } = adapter(A, B, ids[m]);
      return lora(row, W, a, b, scale);
    })();
    y.set(yr.data, m * out);
  }
  if (bias) for (let m = 0; m < M; m++) for (let j = 0; j < out; j++) y[m * out + j] += bias.data[j];
  return { data: y, shape: [M, out] };
}

/** y = x·Wᵀ + Σ_e gates[:, e]·scale·(x·A_eᵀ)·B_eᵀ + bias, a loop over adapters. */
export function loraMixture(x: NDArray, W: NDArray, A: NDArray, B: NDArray, gates: NDArray, scale = 1, bias: NDArray | null = null): NDArray {
  const [M, inF] = x.shape;
  const out = W.shape[0];
  const E = A.shape[0];
  const y = denseLinear(x, W.data, out, inF, bias);
  for (let e = 0; e < E; e++) {
    const { a, b } = adapter(A, B, e);
    const t = denseLinear(x, densify(a, b, a.shape[0], scale), out, inF);
    for (let m = 0; m < M; m++) for (let j = 0; j < out; j++) y.data[m * out + j] += gates.data[m * E + e] * t.data[m * out + j];
  }
  return y;
}

/** x·(B·A + S)ᵀ + bias with S densified from flat indices row·in + col. */
export function sparsePlusLowRank(x: NDArray, A: NDArray, B: NDArray, indices: ArrayLike<number>, values: NDArray, bias: NDArray | null = null): NDArray {
  const D = densify(A, B);
  for (let e = 0; e < indices.length; e++) D[indices[e]] += values.data[e];
  return denseLinear(x, D, B.shape[0], A.shape[1], bias);
}

/** The singular values of W [m, n] (descending): square roots of the eigenvalues of WᵀW, by cyclic Jacobi. */
export function singularValues(W: NDArray): number[] {
  const [m, n] = W.shape;
  const G = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let a = 0; a < m; a++) s += W.data[a * n + i] * W.data[a * n + j];
      G[i * n + j] = s;
    }
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += G[p * n + q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = G[p * n + q];
        if (apq === 0) continue;
        const theta = (G[q * n + q] - G[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const gkp = G[k * n + p], gkq = G[k * n + q];
          G[k * n + p] = c * gkp - s * gkq;
          G[k * n + q] = s * gkp + c * gkq;
        }
        for (let k = 0; k < n; k++) {
          const gpk = G[p * n + k], gqk = G[q * n + k];
          G[p * n + k] = c * gpk - s * gqk;
          G[q * n + k] = s * gpk + c * gqk;
        }
      }
  }
  const ev: number[] = [];
  for (let i = 0; i < n; i++) ev.push(Math.sqrt(Math.max(0, G[i * n + i])));
  ev.sort((a, b) => b - a);
  return ev.slice(0, Math.min(m, n));
}
