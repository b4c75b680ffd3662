// The envhub dashboard: cards from /api/latest kept live by /api/events,
// and a uPlot chart of /api/history. No framework, no network beyond this
// server.
'use strict';
(function () {
  const state = {
    items: new Map(),   // location -> newest item
    offset: 0,          // server clock minus this clock, ms
    history: false,
    selected: null,
    range: 3600000,
    plot: null,
    data: null,
  };
  const $ = (id) => document.getElementById(id);
  const dark = window.matchMedia('(prefers-color-scheme: dark)');

  function now() { return Date.now() + state.offset; }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return 'updated ' + s + ' s ago';
    if (s < 3600) return 'updated ' + Math.floor(s / 60) + ' min ago';
    if (s < 86400) return 'updated ' + Math.floor(s / 3600) + ' h ago';
    return 'updated ' + Math.floor(s / 86400) + ' d ago';
  }

  function cardFor(location) {
    for (const el of $('cards').querySelectorAll('.card')) {
      if (el.dataset.location === location) return el;
    }
    const el = document.createElement('article');
    el.className = 'card';
    el.dataset.location = location;
    el.innerHTML = '<h2></h2><div class="values"><span class="temp"></span><span class="hum"></span></div><div class="age muted"></div>';
    el.querySelector('h2').textContent = location;
    el.addEventListener('click', () => select(location));
    // Keep the cards sorted by location, as /api/latest is.
    const after = [...$('cards').querySelectorAll('.card')].find((c) => c.dataset.location > location);
    $('cards').insertBefore(el, after || null);
    $('no-readings').hidden = true;
    return el;
  }

  function show(item, fresh) {
    state.items.set(item.location, item);
    const el = cardFor(item.location);
    el.querySelector('.temp').textContent = item.temp.toFixed(1) + ' °C';
    el.querySelector('.hum').textContent = item.hum.toFixed(1) + ' %';
    el.querySelector('.age').textContent = ago(now() - item.ts_ms);
    el.dataset.tsMs = String(item.ts_ms);
    if (fresh) {
      el.classList.remove('fresh');
      void el.offsetWidth; // restart the animation
      el.classList.add('fresh');
    }
    addOption(item.location);
  }

  function addOption(location) {
    const sel = $('location');
    if ([...sel.options].some((o) => o.value === location)) return;
    const opt = document.createElement('option');
    opt.value = location;
    opt.textContent = location;
    const after = [...sel.options].find((o) => o.value > location);
    sel.insertBefore(opt, after || null);
    if (state.selected === null) select(location);
  }

  function tick() {
    for (const el of $('cards').querySelectorAll('.card')) {
      el.querySelector('.age').textContent = ago(now() - Number(el.dataset.tsMs));
    }
  }

  async function loadLatest() {
    const res = await fetch('/api/latest');
    if (!res.ok) throw new Error('/api/latest: HTTP ' + res.status);
    const body = await res.json();
    state.offset = body.now_ms - Date.now();
    state.history = body.history;
    $('history').hidden = !body.history;
    $('history-off').hidden = body.history;
    body.readings.forEach((item) => show(item, false));
  }

  function connect() {
    const events = new EventSource('/api/events');
    events.addEventListener('open', () => {
      $('live').textContent = 'live';
      $('live').className = 'live on';
    });
    events.addEventListener('error', () => {
      $('live').textContent = 'reconnecting…';
      $('live').className = 'live off';
    });
    events.addEventListener('reading', (e) => {
      const item = JSON.parse(e.data);
      show(item, true);
      if (item.location === state.selected) appendPoint(item);
    });
    // Readings were skipped: fetch the newest again.
    events.addEventListener('gap', () => { loadLatest().catch(report); });
  }

  function select(location) {
    state.selected = location;
    $('location').value = location;
    for (const el of $('cards').querySelectorAll('.card')) {
      el.classList.toggle('selected', state.history && el.dataset.location === location);
    }
    loadHistory().catch(report);
  }

  function colors() {
    const css = getComputedStyle(document.documentElement);
    const v = (name) => css.getPropertyValue(name).trim();
    return { fg: v('--fg'), line: v('--line'), temp: v('--temp'), hum: v('--hum') };
  }

  function chartWidth() { return Math.max(200, $('chart').clientWidth || 600); }

  function makePlot() {
    const c = colors();
    const axis = { stroke: c.fg, grid: { stroke: c.line, width: 1 }, ticks: { stroke: c.line } };
    const opts = {
      width: chartWidth(),
      height: 300,
      scales: { x: { time: true }, t: {}, h: { range: [0, 100] } },
      series: [
        {},
        { label: 'temperature (°C)', scale: 't', stroke: c.temp, width: 2, value: (u, v) => v == null ? '–' : v.toFixed(1) },
        { label: 'min', scale: 't', stroke: c.temp, width: 1, dash: [4, 4], alpha: 0.5, show: false },
        { label: 'max', scale: 't', stroke: c.temp, width: 1, dash: [4, 4], alpha: 0.5, show: false },
        { label: 'humidity (%)', scale: 'h', stroke: c.hum, width: 2, value: (u, v) => v == null ? '–' : v.toFixed(1) },
      ],
      axes: [
        axis,
        Object.assign({}, axis, { scale: 't', values: (u, vals) => vals.map((v) => v + ' °C') }),
        Object.assign({}, axis, { scale: 'h', side: 1, grid: { show: false }, values: (u, vals) => vals.map((v) => v + ' %') }),
      ],
    };
    if (state.plot) state.plot.destroy();
    state.plot = new uPlot(opts, state.data, $('chart'));
  }

  async function loadHistory() {
    if (!state.history || state.selected === null) return;
    const location = state.selected;
    const to = now();
    const from = to - state.range;
    const points = Math.min(500, chartWidth());
    const url = '/api/history?location=' + encodeURIComponent(location) +
      '&from_ms=' + Math.floor(from) + '&to_ms=' + Math.ceil(to) + '&max_points=' + points;
    const res = await fetch(url);
    if (res.status === 404) { setData(location, []); return; }
    if (!res.ok) throw new Error('/api/history: HTTP ' + res.status);
    const body = await res.json();
    if (location !== state.selected) return;
    setData(location, body.points);
  }

  function setData(location, points) {
    const x = [], t = [], tmin = [], tmax = [], h = [];
    for (const p of points) {
      x.push(p[0] / 1000); t.push(p[1]); tmin.push(p[2]); tmax.push(p[3]); h.push(p[4]);
    }
    state.data = [x, t, tmin, tmax, h];
    if (!state.plot) makePlot(); else state.plot.setData(state.data);
    $('chart').dataset.points = String(points.length);
    $('chart-note').textContent = points.length === 0
      ? 'No readings of ' + location + ' in this range.'
      : points.length + ' points';
  }

  function appendPoint(item) {
    if (!state.data || !state.plot) return;
    const [x, t, tmin, tmax, h] = state.data;
    x.push(item.ts_ms / 1000); t.push(item.temp); tmin.push(item.temp); tmax.push(item.temp); h.push(item.hum);
    state.plot.setData(state.data);
    $('chart').dataset.points = String(x.length);
  }

  function report(err) { $('chart-note').textContent = String(err && err.message || err); }

  $('location').addEventListener('change', (e) => select(e.target.value));
  for (const b of $('ranges').querySelectorAll('button')) {
    b.addEventListener('click', () => {
      state.range = Number(b.dataset.range);
      for (const o of $('ranges').querySelectorAll('button')) o.setAttribute('aria-pressed', String(o === b));
      loadHistory().catch(report);
    });
  }
  window.addEventListener('resize', () => { if (state.plot) state.plot.setSize({ width: chartWidth(), height: 300 }); });
  dark.addEventListener('change', () => { if (state.plot) makePlot(); });
  setInterval(tick, 1000);

  loadLatest().then(connect).catch((err) => {
    report(err);
    connect();
  });
})();
