/**
 * The dashboard's one stylesheet, served from the package at /ui/dashboard.css (no CDN, no web font: the system's
 * fonts, so it works on an air-gapped site network). Readable at 1280×800 and at a phone's width (one column below
 * 720 px, tables scroll sideways in their own box).
 */
export const STYLESHEET = `
:root { --fg:#1b1f24; --muted:#57606a; --bg:#fff; --panel:#f6f8fa; --line:#d0d7de; --accent:#0550ae;
  --ok:#1a7f37; --bad:#cf222e; --warn:#9a6700; --idle:#8c959f; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; padding: .6rem 1rem;
  border-bottom: 1px solid var(--line); background: var(--panel); }
header .brand { font-weight: 700; }
nav a { margin-right: 1rem; }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, select:focus-visible, input:focus-visible, summary:focus-visible {
  outline: 3px solid #fb8f44; outline-offset: 2px; }
main { padding: 1rem; max-width: 1400px; }
h1 { font-size: 1.4rem; margin: .2rem 0 .8rem; }
h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
.live { margin-left: auto; color: var(--muted); font-size: .85rem; }
.live[data-state="open"]::before { content: "● "; color: var(--ok); }
.live[data-state="closed"]::before { content: "● "; color: var(--bad); }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; }
dl.record { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dl.record dt { color: var(--muted); }
dl.record dd { margin: 0; overflow-wrap: anywhere; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; margin-bottom: 1rem; }
form.filters label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
select, input, button { font: inherit; padding: .3rem .5rem; }
button { border: 1px solid var(--line); border-radius: 6px; background: var(--panel); cursor: pointer; }
button.danger { border-color: var(--bad); color: var(--bad); }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 1rem; font-size: .8rem; border: 1px solid currentColor; }
.s-ok, .s-calm, .s-SUCCEEDED, .s-COMPLETED, .s-DONE, .s-online { color: var(--ok); }
.s-bad, .s-drifting, .s-over, .s-FAILED, .s-REJECTED, .s-TIMED_OUT, .s-ABORTED { color: var(--bad); }
.s-warn, .s-watching, .s-IN_PROGRESS, .s-BAKING, .s-RUNNING, .s-RELEASING, .s-ACTIVE { color: var(--warn); }
.s-idle, .s-QUEUED, .s-PENDING, .s-CANCELED, .s-REMOVED, .s-offline { color: var(--idle); }
svg.bar { width: 100%; max-width: 640px; height: 18px; display: block; }
.seg-0 { fill: #0969da; } .seg-1 { fill: #8250df; } .seg-2 { fill: #bf8700; } .seg-3 { fill: #1a7f37; }
.seg-4 { fill: #cf222e; } .seg-5 { fill: #57606a; } .seg-6 { fill: #bc4c00; } .seg-7 { fill: #0a3069; }
.seg-succeeded { fill: var(--ok); } .seg-failed { fill: var(--bad); } .seg-inProgress { fill: var(--warn); }
.seg-queued { fill: var(--idle); } .seg-canceled { fill: #d0d7de; } .seg-held { fill: #eaeef2; }
ul.legend { list-style: none; padding: 0; margin: .3rem 0 0; display: flex; flex-wrap: wrap; gap: .2rem 1rem; font-size: .85rem; }
ul.legend .key { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px; }
.key.seg-0 { background: #0969da; } .key.seg-1 { background: #8250df; } .key.seg-2 { background: #bf8700; }
.key.seg-3 { background: #1a7f37; } .key.seg-4 { background: #cf222e; } .key.seg-5 { background: #57606a; }
.key.seg-6 { background: #bc4c00; } .key.seg-7 { background: #0a3069; }
.key.seg-succeeded { background: var(--ok); } .key.seg-failed { background: var(--bad); }
.key.seg-inProgress { background: var(--warn); } .key.seg-queued { background: var(--idle); }
.key.seg-canceled { background: #d0d7de; } .key.seg-held { background: #eaeef2; }
ol.waves { list-style: none; padding: 0; margin: 0; border-left: 3px solid var(--line); }
ol.waves > li { position: relative; margin: 0 0 .8rem; padding: .2rem 0 .2rem 1rem; }
ol.waves > li::before { content: ""; position: absolute; left: -8px; top: .55rem; width: 13px; height: 13px;
  border-radius: 50%; background: var(--bg); border: 3px solid var(--line); }
ol.waves > li.w-DONE::before { border-color: var(--ok); } ol.waves > li.w-CANCELED::before { border-color: var(--idle); }
ol.waves > li.w-BAKING::before, ol.waves > li.w-RUNNING::before { border-color: var(--warn); }
.counts { display: flex; flex-wrap: wrap; gap: .2rem 1rem; font-size: .9rem; }
.skip { position: absolute; left: -10000px; top: 0; }
.skip:focus { left: .5rem; top: .5rem; z-index: 1; background: var(--bg); padding: .3rem .6rem; }
ul.figures { list-style: none; padding: 0; margin: .4rem 0 0; display: grid; gap: .1rem 1.2rem;
  grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); font-size: .9rem; }
.abort h2 { margin-top: 0; }
.abort { border: 1px solid var(--bad); border-radius: 6px; padding: .6rem .8rem; background: #ffebe9; }
.actions { display: flex; flex-wrap: wrap; gap: .6rem; margin: .8rem 0; }
.muted { color: var(--muted); }
.error { color: var(--bad); }
@media (max-width: 720px) {
  main { padding: .6rem; }
  header { padding: .5rem .6rem; }
  dl.record { grid-template-columns: 1fr; }
  dl.record dt { margin-top: .4rem; }
  th, td { padding: .3rem .4rem; }
}
`;
