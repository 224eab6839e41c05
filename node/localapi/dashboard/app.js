// syncnode dashboard: plain JavaScript on the node's public local API
// (docs/API.md), signed in with a browser session. No framework, no build
// step, nothing loaded from elsewhere. Data reaches the page only through
// textContent, never as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const CSRF_KEY = 'syncnode.csrf'; // localStorage is per origin: per port
const POLL_MS = 2000;

const state = {
  csrf: localStorage.getItem(CSRF_KEY) || '',
  node: null, // GET /v1/status's node
  libs: [],
  lib: '', // the selected library's ID
  status: null, // GET /v1/libraries/{lib}
  names: {}, // device ID -> name
  models: [],
  view: 'library',
  events: null, // the EventSource of lib
  lagSamples: {}, // device -> [{t, lag}] to estimate catch-up
  recNext: '',
  timers: [],
  joining: null, // {id, name} while a join's backfill runs
  gen: 0, // counts sign-ins and sign-outs: work of an older one stops
  inflight: new Set(), // reads of a library under way (see quiesce)
};

// ---- small helpers ----

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k !== null && k !== undefined && k !== false) e.append(k instanceof Node ? k : String(k));
  return e;
}

function clear(node) { while (node.firstChild) node.firstChild.remove(); return node; }

function short(id) { return id ? id.slice(0, 8) : ''; }

function nameOf(device) {
  if (!device) return '';
  return state.names[device] || short(device);
}

// versionTime reads the time of an HLC "timestamp:counter:device".
function versionTime(v) {
  const ms = Number(String(v || '').split(':')[0]);
  return Number.isFinite(ms) && ms > 0 ? new Date(ms) : null;
}

function ago(date) {
  if (!date) return '';
  const s = Math.round((Date.now() - date.getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 90) return s + ' s ago';
  if (s < 5400) return Math.round(s / 60) + ' min ago';
  if (s < 129600) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' days ago';
}

function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 1) return 'under a second';
  if (s < 90) return s + ' s';
  if (s < 5400) return Math.round(s / 60) + ' min';
  if (s < 129600) return Math.round(s / 3600) + ' h';
  return Math.round(s / 86400) + ' days';
}

function timeEl(date) {
  if (!date) return el('span', {}, '—');
  return el('time', { datetime: date.toISOString(), title: date.toLocaleString() }, date.toLocaleTimeString());
}

function badge(text, cls) { return el('span', { class: 'badge ' + cls }, text); }

function showError(msg) { $('app-error').textContent = msg || ''; }

class ApiError extends Error {
  constructor(status, message, code) { super(message); this.status = status; this.code = code; }
}

// api calls the local API with the session's key; a 401 ends the session.
async function api(method, path, body) {
  const opts = { method, headers: { 'X-Syncnode-CSRF': state.csrf }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let r;
  const req = fetch(path, opts);
  if (method === 'GET' && path.startsWith('/v1/libraries/')) {
    state.inflight.add(req);
    req.finally(() => state.inflight.delete(req)).catch(() => {});
  }
  try {
    r = await req;
  } catch (e) {
    throw new ApiError(0, 'the daemon does not answer (is `syncnode run` running?)', 'offline');
  }
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!r.ok) {
    const err = new ApiError(r.status, (data && data.error) || r.status + ' ' + r.statusText, data && data.code);
    if (r.status === 401 && path !== '/v1/session') signedOut('Your session has ended: sign in again.');
    throw err;
  }
  return data;
}

function libPath(...rest) {
  return '/v1/libraries/' + encodeURIComponent(state.lib) + rest.map((p) => '/' + encodeURIComponent(p)).join('');
}

// ---- signing in ----

async function boot() {
  wire();
  const m = location.hash.match(/^#signin=([A-Za-z0-9_-]{1,200})$/);
  if (m) {
    // The one-time code leaves the address bar and this history entry at once.
    history.replaceState(null, '', '/');
    await signIn({ link: m[1] });
    return;
  }
  if (state.csrf) {
    try {
      const s = await api('GET', '/v1/session');
      if (s && s.signed_in) { start(); return; }
    } catch (e) { /* shown below */ }
  }
  signedOut('');
}

async function signIn(body) {
  $('signin-error').textContent = '';
  try {
    const s = await api('POST', '/v1/session', body);
    state.csrf = s.csrf;
    localStorage.setItem(CSRF_KEY, s.csrf);
    $('token').value = '';
    start();
  } catch (e) {
    signedOut(body.link ? 'This sign-in link was used already or has expired: run `syncnode open` again.' : e.message);
  }
}

function signedOut(msg) {
  stop();
  state.gen++;
  state.csrf = '';
  localStorage.removeItem(CSRF_KEY);
  $('loading').hidden = true;
  $('app').hidden = true;
  $('signout').hidden = true;
  $('whoami').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = msg || '';
  $('token').value = '';
  $('token').focus();
}

async function signOut() {
  try { await api('DELETE', '/v1/session'); } catch (e) { /* signed out either way */ }
  signedOut('Signed out.');
}

function stop() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  if (state.events) { state.events.close(); state.events = null; }
}

async function start() {
  const gen = ++state.gen;
  $('loading').hidden = true;
  $('signin').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = false;
  try {
    const st = await api('GET', '/v1/status');
    if (gen !== state.gen) return;
    state.node = st.node;
    state.names[st.node.device] = st.node.name;
    $('whoami').textContent = st.node.name + ' · device ' + short(st.node.device);
    $('whoami').hidden = false;
    state.models = await api('GET', '/v1/models');
    if (gen !== state.gen) return;
    fillModels();
    await loadLibraries();
  } catch (e) {
    if (gen === state.gen) showError(e.message);
  }
  if (gen !== state.gen) return;
  $('main').focus();
  state.timers.push(setInterval(tick, POLL_MS));
}

// tick refreshes what has no event: peers' states, and the view shown.
async function tick() {
  try {
    if (state.lib) await loadLibrary();
    if (state.view === 'node') await loadNode();
    if (state.joining) await joinProgress();
  } catch (e) {
    if (e.status !== 401) showError(e.message);
  }
}

// ---- libraries ----

async function loadLibraries(select) {
  state.libs = await api('GET', '/v1/libraries');
  const sel = clear($('lib-select'));
  for (const l of state.libs) sel.append(el('option', { value: l.id }, l.removed ? l.name + ' (removed)' : l.name));
  const want = select || state.lib;
  const keep = state.libs.find((l) => l.id === want) || state.libs[0];
  $('no-library').hidden = state.libs.length > 0;
  $('lib-bar').hidden = state.libs.length === 0;
  $('lib-panels').hidden = state.libs.length === 0;
  selectLibrary(keep ? keep.id : '');
}

function selectLibrary(id) {
  const changed = id !== state.lib;
  state.lib = id;
  $('lib-select').value = id;
  if (!changed) { if (id) loadLibrary().catch((e) => showError(e.message)); return; }
  if (state.events) { state.events.close(); state.events = null; }
  clear($('events'));
  clear($('records').tBodies[0]);
  $('record').hidden = true;
  $('invite-out').hidden = true;
  state.status = null;
  if (!id) return;
  openEvents();
  loadLibrary().catch((e) => showError(e.message));
  loadCounts();
  if (state.view === 'records') loadRecords(false);
}

async function loadLibrary() {
  const st = await api('GET', libPath());
  if (st.id !== state.lib) return;
  state.status = st;
  for (const m of st.members) state.names[m.device] = m.name;
  const lib = state.libs.find((l) => l.id === st.id);
  const removed = st.removed || (lib && lib.removed);
  $('lib-removed').hidden = !removed;
  if (removed) {
    $('lib-removed').textContent = 'Device ' + nameOf(removed.by) + ' removed this device from the library at ' +
      new Date(removed.at).toLocaleString() + ': it no longer syncs it. Its records stay readable until you leave the library.';
  }
  renderMembers(st);
  fillOwners(st.members);
  let info = st.log_entries + ' shared changes in the log';
  if (st.quarantined) info += ', ' + st.quarantined + ' quarantined (clock too far ahead)';
  $('log-info').textContent = info + '.';
}

function peerState(p, st) {
  const now = Date.now();
  const samples = (state.lagSamples[p.device] = (state.lagSamples[p.device] || []).concat({ t: now, lag: p.lag_ms }).slice(-10));
  switch (p.state) {
    case 'live':
      return [badge('live', 's-live')];
    case 'catching up': {
      const out = [badge('catching up', 's-catching')];
      const b = st.backfill;
      if (b && !b.done && b.expected > 0) {
        const frac = Math.min(1, b.received / b.expected);
        out.push(el('progress', { value: frac, max: 1, 'aria-label': 'catch-up progress' }));
        const rate = b.received / Math.max(1, now - Date.parse(b.started));
        let txt = b.received + ' of ' + b.expected + ' records';
        if (rate > 0 && b.received < b.expected) txt += ', about ' + duration((b.expected - b.received) / rate) + ' left';
        out.push(el('span', { class: 'sub' }, txt));
      } else {
        let txt = (p.records || 0) + ' records in ' + (p.pages || 0) + ' pages so far';
        const first = samples[0];
        const last = samples[samples.length - 1];
        if (samples.length > 2 && first.lag > last.lag && last.lag > 0) {
          const rate = (first.lag - last.lag) / (last.t - first.t);
          txt += ', about ' + duration(last.lag / rate) + ' left';
        }
        out.push(el('span', { class: 'sub' }, txt));
      }
      return out;
    }
    case 'connecting':
      return [badge('connecting', 's-connecting')];
    default: {
      const heard = p.last_heard ? new Date(p.last_heard) : null;
      const out = [badge('offline', 's-offline')];
      out.push(el('span', { class: 'sub' }, heard ? 'since ' + heard.toLocaleString() + ' (' + ago(heard) + ')' : 'never seen by this device'));
      if (p.last_dial_error) out.push(el('span', { class: 'sub' }, 'last dial: ' + p.last_dial_error));
      return out;
    }
  }
}

function renderMembers(st) {
  const peers = {};
  for (const p of st.peers) peers[p.device] = p;
  const body = clear($('members').tBodies[0]);
  for (const m of st.members) {
    const p = peers[m.device];
    const who = el('td', { 'data-label': 'Device' }, m.name || short(m.device), el('span', { class: 'sub mono' }, m.device));
    if (m.self) {
      body.append(el('tr', { 'data-device': m.device, 'data-state': 'self' }, who,
        el('td', { 'data-label': 'State' }, badge('this device', 's-info')), el('td', { colspan: 4 })));
      continue;
    }
    const lag = !p ? '—' : p.lag_ms > 0 ? duration(p.lag_ms) + ' behind' : 'in sync';
    const path = p && p.path && p.path.kind
      ? el('td', { 'data-label': 'Path', title: p.path.text }, p.path.kind + (p.path.limited ? ' (limited)' : ''),
        p.path.relay ? el('span', { class: 'sub mono' }, 'via ' + short(p.path.relay) + '…') : null)
      : el('td', { 'data-label': 'Path' }, 'not connected');
    const remove = st.removed ? el('td') : el('td', { class: 'act' }, el('button', {
      type: 'button', class: 'small danger', 'aria-label': 'Remove ' + (m.name || m.device) + ' from the library',
      onclick: () => removeDevice(m),
    }, 'Remove…'));
    body.append(el('tr', { 'data-device': m.device, 'data-state': p ? p.state : 'offline' }, who,
      el('td', { 'data-label': 'State' }, ...(p ? peerState(p, st) : [badge('offline', 's-offline')])),
      el('td', { 'data-label': 'Lag' }, lag), path, el('td', { 'data-label': 'Transport' }, (p && p.path && p.path.transport) || '—'), remove));
  }
}

async function loadCounts() {
  if (!state.lib) return;
  try {
    const counts = await api('GET', libPath('models'));
    const body = clear($('counts').tBodies[0]);
    for (const c of counts) {
      body.append(el('tr', { 'data-model': c.name }, el('td', {}, c.name), el('td', {}, c.strategy), el('td', { class: 'num' }, c.records)));
    }
  } catch (e) {
    showError(e.message);
  }
}

let countsTimer = 0;
function countsSoon() {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(loadCounts, 1000);
}

// ---- the event stream ----

function openEvents() {
  const url = libPath('events') + '?csrf=' + encodeURIComponent(state.csrf);
  const es = new EventSource(url); // resumes with Last-Event-ID by itself
  state.events = es;
  const status = $('events-status');
  status.textContent = 'Connecting…';
  es.onopen = () => { status.textContent = 'Connected: changes appear here as they happen.'; };
  es.onerror = () => {
    status.textContent = es.readyState === EventSource.CLOSED ? 'Disconnected.' : 'Reconnecting…';
  };
  for (const type of ['changed', 'deleted', 'resync']) {
    es.addEventListener(type, (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      onEvent(ev);
    });
  }
}

function onEvent(ev) {
  if (ev.library !== state.lib) return;
  const list = $('events');
  let text;
  if (ev.type === 'resync') {
    text = [el('strong', {}, 'resync'), ' ', ev.reason];
  } else {
    text = [el('strong', {}, ev.type), ' ', ev.model, ' ', el('span', { class: 'mono' }, short(ev.id)), ' by ', nameOf(ev.by)];
    if (ev.missed) text.push(' (' + ev.missed + ' missed before it)');
  }
  list.prepend(el('li', { 'data-id': ev.id || '', 'data-type': ev.type, 'data-model': ev.model || '' }, timeEl(new Date()), ...text));
  while (list.children.length > 100) list.lastChild.remove();
  if (ev.model === 'device') loadLibrary().catch(() => {});
  countsSoon();
  if (state.view === 'records' && ev.model === $('rec-model').value) recordsSoon();
}

// ---- invite, join, create, remove, leave ----

async function invite(e) {
  e.preventDefault();
  const btn = e.submitter || e.target.querySelector('button');
  btn.disabled = true;
  try {
    const single = $('invite-single').checked;
    const inv = await api('POST', libPath('invites'), { ttl: $('invite-ttl').value, single_use: single, qr: true });
    $('invite-code').value = inv.code;
    $('invite-copy').textContent = 'Copy code';
    const exp = new Date(inv.expires);
    $('invite-meta').textContent = 'Valid until ' + exp.toLocaleString() + ' (' + duration(exp - Date.now()) + '), ' +
      (inv.single_use ? 'for one device only.' : 'for any number of devices.');
    const img = $('invite-qr');
    if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
    // Whole pixels per module: sharp edges for a camera (and a decoder).
    const n = Number((inv.qr_svg.match(/viewBox="0 0 (\d+) /) || [])[1]) || 66;
    img.width = img.height = n * Math.max(2, Math.floor(270 / n));
    img.src = URL.createObjectURL(new Blob([inv.qr_svg], { type: 'image/svg+xml' }));
    $('invite-out').hidden = false;
    $('invite-code').focus();
    $('invite-code').select();
  } catch (err) {
    showError('Invite: ' + err.message);
  } finally {
    btn.disabled = false;
  }
}

async function copyCode() {
  const code = $('invite-code').value;
  try {
    await navigator.clipboard.writeText(code);
    $('invite-copy').textContent = 'Copied';
  } catch (e) {
    $('invite-code').select(); // the user copies it by hand
  }
}

async function join(e) {
  e.preventDefault();
  const btn = e.submitter || e.target.querySelector('button');
  const code = $('join-code').value.trim();
  if (!code) return;
  btn.disabled = true;
  $('join-out').hidden = false;
  $('join-progress').removeAttribute('value');
  $('join-status').textContent = 'Reaching the inviting device…';
  try {
    const lib = await api('POST', '/v1/libraries/join', { code });
    $('join-code').value = '';
    $('join-status').textContent = 'Joined library ' + lib.name + '. Backfilling…';
    state.joining = { id: lib.id, name: lib.name };
    await loadLibraries(lib.id);
    await joinProgress();
  } catch (err) {
    $('join-status').textContent = 'Could not join: ' + err.message;
    $('join-progress').value = 0;
  } finally {
    btn.disabled = false;
  }
}

async function joinProgress() {
  const j = state.joining;
  if (!j) return;
  const st = await api('GET', '/v1/libraries/' + encodeURIComponent(j.id));
  const b = st.backfill;
  const bar = $('join-progress');
  if (!b) return;
  if (b.expected > 0) bar.value = Math.min(1, b.received / b.expected);
  if (b.done) {
    bar.value = 1;
    $('join-status').textContent = 'Backfill done: ' + b.received + ' records of library ' + j.name + ' on this device.';
    state.joining = null;
    loadCounts();
  } else {
    $('join-status').textContent = 'Backfilling library ' + j.name + ': ' + b.received + ' of ' + b.expected + ' records.';
  }
}

async function create(e) {
  e.preventDefault();
  const name = $('create-name').value.trim();
  if (!name) return;
  try {
    const lib = await api('POST', '/v1/libraries', { name });
    $('create-name').value = '';
    await loadLibraries(lib.id);
  } catch (err) {
    showError('Create: ' + err.message);
  }
}

// confirm shows the dialog and resolves to true when the user confirms.
function confirmDialog(title, text, ok, extra) {
  const d = $('confirm');
  $('confirm-h').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  $('confirm-extra').hidden = !extra;
  $('confirm-delete').checked = false;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
  });
}

async function removeDevice(m) {
  const name = m.name || m.device;
  if (!(await confirmDialog('Remove ' + name + '?', 'Device ' + name + ' (' + m.device + ') will no longer sync this library with any member. It can join again only with a new invite.', 'Remove device'))) return;
  try {
    await api('DELETE', libPath('devices', m.device));
    await loadLibrary();
  } catch (err) {
    showError('Remove: ' + err.message);
  }
}

// quiesce stops reading the selected library (its event stream, the reads
// planned and those under way) before it goes away.
async function quiesce() {
  state.lib = '';
  if (state.events) { state.events.close(); state.events = null; }
  clearTimeout(countsTimer);
  clearTimeout(recordsTimer);
  await Promise.allSettled([...state.inflight]);
}

async function leave() {
  const lib = state.libs.find((l) => l.id === state.lib);
  if (!lib) return;
  if (!(await confirmDialog('Leave ' + lib.name + '?', 'This device stops syncing library ' + lib.name + '. The other members keep it.', 'Leave library', true))) return;
  const path = libPath('leave');
  const deleteData = $('confirm-delete').checked;
  await quiesce();
  try {
    await api('POST', path, { delete_data: deleteData });
  } catch (err) {
    showError('Leave: ' + err.message);
  }
  await loadLibraries().catch((err) => showError(err.message));
}

// ---- records ----

function fillModels() {
  const sel = clear($('rec-model'));
  for (const m of state.models) sel.append(el('option', { value: m.name }, m.name));
  const tag = state.models.find((m) => m.name === 'tag');
  if (tag) sel.value = 'tag';
}

function fillOwners(members) {
  const sel = $('rec-owner');
  const keep = sel.value;
  const want = [''].concat(members.map((m) => m.device)).join(',');
  if (sel.dataset.members === want) return;
  sel.dataset.members = want;
  clear(sel).append(el('option', { value: '' }, 'any device'));
  for (const m of members) sel.append(el('option', { value: m.device }, (m.name || short(m.device)) + (m.self ? ' (this device)' : '')));
  sel.value = members.some((m) => m.device === keep) ? keep : '';
}

function preview(data) {
  const s = JSON.stringify(data);
  return s === undefined ? '' : s.length > 80 ? s.slice(0, 79) + '…' : s;
}

async function loadRecords(more) {
  if (!state.lib) return;
  const model = $('rec-model').value;
  const q = new URLSearchParams({ limit: '50' });
  if ($('rec-owner').value) q.set('owner', $('rec-owner').value);
  if ($('rec-deleted').checked) q.set('deleted', 'true');
  if (more && state.recNext) q.set('after', state.recNext);
  try {
    const page = await api('GET', libPath('records', model) + '?' + q);
    const body = $('records').tBodies[0];
    if (!more) clear(body);
    for (const r of page.records) {
      const when = versionTime(r.version);
      body.append(el('tr', { 'data-id': r.id },
        el('td', { 'data-label': 'ID' }, el('button', { type: 'button', class: 'link mono', onclick: () => showRecord(model, r.id), 'aria-label': 'Show record ' + r.id }, short(r.id))),
        el('td', { 'data-label': 'Written by' }, nameOf(r.by)), el('td', { 'data-label': 'When' }, timeEl(when)),
        el('td', { 'data-label': 'Data', class: 'mono' }, r.deleted ? '(deleted)' : preview(r.data))));
    }
    state.recNext = page.next || '';
    $('records-more').hidden = !page.next;
    $('records-empty').hidden = body.children.length > 0;
  } catch (e) {
    showError('Records: ' + e.message);
  }
}

let recordsTimer = 0;
function recordsSoon() {
  clearTimeout(recordsTimer);
  recordsTimer = setTimeout(() => loadRecords(false), 300);
}

async function showRecord(model, id) {
  const box = $('record');
  box.hidden = false;
  const meta = clear($('record-meta'));
  const data = $('record-data');
  data.textContent = '';
  try {
    let rec = null;
    try {
      rec = await api('GET', libPath('records', model, id));
    } catch (e) {
      if (e.status !== 404) throw e;
    }
    const hist = await api('GET', libPath('records', model, id, 'history'));
    const add = (k, v) => meta.append(el('dt', {}, k), el('dd', {}, v));
    add('Model', model);
    add('ID', el('span', { class: 'mono' }, id));
    if (rec) {
      add('Version', el('span', { class: 'mono' }, rec.version));
      add('Written by', nameOf(rec.by));
      add('When', timeEl(versionTime(rec.version)));
      data.textContent = JSON.stringify(rec.data, null, 2);
    } else {
      data.textContent = '(deleted)';
    }
    const list = clear($('history'));
    for (const c of hist.changes.slice().reverse()) {
      list.append(el('li', { 'data-version': c.version }, timeEl(versionTime(c.version)), el('strong', {}, c.type), ' by ', nameOf(c.by),
        c.data !== undefined ? el('pre', {}, JSON.stringify(c.data, null, 2)) : null));
    }
    let note = hist.note || '';
    if (!note) {
      note = hist.changes.length + (hist.changes.length === 1 ? ' change' : ' changes') + ' in the log, newest first.';
      if (hist.pruned_up_to) note += ' The log was pruned up to ' + new Date(hist.pruned_up_to).toLocaleString() + ': older changes are gone.';
      if (hist.truncated) note += ' The log is too long to read whole: older changes may be missing.';
    }
    $('history-note').textContent = note;
    box.focus();
  } catch (e) {
    showError('Record: ' + e.message);
  }
}

// ---- this device ----

async function loadNode() {
  const [st, doc, warns] = await Promise.all([api('GET', '/v1/status'), api('GET', '/v1/doctor'), api('GET', '/v1/warnings')]);
  const n = st.node;
  const net = st.network;
  const dl = (id, rows) => {
    const d = clear($(id));
    for (const [k, v] of rows) {
      if (v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0)) continue;
      const dd = el('dd');
      if (Array.isArray(v)) dd.append(...v.map((x) => el('div', { class: 'mono' }, x)));
      else dd.append(v);
      d.append(el('dt', {}, k), dd);
    }
  };
  dl('ident', [['Name', n.name], ['Device', el('span', { class: 'mono' }, n.device)], ['Peer ID', el('span', { class: 'mono' }, n.peer)],
    ['Protocol', n.protocol], ['Addresses', n.addrs]]);
  const pm = net.port_mapping;
  dl('net', [['Listening on', net.listen], ['Reachability', net.reachability + (net.reachability_forced ? ' (set in the configuration)' : '')],
    ['NAT', net.nat], ['Port mapping', !pm.enabled ? 'off' : pm.router_found ? 'router found' + (pm.mappings ? ': ' + pm.mappings.map((m) => m.external).join(', ') : '') : 'no router answered'],
    ['Relays', net.relays.length ? net.relays.map((r) => short(r.relay) + '…' + (r.member ? ' (member)' : ' (public)')) : 'none'],
    ['Hole punching', net.hole_punching ? 'on' : 'off'], ['Observed as', net.observed_addrs]]);
  const db = clear($('discovery').tBodies[0]);
  for (const d of st.discovery) {
    db.append(el('tr', {}, el('td', {}, d.name), el('td', {}, d.enabled ? (d.last_error ? badge('error', 's-error') : badge('on', 's-ok')) : badge('off', 's-info'),
      d.last_error ? el('span', { class: 'sub' }, d.last_error) : null), el('td', { class: 'num' }, d.found)));
  }
  if (st.discovery.length === 0) db.append(el('tr', {}, el('td', { colspan: 3 }, 'No discovery source is on (mDNS and the DHT are off).')));
  $('doctor-summary').textContent = doc.failed ? doc.failed + ' problem(s) keep this device from its members.' : 'No problem found.';
  const dlist = clear($('doctor'));
  for (const c of doc.checks) {
    dlist.append(el('li', { 'data-status': c.status }, badge(c.status, 's-' + c.status), ' ', el('strong', {}, c.area + ': ' + c.name), ' ', c.message,
      c.fix ? el('span', { class: 'fix' }, 'Fix: ' + c.fix) : null));
  }
  const wl = clear($('warnings'));
  for (const w of warns.slice().reverse()) {
    const attrs = Object.entries(w.attrs || {}).map(([k, v]) => k + '=' + v).join(' ');
    wl.append(el('li', {}, timeEl(new Date(w.time)), badge(w.level.toLowerCase(), w.level === 'ERROR' ? 's-error' : 's-warn'), ' ', w.message,
      attrs ? el('span', { class: 'sub mono' }, attrs) : null));
  }
  $('warnings-none').hidden = warns.length > 0;
}

// ---- views ----

function show(view) {
  state.view = view;
  for (const b of document.querySelectorAll('.tabs button')) {
    if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  for (const v of ['library', 'records', 'node']) $('view-' + v).hidden = v !== view;
  showError('');
  if (view === 'records') loadRecords(false);
  if (view === 'node') loadNode().catch((e) => showError(e.message));
}

function wire() {
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('token').value.trim();
    if (token) signIn({ token });
  });
  $('signout').addEventListener('click', signOut);
  for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => show(b.dataset.view));
  $('lib-select').addEventListener('change', (e) => selectLibrary(e.target.value));
  $('invite-form').addEventListener('submit', invite);
  $('invite-copy').addEventListener('click', copyCode);
  $('join-form').addEventListener('submit', join);
  $('create-form').addEventListener('submit', create);
  $('leave').addEventListener('click', leave);
  $('records-form').addEventListener('change', () => { $('record').hidden = true; loadRecords(false); });
  $('records-form').addEventListener('submit', (e) => e.preventDefault());
  $('records-more').addEventListener('click', () => loadRecords(true));
}

boot();
