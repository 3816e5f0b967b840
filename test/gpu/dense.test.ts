// gpu/dense.test.ts — the matmul conformance suite (test/conformance/dense.ts) on the real GPU
// ('cuda'), with the larger shapes the emulator is too slow for (up to 1024³ and a 4096-row product).
// Run by `npm run test:gpu` (or `node scripts/test.js --gpu`), which fails without a GPU.
import { test } from 'uvu';
import { registerDense } from '../conformance/dense';

// Under compute-sanitizer (scripts/test.js --sanitizer sets STRUCTURA_SANITIZER) the large shapes
// would take minutes: the odd small ones exercise every tail path.
registerDense(test, 'cuda', { large: !process.env.STRUCTURA_SANITIZER });
test.run();
