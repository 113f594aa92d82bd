// The Flotilla web inspector (docs/inspector.md). One page, hash routes;
// data comes from the JSON API (/api/) and, about once a second, over the
// WebSocket /ws: the page tells the server which API paths it shows and the
// server answers each tick with their results and the new broker events.

import Chart from 'chart.js/auto';
import cytoscape from 'cytoscape';
import './style.css';

const HISTORY = 300; // Chart points kept (one per update: ~5 minutes).
const PAGE_SIZE = 50;

const state = {
  user: null,
  admin: false,
  auth: true,
  vhost: '/',
  vhosts: ['/'],
  ws: null,
  watches: [],
  page: null, // { update(results), destroy() }
  events: [], // Newest last, at most 1000.
  history: new Map(), // key -> [{t, values}] kept across page changes
  lastUpdate: 0,
};

// -- helpers -----------------------------------------------------------------

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function num(v) {
  const n = Number(v ?? 0);
  if (!Number.isFinite(n)) return '0';
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  return n.toFixed(2);
}

function bytes(v) {
  let n = Number(v ?? 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function duration(ms) {
  let s = Math.floor(Number(ms) / 1000);
  const d = Math.floor(s / 86400); s %= 86400;
  const h = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  return (d ? `${d}d ` : '') + (h ? `${h}h ` : '') + `${m}m ${s}s`;
}

const enc = encodeURIComponent;

async function api(path, options = {}) {
  const res = await fetch(path, {
    credentials: 'same-origin',
    ...options,
    headers: { 'X-Flotilla-UI': '1', ...(options.headers || {}) },
  });
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  return { status: res.status, body };
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  return q.toString();
}

function remember(key, values) {
  let h = state.history.get(key);
  if (!h) { h = []; state.history.set(key, h); }
  h.push({ t: Date.now(), values });
  if (h.length > HISTORY) h.splice(0, h.length - HISTORY);
  return h;
}

// -- charts ------------------------------------------------------------------

const COLORS = ['#2f6fdf', '#e0692b', '#2a9d5c', '#9b59b6', '#c0392b'];

function lineChart(canvas, names, title) {
  return new Chart(canvas, {
    type: 'line',
    data: {
      labels: [],
      datasets: names.map((n, i) => ({
        label: n, data: [], borderColor: COLORS[i], backgroundColor: COLORS[i],
        pointRadius: 0, borderWidth: 2, tension: 0.2,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      plugins: { title: { display: true, text: title } },
      scales: { y: { beginAtZero: true }, x: { ticks: { maxTicksLimit: 6 } } },
    },
  });
}

function fillChart(chart, history) {
  chart.data.labels = history.map((p) => new Date(p.t).toLocaleTimeString());
  chart.data.datasets.forEach((ds, i) => { ds.data = history.map((p) => p.values[i]); });
  chart.update('none');
}

// -- live updates ------------------------------------------------------------

function connectSocket() {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  state.ws = ws;
  ws.onopen = () => { sendWatches(); setLive('live'); };
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type !== 'update') return;
    state.lastUpdate = Date.now();
    for (const ev of msg.events || []) state.events.push(ev);
    rememberOverview((msg.results || {})[OVERVIEW]);
    if (state.events.length > 1000) state.events.splice(0, state.events.length - 1000);
    if (state.page && state.page.update) state.page.update(msg.results || {}, msg.events || []);
    setLive('live');
  };
  ws.onclose = () => {
    setLive('reconnecting');
    if (state.user !== null) setTimeout(connectSocket, 1000);
  };
}

function sendWatches() {
  if (state.ws && state.ws.readyState === WebSocket.OPEN)
    state.ws.send(state.watches.join('\n'));
}

// The overview is watched on every page, so that its charts have history.
const OVERVIEW = '/api/overview';

function rememberOverview(r) {
  if (!r || r.status !== 200) return;
  const o = r.body.overview;
  const ra = o.rates || {};
  remember('overview-rates', [ra.publish || 0, ra.deliver || 0, ra.ack || 0]);
  remember('overview-depth', [Number(o.messages_ready), Number(o.messages_unacked)]);
}

function watch(paths) {
  state.watches = paths.includes(OVERVIEW) ? paths : [OVERVIEW, ...paths];
  sendWatches();
}

function setLive(text) {
  const el = document.getElementById('live');
  if (el) el.textContent = text;
}

// -- tables with paging, filter and sort ---------------------------------------

/// A paged list of one API collection, updated live.
function listPage(root, opts) {
  const p = { page: 1, filter: '', sort: opts.sort || 'name', reverse: false };
  root.innerHTML = `
    <h2>${esc(opts.title)}</h2>
    <div class="toolbar">
      <input class="filter" placeholder="filter by name" aria-label="filter">
      <label>sort <select class="sort">${opts.sorts.map((s) => `<option>${s}</option>`).join('')}</select></label>
      <label><input type="checkbox" class="reverse"> descending</label>
      <span class="pager"><button class="prev">&lt;</button> <span class="pageinfo"></span> <button class="next">&gt;</button></span>
    </div>
    <table class="grid"><thead><tr>${opts.columns.map((c) => `<th>${esc(c.title)}</th>`).join('')}</tr></thead><tbody></tbody></table>`;
  const $ = (s) => root.querySelector(s);
  $('.sort').value = p.sort;
  const path = () => `/api/${opts.collection}?${query({
    vhost: opts.allVhosts ? undefined : state.vhost,
    page: p.page, page_size: PAGE_SIZE, filter: p.filter, sort: p.sort,
    sort_reverse: p.reverse ? 'true' : '',
  })}`;
  const rewatch = () => watch([path()]);
  let timer = null;
  $('.filter').addEventListener('input', (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => { p.filter = e.target.value; p.page = 1; rewatch(); }, 200);
  });
  $('.sort').addEventListener('change', (e) => { p.sort = e.target.value; rewatch(); });
  $('.reverse').addEventListener('change', (e) => { p.reverse = e.target.checked; rewatch(); });
  $('.prev').addEventListener('click', () => { if (p.page > 1) { p.page--; rewatch(); } });
  $('.next').addEventListener('click', () => { p.page++; rewatch(); });
  rewatch();
  return {
    update(results) {
      const r = results[path()];
      if (!r) return;
      const body = r.body || {};
      if (r.status !== 200) {
        $('tbody').innerHTML = `<tr><td colspan="${opts.columns.length}" class="error">${esc(body.error || r.status)}</td></tr>`;
        return;
      }
      const count = Math.max(1, Number(body.page_count || 0));
      if (p.page > count) { p.page = count; rewatch(); }
      $('.pageinfo').textContent = `page ${body.page} of ${count} (${num(body.total)} in all)`;
      const rows = (body.objects || []).map((o) => Object.values(o)[0]);
      $('tbody').innerHTML = rows.map((row) => `<tr>${opts.columns.map((c) => `<td class="${c.cls || ''}">${c.html ? c.html(row) : esc(c.get(row))}</td>`).join('')}</tr>`).join('');
    },
  };
}

// -- pages ---------------------------------------------------------------------

function overviewPage(root) {
  root.innerHTML = `
    <h2>Overview</h2>
    <div class="cards"></div>
    <div class="charts">
      <div class="chart"><canvas id="rates"></canvas></div>
      <div class="chart"><canvas id="depth"></canvas></div>
    </div>
    <p class="alarms"></p>`;
  const rates = lineChart(root.querySelector('#rates'), ['publish/s', 'deliver/s', 'ack/s'], 'Message rates (all queues)');
  const depth = lineChart(root.querySelector('#depth'), ['ready', 'unacked'], 'Messages in queues');
  const path = OVERVIEW;
  watch([path]);
  fillChart(rates, state.history.get('overview-rates') || []);
  fillChart(depth, state.history.get('overview-depth') || []);
  return {
    update(results) {
      const r = results[path];
      if (!r || r.status !== 200) return;
      const o = r.body.overview;
      const b = o.broker || {};
      const cards = [
        ['node', b.node], ['version', b.version], ['uptime', duration(b.uptime_ms)],
        ['memory', bytes(b.memory_bytes)], ['vhosts', num(o.vhosts)], ['queues', num(o.queues)],
        ['exchanges', num(o.exchanges)], ['bindings', num(o.bindings)],
        ['connections', num(o.connections)], ['channels', num(o.channels)],
        ['consumers', num(o.consumers)], ['ready', num(o.messages_ready)],
        ['unacked', num(o.messages_unacked)], ['ready bytes', bytes(o.bytes_ready)],
      ];
      root.querySelector('.cards').innerHTML = cards.map(([k, v]) => `<div class="card"><div class="k">${esc(k)}</div><div class="v" data-card="${esc(k)}">${esc(v)}</div></div>`).join('');
      fillChart(rates, state.history.get('overview-rates') || []);
      fillChart(depth, state.history.get('overview-depth') || []);
      root.querySelector('.alarms').innerHTML = (o.alarms || []).length
        ? `<span class="error">alarms: ${esc(o.alarms.join(', '))} (publishers blocked)</span>` : 'no resource alarm';
    },
    destroy() { rates.destroy(); depth.destroy(); },
  };
}

function actorsPage(root) {
  return listPage(root, {
    title: 'Actors', collection: 'actors', allVhosts: true, sort: 'name',
    sorts: ['name', 'kind', 'vhost', 'mailbox', 'messages', 'in_rate', 'out_rate'],
    columns: [
      { title: 'kind', get: (a) => a.kind },
      { title: 'name', html: (a) => a.kind === 'queue' ? `<a href="#/queue/${enc(a.vhost)}/${enc(a.name)}">${esc(a.name)}</a>` : esc(a.name) },
      { title: 'vhost', get: (a) => a.vhost },
      { title: 'node', get: (a) => a.node },
      { title: 'state', get: (a) => a.state },
      { title: 'mailbox', cls: 'n', get: (a) => (a.measured || []).includes('mailbox') ? num(a.mailbox) : '-' },
      { title: 'messages', cls: 'n', get: (a) => (a.measured || []).includes('messages') ? num(a.messages) : '-' },
      { title: 'in/s', cls: 'n', get: (a) => (a.measured || []).includes('rates') ? num(a.in_rate) : '-' },
      { title: 'out/s', cls: 'n', get: (a) => (a.measured || []).includes('rates') ? num(a.out_rate) : '-' },
      { title: 'in', cls: 'n', get: (a) => (a.measured || []).includes('totals') ? num(a.in_total) : '-' },
      { title: 'out', cls: 'n', get: (a) => (a.measured || []).includes('totals') ? num(a.out_total) : '-' },
      { title: 'id', cls: 'n', get: (a) => a.id },
    ],
  });
}

function queuesPage(root) {
  return listPage(root, {
    title: `Queues in vhost ${state.vhost}`, collection: 'queues', sort: 'name',
    sorts: ['name', 'messages', 'messages_ready', 'messages_unacked', 'consumers', 'bytes', 'publish_rate', 'deliver_rate', 'ack_rate'],
    columns: [
      { title: 'name', html: (q) => `<a href="#/queue/${enc(q.vhost)}/${enc(q.name)}">${esc(q.name)}</a>` },
      { title: 'features', get: (q) => [q.durable && 'D', q.auto_delete && 'AD', q.exclusive && 'X'].filter(Boolean).join(' ') },
      { title: 'messages', cls: 'n', get: (q) => num(q.messages) },
      { title: 'ready', cls: 'n', get: (q) => num(q.messages_ready) },
      { title: 'unacked', cls: 'n', get: (q) => num(q.messages_unacked) },
      { title: 'consumers', cls: 'n', get: (q) => num(q.consumers) },
      { title: 'bytes', cls: 'n', get: (q) => bytes(q.bytes_ready) },
      { title: 'in/s', cls: 'n', get: (q) => num(q.stats?.rates?.publish) },
      { title: 'out/s', cls: 'n', get: (q) => num(q.stats?.rates?.deliver) },
      { title: 'ack/s', cls: 'n', get: (q) => num(q.stats?.rates?.ack) },
    ],
  });
}

function exchangesPage(root) {
  return listPage(root, {
    title: `Exchanges in vhost ${state.vhost}`, collection: 'exchanges', sort: 'name',
    sorts: ['name', 'type', 'bindings'],
    columns: [
      { title: 'name', get: (x) => x.name || '(default)' },
      { title: 'type', get: (x) => x.type },
      { title: 'features', get: (x) => [x.durable && 'D', x.auto_delete && 'AD', x.internal && 'I', x.builtin && 'built-in'].filter(Boolean).join(' ') },
      { title: 'alternate exchange', get: (x) => x.alternate_exchange },
      { title: 'bindings', cls: 'n', get: (x) => num(x.bindings) },
    ],
  });
}

function connectionsPage(root) {
  return listPage(root, {
    title: `Connections in vhost ${state.vhost}`, collection: 'connections', sort: 'id',
    sorts: ['id', 'published', 'delivered', 'channels'],
    columns: [
      { title: 'id', cls: 'n', get: (c) => c.id },
      { title: 'peer', get: (c) => c.peer },
      { title: 'user', get: (c) => c.user },
      { title: 'client', get: (c) => [c.client_name, c.client_product].filter(Boolean).join(' / ') },
      { title: 'connected', get: (c) => new Date(Number(c.connected_at_ms)).toLocaleString() },
      { title: 'channels', cls: 'n', get: (c) => num(c.channels) },
      { title: 'consumers', cls: 'n', get: (c) => num(c.consumers) },
      { title: 'received', cls: 'n', get: (c) => num(c.published) },
      { title: 'sent', cls: 'n', get: (c) => num(c.delivered) },
      { title: 'heartbeat', cls: 'n', get: (c) => `${c.heartbeat} s` },
    ],
  });
}

function queuePage(root, vhost, name) {
  root.innerHTML = `
    <h2>Queue <span class="qname">${esc(name)}</span> <small>in vhost ${esc(vhost)}</small></h2>
    <div class="cards"></div>
    <div class="charts">
      <div class="chart"><canvas id="qdepth"></canvas></div>
      <div class="chart"><canvas id="qrates"></canvas></div>
    </div>
    <h3>Consumers</h3><table class="grid consumers"><thead><tr><th>connection</th><th>channel</th><th>tag</th><th>ack</th><th>user</th></tr></thead><tbody></tbody></table>
    <h3>Bindings</h3><table class="grid bindings"><thead><tr><th>source</th><th>routing key</th><th>arguments</th></tr></thead><tbody></tbody></table>
    <h3>Arguments</h3><pre class="args"></pre>
    <h3>Messages <button class="peek">peek at the next 10</button> <span class="peek-note"></span></h3>
    <table class="grid peeked"><thead><tr><th>#</th><th>exchange</th><th>routing key</th><th>redelivered</th><th>bytes</th><th>properties</th><th>body</th></tr></thead><tbody></tbody></table>`;
  const depth = lineChart(root.querySelector('#qdepth'), ['ready', 'unacked'], 'Depth');
  const rates = lineChart(root.querySelector('#qrates'), ['publish/s', 'deliver/s', 'ack/s'], 'Rates');
  const base = `/api/queues/${enc(vhost)}/${enc(name)}`;
  const paths = [base, `${base}/consumers`, `${base}/bindings`];
  // Peeking copies bodies: only on request, never in the live updates.
  root.querySelector('.peek').addEventListener('click', async () => {
    const r = await api(`${base}/peek?count=10`);
    const note = root.querySelector('.peek-note');
    if (r.status !== 200) { note.textContent = r.body?.error || String(r.status); return; }
    const msgs = r.body.messages || [];
    note.textContent = `${msgs.length} of ${num(r.body.message_count)} ready, left in the queue`;
    const text = (b64) => {
      const raw = atob(b64 || '');
      return raw.replace(/[^\x20-\x7e]/g, '.');
    };
    root.querySelector('.peeked tbody').innerHTML = msgs.map((m, i) => `<tr><td>${i + 1}</td><td>${esc(m.exchange || '(default)')}</td><td>${esc(m.routing_key)}</td><td>${m.redelivered ? 'yes' : ''}</td><td class="n">${esc(num(m.body_size))}</td><td>${esc(JSON.stringify(m.properties || {}))}</td><td><code>${esc(text(m.body).slice(0, 200))}${m.body_truncated || Number(m.body_size) > 200 ? '…' : ''}</code></td></tr>`).join('');
  });
  watch(paths);
  const key = `queue:${vhost}:${name}`;
  fillChart(depth, state.history.get(`${key}:depth`) || []);
  fillChart(rates, state.history.get(`${key}:rates`) || []);
  return {
    update(results) {
      const r = results[paths[0]];
      if (r && r.status !== 200) {
        root.querySelector('.cards').innerHTML = `<p class="error">${esc(r.body?.error || r.status)}</p>`;
      } else if (r) {
        const q = r.body.objects[0].queue;
        const cards = [['messages', num(q.messages)], ['ready', num(q.messages_ready)],
          ['unacked', num(q.messages_unacked)], ['consumers', num(q.consumers)],
          ['bytes ready', bytes(q.bytes_ready)], ['memory (est.)', bytes(q.memory_bytes)],
          ['published', num(q.stats?.published)], ['delivered', num(q.stats?.delivered)],
          ['acked', num(q.stats?.acked)], ['dead-lettered', num(q.stats?.dead_lettered)],
          ['expired', num(q.stats?.expired)], ['redelivered', num(q.stats?.redelivered)]];
        root.querySelector('.cards').innerHTML = cards.map(([k, v]) => `<div class="card"><div class="k">${esc(k)}</div><div class="v" data-card="${esc(k)}">${esc(v)}</div></div>`).join('');
        const ra = q.stats?.rates || {};
        fillChart(depth, remember(`${key}:depth`, [Number(q.messages_ready), Number(q.messages_unacked)]));
        fillChart(rates, remember(`${key}:rates`, [ra.publish || 0, ra.deliver || 0, ra.ack || 0]));
        root.querySelector('.args').textContent = JSON.stringify(q.arguments || {}, null, 2);
      }
      const c = results[paths[1]];
      if (c && c.status === 200)
        root.querySelector('.consumers tbody').innerHTML = (c.body.objects || []).map((o) => o.consumer)
          .filter((x) => x.queue === name)
          .map((x) => `<tr><td>${esc(x.connection)}</td><td>${esc(x.channel)}</td><td>${esc(x.tag)}</td><td>${x.ack_required ? 'manual' : 'auto'}</td><td>${esc(x.user)}</td></tr>`).join('');
      const b = results[paths[2]];
      if (b && b.status === 200)
        root.querySelector('.bindings tbody').innerHTML = (b.body.objects || []).map((o) => o.binding)
          .filter((x) => x.destination === name && x.destination_type === 'queue')
          .map((x) => `<tr><td>${esc(x.source || '(default)')}</td><td>${esc(x.routing_key)}</td><td>${esc(JSON.stringify(x.arguments || {}))}</td></tr>`).join('');
    },
    destroy() { depth.destroy(); rates.destroy(); },
  };
}

function eventsPage(root) {
  root.innerHTML = `
    <h2>Event log</h2>
    <div class="toolbar"><input class="filter" placeholder="filter (e.g. queue.created)" aria-label="filter"> <span class="count"></span></div>
    <table class="grid"><thead><tr><th>time</th><th>event</th><th>vhost</th><th>name</th><th>details</th></tr></thead><tbody></tbody></table>`;
  let filter = '';
  const render = () => {
    const rows = state.events.slice().reverse().filter((e) => !filter
      || `${e.kind}.${e.action} ${e.name} ${e.vhost}`.includes(filter)).slice(0, 500);
    root.querySelector('.count').textContent = `${rows.length} shown, ${state.events.length} kept`;
    root.querySelector('tbody').innerHTML = rows.map((e) => `<tr><td>${esc(new Date(Number(e.timestamp_ms)).toLocaleTimeString())}</td><td>${esc(`${e.kind}.${e.action}`)}</td><td>${esc(e.vhost)}</td><td>${esc(e.name)}</td><td>${esc(Object.entries(e.details || {}).map(([k, v]) => `${k}=${v}`).join(' '))}</td></tr>`).join('');
  };
  root.querySelector('.filter').addEventListener('input', (e) => { filter = e.target.value; render(); });
  watch([]);
  render();
  return { update(_, events) { if (events.length) render(); } };
}

// Link states (docs/federation.md) -> edge colours.
const LINK_COLORS = {
  Operational: '#2a9d5c', Connecting: '#e0a21b', Waiting: '#e0a21b',
  Failed: '#c0392b', Closed: '#8a8f98',
};

/// The federation graph of this broker: brokers are nodes; each link is an
/// edge in the direction messages flow (pull: remote -> here, push: here ->
/// remote), coloured by its state; exports to peers that pull from here
/// are edges here -> peer. Pure: returns { nodes, edges } for cytoscape.
function topologyModel(self, links, bridges) {
  const nodes = new Map([[self, { id: `broker:${self}`, label: `${self} (this broker)`, color: '#2f6fdf', size: 70 }]]);
  const remoteNode = (name) => {
    if (!nodes.has(name)) nodes.set(name, { id: `broker:${name}`, label: name, color: '#6b7a8f', size: 55 });
    return nodes.get(name).id;
  };
  // Brokers named alike (the default name is the host name) stay apart.
  const other = (name, where) => (name === self ? `${name} (${where})` : name);
  const edges = [];
  const pushes = new Set(bridges.filter((b) => b.direction === 'push').map((b) => b.name));
  for (const l of links) {
    const remote = other(l.remote_node || `${l.host}:${l.port}`, l.host ? `${l.host}:${l.port}` : l.name);
    const mine = bridges.filter((b) => b.link === l.name);
    const pull = mine.some((b) => b.direction === 'in') || !mine.some((b) => b.direction === 'push');
    const push = mine.some((b) => b.direction === 'push');
    const base = { link: l.name, state: l.state || 'Waiting', routes: mine.length, error: l.last_error || '' };
    if (pull) edges.push({ ...base, id: `link:${l.name}:in`, from: remote, to: self, count: Number(l.messages_in || 0) });
    if (push) edges.push({ ...base, id: `link:${l.name}:out`, from: self, to: remote, count: Number(l.messages_out || 0) });
  }
  // Routes over the peers' links (which end in a session here), per peer:
  // the number of routes `pick` selects and their `counter`.
  const perPeer = (pick, counter) => {
    const byPeer = new Map();
    for (const b of bridges.filter(pick)) {
      const e = byPeer.get(b.peer) || { routes: 0, count: 0 };
      e.routes += 1;
      e.count += Number(b[counter] || 0);
      byPeer.set(b.peer, e);
    }
    return byPeer;
  };
  // Exports serve bridges of peers.
  for (const [peer, e] of perPeer((b) => b.direction === 'out' && !pushes.has(b.name), 'messages_out'))
    edges.push({ id: `export:${peer}`, link: `exports to ${peer}`, state: 'Operational', routes: e.routes, error: '', from: self, to: other(peer, 'peer'), count: e.count });
  // Push routes of peers: a route in without a link here.
  for (const [peer, e] of perPeer((b) => b.direction === 'in' && !b.link, 'messages_in'))
    edges.push({ id: `import:${peer}`, link: `pushed by ${peer}`, state: 'Operational', routes: e.routes, error: '', from: other(peer, 'peer'), to: self, count: e.count });
  for (const e of edges) { remoteNode(e.from); remoteNode(e.to); }
  return { nodes: [...nodes.values()], edges };
}

function topologyPage(root) {
  root.innerHTML = `
    <h2>Topology</h2>
    <p class="note">This broker and the brokers it federates with. Each link is an arrow in the direction messages flow (a route pulled from a remote broker points here; a push route and the exports serving other brokers' routes point there), coloured by link state: <span style="color:${LINK_COLORS.Operational}">Operational</span>, <span style="color:${LINK_COLORS.Connecting}">Connecting or Waiting</span>, <span style="color:${LINK_COLORS.Failed}">Failed</span>, <span style="color:${LINK_COLORS.Closed}">Closed</span>. Routes of vhost ${esc(state.vhost)}.</p>
    <div id="graph"></div>
    <table class="grid topology-links"><thead><tr><th>link</th><th>from</th><th>to</th><th>state</th><th>routes</th><th>messages</th><th>msg/s</th><th>last error</th></tr></thead><tbody></tbody></table>`;
  const cy = cytoscape({
    container: root.querySelector('#graph'),
    style: [
      { selector: 'node', style: { label: 'data(label)', 'text-valign': 'center', color: '#fff', 'font-size': 12, 'text-outline-width': 2, 'text-outline-color': 'data(color)', 'background-color': 'data(color)', width: 'data(size)', height: 'data(size)' } },
      { selector: 'edge', style: { width: 3, 'line-color': 'data(color)', 'target-arrow-shape': 'triangle', 'target-arrow-color': 'data(color)', 'curve-style': 'bezier', label: 'data(label)', 'font-size': 10, 'text-wrap': 'wrap', 'text-background-color': '#fff', 'text-background-opacity': 0.85, 'text-background-padding': 2 } },
    ],
    layout: { name: 'circle' },
  });
  const paths = ['/api/nodes', '/api/links?page_size=1000',
    `/api/bridges?${query({ vhost: state.vhost, page_size: 1000 })}`];
  watch(paths);
  let shape = '';
  const last = new Map(); // edge id -> { t, count } for msg/s
  return {
    update(results) {
      if (paths.some((p) => !results[p] || results[p].status !== 200)) return;
      const self = (results[paths[0]].body.objects || []).map((o) => o.broker.node)[0] || 'this broker';
      const links = (results[paths[1]].body.objects || []).map((o) => o.link);
      const bridges = (results[paths[2]].body.objects || []).map((o) => o.bridge);
      const model = topologyModel(self, links, bridges);
      const now = Date.now();
      for (const e of model.edges) {
        const prev = last.get(e.id);
        e.rate = prev && now > prev.t ? Math.max(0, (e.count - prev.count) * 1000 / (now - prev.t)) : 0;
        last.set(e.id, { t: now, count: e.count });
      }
      const elements = [
        ...model.nodes.map((n) => ({ data: n })),
        ...model.edges.map((e) => ({ data: {
          id: e.id, source: `broker:${e.from}`, target: `broker:${e.to}`,
          color: LINK_COLORS[e.state] || LINK_COLORS.Waiting,
          label: `${e.link} (${e.state})\n${num(e.count)} msgs, ${num(e.rate)} msg/s`,
        } })),
      ];
      const graph = root.querySelector('#graph');
      graph.dataset.nodes = model.nodes.map((n) => n.id.slice('broker:'.length)).join('\n');
      graph.dataset.edges = JSON.stringify(model.edges.map((e) => ({ link: e.link, from: e.from, to: e.to, state: e.state })));
      root.querySelector('.topology-links tbody').innerHTML = model.edges.length
        ? model.edges.map((e) => `<tr data-link="${esc(e.link)}"><td>${esc(e.link)}</td><td>${esc(e.from)}</td><td>${esc(e.to)}</td><td class="state" style="color:${LINK_COLORS[e.state] || LINK_COLORS.Waiting}">${esc(e.state)}</td><td class="n">${num(e.routes)}</td><td class="n">${num(e.count)}</td><td class="n">${num(e.rate)}</td><td>${esc(e.error)}</td></tr>`).join('')
        : '<tr><td colspan="8">no federation links (see docs/federation.md)</td></tr>';
      const next = elements.map((el) => el.data.id).join('\n');
      if (next === shape) {
        // Same graph: only labels and colours change, no new layout.
        for (const el of elements) cy.getElementById(el.data.id).data(el.data);
        return;
      }
      shape = next;
      cy.elements().remove();
      cy.add(elements);
      cy.layout({ name: 'circle', padding: 40 }).run();
    },
    destroy() { cy.destroy(); },
  };
}

const routes = {
  overview: overviewPage,
  actors: actorsPage,
  queues: queuesPage,
  exchanges: exchangesPage,
  connections: connectionsPage,
  events: eventsPage,
  topology: topologyPage,
};

function route() {
  const main = document.getElementById('main');
  if (!main) return;
  if (state.page && state.page.destroy) state.page.destroy();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const name = parts[0] || 'overview';
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.dataset.route === name));
  if (name === 'queue' && parts.length >= 3) {
    state.page = queuePage(main, parts[1], parts.slice(2).join('/'));
    return;
  }
  state.page = (routes[name] || overviewPage)(main);
}

// -- login and layout ------------------------------------------------------------

function showLogin(message) {
  state.user = null;
  document.getElementById('app').innerHTML = `
    <form class="login" id="login">
      <h1>Flotilla inspector</h1>
      <label>user <input name="user" autocomplete="username" required></label>
      <label>password <input name="password" type="password" autocomplete="current-password"></label>
      <button type="submit">Log in</button>
      <p class="error">${esc(message || '')}</p>
    </form>`;
  document.getElementById('login').addEventListener('submit', async (e) => {
    e.preventDefault();
    const form = new URLSearchParams(new FormData(e.target));
    const res = await fetch('/login', {
      method: 'POST', body: form, credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'X-Flotilla-UI': '1' },
    });
    if (res.status === 200) start();
    else showLogin('unknown user or wrong password');
  });
}

function showApp() {
  document.getElementById('app').innerHTML = `
    <header>
      <h1>Flotilla</h1>
      <nav>${Object.keys(routes).map((r) => `<a href="#/${r}" data-route="${r}">${r}</a>`).join('')}</nav>
      <span class="right">
        <label>vhost <select id="vhost">${state.vhosts.map((v) => `<option>${esc(v)}</option>`).join('')}</select></label>
        <span id="live">connecting</span>
        <span>${esc(state.user || (state.auth ? '' : 'auth off'))}${state.admin ? ' (administrator)' : ''}</span>
        ${state.auth ? '<button id="logout">log out</button>' : ''}
      </span>
    </header>
    <main id="main"></main>`;
  const sel = document.getElementById('vhost');
  sel.value = state.vhost;
  sel.addEventListener('change', () => { state.vhost = sel.value; route(); });
  const out = document.getElementById('logout');
  if (out) out.addEventListener('click', async () => {
    await fetch('/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-Flotilla-UI': '1' } });
    const ws = state.ws;
    state.user = null;
    if (ws) ws.close();
    showLogin('logged out');
  });
  route();
}

async function start() {
  const me = await api('/api/whoami');
  if (me.status !== 200) { showLogin(); return; }
  state.user = me.body.user;
  state.admin = me.body.administrator;
  state.auth = me.body.auth;
  const vh = await api('/api/vhosts?page_size=1000');
  if (vh.status === 200) state.vhosts = (vh.body.objects || []).map((o) => o.vhost.name);
  if (!state.vhosts.includes(state.vhost)) state.vhost = state.vhosts[0] || '/';
  showApp();
  connectSocket();
}

window.addEventListener('hashchange', route);
start();
