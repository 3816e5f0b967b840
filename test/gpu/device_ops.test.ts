// gpu/device_ops.test.ts — the core-op conformance suite of test/device_ops.test.ts (copies and
// casts, broadcasting elementwise, reductions, softmax, cross-entropy) on the real GPU only.
process.env.STRUCTURA_TEST_DEVICES = 'cuda';
require('../device_ops.test');
