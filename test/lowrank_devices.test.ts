// lowrank_devices.test.ts — lowrank.lora / lowrank.linear (test/conformance/lowrank.ts) and the rest of
// the family (test/conformance/lowrank_family.ts) on the
// emulated device 'cuda-emu', and on 'cuda' when this machine has a GPU. The CPU's lowrank tests are
// test/lowrank.test.ts.
import { test } from 'uvu';
import * as S from '../lib/index';
import { registerLowrank } from './conformance/lowrank';
import { registerLowrankFamily } from './conformance/lowrank_family';

const b = S.backend();
const devices = [...(b.cudaEmu ? ['cuda-emu'] : []), ...(b.cuda ? ['cuda'] : [])];
if (devices.length === 0) console.log(`lowrank_devices.test.ts: no device besides the CPU in this binary (${b.binary}); nothing to run`);
for (const d of devices) {
  registerLowrank(test, d);
  registerLowrankFamily(test, d);
}
test.run();
