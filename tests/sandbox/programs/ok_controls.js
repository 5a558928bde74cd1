// positive control (JavaScript): worker threads, 100 MB, stdlib, 200 KB on both streams
const { Worker } = require('worker_threads');
const crypto = require('crypto');
const big = Buffer.alloc(100 << 20, 7);
const line = '1'.repeat(63) + '\n';
process.stdout.write(line.repeat(200 * 1024 / 64));
process.stderr.write(line.repeat(200 * 1024 / 64));
const w = new Worker('const { parentPort } = require("worker_threads"); let s = 0; for (let k = 0; k < 1000000; k++) s += k % 7; parentPort.postMessage(s);', { eval: true });
w.on('message', (s) => {
  const h = crypto.createHash('sha256').update('x').digest('hex');
  console.log(s, big[big.length - 1], h.slice(0, 8), JSON.stringify([3, 1, 2].sort()));
});
