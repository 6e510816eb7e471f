#!/usr/bin/env node
// WebSocket echo load: N sockets to URL, each sending SIZE-byte binary messages and
// timing the echo. Closed loop (the next message right after the echo) by default;
// with --interval-ms each socket sends at most one message per interval (a latency
// probe that does not load the stack).
//
//   node ws_load.js --url wss://localhost:8444/ws --sockets 500 --seconds 10
//        [--warmup 1] [--size 64] [--interval-ms 0] [--ca cert.pem]
//
// Prints {"ready": true, ...} once every socket is open, waits for "go" on stdin, runs
// warmup + seconds, then prints one JSON line: messages counted in the measured window,
// its length, and an RTT histogram in microseconds ({"us": count}).
'use strict';

// stdout may be a pipe (asynchronous in node): exit only once a line is flushed.
function emit(obj, then) {
  process.stdout.write(JSON.stringify(obj) + '\n', then);
}
const { openMany, Histogram, onCommand, closeAll } = require('./common');

const args = { url: '', sockets: 100, seconds: 10, warmup: 1, size: 64, 'interval-ms': 0, ca: '' };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in args)) throw new Error(`unknown option ${process.argv[i]}`);
  args[k] = typeof args[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}

const hist = new Histogram();
let measuring = false;
let stopped = false;
let errors = 0;
let closedEarly = 0;

function runSocket(ws) {
  const payload = Buffer.alloc(args.size, 0x61);
  let sentAt = 0n;
  let waiting = false;
  const send = () => {
    if (stopped || ws.readyState !== 1) return;
    sentAt = process.hrtime.bigint();
    waiting = true;
    ws.send(payload, { binary: true });
  };
  ws.on('message', () => {
    const rtt = Number(process.hrtime.bigint() - sentAt) / 1000;
    waiting = false;
    if (measuring) hist.add(rtt);
    if (args['interval-ms'] <= 0) send();
  });
  ws.on('close', () => { if (!stopped) closedEarly++; });
  ws.on('error', () => { errors++; });
  if (args['interval-ms'] > 0) {
    // Spread the sockets over the interval so the probes do not arrive in bursts.
    setTimeout(() => {
      send();
      const t = setInterval(() => {
        if (stopped) return clearInterval(t);
        if (!waiting) send();
      }, args['interval-ms']);
    }, Math.random() * args['interval-ms']);
  } else {
    send();
  }
}

async function main() {
  const t0 = Date.now();
  const { socks, failures } = await openMany(args.sockets, args.url, args.ca || null);
  emit({ ready: true, sockets: socks.length, connect_ms: Date.now() - t0, connect_failures: failures });
  await new Promise((resolve) => onCommand((c) => { if (c === 'go' || c === 'eof') resolve(); }));
  socks.forEach(runSocket);
  await new Promise((r) => setTimeout(r, args.warmup * 1000));
  measuring = true;
  const m0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, args.seconds * 1000));
  measuring = false;
  const window_s = Number(process.hrtime.bigint() - m0) / 1e9;
  stopped = true;
  await closeAll(socks);
  emit({ messages: hist.n, window_s, errors, closed_early: closedEarly, hist: hist.toJSON() }, () => process.exit(0));
}

main().catch((e) => {
  console.error(`ws_load: ${e.message}`);
  process.exit(1);
});
