// gpu/multilora.test.ts — test/multilora.test.ts with its device case on the real GPU only (the rest
// runs on the CPU, as there).
process.env.STRUCTURA_TEST_DEVICES = 'cuda';
require('../multilora.test');
