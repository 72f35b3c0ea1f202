#!/usr/bin/env node
// Reference XMPP peer for Lyrebird interop tests and benchmarks: @xmpp/client (xmpp.js) over
// RFC 7395 WebSocket in Node, driven by JSON lines.
//
//   node --experimental-websocket xmpp-peer.mjs --ws ws://127.0.0.1:PORT/xmpp-websocket
//        --jid bob@localhost --password P [--resource R] [--echo] [--carbons] [--debug]
//
// stdin:  one command per line: {"cmd":"message","to":"alice@localhost","body":"hi"}
//         presence {show,status} | subscribe/subscribed/unsubscribe {to} | roster |
//         message {to,body,id?} | chat_state {to,state} | join {room,nick} |
//         room_message {room,body} | mam {max} | rtt {to,count} | flood {to,count} | quit
// stdout: one event per line with "event" and "t" (wall-clock ms, sub-millisecond)
// stderr: logs
//
// --echo answers every chat message with "echo: <body>" (benchmark partner).

import { createInterface } from 'node:readline';
import { client, xml } from '@xmpp/client';

const nowMs = () => performance.timeOrigin + performance.now();
const emit = (record) => process.stdout.write(`${JSON.stringify({ ...record, t: nowMs() })}\n`);
const log = (...parts) => process.stderr.write(`[xmpp-peer] ${parts.join(' ')}\n`);

function parseArgs(argv) {
  const o = { echo: false, carbons: false, debug: false, sm: false, resource: 'xmppjs' };
  const takes = { '--ws': 'ws', '--jid': 'jid', '--password': 'password', '--resource': 'resource' };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (takes[a]) { o[takes[a]] = argv[i + 1]; i += 1; }
    else if (a === '--echo') o.echo = true;
    else if (a === '--carbons') o.carbons = true;
    else if (a === '--sm') o.sm = true;
    else if (a === '--debug') o.debug = true;
    else throw new Error(`unknown argument ${a}`);
  }
  for (const r of ['ws', 'jid', 'password']) if (!o[r]) throw new Error(`--${r} is required`);
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const [username, domain] = opts.jid.split('@');
const xmpp = client({ service: opts.ws, domain, username, password: opts.password, resource: opts.resource });
xmpp.reconnect.stop();
let counter = 0;
const newId = () => `xjs-${process.pid}-${Date.now()}-${counter++}`;
const waiters = new Map(); // key -> resolve
const bareOf = (jid) => (jid || '').split('/')[0];

// xmpp.js 0.14's stream management counts inbound stanzas it received before <enabled/>, and
// Prosody 0.12 then closes the stream ("Client acknowledged more stanzas than sent by
// server"). The reference client runs without XEP-0198 unless --sm is given: hide the feature.
if (!opts.sm) {
  xmpp.prependListener('element', (el) => {
    if (el.is('features', 'http://etherx.jabber.org/streams')) {
      el.children = el.children.filter((c) => !(c.attrs && c.attrs.xmlns === 'urn:xmpp:sm:3'));
    }
  });
}

xmpp.on('error', (err) => emit({ event: 'error', detail: String(err && err.message || err) }));
xmpp.on('offline', () => emit({ event: 'offline' }));
if (opts.debug) {
  xmpp.on('element', (el) => log('<<', el.toString()));
  xmpp.on('send', (el) => log('>>', el.toString()));
}

function handleMessage(stanza, carbon) {
  const body = stanza.getChildText('body');
  const from = stanza.attrs.from;
  const received = stanza.getChild('received', 'urn:xmpp:receipts');
  if (received) {
    emit({ event: 'receipt', from, id: received.attrs.id, carbon });
    const w = waiters.get(`receipt:${received.attrs.id}`);
    if (w) w();
  }
  const state = stanza.children.find((c) => c.attrs && c.attrs.xmlns === 'http://jabber.org/protocol/chatstates');
  if (state) emit({ event: 'chat_state', from, state: state.name, carbon });
  if (body === null || body === undefined) return;
  const originId = stanza.getChild('origin-id', 'urn:xmpp:sid:0');
  const id = (originId && originId.attrs.id) || stanza.attrs.id;
  const replace = stanza.getChild('replace', 'urn:xmpp:message-correct:0');
  emit({ event: 'message', from, to: stanza.attrs.to, id, type: stanza.attrs.type, body, carbon, replaces: replace ? replace.attrs.id : null });
  const w = waiters.get(`body:${body}`);
  if (w) w();
  if (!carbon && stanza.getChild('request', 'urn:xmpp:receipts') && stanza.attrs.id && stanza.attrs.type !== 'groupchat') {
    xmpp.send(xml('message', { to: from, id: newId() }, xml('received', { xmlns: 'urn:xmpp:receipts', id: stanza.attrs.id })));
  }
  if (opts.echo && !carbon && stanza.attrs.type === 'chat' && !body.startsWith('echo: ')) {
    xmpp.send(xml('message', { to: from, type: 'chat', id: newId() }, xml('body', {}, `echo: ${body}`)));
  }
}

xmpp.on('stanza', (stanza) => {
  if (stanza.is('message')) {
    const fromSelf = !stanza.attrs.from || bareOf(stanza.attrs.from) === opts.jid;
    for (const kind of ['sent', 'received']) {
      const c = stanza.getChild(kind, 'urn:xmpp:carbons:2');
      if (c && fromSelf) {
        const inner = c.getChild('forwarded', 'urn:xmpp:forward:0')?.getChild('message');
        if (inner) handleMessage(inner, kind);
        return;
      }
    }
    const result = stanza.getChild('result', 'urn:xmpp:mam:2');
    if (result && fromSelf) {
      const w = waiters.get(`mam:${result.attrs.queryid}`);
      if (w) w(result);
      return;
    }
    handleMessage(stanza, null);
  } else if (stanza.is('presence')) {
    const type = stanza.attrs.type || 'available';
    const muc = stanza.getChild('x', 'http://jabber.org/protocol/muc#user');
    if (muc) {
      const codes = muc.getChildren('status').map((s) => s.attrs.code);
      emit({ event: 'occupant', from: stanza.attrs.from, type, self: codes.includes('110') });
      return;
    }
    emit({ event: 'presence', from: stanza.attrs.from, type, show: stanza.getChildText('show'), status: stanza.getChildText('status') });
  }
});

xmpp.on('online', async (address) => {
  if (opts.carbons) {
    await xmpp.iqCaller.set(xml('enable', { xmlns: 'urn:xmpp:carbons:2' }));
  }
  await xmpp.send(xml('presence'));
  emit({ event: 'online', jid: address.toString() });
});

function waitFor(key, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { waiters.delete(key); reject(new Error(`timeout waiting for ${key}`)); }, ms);
    waiters.set(key, (v) => { clearTimeout(timer); waiters.delete(key); resolve(v); });
  });
}

async function fetchArchive(max) {
  const started = nowMs();
  let after = null;
  let total = 0;
  for (;;) {
    const queryid = newId();
    const results = [];
    const set = xml('set', { xmlns: 'http://jabber.org/protocol/rsm' }, xml('max', {}, String(max)));
    if (after) set.append(xml('after', {}, after));
    const key = `mam:${queryid}`;
    waiters.set(key, (r) => results.push(r));
    // request() resolves with the whole result IQ; set() would look for a <query/> child.
    const res = await xmpp.iqCaller.request(
      xml('iq', { type: 'set', id: newId() }, xml('query', { xmlns: 'urn:xmpp:mam:2', queryid }, set)), 120000);
    waiters.delete(key);
    const fin = res.getChild('fin', 'urn:xmpp:mam:2');
    if (!fin) throw new Error('MAM result without <fin/>');
    total += results.length;
    const last = fin.getChild('set', 'http://jabber.org/protocol/rsm')?.getChildText('last');
    if (fin.attrs.complete === 'true' || !last || results.length === 0) break;
    after = last;
  }
  return { total, elapsed_ms: nowMs() - started };
}

const commands = {
  async presence(c) {
    const children = [];
    if (c.show) children.push(xml('show', {}, c.show));
    if (c.status) children.push(xml('status', {}, c.status));
    await xmpp.send(xml('presence', {}, ...children));
  },
  async subscribe(c) { await xmpp.send(xml('presence', { to: c.to, type: 'subscribe' })); },
  async subscribed(c) { await xmpp.send(xml('presence', { to: c.to, type: 'subscribed' })); },
  async unsubscribe(c) { await xmpp.send(xml('presence', { to: c.to, type: 'unsubscribe' })); },
  async roster() {
    const r = await xmpp.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster' }));
    return { items: r.getChildren('item').map((i) => ({ jid: i.attrs.jid, subscription: i.attrs.subscription })) };
  },
  async message(c) {
    const id = c.message_id || newId();
    await xmpp.send(xml('message', { to: c.to, type: 'chat', id },
      xml('body', {}, c.body), xml('request', { xmlns: 'urn:xmpp:receipts' }),
      xml('active', { xmlns: 'http://jabber.org/protocol/chatstates' }),
      xml('origin-id', { xmlns: 'urn:xmpp:sid:0', id })));
    return { message: id };
  },
  async chat_state(c) {
    await xmpp.send(xml('message', { to: c.to, type: 'chat' }, xml(c.state, { xmlns: 'http://jabber.org/protocol/chatstates' })));
  },
  async join(c) {
    await xmpp.send(xml('presence', { to: `${c.room}/${c.nick}` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
  },
  async room_message(c) {
    const id = newId();
    await xmpp.send(xml('message', { to: c.room, type: 'groupchat', id }, xml('body', {}, c.body)));
    return { message: id };
  },
  async mam(c) { return fetchArchive(c.max || 1000); },
  // Sequential round trips against an --echo partner: send, wait for "echo: <body>".
  async rtt(c) {
    const samples = [];
    for (let i = 0; i < (c.count || 20); i += 1) {
      const body = `rtt-${process.pid}-${i}-${Date.now()}`;
      const wait = waitFor(`body:echo: ${body}`, 10000);
      const t0 = nowMs();
      await xmpp.send(xml('message', { to: c.to, type: 'chat', id: newId() }, xml('body', {}, body)));
      await wait;
      samples.push(nowMs() - t0);
    }
    return { samples };
  },
  // Throughput: send `count` messages back to back, wait until the last echo arrives.
  async flood(c) {
    const n = c.count || 500;
    const tag = `fl-${process.pid}-${Date.now()}`;
    const last = waitFor(`body:echo: ${tag}-${n - 1}`, 60000);
    const t0 = nowMs();
    for (let i = 0; i < n; i += 1) {
      xmpp.send(xml('message', { to: c.to, type: 'chat', id: newId() }, xml('body', {}, `${tag}-${i}`)));
    }
    await last;
    return { count: n, elapsed_ms: nowMs() - t0 };
  },
  // Round trips measured by XEP-0184 receipts (no echo partner needed).
  async rtt_receipt(c) {
    const samples = [];
    for (let i = 0; i < (c.count || 20); i += 1) {
      const id = newId();
      const wait = waitFor(`receipt:${id}`, 10000);
      const t0 = nowMs();
      await xmpp.send(xml('message', { to: c.to, type: 'chat', id },
        xml('body', {}, `rtt ${i}`), xml('request', { xmlns: 'urn:xmpp:receipts' })));
      await wait;
      samples.push(nowMs() - t0);
    }
    return { samples };
  },
  // Throughput: `count` messages back to back, until every receipt is back.
  async flood_receipt(c) {
    const n = c.count || 500;
    const ids = Array.from({ length: n }, () => newId());
    const all = Promise.all(ids.map((id) => waitFor(`receipt:${id}`, 120000)));
    const t0 = nowMs();
    for (let i = 0; i < n; i += 1) {
      xmpp.send(xml('message', { to: c.to, type: 'chat', id: ids[i] },
        xml('body', {}, `flood ${i}`), xml('request', { xmlns: 'urn:xmpp:receipts' })));
    }
    await all;
    return { count: n, elapsed_ms: nowMs() - t0 };
  },
  // Fills someone's archive quickly: `count` messages without waiting.
  async burst(c) {
    const n = c.count || 1000;
    for (let i = 0; i < n; i += 1) {
      await xmpp.send(xml('message', { to: c.to, type: 'chat', id: newId() }, xml('body', {}, `${c.prefix || 'burst'} ${i}`)));
    }
    // An IQ round trip: everything before it has been processed by the server.
    await xmpp.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster' }), undefined, 900000);
    return { count: n };
  },
  async quit() {
    await xmpp.send(xml('presence', { type: 'unavailable' })).catch(() => {});
    await xmpp.stop().catch(() => {});
    process.exit(0);
  },
};

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  if (!line.trim()) return;
  let cmd;
  try { cmd = JSON.parse(line); } catch (e) { emit({ event: 'result', ok: false, error: String(e) }); return; }
  const fn = commands[cmd.cmd];
  if (!fn) { emit({ event: 'result', cmd: cmd.cmd, ok: false, error: 'unknown command' }); return; }
  try {
    const out = await fn(cmd);
    emit({ event: 'result', ...(out || {}), cmd: cmd.cmd, id: cmd.id ?? null, ok: true });
  } catch (e) {
    emit({ event: 'result', cmd: cmd.cmd, id: cmd.id ?? null, ok: false, error: String(e && e.message || e) });
  }
});

xmpp.start().catch((e) => { emit({ event: 'error', detail: `start: ${e.message}` }); process.exit(1); });
