// dense_devices.test.ts — the matmul conformance suite (test/conformance/dense.ts) on the emulated
// device 'cuda-emu' (cuda/dense.cu run on the CPU by cuda/emu/), and on 'cuda' when this machine has
// a GPU. The CPU's own matmul tests are test/dense.test.ts.
import { test } from 'uvu';
import * as S from '../lib/index';
import { registerDense } from './conformance/dense';

const b = S.backend();
const devices = [...(b.cudaEmu ? ['cuda-emu'] : []), ...(b.cuda ? ['cuda'] : [])];
if (devices.length === 0) console.log(`dense_devices.test.ts: no device besides the CPU in this binary (${b.binary}); nothing to run`);
for (const d of devices) registerDense(test, d);
test.run();
