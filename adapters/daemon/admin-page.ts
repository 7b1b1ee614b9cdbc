/**
 * The admin page the daemon serves at `/`: one self-contained document (inline CSS and script, no framework, no
 * external asset, no request but the daemon's own /api routes). It reads the token from its own URL
 * (`/?token=...`) and shows the reserve's Boxes (status, reachability, storage, last seen, health), every
 * snapshot's protection, the open conditions and a live event feed over Server-Sent Events, filterable by severity.
 *
 * Every text from the daemon reaches the DOM through textContent (never innerHTML), and the Content-Security-Policy
 * allows only this script and this style (by hash) and connections to the daemon itself.
 *
 * The script is written without template literals so it can live in this TypeScript string unescaped.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root {
  --bg: #f3f5f8; --card: #ffffff; --ink: #17202c; --muted: #5d6b7c; --line: #e2e7ee; --soft: #eef2f6;
  --ok: #23845a; --ok-bg: #e3f4ec; --warn: #a86505; --warn-bg: #fff3d6; --fail: #c0392b; --fail-bg: #fde7e4;
  --lost: #7b1d1d; --info: #3f6fb5; --info-bg: #e7effa; --unknown: #a0acba;
  --radius: 10px; --shadow: 0 1px 2px rgba(20, 30, 45, .06), 0 1px 8px rgba(20, 30, 45, .04);
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: var(--bg); }
.top { display: flex; align-items: center; justify-content: space-between; gap: 16px; padding: 12px 24px; background: #17202c; color: #fff; }
.brand { display: flex; align-items: center; gap: 12px; min-width: 0; }
.logo { width: 28px; height: 28px; border-radius: 7px; background: linear-gradient(135deg, #49a27a, #2f6fb0); flex: none; position: relative; }
.logo::after { content: ""; position: absolute; inset: 8px; border: 2px solid rgba(255,255,255,.9); border-radius: 3px; }
h1 { font-size: 17px; margin: 0; letter-spacing: .2px; }
.sub { color: #aeb9c7; font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.conn { display: flex; align-items: center; gap: 8px; font-size: 13px; color: #d6dde6; white-space: nowrap; }
.conn .dot { width: 9px; height: 9px; border-radius: 50%; background: var(--unknown); }
.conn[data-state="live"] .dot { background: #3ecf8e; box-shadow: 0 0 0 3px rgba(62, 207, 142, .25); }
.conn[data-state="retry"] .dot { background: #f0b429; }
.conn[data-state="down"] .dot { background: #ef5350; }
.banner { margin: 16px 24px 0; padding: 12px 16px; border-radius: var(--radius); background: var(--fail-bg); color: var(--fail); border: 1px solid #f4c3bd; font-weight: 500; }
.banner .hint { display: block; font-weight: 400; color: #7a2a22; margin-top: 4px; }
main { padding: 16px 24px 32px; max-width: 1600px; margin: 0 auto; }
.summary { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px; margin-bottom: 16px; }
.stat { background: var(--card); border-radius: var(--radius); box-shadow: var(--shadow); padding: 10px 14px; border-left: 4px solid var(--line); }
.stat .n { font-size: 22px; font-weight: 650; line-height: 1.2; }
.stat .l { color: var(--muted); font-size: 12px; }
.stat.ok { border-left-color: var(--ok); } .stat.warn { border-left-color: #f0b429; } .stat.fail { border-left-color: var(--fail); }
.panel { background: var(--card); border-radius: var(--radius); box-shadow: var(--shadow); padding: 14px 16px; margin-bottom: 16px; min-width: 0; }
.panel > h2, .feed-head h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); margin: 0 0 10px; font-weight: 650; }
.boxes { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 12px; }
.box { border: 1px solid var(--line); border-radius: 9px; padding: 12px; display: flex; flex-direction: column; gap: 8px; min-width: 0; }
.box.down { background: #fffafa; border-color: #f4c3bd; }
.box-head { display: flex; align-items: baseline; justify-content: space-between; gap: 8px; }
.box-name { font-weight: 650; font-size: 15px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.box-id { color: var(--muted); font: 11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.chip { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11.5px; font-weight: 600; background: var(--soft); color: var(--muted); white-space: nowrap; }
.chip.ok { background: var(--ok-bg); color: var(--ok); } .chip.warn { background: var(--warn-bg); color: var(--warn); }
.chip.fail { background: var(--fail-bg); color: var(--fail); } .chip.lost { background: var(--lost); color: #fff; }
.chip.info { background: var(--info-bg); color: var(--info); }
.reach { display: flex; align-items: center; gap: 6px; font-size: 13px; }
.reach .dot { width: 8px; height: 8px; border-radius: 50%; flex: none; }
.reach.up .dot { background: var(--ok); } .reach.down .dot { background: var(--fail); } .reach.down { color: var(--fail); font-weight: 550; }
.muted { color: var(--muted); } .nowrap { white-space: nowrap; }
.bar { height: 8px; background: var(--soft); border-radius: 99px; overflow: hidden; display: flex; }
.bar > span { display: block; height: 100%; }
.bar .used { background: var(--info); } .bar .used.high { background: #e08a00; } .bar .used.full { background: var(--fail); }
.bar .at, .legend .at { background: var(--ok); } .bar .below, .legend .below { background: #f0b429; } .bar .min, .legend .min { background: #e8590c; }
.bar .gone, .legend .gone { background: var(--lost); } .bar .unk, .legend .unk { background: var(--unknown); }
.kv { display: flex; justify-content: space-between; font-size: 12.5px; color: var(--muted); gap: 8px; }
.kv b { color: var(--ink); font-weight: 600; }
.metrics { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 4px 12px; font-size: 12.5px; border-top: 1px solid var(--line); padding-top: 8px; }
.metrics .m { display: flex; justify-content: space-between; gap: 6px; color: var(--muted); }
.metrics .m b { color: var(--ink); font-weight: 600; white-space: nowrap; }
.metrics .m span { white-space: nowrap; }
.metrics .m.hot b { color: var(--fail); }
.layout { display: grid; grid-template-columns: minmax(0, 1.55fr) minmax(340px, 1fr); gap: 16px; align-items: start; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 11.5px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .4px; padding: 0 8px 6px; border-bottom: 1px solid var(--line); }
td { padding: 8px; border-bottom: 1px solid var(--line); vertical-align: middle; }
tr:last-child td { border-bottom: 0; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.snap-id { white-space: nowrap; font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted); }
.prot { display: flex; flex-direction: column; gap: 4px; min-width: 150px; }
.prot .line { display: flex; align-items: center; gap: 6px; flex-wrap: wrap; }
.empty { color: var(--muted); padding: 8px 0; }
.conds { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 8px; }
.cond { border-radius: 8px; padding: 8px 10px; border-left: 4px solid; }
.cond.warning { background: var(--warn-bg); border-color: #f0b429; } .cond.failure { background: var(--fail-bg); border-color: var(--fail); }
.cond .t { font-weight: 600; display: flex; justify-content: space-between; gap: 8px; }
.cond .t span { font-weight: 400; color: var(--muted); font-size: 12px; white-space: nowrap; }
.feed-head { display: flex; align-items: center; justify-content: space-between; gap: 8px; flex-wrap: wrap; margin-bottom: 8px; }
.feed-head h2 { margin: 0; }
.filters { display: inline-flex; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
.filters button { font: inherit; font-size: 12.5px; border: 0; background: #fff; color: var(--muted); padding: 4px 10px; cursor: pointer; }
.filters button + button { border-left: 1px solid var(--line); }
.filters button[aria-pressed="true"] { background: #17202c; color: #fff; }
.feed ol { list-style: none; margin: 0; padding: 0; max-height: 560px; overflow: auto; }
.ev { display: grid; grid-template-columns: 4px 58px minmax(0, 1fr); gap: 0 10px; padding: 7px 4px 7px 0; border-bottom: 1px solid var(--line); }
.ev .sev { border-radius: 4px; grid-row: span 2; }
.ev.sev-normal .sev { background: #b8c3d0; } .ev.sev-warning .sev { background: #f0b429; } .ev.sev-failure .sev { background: var(--fail); }
.ev .time { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; grid-row: span 2; padding-top: 1px; }
.ev .what { font-weight: 600; font-size: 13px; display: flex; gap: 8px; align-items: baseline; min-width: 0; }
.ev .what .src { font-weight: 400; color: var(--muted); font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.ev.sev-warning .what .k { color: var(--warn); } .ev.sev-failure .what .k { color: var(--fail); }
.ev .text { grid-column: 3; font-size: 13px; color: #334155; overflow-wrap: anywhere; }
.ev.fresh { animation: fresh 2.4s ease-out; }
@keyframes fresh { from { background: #fff7cc; } to { background: transparent; } }
.feed ol[data-min="warning"] .sev-normal, .feed ol[data-min="failure"] .sev-normal, .feed ol[data-min="failure"] .sev-warning { display: none; }
.legend { display: flex; gap: 12px; flex-wrap: wrap; font-size: 11.5px; color: var(--muted); margin-top: 8px; }
.legend i { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
@media (max-width: 980px) {
  .layout { grid-template-columns: minmax(0, 1fr); }
  .summary { grid-template-columns: repeat(2, minmax(0, 1fr)); }
}
@media (max-width: 560px) {
  .top { padding: 10px 14px; } .sub { white-space: normal; } main { padding: 12px 10px 24px; } .banner { margin: 12px 10px 0; }
  .panel { padding: 12px; }
  .boxes { grid-template-columns: minmax(0, 1fr); }
  table, tbody { display: block; width: 100%; }
  thead { display: none; }
  tr { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 4px 10px; padding: 10px 0; border-bottom: 1px solid var(--line); }
  tr:last-child { border-bottom: 0; }
  td { display: block; border: 0; padding: 0; }
  td:nth-child(1) { grid-column: 1 / 3; }
  td:nth-child(2) { grid-column: 3; text-align: right; }
  td.num { text-align: left; }
  td:nth-child(3)::before, td:nth-child(4)::before, td:nth-child(5)::before { content: attr(data-label); display: block; color: var(--muted); font-size: 11px; }
  td:nth-child(6) { grid-column: 1 / -1; }
  .ev { grid-template-columns: 4px 54px minmax(0, 1fr); }
}
`;

const SCRIPT = `
(function () {
  'use strict';
  var token = new URLSearchParams(location.search).get('token') || '';
  var MAX_EVENTS = 500;
  var state = { status: null, ids: new Set(), events: new Map(), lastId: null, source: null, refreshTimer: null, denied: false, started: false };

  var KIND = {
    'limitation-imminent': 'Limit approaching', 'limitation-encountered': 'Limit reached', 'keeper-health': 'Box health',
    'unresolved-conflict': 'Unresolved conflict', 'unacceptable-replication': 'Replication too low', 'keeper-added': 'Box added',
    'keeper-removed': 'Box removed', 'network-disruption': 'Network disruption', 'resolved': 'Back to normal', 'events-summary': 'Summary'
  };
  var LIMIT = { 'file-size': 'File size', 'files-per-directory': 'Files per directory', 'snapshot-size': 'Snapshot size', 'keepers': 'Number of Boxes', 'disk-capacity': 'Disk capacity' };
  var BYTE_LIMITS = { 'file-size': 1, 'snapshot-size': 1, 'disk-capacity': 1 };
  var METRIC = { memory: 'Memory', cpu: 'CPU', 'disk-io': 'Disk I/O', 'disk-corruption': 'Disk corruption' };

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, children) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (children !== undefined && children !== null) {
      (Array.isArray(children) ? children : [children]).forEach(function (c) {
        if (c === null || c === undefined || c === false) return;
        node.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
      });
    }
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function bytes(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '?';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'], i = 0, v = Math.abs(n);
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (n < 0 ? '-' : '') + (i === 0 ? String(v) : v.toFixed(v >= 100 ? 0 : 1)) + ' ' + u[i];
  }
  function pct(f) { return typeof f === 'number' && isFinite(f) ? Math.round(f * 100) + '%' : '?'; }
  function count(n) { return typeof n === 'number' ? n.toLocaleString() : '?'; }
  function shortId(id) { id = String(id || ''); return id.length > 14 ? id.slice(0, 6) + '\\u2026' + id.slice(-6) : id; }
  function nameOf(id) {
    var s = state.status;
    if (s) for (var i = 0; i < s.boxes.length; i++) if (s.boxes[i].id === id) return s.boxes[i].name || s.boxes[i].region || shortId(id);
    return shortId(id);
  }
  function ago(ms) {
    if (typeof ms !== 'number') return 'never';
    var d = Date.now() - ms, a = Math.abs(d), future = d < 0, t;
    if (a < 45000) return future ? 'in a moment' : 'just now';
    if (a < 3600000) t = Math.round(a / 60000) + ' min';
    else if (a < 172800000) t = Math.round(a / 3600000) + ' h';
    else t = Math.round(a / 86400000) + ' days';
    return future ? 'in ' + t : t + ' ago';
  }
  function when(ms) { return new Date(ms).toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }); }
  function clock(ms) {
    var d = new Date(ms), now = new Date();
    if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
    return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) + ' ' + d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  }
  function day(ms) {
    var d = new Date(ms), now = new Date();
    var o = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
    if (d.getFullYear() !== now.getFullYear()) o.year = 'numeric';
    return d.toLocaleString(undefined, o);
  }
  function rate(n) { return typeof n === 'number' && n >= 10 * 1024 * 1024 ? Math.round(n / 1048576) + ' MiB/s' : bytes(n) + '/s'; }
  function limitValue(limitation, v) { return BYTE_LIMITS[limitation] ? bytes(v) : count(v); }
  function subjectOf(p) {
    if (p.limitation === 'disk-capacity' || p.limitation === 'keepers') return p.subject ? nameOf(p.subject) : 'the reserve';
    return p.subject ? p.subject : 'the reserve';
  }

  function describe(e) {
    var p = e.payload || {};
    switch (e.kind) {
      case 'limitation-imminent':
        return (LIMIT[p.limitation] || p.limitation) + ' of ' + subjectOf(p) + ': ' + limitValue(p.limitation, p.value) + ' of ' +
          limitValue(p.limitation, p.limit) + '; forecast to reach the limit ' + ago(p.eta) + ' (' + when(p.eta) + ')';
      case 'limitation-encountered':
        return (LIMIT[p.limitation] || p.limitation) + ' limit reached by ' + subjectOf(p) + ': ' + limitValue(p.limitation, p.value) +
          ' (limit ' + limitValue(p.limitation, p.limit) + ')';
      case 'keeper-health':
        if (p.metric === 'memory') return 'Memory ' + pct(p.usedFraction) + ' used on ' + nameOf(p.keeper) + ' (' + bytes(p.usedBytes) + ' of ' + bytes(p.totalBytes) + '; threshold ' + pct(p.threshold) + ')';
        if (p.metric === 'cpu') return 'CPU ' + pct(p.busyFraction) + ' busy on ' + nameOf(p.keeper) + ' (threshold ' + pct(p.threshold) + ')';
        if (p.metric === 'disk-io') return 'Disk ' + p.device + ' ' + pct(p.busyFraction) + ' busy on ' + nameOf(p.keeper) + ' (read ' + bytes(p.readBytesPerSec) + '/s, write ' + bytes(p.writeBytesPerSec) + '/s)';
        if (p.metric === 'disk-corruption') return count(p.totalBlocks) + (p.totalBlocks === 1 ? ' corrupt block' : ' corrupt blocks') + ' found on ' + nameOf(p.keeper);
        return 'Health report from ' + nameOf(p.keeper);
      case 'unresolved-conflict':
        return 'Block ' + shortId(p.block) + ': ' + p.reason;
      case 'unacceptable-replication':
        return (p.snapshots || []).slice(0, 3).map(function (s) {
          return 'snapshot ' + shortId(s.snapshot) + ': ' + (s.lost ? count(s.lost) + ' chunks lost' : count(s.belowMinimum) + ' chunks below minimum');
        }).join('; ').replace(/^s/, 'S') + ((p.snapshots || []).length > 3 ? ' (and ' + (p.snapshots.length - 3) + ' more)' : '');
      case 'keeper-added':
        return (p.name || nameOf(p.keeper)) + ' joined the reserve';
      case 'keeper-removed':
        return nameOf(p.keeper) + ' was removed from the reserve' + (p.reason ? ' (' + p.reason + ')' : '');
      case 'network-disruption':
        return 'Cannot reach ' + (p.peers || []).map(nameOf).join(', ') + ' since ' + ago(p.since);
      case 'resolved':
        return (KIND[p.of] || p.of) + ' is over' + (p.note ? ': ' + p.note : '') + ' (it began ' + ago(p.since) + ')';
      case 'events-summary':
        return count(p.count) + ' earlier ' + (p.of === '*' ? '' : (KIND[p.of] || p.of).toLowerCase() + ' ') + 'events, folded';
      default:
        return e.kind;
    }
  }

  function sevChip(sev) { return el('span', 'chip ' + (sev === 'failure' ? 'fail' : sev === 'warning' ? 'warn' : ''), sev); }

  // ------------------------------------------------------------------ status
  function protectionOf(p) {
    if (p.lost > 0) return { cls: 'lost', text: 'Lost', detail: count(p.lost) + ' of ' + count(p.chunks) + ' chunks lost' };
    if (p.belowMinimum > 0) return { cls: 'fail', text: 'Below minimum', detail: count(p.belowMinimum) + ' chunks under ' + p.minimum + ' copies' };
    if (p.belowTarget > 0) return { cls: 'warn', text: 'Below target', detail: count(p.belowTarget) + ' chunks under ' + p.target + ' copies' };
    if (p.unknown > 0) return { cls: '', text: 'Unverified', detail: count(p.unknown) + ' chunks on Boxes that did not answer' };
    return { cls: 'ok', text: 'At target', detail: count(p.chunks) + ' chunks, ' + p.target + ' copies each' };
  }

  function bar(parts, total) {
    var b = el('div', 'bar');
    parts.forEach(function (part) {
      if (!(part[1] > 0) || !(total > 0)) return;
      var s = el('span', part[0]);
      s.style.width = Math.max(1.5, (part[1] / total) * 100) + '%';
      b.appendChild(s);
    });
    return b;
  }

  function renderSummary(s) {
    var box = $('summary'); clear(box);
    var reachable = s.boxes.filter(function (b) { return b.reachable && b.status === 'active'; }).length;
    var active = s.boxes.filter(function (b) { return b.status === 'active'; }).length;
    var prot = s.snapshots.filter(function (x) { return x.protection.protected; }).length;
    var lost = s.snapshots.filter(function (x) { return x.protection.lost > 0; }).length;
    var failures = s.open.filter(function (e) { return e.severity === 'failure'; }).length;
    function stat(cls, n, label, id) { var d = el('div', 'stat ' + cls, [el('div', 'n', n), el('div', 'l', label)]); d.id = id; return d; }
    box.appendChild(stat(reachable === active ? 'ok' : 'warn', reachable + ' / ' + active, 'Boxes reachable', 'stat-boxes'));
    box.appendChild(stat(lost > 0 ? 'fail' : prot === s.snapshots.length ? 'ok' : 'warn', prot + ' / ' + s.snapshots.length, 'Snapshots protected', 'stat-snapshots'));
    box.appendChild(stat(failures > 0 ? 'fail' : s.open.length > 0 ? 'warn' : 'ok', String(s.open.length), s.open.length === 1 ? 'Open condition' : 'Open conditions', 'stat-open'));
    box.appendChild(stat('', s.replication.target + (s.replication.target === 1 ? ' copy' : ' copies'), 'of every chunk; at least ' + s.replication.minimum, 'stat-rf'));
  }

  function renderBoxes(s) {
    var list = $('boxes'); clear(list);
    s.boxes.forEach(function (b) {
      var up = b.reachable;
      var card = el('article', 'box' + (up ? '' : ' down'));
      card.setAttribute('data-box', b.id);
      var statusCls = b.status === 'active' ? 'ok' : b.status === 'dead' ? 'fail' : '';
      card.appendChild(el('div', 'box-head', [
        el('div', 'box-name', [b.name || b.region || shortId(b.id)]),
        el('span', 'chip ' + statusCls, b.status)
      ]));
      var idLine = el('div', 'box-id', [shortId(b.id), b.self ? '  \\u00b7  this Box' : '', b.region ? '  \\u00b7  ' + b.region : '']);
      idLine.title = b.id;
      card.appendChild(idLine);
      card.appendChild(el('div', 'reach ' + (up ? 'up' : 'down'), [el('span', 'dot'),
        b.self ? 'This Box' : up ? 'Reachable' : 'Unreachable', el('span', 'muted', b.self ? '' : '\\u00b7 last seen ' + ago(b.lastSeen))]));
      var used = typeof b.used === 'number' ? b.used : null;
      var frac = used !== null && b.capacity > 0 ? used / b.capacity : 0;
      card.appendChild(el('div', 'kv', [el('span', null, 'Storage'), el('span', null, [el('b', null, used === null ? '?' : bytes(used)), ' of ' + bytes(b.capacity)])]));
      card.appendChild(bar([['used' + (frac >= 0.95 ? ' full' : frac >= 0.8 ? ' high' : ''), used || 0], ['', Math.max(0, b.capacity - (used || 0))]], b.capacity));
      var h = b.health;
      if (h && (h.memoryUsed !== undefined || h.cpuBusy !== undefined || h.diskFreeBytes !== undefined || h.diskIoBytesPerSecond !== undefined)) {
        var m = el('div', 'metrics');
        var metric = function (label, value, hot) { m.appendChild(el('div', 'm' + (hot ? ' hot' : ''), [el('span', null, label), el('b', null, value)])); };
        if (h.memoryUsed !== undefined) metric('Memory', pct(h.memoryUsed), h.memoryUsed >= 0.9);
        if (h.cpuBusy !== undefined) metric('CPU', pct(h.cpuBusy), h.cpuBusy >= 0.95);
        if (h.diskIoBytesPerSecond !== undefined) metric('Disk I/O', rate(h.diskIoBytesPerSecond), false);
        if (h.diskFreeBytes !== undefined) metric('Disk free', bytes(h.diskFreeBytes), h.diskTotalBytes ? h.diskFreeBytes / h.diskTotalBytes < 0.05 : false);
        card.appendChild(m);
        if (h.sampledAt) card.appendChild(el('div', 'muted', [el('small', null, 'Health sampled ' + ago(h.sampledAt))]));
      } else {
        card.appendChild(el('div', 'metrics', [el('div', 'muted', 'No health report')]));
      }
      list.appendChild(card);
    });
    if (s.boxes.length === 0) list.appendChild(el('div', 'empty', 'No Boxes yet.'));
  }

  function renderSnapshots(s) {
    var host = $('snapshots'); clear(host);
    if (s.snapshots.length === 0) { host.appendChild(el('div', 'empty', 'No snapshots yet: run a backup.')); return; }
    var table = el('table');
    var head = el('tr');
    ['Taken', 'Snapshot', 'From', 'Size', 'Files', 'Protection'].forEach(function (t, i) { head.appendChild(el('th', null, t)); if (i === 3 || i === 4) head.lastChild.style.textAlign = 'right'; });
    table.appendChild(el('thead', null, head));
    var body = el('tbody');
    s.snapshots.slice().sort(function (a, b) { return b.time - a.time; }).forEach(function (x) {
      var p = x.protection, level = protectionOf(p);
      var row = el('tr');
      row.setAttribute('data-snapshot', x.root);
      function cell(label, content, cls) { var td = el('td', cls || null, content); td.setAttribute('data-label', label); row.appendChild(td); return td; }
      cell('Taken', [el('div', 'nowrap', day(x.time)), el('small', 'muted', ago(x.time))]);
      var idCell = cell('Snapshot', shortId(x.root), 'snap-id'); idCell.title = x.root;
      cell('From', nameOf(x.author));
      cell('Size', bytes(x.size), 'num');
      cell('Files', count(x.files), 'num');
      var total = p.atTarget + p.belowTarget + p.belowMinimum + p.lost + p.unknown;
      var protCell = el('div', 'prot', [
        el('div', 'line', [el('span', 'chip ' + level.cls + ' level', level.text),
          el('span', 'chip ' + (p.protected ? 'ok' : 'fail') + ' protected', p.protected ? 'protected' : 'not protected')]),
        bar([['at', p.atTarget], ['below', p.belowTarget], ['min', p.belowMinimum], ['gone', p.lost], ['unk', p.unknown]], total),
        el('small', 'muted', level.detail)
      ]);
      cell('Protection', protCell);
      body.appendChild(row);
    });
    table.appendChild(body);
    host.appendChild(table);
    host.appendChild(el('div', 'legend', [
      el('span', null, [el('i', 'at'), 'at target']), el('span', null, [el('i', 'below'), 'below target']),
      el('span', null, [el('i', 'min'), 'below minimum']), el('span', null, [el('i', 'gone'), 'lost']), el('span', null, [el('i', 'unk'), 'unknown'])
    ]));
  }

  function renderOpen(s) {
    var host = $('open'); clear(host);
    if (s.open.length === 0) { host.appendChild(el('div', 'empty', 'Nothing needs attention.')); return; }
    var list = el('ul', 'conds');
    var rank = { failure: 0, warning: 1, normal: 2 };
    s.open.slice().sort(function (a, b) { return (rank[a.severity] - rank[b.severity]) || (b.time - a.time); }).forEach(function (e) {
      list.appendChild(el('li', 'cond ' + e.severity, [
        el('div', 't', [KIND[e.kind] || e.kind, el('span', null, ago(e.time))]),
        el('div', null, describe(e))
      ]));
    });
    host.appendChild(list);
  }

  function renderStatus(s) {
    state.status = s;
    $('reserve-id').textContent = 'reserve ' + shortId(s.reserveId) + ' \\u00b7 seen from ' + nameOf(s.self) + ' \\u00b7 updated ' + new Date(s.time).toLocaleTimeString(undefined, { hourCycle: 'h23' });
    $('reserve-id').title = s.reserveId;
    renderSummary(s); renderBoxes(s); renderSnapshots(s); renderOpen(s);
    // Box names may have changed (or just become known): relabel the feed.
    state.events.forEach(function (v) { v.src.textContent = nameOf(v.e.source); v.text.textContent = describe(v.e); });
    document.body.setAttribute('data-ready', 'true');
  }

  // ------------------------------------------------------------------ events
  function addEvents(events, fresh) {
    var feed = $('feed');
    var empty = $('feed-empty');
    events.forEach(function (e) {
      if (!e || typeof e.id !== 'string' || state.ids.has(e.id)) return;
      state.ids.add(e.id);
      state.lastId = e.id;
      var src = el('span', 'src', nameOf(e.source)), text = el('div', 'text', describe(e));
      var li = el('li', 'ev sev-' + e.severity + (fresh ? ' fresh' : ''), [
        el('span', 'sev'),
        el('span', 'time', clock(e.time)),
        el('div', 'what', [el('span', 'k', KIND[e.kind] || e.kind), src]),
        text
      ]);
      li.setAttribute('data-id', e.id);
      li.setAttribute('data-severity', e.severity);
      li.title = when(e.time) + ' \\u00b7 ' + e.severity + ' \\u00b7 ' + e.id;
      feed.insertBefore(li, feed.firstChild);
      state.events.set(e.id, { e: e, src: src, text: text });
    });
    while (feed.children.length > MAX_EVENTS) {
      var last = feed.lastChild, id = last.getAttribute('data-id');
      state.ids.delete(id); state.events.delete(id); feed.removeChild(last);
    }
    if (empty) empty.hidden = feed.children.length > 0;
  }

  function setFilter(min) {
    $('feed').setAttribute('data-min', min);
    Array.prototype.forEach.call(document.querySelectorAll('.filters button'), function (b) {
      b.setAttribute('aria-pressed', String(b.getAttribute('data-min') === min));
    });
  }

  function setConn(kind, text) { var c = $('conn'); c.setAttribute('data-state', kind); $('conn-text').textContent = text; }

  function showError(title, hint) {
    var b = $('banner'); clear(b);
    b.appendChild(document.createTextNode(title));
    if (hint) b.appendChild(el('span', 'hint', hint));
    b.hidden = false;
  }
  function hideError() { $('banner').hidden = true; }

  function denied() {
    state.denied = true;
    if (state.source) { state.source.close(); state.source = null; }
    setConn('down', 'Access denied');
    showError('Access denied: this page\\'s token is not the daemon\\'s.',
      'Open the admin link printed by "reserve daemon" (the token is in <data>/daemon.json), as /?token=...');
  }

  function request(path) {
    return fetch(path, { headers: { authorization: 'Bearer ' + token }, cache: 'no-store' }).then(function (res) {
      if (res.ok) return res.json();
      return res.json().catch(function () { return null; }).then(function (body) {
        var err = new Error(body && body.error ? body.error.message : 'HTTP ' + res.status);
        err.status = res.status;
        throw err;
      });
    });
  }

  function refresh() {
    if (state.denied) return;
    request('/api/status').then(function (s) { hideError(); renderStatus(s); start(); }, function (err) {
      if (err.status === 401) return denied();
      setConn('down', 'Daemon unreachable');
      showError('Cannot reach the daemon: ' + err.message, 'Is "reserve daemon" still running? This page retries every 15 s.');
      start();
    });
  }
  function refreshSoon() {
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(function () { state.refreshTimer = null; refresh(); }, 400);
  }

  function connect() {
    if (state.denied) return;
    var q = new URLSearchParams();
    q.set('token', token);
    if (state.lastId) q.set('after', state.lastId);
    var es = new EventSource('/api/events/stream?' + q.toString());
    state.source = es;
    es.addEventListener('open', function () { setConn('live', 'Live'); });
    es.addEventListener('reserve-event', function (m) {
      var e;
      try { e = JSON.parse(m.data); } catch (x) { return; }
      addEvents([e], true);
      if (e.severity !== 'normal' || e.kind === 'resolved' || e.kind === 'keeper-added' || e.kind === 'keeper-removed') refreshSoon();
    });
    es.addEventListener('error', function () {
      if (es.readyState === EventSource.CLOSED) {
        state.source = null;
        setConn('retry', 'Reconnecting\\u2026');
        request('/api/events?limit=1').then(function () { setTimeout(connect, 1000); }, function (err) {
          if (err.status === 401) return denied();
          setConn('down', 'Daemon unreachable');
          setTimeout(connect, 5000);
        });
      } else setConn('retry', 'Reconnecting\\u2026');
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll('.filters button'), function (b) {
    b.addEventListener('click', function () { setFilter(b.getAttribute('data-min')); });
  });
  setFilter('normal');

  if (!token) {
    setConn('down', 'No token');
    showError('This page needs the daemon\\'s token.', 'Open it as /?token=<token>: "reserve daemon" prints the full link, and the token is in <data>/daemon.json.');
    return;
  }
  // The feed starts once the first status is in, so events name their Boxes from the start.
  // The recent past is loaded first; everything the stream brings after it is new, and is highlighted.
  function start() {
    if (state.started) return;
    state.started = true;
    request('/api/events?limit=200').then(function (list) { addEvents(list, false); connect(); }, function (err) {
      if (err.status === 401) return denied();
      connect();
    });
  }
  refresh();
  setInterval(refresh, 15000);
})();
`;

const BODY = `
<header class="top">
  <div class="brand"><span class="logo" aria-hidden="true"></span><div><h1>Reserve</h1><div id="reserve-id" class="sub">connecting to the daemon\u2026</div></div></div>
  <div id="conn" class="conn" data-state="retry" role="status"><span class="dot"></span><span id="conn-text">Connecting\u2026</span></div>
</header>
<div id="banner" class="banner" role="alert" hidden></div>
<main>
  <section id="summary" class="summary" aria-label="Summary"></section>
  <section class="panel" aria-labelledby="boxes-title"><h2 id="boxes-title">Boxes</h2><div id="boxes" class="boxes"></div></section>
  <div class="layout">
    <div>
      <section class="panel" aria-labelledby="open-title"><h2 id="open-title">Open conditions</h2><div id="open"></div></section>
      <section class="panel" aria-labelledby="snap-title"><h2 id="snap-title">Snapshots</h2><div id="snapshots"></div></section>
    </div>
    <div>
      <section class="panel feed" aria-labelledby="feed-title">
        <div class="feed-head"><h2 id="feed-title">Live events</h2>
          <div class="filters" role="group" aria-label="Severity">
            <button type="button" data-min="normal" aria-pressed="true">All</button>
            <button type="button" data-min="warning" aria-pressed="false">Warnings</button>
            <button type="button" data-min="failure" aria-pressed="false">Failures</button>
          </div>
        </div>
        <div id="feed-empty" class="empty">No events yet.</div>
        <ol id="feed" data-min="normal" aria-live="polite"></ol>
      </section>
    </div>
  </div>
</main>
`;

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('base64');
}

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Reserve</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;

export const ADMIN_PAGE: { readonly html: string; readonly contentSecurityPolicy: string; readonly script: string } = {
  html: HTML,
  script: SCRIPT,
  contentSecurityPolicy: [
    "default-src 'none'",
    `script-src 'sha256-${sha256(SCRIPT)}'`,
    `style-src 'sha256-${sha256(STYLE)}'`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
};
