// run.js — `node bench/run.js [options]`: bench/run.ts through tsx's loader, for a machine that has only
// a node binary (no npm, no --import flag to remember): `npm run bench:gpu` is `node bench/run.js
// --device cuda` (the options are run.ts's: --filter, --quick, --no-torch, --no-write, --results).
require('tsx/cjs');
require('./run.ts');
