// gpu/lowrank.test.ts — lowrank.lora / lowrank.linear (test/conformance/lowrank.ts) and the rest of the
// family (test/conformance/lowrank_family.ts) on the real GPU,
// with decode (M = 1, 16) and larger shapes besides the odd small ones.
import { test } from 'uvu';
import { registerLowrank } from '../conformance/lowrank';
import { registerLowrankFamily } from '../conformance/lowrank_family';

registerLowrank(test, 'cuda', { large: !process.env.STRUCTURA_SANITIZER });
registerLowrankFamily(test, 'cuda', { large: !process.env.STRUCTURA_SANITIZER });
test.run();
