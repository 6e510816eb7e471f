#!/usr/bin/env node
// Idle WebSocket connections: open N sockets to URL, echo one message on each (so the
// whole path is established end to end), print {"ready": true, ...}, then hold them
// without traffic until "stop" (or EOF) on stdin, close them all and exit.
//   node ws_idle.js --url wss://localhost:8444/ws --sockets 2500 [--ca cert.pem]
'use strict';

// stdout may be a pipe (asynchronous in node): exit only once a line is flushed.
function emit(obj, then) {
  process.stdout.write(JSON.stringify(obj) + '\n', then);
}
const { openMany, onCommand, closeAll } = require('./common');

const args = { url: '', sockets: 1000, ca: '', parallel: 64 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in args)) throw new Error(`unknown option ${process.argv[i]}`);
  args[k] = typeof args[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}

function echoOnce(ws) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no echo within 20 s')), 20000);
    ws.once('message', () => { clearTimeout(t); resolve(); });
    ws.send('x');
  });
}

async function main() {
  const t0 = Date.now();
  const { socks, failures } = await openMany(args.sockets, args.url, args.ca || null, args.parallel);
  for (let i = 0; i < socks.length; i += 200) await Promise.all(socks.slice(i, i + 200).map(echoOnce));
  let closed = 0;
  for (const ws of socks) ws.on('close', () => closed++);
  emit({ ready: true, sockets: socks.length, connect_ms: Date.now() - t0, connect_failures: failures });
  await new Promise((resolve) => onCommand((c) => { if (c === 'stop' || c === 'eof') resolve(); }));
  const closedWhileIdle = closed;
  await closeAll(socks);
  emit({ done: true, closed_while_idle: closedWhileIdle }, () => process.exit(0));
}

main().catch((e) => {
  console.error(`ws_idle: ${e.message}`);
  process.exit(1);
});
