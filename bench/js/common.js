'use strict';
// Shared by the bench clients: open a WebSocket with the bench's TLS settings, a
// latency histogram in whole microseconds, and the stdin "go"/"stop" protocol with
// the orchestrator (bench/py/hearthbench.py).
const fs = require('fs');
const WebSocket = require('ws');

function wsOptions(url, cafile) {
  const o = { perMessageDeflate: false, handshakeTimeout: 20000, maxPayload: 1 << 20 };
  if (url.startsWith('wss:')) {
    o.ca = cafile ? fs.readFileSync(cafile) : undefined;
    o.servername = 'localhost';
    o.rejectUnauthorized = !!cafile;
  }
  return o;
}

// open(url, cafile): resolves with an open WebSocket, rejects on error or timeout.
function open(url, cafile) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, wsOptions(url, cafile));
    ws.binaryType = 'nodebuffer';
    const fail = (e) => reject(e instanceof Error ? e : new Error(String(e)));
    ws.once('open', () => {
      ws.off('error', fail);
      ws.on('error', () => {});
      resolve(ws);
    });
    ws.once('error', fail);
  });
}

// openMany(n, url, cafile, parallel): n sockets, at most `parallel` handshakes at once.
async function openMany(n, url, cafile, parallel = 64) {
  const socks = [];
  let next = 0;
  let failures = 0;
  async function worker() {
    while (next < n) {
      next++;
      let tries = 0;
      for (;;) {
        try {
          socks.push(await open(url, cafile));
          break;
        } catch (e) {
          failures++;
          if (++tries >= 3) throw new Error(`connect failed 3 times: ${e.message}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  return { socks, failures };
}

class Histogram {
  constructor() { this.counts = new Map(); this.n = 0; }
  add(us) {
    const k = Math.max(0, Math.round(us));
    this.counts.set(k, (this.counts.get(k) || 0) + 1);
    this.n++;
  }
  toJSON() { return Object.fromEntries(this.counts); }
}

// Lines on stdin: the orchestrator says "go" to start and "stop" (or closes stdin) to end.
function onCommand(handler) {
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      handler(buf.slice(0, i).trim());
      buf = buf.slice(i + 1);
    }
  });
  process.stdin.on('end', () => handler('eof'));
}

// closeAll(socks): close every socket with a WebSocket close (1000) and wait (at most
// `ms`) for the closes to complete, then drop what is left. A clean close lets every stack
// tear the whole path down at once; a vanished client is a separate case (see
// docs/benchmarks.md, "A WebSocket whose client vanishes").
function closeAll(socks, ms = 3000) {
  return new Promise((resolve) => {
    let open = 0;
    const done = () => { if (--open <= 0) finish(); };
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      for (const ws of socks) if (ws.readyState !== 3) ws.terminate();
      resolve();
    };
    for (const ws of socks) {
      if (ws.readyState === 3) continue;
      open++;
      ws.once('close', done);
      try { ws.close(1000); } catch (e) { done(); }
    }
    if (open === 0) finish();
    setTimeout(finish, ms);
  });
}

module.exports = { open, openMany, Histogram, onCommand, closeAll };
