#!/usr/bin/env node
// Recovery probe: GET URL on a new connection every --every-ms until it answers 200,
// for at most --max-s seconds. Prints {"ready": true} first; then, when a request
// succeeds, {"ok_epoch_ms": T} with T the wall-clock time of the 200 (ms, fractional).
//   node poll.js --url https://localhost:8444/small [--every-ms 10] [--max-s 30]
'use strict';

// stdout may be a pipe (asynchronous in node): exit only once a line is flushed.
function emit(obj, then) {
  process.stdout.write(JSON.stringify(obj) + '\n', then);
}
const https = require('https');
const http = require('http');
const { performance } = require('perf_hooks');

const args = { url: '', 'every-ms': 10, 'max-s': 30, 'timeout-ms': 1000 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in args)) throw new Error(`unknown option ${process.argv[i]}`);
  args[k] = typeof args[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
const now = () => performance.timeOrigin + performance.now();
const lib = args.url.startsWith('https:') ? https : http;

function once() {
  return new Promise((resolve) => {
    const req = lib.get(args.url, { agent: false, rejectUnauthorized: false, servername: 'localhost', timeout: args['timeout-ms'] }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

async function main() {
  const deadline = now() + args['max-s'] * 1000;
  let attempts = 0;
  emit({ ready: true });
  while (now() < deadline) {
    const started = now();
    attempts++;
    const code = await once();
    if (code === 200) {
      return emit({ ok_epoch_ms: now(), attempts }, () => process.exit(0));
    }
    const wait = args['every-ms'] - (now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  emit({ timeout: true, attempts }, () => process.exit(1));
}
main();
