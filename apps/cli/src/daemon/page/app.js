// Kiwi daemon status page. Plain JavaScript, no build step: the daemon serves this file as is.
// Talks to the JSON API with the token from sessionStorage; live updates come from GET /api/events
// (server-sent events read with fetch, so the token goes in a header, never in a URL).
'use strict';

const TOKEN_KEY = 'kiwi-daemon-token';
const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  status: null,
  selected: null,
  runs: new Map(), // job -> runs (newest first)
  snapshots: new Map(), // job -> snapshots | { error }
  live: false,
  events: null, // AbortController of the event stream
  justStarted: new Map(), // job -> run id started from this page
};

const $ = (sel) => document.querySelector(sel);

/** Build an element: h('td', { class: 'num' }, 'text', child…). Text is always set as text, never as HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function formatBytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

function formatDuration(ms) {
  if (ms === undefined || ms === null) return '—';
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function relative(iso) {
  if (!iso) return '—';
  const d = (new Date(iso).getTime() - Date.now()) / 1000;
  const a = Math.abs(d);
  const text = a < 1.5 ? 'now' : a < 90 ? `${Math.round(a)} s` : a < 5400 ? `${Math.round(a / 60)} min` : a < 129600 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} days`;
  if (text === 'now') return 'now';
  return d > 0 ? `in ${text}` : `${text} ago`;
}

/** A relative time that updates itself every second (see tick()). */
function rel(iso) {
  return h('span', iso ? { 'data-rel': iso } : {}, relative(iso));
}

function absolute(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

// ------------------------------------------------------------------ API

class Unauthorized extends Error {}

async function api(path, opts = {}) {
  const res = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), Authorization: `Bearer ${state.token}` }, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized('The token was not accepted.');
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(body.error || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = '';
  state.events?.abort();
  state.events = null;
  $('#app').hidden = true;
  $('#login').hidden = false;
  const err = $('#login-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('#token').focus();
  renderMeta();
}

async function signIn(token) {
  state.token = token;
  try {
    state.status = await api('/api/status');
  } catch (err) {
    if (err instanceof Unauthorized) return signOut('That token was not accepted. Copy it again from daemon.token.');
    return signOut(`Cannot reach the daemon: ${err.message}`);
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#login').hidden = true;
  $('#app').hidden = false;
  if (!state.selected && state.status.jobs.length) state.selected = state.status.jobs[0].name;
  render();
  loadDetail();
  connectEvents();
}

// ------------------------------------------------------------------ live events

async function connectEvents() {
  state.events?.abort();
  const controller = new AbortController();
  state.events = controller;
  while (!controller.signal.aborted) {
    try {
      const res = await fetch('/api/events', { headers: { Authorization: `Bearer ${state.token}` }, signal: controller.signal, cache: 'no-store' });
      if (res.status === 401) return signOut('The daemon no longer accepts this token.');
      if (!res.ok || !res.body) throw new Error(`${res.status}`);
      state.live = true;
      renderMeta();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let type = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (data) onEvent(type, JSON.parse(data));
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
    }
    state.live = false;
    renderMeta();
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function jobOf(name) {
  return state.status?.jobs.find((j) => j.name === name);
}

function onEvent(type, e) {
  if (type === 'status') {
    state.status = e;
    render();
    return;
  }
  if (!state.status) return;
  if (type === 'started') {
    const job = jobOf(e.run.job);
    if (job) {
      job.running = { runId: e.run.id, kind: e.run.kind, trigger: e.run.trigger, startedAt: e.run.startedAt, progress: null };
      job.queued = job.queued.filter((q) => q.runId !== e.run.id);
    }
  } else if (type === 'queued') {
    const job = jobOf(e.job);
    if (job && !job.queued.some((q) => q.runId === e.runId)) job.queued.push({ runId: e.runId, kind: e.kind });
  } else if (type === 'progress') {
    const job = jobOf(e.job);
    if (job?.running?.runId === e.runId) job.running.progress = e.progress;
    renderProgress(e.job);
    return;
  } else if (type === 'finished') {
    const job = jobOf(e.run.job);
    if (job) {
      if (job.running?.runId === e.run.id) job.running = null;
      job.lastRun = e.run;
      if (e.run.kind === 'backup') job.lastBackup = e.run;
      job.runs = (job.runs || 0) + 1;
    }
    state.snapshots.delete(e.run.job);
    if (state.selected === e.run.job) loadDetail();
    refreshStatus();
  } else if (type === 'daemon' && e.state === 'stopping') {
    state.status.state = 'stopping';
  }
  render();
}

async function refreshStatus() {
  try {
    state.status = await api('/api/status');
    render();
  } catch (err) {
    if (err instanceof Unauthorized) signOut('The daemon no longer accepts this token.');
  }
}

// ------------------------------------------------------------------ rendering

function renderMeta() {
  const meta = $('#meta');
  meta.replaceChildren();
  if (!state.token || !state.status) return;
  const s = state.status;
  meta.append(
    h('span', {}, h('span', { class: `dot ${state.live ? 'live' : 'down'}` }), state.live ? (s.state === 'stopping' ? 'stopping' : 'live') : 'reconnecting…'),
    h('span', {}, `v${s.version}`),
    h('span', { title: absolute(s.startedAt) }, `up ${formatDuration(Date.now() - new Date(s.startedAt).getTime()).replace(/\.\d s$/, ' s')}`),
    h('button', { class: 'link', type: 'button', onclick: () => signOut('') }, 'Sign out'),
  );
}

function resultBadge(job) {
  if (job.running) return h('span', { class: 'badge running', 'data-status': 'running' }, job.running.kind === 'backup' ? 'running' : `${job.running.kind}…`);
  if (job.queued.length) return h('span', { class: 'badge queued', 'data-status': 'queued' }, 'queued');
  const r = job.lastRun;
  if (!r) return h('span', { class: 'badge', 'data-status': 'none' }, 'never run');
  return h('span', { class: `badge ${r.status}`, 'data-status': r.status, 'data-run': r.id, title: r.error || '' }, r.kind === 'backup' ? r.status : `${r.kind}: ${r.status}`);
}

function progressBlock(job) {
  const p = job.running?.progress;
  const expected = p?.expectedBytes;
  const ratio = p && expected ? Math.min(1, p.bytes / expected) : undefined;
  const fill = h('span', {});
  // Set through the CSSOM: the page's Content-Security-Policy allows no inline style attributes.
  if (ratio !== undefined) fill.style.width = `${(ratio * 100).toFixed(1)}%`;
  const bar = h('div', { class: `bar${ratio === undefined ? ' indeterminate' : ''}`, role: 'progressbar', 'aria-label': `${job.name} progress`, ...(ratio !== undefined ? { 'aria-valuenow': Math.round(ratio * 100), 'aria-valuemin': 0, 'aria-valuemax': 100 } : {}) }, fill);
  return h('div', { class: 'progress', 'data-progress': job.name },
    bar,
    h('div', { class: 'figures' },
      h('span', {}, h('b', { 'data-files': '' }, p ? p.files.toLocaleString() : '0'), ' files'),
      h('span', {}, h('b', {}, formatBytes(p ? p.bytes : 0)), ratio !== undefined ? ` of ~${formatBytes(expected)}` : ' scanned'),
      h('span', {}, h('b', {}, formatBytes(p ? p.dataAdded : 0)), ' added'),
      h('span', {}, formatDuration(p ? p.elapsedMs : Date.now() - new Date(job.running.startedAt).getTime())),
    ),
    // A long path is cut at its start, so the file name stays visible.
    h('div', { class: `current mono${p?.current?.startsWith('/') ? ' path' : ''}`, title: p?.current || '' }, p?.current ? `\u200e${p.current}` : 'starting…'),
  );
}

function renderProgress(name) {
  const job = jobOf(name);
  if (!job?.running) return;
  for (const el of document.querySelectorAll('[data-progress]')) {
    if (el.getAttribute('data-progress') === name) el.replaceWith(progressBlock(job));
  }
}

function render() {
  renderMeta();
  const s = state.status;
  if (!s) return;
  const tbody = $('#jobs tbody');
  tbody.replaceChildren();
  for (const job of s.jobs) {
    const added = job.lastBackup?.stats?.dataAddedPacked;
    const busy = Boolean(job.running || job.queued.length);
    const row = h('tr', { class: `job${state.selected === job.name ? ' selected' : ''}`, 'data-job': job.name, onclick: () => select(job.name) },
      h('td', {}, h('div', { class: 'job-name' }, job.name), h('div', { class: 'job-sub' }, job.paths.join(', '), ' → ', job.repository)),
      h('td', { 'data-label': 'Last result' }, resultBadge(job)),
      h('td', { class: 'when', 'data-label': 'Last run', title: absolute(job.lastRun?.startedAt) }, job.lastRun ? rel(job.lastRun.startedAt) : '—',
        job.lastRun?.durationMs !== undefined ? h('small', {}, `took ${formatDuration(job.lastRun.durationMs)}`) : null),
      h('td', { class: 'when', 'data-label': 'Next run', title: absolute(job.nextRun) }, job.nextRun ? rel(job.nextRun) : '—', h('small', { class: 'mono' }, job.schedule, job.timezone ? ` (${job.timezone})` : '')),
      h('td', { class: 'num', 'data-label': 'Added' }, added !== undefined ? formatBytes(added) : '—'),
      h('td', { class: 'actions' }, h('button', { type: 'button', class: 'primary', 'data-run-now': job.name, disabled: busy || s.state !== 'running', onclick: (ev) => { ev.stopPropagation(); runNow(job.name); } }, job.running ? 'Running…' : busy ? 'Queued' : 'Run now')),
    );
    tbody.append(row);
    if (job.running) tbody.append(h('tr', { class: 'progress-row' }, h('td', { colspan: 6 }, progressBlock(job))));
  }
  const noForget = s.retention && s.retention.forget !== 'available';
  $('#jobs-hint').textContent = `${s.jobs.length} job${s.jobs.length === 1 ? '' : 's'}${noForget ? ' · forget not available in this version' : ''}`;
  renderDetail();
}

function select(name) {
  state.selected = name;
  render();
  loadDetail();
}

async function loadDetail() {
  const name = state.selected;
  if (!name) return;
  try {
    const r = await api(`/api/jobs/${encodeURIComponent(name)}/runs?limit=20`);
    state.runs.set(name, r.runs);
  } catch (err) {
    if (err instanceof Unauthorized) return signOut('The daemon no longer accepts this token.');
  }
  renderDetail();
  if (!state.snapshots.has(name)) {
    state.snapshots.set(name, { loading: true });
    renderDetail();
    try {
      const r = await api(`/api/jobs/${encodeURIComponent(name)}/snapshots`);
      state.snapshots.set(name, r.snapshots);
    } catch (err) {
      if (err instanceof Unauthorized) return signOut('The daemon no longer accepts this token.');
      state.snapshots.set(name, { error: err.message });
    }
    renderDetail();
  }
}

function renderDetail() {
  const job = jobOf(state.selected);
  const card = $('#detail');
  if (!job) {
    card.hidden = true;
    return;
  }
  card.hidden = false;
  $('#detail-title').textContent = job.name;
  $('#detail-sub').textContent = `${job.paths.join(', ')} → ${job.repository}`;
  const prog = $('#detail-progress');
  prog.replaceChildren();
  if (job.running) prog.append(progressBlock(job));

  const runs = state.runs.get(job.name) || [];
  const rbody = $('#runs tbody');
  rbody.replaceChildren();
  if (!runs.length) rbody.append(h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No runs yet.')));
  for (const r of runs) {
    rbody.append(h('tr', { 'data-run': r.id },
      h('td', { class: 'when', title: absolute(r.startedAt) }, rel(r.startedAt), h('small', {}, r.trigger)),
      h('td', {}, r.kind),
      h('td', {}, h('span', { class: `badge ${r.status}` }, r.status)),
      h('td', { class: 'num' }, formatDuration(r.durationMs)),
      h('td', { class: 'num' }, r.stats ? formatBytes(r.stats.dataAddedPacked) : '—'),
    ));
    if (r.error) rbody.append(h('tr', { class: 'error-line' }, h('td', { colspan: 5 }, r.error)));
  }

  const snaps = state.snapshots.get(job.name);
  const sbody = $('#snapshots tbody');
  sbody.replaceChildren();
  if (!snaps || snaps.loading) sbody.append(h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'Loading…')));
  else if (snaps.error) sbody.append(h('tr', {}, h('td', { colspan: 4, class: 'empty' }, snaps.error)));
  else if (!snaps.length) sbody.append(h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'No snapshots yet.')));
  else {
    for (const sn of snaps.slice(0, 30)) {
      sbody.append(h('tr', { 'data-snapshot': sn.id },
        h('td', { class: 'mono', title: sn.id }, sn.shortId),
        h('td', { class: 'when', title: absolute(sn.time) }, rel(sn.time)),
        h('td', { class: 'num' }, sn.files !== undefined ? sn.files.toLocaleString() : '—'),
        h('td', { class: 'num' }, formatBytes(sn.bytes)),
      ));
    }
  }
}

async function runNow(name) {
  const job = jobOf(name);
  if (job) job.queued.push({ runId: 'pending', kind: 'backup' });
  render();
  try {
    const r = await api(`/api/jobs/${encodeURIComponent(name)}/run`, { method: 'POST' });
    state.justStarted.set(name, r.runId);
  } catch (err) {
    if (err instanceof Unauthorized) return signOut('The daemon no longer accepts this token.');
    alert(`Could not start ${name}: ${err.message}`);
  }
  if (job) job.queued = job.queued.filter((q) => q.runId !== 'pending');
  refreshStatus();
}

// ------------------------------------------------------------------ start

$('#login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const token = $('#token').value.trim();
  if (token) signIn(token);
});

// Relative times tick; the status is re-read now and then (next run times, uptime) besides the live events.
function tick() {
  for (const el of document.querySelectorAll('[data-rel]')) el.textContent = relative(el.getAttribute('data-rel'));
}
setInterval(tick, 1000);
setInterval(() => { if (state.token && !$('#app').hidden) refreshStatus(); }, 15000);

if (state.token) signIn(state.token);
else signOut('');
