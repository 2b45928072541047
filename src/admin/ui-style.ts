/** The admin page's style sheet (inline, under the page's CSP nonce). */
export const STYLE = `
  :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f6f7f9; --ok: #2e7d32; --bad: #b3261e; --off: #6b7280; }
  body { max-width: 1200px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
  header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; justify-content: space-between; align-items: center; }
  header .status { display: flex; flex-wrap: wrap; gap: .3rem 1rem; align-items: center; font-size: .9rem; }
  h1 { font-size: 1.4rem; margin: .6rem 0; } h2 { font-size: 1.1rem; margin: 0 0 .6rem; }
  section { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 1rem; margin: 1rem 0; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 1rem; background: none; border: 0; padding: 0; }
  .cards > div { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 1rem; min-width: 0; overflow-wrap: anywhere; }
  .card[data-state=down] { border-color: var(--bad); } .card[data-state=offline] { border-style: dashed; }
  .badge { display: inline-block; font-size: .75rem; font-weight: 600; text-transform: uppercase; padding: .1rem .5rem; border-radius: 1rem; color: #fff; vertical-align: middle; }
  .badge[data-state=up] { background: var(--ok); } .badge[data-state=down] { background: var(--bad); } .badge[data-state=offline] { background: var(--off); }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem .8rem; margin: .6rem 0 0; font-size: .9rem; }
  dt { color: #6b7280; } dd { margin: 0; }
  .big { font-size: 1.8rem; margin: .2rem 0; }
  meter { width: 100%; height: 1rem; }
  progress { -webkit-appearance: none; appearance: none; width: 100%; min-width: 4rem; height: .8rem; border: 1px solid #c9ced6; border-radius: 3px; background: #eef0f3; }
  progress::-webkit-progress-bar { background: #eef0f3; border-radius: 3px; }
  progress::-webkit-progress-value { background: #2f6fd6; border-radius: 2px; } progress::-moz-progress-bar { background: #2f6fd6; }
  progress[data-state=done]::-webkit-progress-value { background: var(--ok); } progress[data-state=done]::-moz-progress-bar { background: var(--ok); }
  progress[data-state=failed] { border-color: var(--bad); background: #fbe4e2; }
  progress[data-state=failed]::-webkit-progress-bar { background: #fbe4e2; }
  progress[data-state=failed]::-webkit-progress-value { background: var(--bad); } progress[data-state=failed]::-moz-progress-bar { background: var(--bad); }
  .scroll { overflow-x: auto; }
  table { width: 100%; border-collapse: collapse; font-size: .9rem; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #eef0f3; vertical-align: top; }
  th[data-sort] { cursor: pointer; user-select: none; white-space: nowrap; }
  th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
  td.num { text-align: right; } code { font-size: .85em; } time { white-space: nowrap; }
  td[data-state=failed], strong[data-state=failed] { color: var(--bad); } td[data-state=done], strong[data-state=done] { color: var(--ok); }
  #jobs-body tr { cursor: pointer; } #jobs-body tr:hover, #jobs-body tr[aria-selected=true] { background: #eef3fc; }
  textarea, input { width: 100%; box-sizing: border-box; font: inherit; margin: .2rem 0 .6rem; padding: .3rem; }
  input[type=checkbox] { width: auto; margin: 0 .3rem 0 0; vertical-align: middle; }
  #warm-form label { display: block; } #warm-submit { margin-top: .6rem; }
  #jobs-body .muted { white-space: nowrap; }
  button { font: inherit; padding: .35rem 1rem; }
  button.link { padding: 0; border: 0; background: none; color: #1f5fbf; text-decoration: underline; cursor: pointer; }
  button.delete { padding: .1rem .6rem; font-size: .85rem; color: var(--bad); border: 1px solid #e3b4b0; background: #fff; border-radius: 4px; cursor: pointer; }
  .error { color: var(--bad); } .muted { color: #6b7280; }
  .chart svg { display: block; width: 100%; height: 160px; background: #fafbfc; border: 1px solid #eef0f3; }
  .chart .axis { display: flex; justify-content: space-between; font-size: .8rem; color: #6b7280; }
  .legend { display: flex; flex-wrap: wrap; gap: .3rem 1.2rem; font-size: .85rem; margin: 0 0 .4rem; }
  .swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px; }
  .swatch.served { background: #2f6fd6; } .swatch.upstream { background: #e08a1e; } .swatch.ratio { background: var(--ok); height: .2rem; vertical-align: 3px; }
  form.login { max-width: 360px; margin: 4rem auto; }
  @media (max-width: 600px) {
    body { padding: .5rem .6rem 2rem; } section, .cards > div { padding: .7rem; }
    th, td { padding: .3rem .3rem; } .big { font-size: 1.4rem; }
  }
`;
