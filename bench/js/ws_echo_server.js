#!/usr/bin/env node
// The home WebSocket service that every bench stack shares: echoes each message with its
// type (text stays text, binary stays binary). No compression, no logging per message.
//   node ws_echo_server.js HOST PORT
'use strict';
const { WebSocketServer } = require('ws');

const [host, port] = [process.argv[2] || '127.0.0.1', Number(process.argv[3] || 8081)];
const wss = new WebSocketServer({ host, port, perMessageDeflate: false, clientTracking: false, backlog: 4096 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(JSON.stringify({ listening: `${host}:${port}` })));
wss.on('error', (e) => {
  console.error(`ws_echo_server: ${e.message}`);
  process.exit(1);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
