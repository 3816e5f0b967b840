// gpu/dropout.test.ts — the dropout suite of test/dropout.test.ts on the real GPU only.
process.env.STRUCTURA_TEST_DEVICES = 'cuda';
require('../dropout.test');
