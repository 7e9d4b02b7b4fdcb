/* dashboard.js - the qvgpu dashboard: polls the arbiter's JSON API every second and
 * draws, per GPU, a stacked chart of its vGPUs' utilisation over the last ten minutes
 * and their memory against their quotas, then a table of every vGPU.
 *
 * For tests and scripts the page states what it shows in the DOM: each table row has
 * data-vgpu="ID", each chart canvas data-vgpus (series) and data-points (non-empty
 * samples drawn), #status says "live" or why not. */
'use strict';

const POLL_MS = 1000;        /* the issue asks for at most 2 s */
const WINDOW_S = 600;        /* ten minutes of chart */
const MIB = 1024 * 1024;

const state = {
  history: null,   /* {last, times[], gpus[], vgpus[]}, merged from /api/v1/history */
  vgpus: [],       /* /api/v1/vgpus */
  stats: null,     /* /api/v1/stats */
  lastOk: null,    /* Date of the last good answer */
  downSince: null, /* Date the arbiter stopped answering, null while it answers */
  charts: new Map(), /* GPU index -> Chart */
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'style') Object.assign(e.style, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function mib(bytesOrMb, isMb) {
  const mb = isMb ? bytesOrMb : bytesOrMb / MIB;
  if (mb >= 1024 && mb % 1024 === 0) return `${mb / 1024} GiB`;
  if (mb >= 10240) return `${(mb / 1024).toFixed(1)} GiB`;
  return `${Math.round(mb)} MiB`;
}

function pct(x) {
  return `${(Math.round(x * 10) / 10).toFixed(1)}%`;
}

/* A stable colour per vGPU id. */
function colour(id, alpha) {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsla(${(h * 137.508) % 360}, 62%, 50%, ${alpha})`;
}

async function getJSON(path) {
  const r = await fetch(path, {cache: 'no-store'});
  let body = null;
  try {
    body = await r.json();
  } catch (e) {
    /* not JSON: said below */
  }
  if (!r.ok) throw new Error((body && body.error) || `${path}: HTTP ${r.status}`);
  if (!body) throw new Error(`${path}: not JSON`);
  return body;
}

/* Appends what /api/v1/history?since= brought to state.history, keeping WINDOW_S samples. */
function mergeHistory(h) {
  if (!state.history || h.first > state.history.last + 1 || h.first === 1 && state.history.last > h.last) {
    state.history = h; /* first answer, a gap, or a restarted arbiter: start over */
    return;
  }
  const old = state.history;
  const keep = Math.max(0, old.times.length + h.times.length - WINDOW_S);
  const series = new Map(old.vgpus.map((s) => [s.id, s]));
  for (const s of h.vgpus) {
    const o = series.get(s.id);
    if (o) {
      o.util = o.util.concat(s.util);
      o.vm = s.vm;
      o.gpu = s.gpu;
    } else {
      series.set(s.id, {id: s.id, vm: s.vm, gpu: s.gpu,
                        util: new Array(old.times.length).fill(null).concat(s.util)});
    }
  }
  for (const o of series.values()) {
    if (o.util.length < old.times.length + h.times.length)
      o.util = o.util.concat(new Array(old.times.length + h.times.length - o.util.length).fill(null));
    o.util = o.util.slice(keep);
  }
  const gpus = old.gpus.map((g, i) => ({
    index: g.index,
    util: g.util.concat(h.gpus[i] ? h.gpus[i].util : []).slice(keep),
    leased: g.leased.concat(h.gpus[i] ? h.gpus[i].leased : []).slice(keep),
  }));
  state.history = {
    first: old.first + keep, last: h.last,
    times: old.times.concat(h.times).slice(keep),
    gpus,
    vgpus: [...series.values()].filter((s) => s.util.some((u) => u !== null)),
  };
}

async function poll() {
  try {
    const since = state.history ? state.history.last : 0;
    const [hist, list, stats] = await Promise.all([
      getJSON(`api/v1/history?since=${since}`),
      getJSON('api/v1/vgpus'),
      getJSON('api/v1/stats'),
    ]);
    mergeHistory(hist);
    state.vgpus = list.vgpus;
    state.stats = stats;
    state.lastOk = new Date();
    state.downSince = null;
    render();
  } catch (e) {
    if (!state.downSince) state.downSince = new Date();
    showDown(e);
  }
}

function showDown(e) {
  const s = $('status');
  s.textContent = 'arbiter not answering';
  s.className = 'status down';
  const b = $('banner');
  const since = state.downSince.toLocaleTimeString();
  const last = state.lastOk ? ` The figures below are from ${state.lastOk.toLocaleTimeString()}.`
                            : '';
  const where = location.protocol.startsWith('http') ? location.host : 'its address';
  b.textContent = `The arbiter at ${where} has not answered since ${since} (${e.message}). ` +
                  `Retrying every ${POLL_MS / 1000} s.${last}`;
  b.hidden = false;
  document.querySelector('main').classList.toggle('stale', state.lastOk !== null);
}

function render() {
  $('banner').hidden = true;
  document.querySelector('main').classList.remove('stale');
  const s = $('status');
  s.textContent = 'live';
  s.className = 'status live';
  const st = state.stats;
  $('summary').textContent =
      `${st.gpus.length} GPU${st.gpus.length === 1 ? '' : 's'}, ` +
      `${st.total_vgpus} vGPU${st.total_vgpus === 1 ? '' : 's'} (${st.active_vgpus} active), ` +
      `${mib(st.memory_used_mb, true)} used of ${mib(st.memory_reserved_mb, true)} reserved; ` +
      `updated ${state.lastOk.toLocaleTimeString()}`;
  renderGpus();
  renderTable();
  renderFindings();
}

/* What the arbiter's audit finds outside the rules (a process that dropped the shim, a
 * vGPU really past its quota), one line each. */
function renderFindings() {
  const f = state.stats.findings || [];
  const box = $('findings');
  box.hidden = f.length === 0;
  box.replaceChildren(...f.slice(0, 5).map((x) => el('div', {}, x.detail)),
                      ...(f.length > 5 ? [el('div', {}, `and ${f.length - 5} more ` +
                                                     '(qgpuctl stats lists them)')] : []));
}

function gpuCard(g) {
  let card = document.querySelector(`.gpu[data-gpu="${g.index}"]`);
  if (card) return card;
  card = el('article', {class: 'gpu', 'data-gpu': String(g.index)},
            el('h3', {}, ''), el('div', {class: 'facts'}, ''),
            el('div', {class: 'chart'}, el('canvas', {'data-gpu': String(g.index),
                                                      'data-vgpus': '0', 'data-points': '0',
                                                      'aria-label': `utilisation of GPU ${g.index}`})),
            el('div', {class: 'mem'}));
  $('gpus').append(card);
  return card;
}

function renderGpus() {
  for (const g of state.stats.gpus) {
    const card = gpuCard(g);
    card.querySelector('h3').textContent = `GPU ${g.index}: ${g.name}`;
    card.querySelector('.facts').textContent =
        `${mib(g.total_memory_mb, true)}, ${g.cuda_cores} CUDA cores; ` +
        `${g.vgpu_count} vGPU${g.vgpu_count === 1 ? '' : 's'}, shares ${g.share_reserved}% reserved; ` +
        `busy ${pct(g.util)}, under lease ${pct(g.leased)}`;
    drawChart(card.querySelector('canvas'), g.index);
    drawMemory(card.querySelector('.mem'), g.index);
  }
}

/* The stacked utilisation chart of GPU index from the history. */
function drawChart(canvas, index) {
  const h = state.history;
  const now = h && h.times.length ? h.times[h.times.length - 1] : 0;
  const series = h ? h.vgpus.filter((s) => s.gpu === index) : [];
  let points = 0;
  const datasets = series.map((s, i) => {
    const data = [];
    s.util.forEach((u, k) => {
      if (u !== null) points++;
      data.push({x: h.times[k] - now, y: u});
    });
    return {label: `${s.id} (${s.vm})`, data, borderColor: colour(s.id, 1),
            backgroundColor: colour(s.id, 0.35), fill: i === 0 ? 'origin' : '-1',
            pointRadius: 0, borderWidth: 1, spanGaps: false};
  });
  canvas.dataset.vgpus = String(series.length);
  canvas.dataset.points = String(points);
  if (typeof Chart === 'undefined') return; /* said once in #charts-off */
  let chart = state.charts.get(index);
  if (!chart) {
    chart = new Chart(canvas, {
      type: 'line',
      data: {datasets},
      options: {
        animation: false, parsing: false, normalized: true, maintainAspectRatio: false,
        interaction: {mode: 'nearest', axis: 'x', intersect: false},
        scales: {
          x: {type: 'linear', min: -WINDOW_S, max: 0,
              title: {display: true, text: 'seconds ago'},
              ticks: {callback: (v) => `${Math.round(-v / 60)} min`, stepSize: 60}},
          y: {stacked: true, min: 0, max: 100, title: {display: true, text: '% of the GPU'}},
        },
        plugins: {legend: {position: 'bottom', labels: {boxWidth: 12}}},
      },
    });
    state.charts.set(index, chart);
  } else {
    chart.data.datasets = datasets;
    chart.update('none');
  }
}

function drawMemory(box, index) {
  const rows = [];
  for (const v of state.vgpus.filter((x) => x.gpu === index)) {
    const frac = v.memory_mb ? Math.min(1, v.memory_used / (v.memory_mb * MIB)) : 0;
    rows.push(el('span', {}, el('span', {class: 'swatch', style: {background: colour(v.id, 1)}}),
                 `${v.id} (${v.vm})`),
              el('div', {class: 'bar', title: `${pct(frac * 100)} of the quota`},
                 el('div', {style: {width: `${frac * 100}%`, background: colour(v.id, 0.8)}})),
              el('span', {class: 'nums'}, `${mib(v.memory_used)} / ${mib(v.memory_mb, true)}`));
  }
  box.replaceChildren(...rows);
}

function renderTable() {
  const body = document.querySelector('#vgpus tbody');
  const rows = state.vgpus.map((v) => {
    const tr = el('tr', {'data-vgpu': v.id, class: v.procs ? '' : 'idle'},
                  el('td', {}, el('span', {class: 'swatch', style: {background: colour(v.id, 1)}}),
                     v.id),
                  el('td', {}, v.vm), el('td', {class: 'num'}, String(v.gpu)),
                  el('td', {}, v.profile), el('td', {class: 'num'}, mib(v.memory_mb, true)),
                  el('td', {class: 'num'}, mib(v.memory_used)),
                  el('td', {class: v.memory_real > v.memory_mb * MIB ? 'num over' : 'num'},
                     mib(v.memory_real || 0)),
                  el('td', {class: 'num'}, `${v.share}%`),
                  el('td', {class: 'num'}, v.limit ? `${v.limit}%` : 'none'),
                  el('td', {class: 'num'}, pct(v.util)),
                  el('td', {class: 'num'}, String(v.procs)),
                  el('td', {class: 'num'}, String(v.allocations_refused)));
    return tr;
  });
  body.replaceChildren(...rows);
  $('vgpus').hidden = rows.length === 0;
  $('no-vgpus').hidden = rows.length !== 0;
}

function start() {
  if (typeof Chart === 'undefined') {
    const n = $('charts-off');
    n.textContent = 'Charts are off: the arbiter\'s host has no Chart.js to serve at ' +
                    '/static/chart.js (on Debian: apt-get install libjs-chart.js). ' +
                    'Memory and the table below still update.';
    n.hidden = false;
  }
  poll();
  setInterval(poll, POLL_MS);
}

start();
