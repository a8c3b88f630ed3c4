"""The report's inline CSS and JavaScript (kept here so the page needs no other file)."""

CSS = """
:root{--fg:#1d2330;--mute:#5b6474;--line:#dde2ea;--bg:#f6f7fa;--card:#fff;--acc:#1f77b4;--good:#1a7f37;--bad:#c62828}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:18px 28px 14px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600;word-break:break-all}
header .sub{color:#c5cbd6;font-size:13px}
header a{color:#9ecbff}
nav{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:8px 28px;display:flex;gap:18px;flex-wrap:wrap}
nav a{color:var(--acc);text-decoration:none;font-weight:500}
nav a:hover{text-decoration:underline}
main{max-width:1280px;margin:0 auto;padding:18px 28px 40px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:0 0 20px}
h2{margin:0 0 12px;font-size:18px}
h3{margin:18px 0 8px;font-size:15px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:150px;background:#fbfcfe}
.card .k{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:26px;font-weight:600}
.card .s{color:var(--mute);font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:10px}
svg.chart,svg.cm,svg.bars{background:#fff;max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px}
table.perclass{font-size:12.5px}
th,td{padding:4px 7px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{background:#f0f2f6;position:sticky;top:0}
td.t,th.t{text-align:left}
tbody tr:nth-child(even){background:#fafbfd}
tbody tr:hover{background:#eef5ff}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:hover{background:#e3e8f0}
table.sortable th::after{content:" \\2195";color:#aab}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2";color:var(--acc)}
table.sortable th[aria-sort=descending]::after{content:" \\25BC";color:var(--acc)}
.scroll{overflow:auto;max-height:560px;border:1px solid var(--line);border-radius:6px}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.row>div{flex:0 0 auto;max-width:100%}
.row>div.grow{flex:1 1 360px;min-width:0}
.mini{display:inline-block;height:6px;background:var(--acc);border-radius:3px;vertical-align:middle;margin-right:6px;opacity:.75}
.note{color:#8a5a00;background:#fff8e1;border:1px solid #f1e0a8;border-radius:6px;padding:6px 10px;margin:6px 0}
.muted{color:var(--mute)}
.lab{display:inline-block;padding:1px 7px;margin:1px 2px;border-radius:10px;background:#eef1f6;font-size:12px}
.lab.ok{background:#dff3e4;color:var(--good)}
.lab.ko{background:#fde4e4;color:var(--bad)}
.top5{display:inline-grid;grid-template-columns:auto 70px auto;gap:0 5px;align-items:center;font-size:11px;line-height:1.2}
.top5 .lab{font-size:11px;padding:0 6px}
.top5 .b{height:8px;background:#9bb7d6;border-radius:2px}
.top5 .b.ok{background:#4caf6a}
audio{height:30px;width:210px}
td.audio{min-width:220px}
table.errors code{font-size:12px}
td.clip{white-space:normal;word-break:break-all;max-width:230px}
td.labs{white-space:normal;min-width:120px;max-width:240px}
.wide{overflow-x:auto}
.best{font-weight:700;color:var(--good)}
pre{background:#f7f8fa;border:1px solid var(--line);border-radius:6px;padding:10px;overflow:auto;max-height:480px;font-size:12px}
details summary{cursor:pointer;color:var(--acc);margin:6px 0}
footer{color:var(--mute);font-size:12px;text-align:center;padding:10px}
"""

# Sortable tables (click or Enter on a header; numbers sort best-first on the first click,
# empty cells last in both directions) and one audio player at a time.
JS = """
(function(){
  'use strict';
  function key(td, num){
    var v = td.getAttribute('data-v');
    if (v === null) v = td.textContent.trim();
    if (!num) return v.toLowerCase();
    var f = parseFloat(v);
    return isNaN(f) ? null : f;
  }
  function sortBy(table, col, th){
    var num = th.getAttribute('data-type') === 'num';
    var cur = th.getAttribute('aria-sort');
    var dir = cur ? (cur === 'descending' ? 'ascending' : 'descending') : (num ? 'descending' : 'ascending');
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function(h){ h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir);
    var sign = dir === 'ascending' ? 1 : -1;
    var tb = table.tBodies[0];
    var rows = Array.prototype.slice.call(tb.rows);
    rows.sort(function(a, b){
      var x = key(a.cells[col], num), y = key(b.cells[col], num);
      if (x === null && y === null) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      return x < y ? -sign : (x > y ? sign : 0);
    });
    rows.forEach(function(r){ tb.appendChild(r); });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function(t){
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function(th, i){
      th.tabIndex = 0;
      th.title = 'click to sort';
      th.addEventListener('click', function(){ sortBy(t, i, th); });
      th.addEventListener('keydown', function(e){
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(t, i, th); }
      });
    });
  });
  document.addEventListener('play', function(e){
    Array.prototype.forEach.call(document.querySelectorAll('audio'), function(a){ if (a !== e.target) a.pause(); });
  }, true);
})();
"""
