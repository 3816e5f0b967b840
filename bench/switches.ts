// switches.ts — bench baselines that rerun a case's own work with one of the addon's native switches
// flipped for the duration of the call (the previous setting restored even if it throws): a forced
// GEMM kernel, the other decode kernel, dependent launches off, the driver's device copy.
import type { LocalBaseline } from './run';
import { native, type GemmKernel } from '../lib/native';

/** Runs `run` with `set(value)` in effect; `set` returns the previous setting, which is put back. */
export function withSwitch<T>(set: (v: T) => T, value: T, run: () => void): void {
  const old = set(value);
  try {
    run();
  } finally {
    set(old);
  }
}

/** A local baseline: `run` with `set(value)` in effect. */
export function switched<T>(label: string, set: (v: T) => T, value: T, run: () => void, bytes?: number): LocalBaseline {
  return { kind: 'local', label, ...(bytes !== undefined ? { bytes } : {}), run: () => withSwitch(set, value, run) };
}

const NAMES: Record<GemmKernel, string> = { auto: 'auto', mma: 'mma.sync', wgmma: 'wgmma (cp.async)', 'wgmma-tma': 'wgmma (TMA, warp-specialized)' };

/** `run` with the 16-bit products forced onto one kernel of cuda/dense.cu (setGemmKernel; wgmma needs sm_90). */
export const forcedKernel = (kernel: GemmKernel, run: () => void, what = 'our'): LocalBaseline =>
  switched(`${what} ${NAMES[kernel]} kernel`, (k: GemmKernel) => native().setGemmKernel(k), kernel, run);

/** `run` launched in plain stream order: no programmatic dependent launches (they need sm_90). */
export const noPdl = (run: () => void, what: string): LocalBaseline =>
  switched(`${what} launched in plain stream order (setDependentLaunch(false))`, (on: boolean) => native().setDependentLaunch(on), false, run);
