// mocapd Studio: a small single-page app on the public API (plus the session exchange).
// No build step: plain ES modules served by mocapd. User data is only ever inserted as text.

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const JOBS = '/api/v1/mocap/jobs';
const STEPS = ['uploading', 'uploaded', 'queued', 'processing', 'packaging', 'completed'];
const ALL_EVENTS = ['job.queued', 'job.processing', 'job.completed', 'job.failed', 'job.canceled',
  'avatar.ready', 'avatar.failed'];

let session = null; // {accountId, csrfToken, expiresAt}; the cookie itself is HttpOnly
let cleanup = [];   // teardown of the current page (timers, viewer, listeners)
const uploads = new Map(); // jobId -> upload in progress (survives moving between pages)

// ---- small helpers --------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'testid') el.dataset.testid = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'style') el.style.cssText = v; // CSSOM, which the strict CSP allows (style attributes it does not)
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['bytes', 'KB', 'MB', 'GB'];
  let i = 0; let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return i === 0 ? `${v} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function fmtDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function fmtSec(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '';
  return `${Number(s).toFixed(s < 10 ? 2 : 1)} s`;
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem || {};
  }
}

// Plain words for any failure: the server's own sentence, never a JSON dump or a trace.
function explain(err) {
  if (err instanceof ApiError) {
    const p = err.problem;
    let text = p.detail || p.title || 'The request did not succeed.';
    if (err.status === 429) text = 'Too many requests right now. Wait a moment and try again.';
    if (err.status >= 500 && !p.detail) text = 'The server had a problem. Try again in a moment.';
    return text;
  }
  if (err && err.name === 'TypeError') return 'The Studio cannot reach the server. Check the connection and try again.';
  return (err && err.message) || 'Something went wrong.';
}

function errorBox(err) {
  return h('div', { class: 'error', role: 'alert', testid: 'error' }, explain(err));
}

async function api(method, path, body, { idempotent = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!['GET', 'HEAD'].includes(method) && session) headers['X-CSRF-Token'] = session.csrfToken;
  if (idempotent) headers['Idempotency-Key'] = uuid();
  const r = await fetch(path, {
    method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 204) return null;
  let payload = null;
  try { payload = await r.json(); } catch (e) { payload = null; }
  if (!r.ok) {
    if (r.status === 401 && session && !path.endsWith('/studio/session')) {
      session = null;
      go('/studio');
    }
    throw new ApiError(r.status, payload);
  }
  return payload ? payload.data : null;
}

function setTitle(text) {
  document.title = `${text} · mocapd Studio`;
}

function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (e) { /* shown by fn */ }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  cleanup.push(() => { stopped = true; clearTimeout(timer); });
}

// ---- job states as people read them -------------------------------------------------------------

function failedKind(job) {
  const stage = (job.error && job.error.stage) || job.stage;
  return ['create', 'upload', 'validation', 'request'].includes(stage) ? 'failed validation' : 'failed processing';
}

function stateOf(job) {
  const up = uploads.get(job.id);
  if (up && up.state === 'uploading') return 'uploading';
  if (up && up.state === 'paused') return 'upload paused';
  if (up && (up.state === 'completing' || up.state === 'quoted' || (up.state === 'done' && job.status === 'draft'))) return 'uploaded';
  switch (job.status) {
    case 'draft':
      if (job.stage === 'uploaded' || job.stage === 'validating') return 'uploaded';
      if (job.stage === 'uploading') return 'uploading';
      return 'awaiting upload';
    case 'queued': return 'queued';
    case 'processing': return job.stage === 'packaging' ? 'packaging' : 'processing';
    case 'completed': return 'completed';
    case 'canceled': return 'canceled';
    case 'failed': return failedKind(job);
    default: return job.status;
  }
}

function pillClass(state) {
  if (state === 'completed') return 'pill completed';
  if (state.startsWith('failed') || state === 'canceled') return 'pill failed';
  if (['queued', 'processing', 'packaging', 'uploading', 'uploaded'].includes(state)) return 'pill active';
  return 'pill';
}

const TERMINAL = new Set(['completed', 'failed', 'canceled']);

// ---- uploads (tus when the server offers it, else a plain PUT) ------------------------------------

function startUpload(jobId, file, links, { confirmPrice = false } = {}) {
  const up = { jobId, file, loaded: 0, total: file.size, state: 'uploading', error: null, listeners: new Set(),
    resumable: false, pause: null, resume: null, quote: null, start: null };
  const emit = () => up.listeners.forEach((fn) => fn(up));
  const uploaded = async () => {
    if (!confirmPrice) { complete(); return; }
    // the price before paying: the server probes the upload as complete-upload would, holding nothing
    try { up.quote = await api('POST', `${JOBS}/${jobId}/quote`); } catch (e) { up.quote = null; }
    up.state = 'quoted';
    up.start = complete;
    emit();
  };
  const complete = async () => {
    up.state = 'completing'; emit();
    try {
      await api('POST', `${JOBS}/${jobId}/complete-upload`);
      up.state = 'done'; // kept until the job page sees the job leave the draft state
    } catch (e) {
      up.state = 'error'; up.error = e;
      uploads.delete(jobId);
    }
    emit();
  };
  const fail = (e) => { up.state = 'error'; up.error = e; uploads.delete(jobId); emit(); };

  if (links.tusUploadUrl && window.tus) {
    up.resumable = true;
    const upload = new window.tus.Upload(file, {
      endpoint: links.tusUploadUrl,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      chunkSize: 8 * 1024 * 1024,
      storeFingerprintForResuming: false,
      metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
      onProgress: (loaded, total) => { up.loaded = loaded; up.total = total; emit(); },
      onSuccess: () => { up.loaded = up.total; uploaded(); },
      onError: (e) => {
        const res = e.originalResponse;
        let problem = null;
        try { problem = res ? JSON.parse(res.getBody()) : null; } catch (x) { problem = null; }
        fail(res ? new ApiError(res.getStatus(), problem) : new Error('The upload was interrupted. Resume it to continue.'));
      },
    });
    up.pause = () => { upload.abort(); up.state = 'paused'; emit(); };
    up.resume = () => { up.state = 'uploading'; emit(); upload.start(); };
    upload.start();
  } else {
    let xhr = null;
    const send = () => {
      xhr = new XMLHttpRequest();
      xhr.open('PUT', links.uploadUrl);
      xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
      xhr.upload.onprogress = (ev) => { up.loaded = ev.loaded; up.total = ev.total || file.size; emit(); };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) { up.loaded = up.total; uploaded(); return; }
        let problem = null;
        try { problem = JSON.parse(xhr.responseText); } catch (x) { problem = null; }
        fail(new ApiError(xhr.status, problem));
      };
      xhr.onerror = () => fail(new Error('The upload was interrupted. Choose the file again to retry.'));
      xhr.send(file);
    };
    up.pause = () => { if (xhr) xhr.abort(); up.state = 'paused'; up.loaded = 0; emit(); };
    up.resume = () => { up.state = 'uploading'; emit(); send(); };
    send();
  }
  uploads.set(jobId, up);
  return up;
}

window.addEventListener('beforeunload', (ev) => {
  if ([...uploads.values()].some((u) => u.state === 'uploading')) { ev.preventDefault(); ev.returnValue = ''; }
});

// ---- router ---------------------------------------------------------------------------------------

const ROUTES = [
  [/^\/studio\/?$/, () => go('/studio/jobs', true)],
  [/^\/studio\/new\/?$/, pageNewJob],
  [/^\/studio\/jobs\/?$/, pageJobs],
  [/^\/studio\/jobs\/([A-Za-z0-9_-]+)\/?$/, pageJob],
  [/^\/studio\/avatars\/?$/, pageAvatars],
  [/^\/studio\/credits\/?$/, pageCredits],
  [/^\/studio\/webhooks\/?$/, pageWebhooks],
];

function go(path, replace = false) {
  if (replace) history.replaceState({}, '', path); else history.pushState({}, '', path);
  render();
}

async function render() {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  const path = location.pathname;
  nav.hidden = !session;
  for (const a of nav.querySelectorAll('a')) {
    if (path.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  main.replaceChildren();
  if (!session) { pageSignIn(); return; }
  for (const [re, page] of ROUTES) {
    const m = path.match(re);
    if (m) { await page(...m.slice(1)); return; }
  }
  pageNotFound('This page does not exist.');
}

function focusHeading() {
  const h1 = main.querySelector('h1');
  if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); }
}

document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a[data-link]');
  if (!a || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) return;
  ev.preventDefault();
  go(a.getAttribute('href'));
});
window.addEventListener('popstate', render);

document.getElementById('signout').addEventListener('click', async () => {
  try { await api('DELETE', '/api/v1/studio/session'); } catch (e) { /* the session is gone either way */ }
  session = null;
  go('/studio');
});

// ---- pages ----------------------------------------------------------------------------------------

function pageNotFound(text) {
  setTitle('Not found');
  main.append(h('h1', {}, 'Not found'), h('p', { testid: 'not-found' }, text),
    h('p', {}, h('a', { href: '/studio/jobs', 'data-link': true }, 'Back to your jobs')));
  focusHeading();
}

function pageSignIn() {
  setTitle('Sign in');
  const err = h('div');
  const key = h('input', { id: 'signin-key', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, testid: 'signin-key', 'aria-describedby': 'signin-hint' });
  const submit = h('button', { type: 'submit', testid: 'signin-submit' }, 'Sign in');
  const form = h('form', { class: 'panel', style: 'max-width: 520px' },
    h('label', { for: 'signin-key' }, 'API key'),
    key,
    h('p', { id: 'signin-hint', class: 'hint' },
      'Paste an API key of your account (it starts with sk_live_). The Studio exchanges it for a sign-in ',
      'that lasts 12 hours; the key itself is not kept in this browser.'),
    err,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    err.replaceChildren();
    try {
      session = await api('POST', '/api/v1/studio/session', { apiKey: key.value });
      key.value = '';
      const target = location.pathname.startsWith('/studio/') && location.pathname !== '/studio/' ? location.pathname + location.search : '/studio/jobs';
      go(target, true);
    } catch (e) {
      err.replaceChildren(errorBox(e));
      submit.disabled = false;
      key.focus();
    }
  });
  main.append(h('h1', {}, 'Sign in to the Studio'), form);
  key.focus();
}

// -- new job

async function pageNewJob() {
  setTitle('New job');
  const params = new URLSearchParams(location.search);
  main.append(h('h1', {}, 'New job'));
  let account = null; let avatars = []; let prefill = null;
  try {
    account = await api('GET', '/api/v1/account');
  } catch (e) { main.append(errorBox(e)); return; }
  try {
    const page = await api('GET', '/api/v1/avatars?limit=100');
    avatars = (page.items || []).filter((a) => a.status === 'ready');
  } catch (e) { avatars = []; }
  if (params.get('from')) {
    try { prefill = await api('GET', `${JOBS}/${encodeURIComponent(params.get('from'))}`); } catch (e) { prefill = null; }
    if (prefill && prefill.job) prefill = prefill.job;
  }
  const allowed = new Set(account.limits.allowedTargets || []);
  let file = null;

  const err = h('div');
  const fileInput = h('input', { id: 'new-job-file', type: 'file', accept: 'video/*,.mkv,.mov,.mp4,.webm,.avi',
    testid: 'new-job-file', class: 'visually-plain' });
  const fileInfo = h('p', { class: 'muted', 'aria-live': 'polite' }, prefill ? 'Choose the file again to start a new job with the same settings.' : 'No file chosen yet.');
  const drop = h('div', { class: 'drop' },
    h('p', {}, 'Drop a video of one person here, or '),
    h('label', { for: 'new-job-file', class: 'button secondary' }, 'Choose a video'),
    fileInput,
    fileInfo,
    h('p', { class: 'hint' }, `Up to ${fmtBytes(account.limits.maxFileBytes)} and ${account.limits.maxDurationSec} s on your plan.`));
  fileInput.style.position = 'absolute'; fileInput.style.opacity = '0'; fileInput.style.width = '1px';
  for (const evName of ['dragenter', 'dragover']) {
    drop.addEventListener(evName, (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  }
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault(); drop.classList.remove('over');
    if (ev.dataTransfer.files.length) choose(ev.dataTransfer.files[0]);
  });
  fileInput.addEventListener('change', () => { if (fileInput.files.length) choose(fileInput.files[0]); });

  // trim picker on the source itself
  const video = h('video', { controls: true, preload: 'metadata', muted: true, 'aria-label': 'The chosen video' });
  const startIn = h('input', { id: 'trim-start', type: 'number', min: '0', step: '0.01', value: prefill && prefill.trimStartSec ? prefill.trimStartSec : '0' });
  const endIn = h('input', { id: 'trim-end', type: 'number', min: '0', step: '0.01', value: prefill && prefill.trimEndSec ? prefill.trimEndSec : '' , placeholder: 'end of the clip' });
  const trimNote = h('p', { class: 'hint' }, 'Play or scrub the video, then use the buttons to set the window to capture.');
  const trim = h('section', { class: 'panel', hidden: true, 'aria-labelledby': 'trim-h' },
    h('h2', { id: 'trim-h' }, 'Trim'),
    h('div', { class: 'trim' },
      video,
      h('div', {},
        h('label', { for: 'trim-start' }, 'Start (seconds)'), startIn,
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => { startIn.value = video.currentTime.toFixed(2); } }, 'Start here')),
        h('label', { for: 'trim-end', style: 'margin-top:12px' }, 'End (seconds)'), endIn,
        h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => { endIn.value = video.currentTime.toFixed(2); } }, 'End here'),
          h('button', { type: 'button', class: 'secondary', onclick: () => { startIn.value = '0'; endIn.value = ''; } }, 'Whole clip')),
        trimNote)));
  video.addEventListener('error', () => { trimNote.textContent = 'This browser cannot play the file, but it can still be processed; type the window in seconds.'; });
  video.addEventListener('loadedmetadata', () => { endIn.max = video.duration.toFixed(2); startIn.max = video.duration.toFixed(2); });

  function choose(f) {
    file = f;
    fileInfo.textContent = `${f.name}, ${fmtBytes(f.size)}`;
    if (video.src) URL.revokeObjectURL(video.src);
    video.src = URL.createObjectURL(f);
    trim.hidden = false;
  }
  cleanup.push(() => { if (video.src) URL.revokeObjectURL(video.src); });

  const targets = h('fieldset', {}, h('legend', {}, 'What to make'));
  const wanted = new Set(prefill ? prefill.targetIds : ['default']);
  const addTarget = (id, label, hint) => {
    const ok = allowed.has(id) || (id.startsWith('avatar:') && (allowed.has('avatar') || account.plan !== 'free'));
    const box = h('input', { type: 'checkbox', id: `t-${id}`, value: id, testid: `new-job-target-${id}`,
      checked: wanted.has(id) && ok, disabled: !ok });
    targets.append(h('label', { class: 'check', for: `t-${id}` }, box, label,
      h('span', { class: 'hint' }, ok ? hint : ' (not on your plan)')));
  };
  addTarget('default', 'Animated skeleton', ' FBX, BVH and glTF');
  addTarget('unitree_g1', 'Unitree G1 robot motion', ' JSON and CSV within the robot\'s limits');
  for (const a of avatars) addTarget(`avatar:${a.avatarId}`, `Avatar: ${a.name}`, ' your character, FBX and GLB');

  const fps = h('select', { id: 'fps' }, ...[24, 30, 60, 120].map((v) => h('option', { value: String(v), selected: (prefill ? prefill.exportFps : 30) === v }, `${v} frames a second`)));
  const body = h('select', { id: 'body' }, h('option', { value: 'full_body' }, 'Full body'), h('option', { value: 'upper_body', selected: prefill && prefill.mocapType === 'upper_body' }, 'Upper body only'));
  const title = h('input', { id: 'title', type: 'text', maxlength: '200', value: prefill && prefill.title ? prefill.title : '' });
  // plan-gated job options (modelQuality "high", handTracking): shown on every plan, disabled with the reason
  const planOptions = new Set(account.limits.options || []);
  const gated = (opt) => (planOptions.has(opt) ? null : h('span', { class: 'hint' }, ' (not on your plan: starter and premium include it)'));
  const quality = h('select', { id: 'model-quality', testid: 'new-job-model-quality' },
    h('option', { value: 'standard' }, 'Standard pose model'),
    h('option', { value: 'high', disabled: !planOptions.has('model_high'), selected: prefill && prefill.modelQuality === 'high' && planOptions.has('model_high') }, 'High: the larger pose model, slower'));
  const hands = h('input', { type: 'checkbox', id: 'hand-tracking', testid: 'new-job-hand-tracking',
    disabled: !planOptions.has('hands'), checked: Boolean(prefill && prefill.handTracking && planOptions.has('hands')) });
  const confirmPrice = h('input', { type: 'checkbox', id: 'confirm-price', testid: 'new-job-confirm-price' });
  const submit = h('button', { type: 'submit', testid: 'new-job-submit' }, 'Upload and start');

  const form = h('form', { novalidate: true },
    h('section', { class: 'panel' }, drop), trim,
    h('section', { class: 'panel' },
      h('div', { class: 'row' }, targets,
        h('div', {}, h('label', { for: 'fps' }, 'Frame rate of the files'), fps,
          h('label', { for: 'body', style: 'margin-top:12px' }, 'Body'), body,
          h('label', { for: 'title', style: 'margin-top:12px' }, 'Title ', h('span', { class: 'hint' }, '(optional)')), title)),
      h('fieldset', { class: 'spaced' }, h('legend', {}, 'Options'),
        h('div', { class: 'row' },
          h('div', {}, h('label', { for: 'model-quality' }, 'Pose model'), quality, gated('model_high')),
          h('div', {}, h('label', { class: 'check', for: 'hand-tracking' }, hands, 'Capture the fingers too', gated('hands')),
            h('label', { class: 'check', for: 'confirm-price' }, confirmPrice, 'Show me the price before the job starts'))))),
    err,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.replaceChildren();
    const targetIds = [...targets.querySelectorAll('input:checked')].map((b) => b.value);
    if (!file) { err.replaceChildren(errorBox(new Error('Choose a video first.'))); return; }
    if (!targetIds.length) { err.replaceChildren(errorBox(new Error('Pick at least one thing to make.'))); return; }
    const req = { sourceFilename: file.name, sourceBytes: file.size, targetIds, exportFps: Number(fps.value), mocapType: body.value };
    if (title.value.trim()) req.title = title.value.trim();
    if (quality.value === 'high') req.modelQuality = 'high';
    if (hands.checked) req.handTracking = true;
    const ts = parseFloat(startIn.value); const te = parseFloat(endIn.value);
    if (Number.isFinite(ts) && ts > 0) req.trimStartSec = ts;
    if (Number.isFinite(te) && te > 0) req.trimEndSec = te;
    submit.disabled = true;
    try {
      const created = await api('POST', JOBS, req, { idempotent: true });
      startUpload(created.jobId, file, created, { confirmPrice: confirmPrice.checked });
      go(`/studio/jobs/${created.jobId}`);
    } catch (e) {
      err.replaceChildren(errorBox(e));
      submit.disabled = false;
    }
  });
  main.append(form);
  focusHeading();
}

// -- jobs list

async function pageJobs() {
  setTitle('Jobs');
  main.append(h('div', { class: 'row', style: 'align-items:center' }, h('h1', {}, 'Jobs'),
    h('div', { style: 'flex:0 0 auto' }, h('a', { class: 'button', href: '/studio/new', 'data-link': true }, 'New job'))));
  const holder = h('div');
  const more = h('div', { class: 'actions' });
  main.append(holder, more);
  let items = []; let cursor = null;
  const rowOf = (j) => {
    const st = stateOf(j);
    return h('tr', { 'data-job': j.id },
      h('td', {}, h('a', { href: `/studio/jobs/${j.id}`, 'data-link': true }, j.title || j.source.filename || j.id)),
      h('td', {}, h('span', { class: pillClass(st), testid: 'job-row-status' }, st)),
      h('td', { class: 'hide-phone' }, j.targetIds.map(targetName).join(', ')),
      h('td', { class: 'hide-phone' }, fmtDate(j.createdAt)),
      h('td', { class: 'num' }, j.billing.chargedVCredits || j.billing.heldVCredits || 0));
  };
  const draw = () => {
    if (!items.length) {
      holder.replaceChildren(h('div', { class: 'panel empty' }, h('p', {}, 'No jobs yet.'),
        h('a', { class: 'button', href: '/studio/new', 'data-link': true }, 'Start your first job')));
      return;
    }
    holder.replaceChildren(h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Job'), h('th', {}, 'Status'), h('th', { class: 'hide-phone' }, 'Makes'),
        h('th', { class: 'hide-phone' }, 'Created'), h('th', { class: 'num' }, 'Credits'))),
      h('tbody', {}, items.map(rowOf)))));
  };
  const load = async (next) => {
    const page = await api('GET', `${JOBS}?limit=25${next ? `&cursor=${encodeURIComponent(next)}` : ''}`);
    items = next ? items.concat(page.items) : page.items.concat(items.slice(page.items.length));
    if (!next) cursor = page.nextCursor; else cursor = page.nextCursor;
    draw();
    more.replaceChildren(cursor ? h('button', { type: 'button', class: 'secondary', onclick: () => load(cursor) }, 'Show older jobs') : '');
  };
  try { await load(null); } catch (e) { holder.replaceChildren(errorBox(e)); }
  focusHeading();
  every(3000, async () => {
    if (!items.some((j) => !TERMINAL.has(j.status)) && !uploads.size) return;
    const page = await api('GET', `${JOBS}?limit=${Math.max(25, items.length)}`);
    items = page.items;
    draw();
  });
}

function targetName(id) {
  if (id === 'default') return 'Skeleton';
  if (id === 'unitree_g1') return 'Unitree G1';
  if (id.startsWith('avatar:')) return 'Avatar';
  return id;
}

// -- one job

async function pageJob(jobId) {
  let job;
  try {
    job = (await api('GET', `${JOBS}/${jobId}`)).job;
  } catch (e) {
    if (e.status === 404) { pageNotFound('This job does not exist, or it belongs to another account.'); return; }
    main.append(h('h1', {}, 'Job'), errorBox(e)); return;
  }
  setTitle(job.title || job.source.filename || 'Job');
  const pill = h('span', { class: 'pill', testid: 'job-status', role: 'status' });
  const bar = h('div');
  const steps = h('ol', { class: 'steps', 'aria-label': 'Stages' }, STEPS.map((s) => h('li', { 'data-step': s }, s)));
  const line = h('p', { class: 'muted', 'aria-live': 'polite' });
  const controls = h('div', { class: 'actions' });
  const problem = h('div');
  const results = h('div');
  const quoteBox = h('section', { class: 'panel', hidden: true, 'aria-labelledby': 'quote-h' });
  main.append(
    h('h1', {}, job.title || job.source.filename || job.id),
    h('p', { class: 'muted', testid: 'job-options' }, `Makes ${job.targetIds.map(targetName).join(', ')} at ${job.exportFps} frames a second; ` +
      `${job.mocapType === 'upper_body' ? 'upper body' : 'full body'}, ${job.modelQuality === 'high' ? 'the larger pose model' : 'the standard pose model'}` +
      `${job.handTracking ? ', fingers captured' : ''}.`),
    job.parentJobId ? h('p', { class: 'muted', testid: 'job-parent' }, 'Re-exported from ',
      h('a', { href: `/studio/jobs/${job.parentJobId}`, 'data-link': true, class: 'mono' }, job.parentJobId),
      ': made from that job\'s motion, without capturing the video again.') : '',
    h('section', { class: 'panel status-box', 'aria-label': 'Status' },
      h('div', { class: 'row', style: 'align-items:center' }, h('div', { style: 'flex:0 0 auto' }, pill),
        h('div', { class: 'progress', role: 'progressbar', 'aria-label': 'Progress', 'aria-valuemin': '0', 'aria-valuemax': '100' }, bar)),
      steps, line, problem, controls),
    quoteBox,
    results);
  const progressEl = bar.parentElement;
  let resultsShown = false;
  let lastState = null;

  const draw = () => {
    const st = stateOf(job);
    const up = uploads.get(job.id);
    pill.textContent = st;
    pill.className = pillClass(st);
    let pct = Math.round((job.progress || 0) * 100);
    if (up && up.total) pct = Math.round((100 * up.loaded) / up.total);
    if (job.status === 'completed') pct = 100;
    bar.style.width = `${pct}%`;
    progressEl.setAttribute('aria-valuenow', String(pct));
    const stepIndex = STEPS.indexOf(st === 'upload paused' ? 'uploading' : st);
    const failedAt = st.startsWith('failed') ? (st === 'failed validation' ? 1 : 3) : -1;
    steps.querySelectorAll('li').forEach((li, i) => {
      li.className = '';
      if (failedAt >= 0) { if (i < failedAt) li.className = 'done'; if (i === failedAt) li.className = 'bad'; }
      else if (stepIndex >= 0) { if (i < stepIndex || st === 'completed') li.className = 'done'; else if (i === stepIndex) li.className = 'now'; }
      else if (job.status !== 'draft') li.className = '';
    });
    if (up && (up.state === 'uploading' || up.state === 'paused')) {
      line.textContent = `Uploading ${fmtBytes(up.loaded)} of ${fmtBytes(up.total)} (${pct}%)` + (up.state === 'paused' ? ', paused' : '');
    } else if (job.status === 'queued') line.textContent = 'Waiting for a worker.';
    else if (job.status === 'processing') line.textContent = `${job.stage === 'packaging' ? 'Writing the files' : 'Capturing the motion'}: ${pct}%`;
    else if (job.status === 'completed') line.textContent = `Done ${fmtDate(job.completedAt)}. Charged ${job.billing.chargedVCredits} credits (${job.billing.channel} balance).`;
    else if (job.status === 'canceled') line.textContent = 'This job was canceled; any held credits were released.';
    else if (up && up.state === 'quoted') line.textContent = 'Uploaded. Check the price below, then start the job.';
    else if (job.status === 'draft' && !up && job.stage === 'uploaded') line.textContent = 'Uploaded. Check the price below, then start the job.';
    else if (job.status === 'draft' && !up) line.textContent = 'The video has not been uploaded yet.';
    else if (job.status === 'failed') line.textContent = 'Nothing was charged for this job.';
    else line.textContent = '';
    drawControls(st, up);
    drawQuote(up);
  };

  // the price before paying (POST .../quote holds nothing); shown while the uploaded job is a draft
  let quoteFor = null;
  const drawQuote = async (up) => {
    const waiting = (up && up.state === 'quoted') || (!up && job.status === 'draft' && job.stage === 'uploaded');
    if (!waiting) { quoteBox.hidden = true; quoteFor = null; return; }
    if (quoteFor) return;
    quoteFor = job.id;
    let q = up ? up.quote : null;
    const qerr = h('div');
    if (!q) { try { q = await api('POST', `${JOBS}/${job.id}/quote`); } catch (e) { qerr.append(errorBox(e)); } }
    const start = async () => {
      startBtn.disabled = true;
      if (up && up.start) { await up.start(); return; }
      await retryComplete();
    };
    const startBtn = h('button', { type: 'button', testid: 'job-start', onclick: start },
      q && q.vCredits !== null && q.vCredits !== undefined ? `Start for ${q.vCredits} credits` : 'Start the job');
    const words = [];
    if (q) {
      words.push(h('p', { testid: 'job-quote' }, q.vCredits !== null && q.vCredits !== undefined
        ? `This job costs ${q.vCredits} credits from your ${q.channel} balance (${q.available} available)` +
          (q.durationSec ? ` for ${fmtSec(q.durationSec)} of video.` : '.')
        : 'The price cannot be worked out for this file.'));
      if (!q.admissible) {
        words.push(h('div', { class: 'error', role: 'alert', testid: 'job-quote-problems' },
          h('p', {}, 'The job cannot start as it is:'),
          h('ul', {}, (q.problems || []).map((p) => h('li', {}, p.detail || p.title || 'A problem with this file.')))));
      }
    }
    quoteBox.replaceChildren(h('h2', { id: 'quote-h' }, 'Price'), ...words, qerr,
      h('div', { class: 'actions' }, q && !q.admissible ? '' : startBtn));
    quoteBox.hidden = false;
  };

  const drawControls = (st, up) => {
    const key = `${st}|${up ? up.state : ''}|${job.error ? job.error.code : ''}`;
    if (key === lastState) return;
    lastState = key;
    controls.replaceChildren();
    problem.replaceChildren();
    if (up && up.state === 'uploading') {
      controls.append(h('button', { type: 'button', class: 'secondary', testid: 'upload-pause', onclick: () => up.pause() }, 'Pause upload'));
      if (!up.resumable) controls.append(h('span', { class: 'hint' }, ' (a paused upload starts again from the beginning)'));
    }
    if (up && up.state === 'paused') {
      controls.append(h('button', { type: 'button', testid: 'upload-resume', onclick: () => up.resume() }, 'Resume upload'));
    }
    if (job.error || (up && up.state === 'error')) {
      const e = job.error;
      const words = e ? `${e.message} (stage: ${e.stage}).` : explain(up.error);
      problem.append(h('div', { class: 'error', role: 'alert', testid: 'job-error' }, words));
      const from = e ? e.retryFrom : 'upload';
      if (from === 'upload' && job.status === 'draft') controls.append(reuploadControl());
      else if (from === 'complete_upload' && job.status === 'draft') {
        controls.append(h('button', { type: 'button', testid: 'job-retry', onclick: retryComplete }, 'Try again'));
      } else if (from === 'new_job' || job.status === 'failed') {
        controls.append(h('a', { class: 'button', testid: 'job-retry', href: `/studio/new?from=${job.id}`, 'data-link': true }, 'Start again with a new job'));
      }
    } else if (job.status === 'draft' && !up) {
      controls.append(reuploadControl());
    }
    if (['draft', 'queued', 'processing'].includes(job.status) && !(up && up.state === 'uploading')) {
      controls.append(h('button', { type: 'button', class: 'danger', onclick: cancel }, 'Cancel job'));
    }
  };

  const reuploadControl = () => {
    const input = h('input', { type: 'file', id: 'reupload', accept: 'video/*', testid: 'job-reupload-file' });
    input.addEventListener('change', async () => {
      if (!input.files.length) return;
      try {
        const links = await api('POST', `${JOBS}/${job.id}/upload-url`);
        watch(startUpload(job.id, input.files[0], links));
        lastState = null; draw();
      } catch (e) { problem.replaceChildren(errorBox(e)); }
    });
    return h('span', {}, h('label', { for: 'reupload', class: 'button secondary', testid: 'job-retry' }, 'Upload the file again'), input);
  };

  const retryComplete = async () => {
    try { job = (await api('POST', `${JOBS}/${job.id}/complete-upload`)).job; } catch (e) { problem.replaceChildren(errorBox(e)); }
    lastState = null; draw();
  };
  const cancel = async () => {
    if (!window.confirm('Cancel this job? Held credits are released.')) return;
    const up = uploads.get(job.id);
    if (up) { up.pause(); uploads.delete(job.id); }
    try { job = (await api('POST', `${JOBS}/${job.id}/cancel`)).job; } catch (e) { problem.replaceChildren(errorBox(e)); }
    lastState = null; draw();
  };

  const refresh = async () => {
    try {
      job = (await api('GET', `${JOBS}/${job.id}`)).job;
    } catch (e) { return; }
    const done = uploads.get(job.id);
    if (done && done.state === 'done' && job.status !== 'draft') uploads.delete(job.id);
    draw();
    if (job.status === 'completed' && !resultsShown) {
      resultsShown = true;
      await showResults(job, results);
    }
  };
  const watch = (up) => {
    const fn = () => { draw(); if (up.state === 'done' || up.state === 'error') refresh(); };
    up.listeners.add(fn);
    cleanup.push(() => up.listeners.delete(fn));
  };
  const up = uploads.get(job.id);
  if (up) watch(up);
  draw();
  performance.mark('studio:job-status'); // the job's state is on screen (bench/studio.py reads it)
  focusHeading();
  if (job.status === 'completed') { resultsShown = true; await showResults(job, results); }
  every(1500, async () => { if (!TERMINAL.has(job.status) || !resultsShown) await refresh(); });
}

async function showResults(job, holder) {
  let result;
  try { result = await api('GET', `${JOBS}/${job.id}/result`); } catch (e) { holder.replaceChildren(errorBox(e)); return; }
  const files = result.files || [];
  const byName = Object.fromEntries(files.map((f) => [f.name, f]));
  const sections = [];

  // 3D viewer synced with the preview of the source
  const glbName = byName['motion.glb'] ? 'motion.glb' : (files.find((f) => f.name.endsWith('.glb')) || {}).name;
  if (glbName) {
    const canvas = h('canvas', { testid: 'job-viewer', 'aria-label': '3D view of the captured motion; drag to orbit, scroll to zoom' });
    const video = h('video', { muted: true, playsinline: true, preload: 'metadata', 'aria-label': job.sourceType === 'reexport'
      ? 'The re-exported motion (a re-export has no source video to draw it over)' : 'The source with the detected skeleton' });
    if (result.previewVideoUrl) video.src = result.previewVideoUrl;
    const glbChoice = h('select', { id: 'viewer-glb', 'aria-label': 'Model to show' },
      files.filter((f) => f.name.endsWith('.glb')).map((f) => h('option', { value: f.name, selected: f.name === glbName },
        f.name.startsWith('avatar_') ? `Your avatar (${f.name})` : f.name === 'motion.glb' ? 'Skeleton (motion.glb)' : f.name)));
    glbChoice.dataset.testid = 'viewer-model';
    const play = h('button', { type: 'button', testid: 'viewer-play' }, 'Play');
    const back = h('button', { type: 'button', class: 'secondary', 'aria-label': 'One frame back' }, '◀ frame');
    const fwd = h('button', { type: 'button', class: 'secondary', 'aria-label': 'One frame forward' }, 'frame ▶');
    const scrub = h('input', { type: 'range', min: '0', max: '1000', value: '0', 'aria-label': 'Time' });
    const clock = h('span', { class: 'mono', 'aria-live': 'off' }, '0.00 s');
    const status = h('p', { class: 'hint' }, 'Loading the 3D view…');
    sections.push(h('section', { class: 'panel', 'aria-labelledby': 'viewer-h' },
      h('h2', { id: 'viewer-h' }, 'Motion'),
      h('div', { class: 'viewer-grid' }, video, canvas),
      h('div', { class: 'transport' }, play, back, fwd, scrub, clock, glbChoice),
      status));
    const { Viewer } = await import('./viewer.js');
    const viewer = new Viewer(canvas);
    cleanup.push(() => viewer.dispose());
    const fps = job.exportFps || 30;
    const duration = () => (Number.isFinite(video.duration) && video.duration > 0 ? video.duration : viewer.duration);
    const hasVideo = () => Boolean(result.previewVideoUrl) && video.readyState >= 1;
    let ownTime = 0; let playing = false; let last = performance.now();
    viewer.timeSource = () => {
      const now = performance.now();
      if (hasVideo()) return video.currentTime;
      if (playing) { ownTime = (ownTime + (now - last) / 1000) % Math.max(viewer.duration, 0.001); }
      last = now;
      return ownTime;
    };
    viewer.onFrame = (t) => {
      const d = duration() || 1;
      scrub.value = String(Math.round((1000 * t) / d));
      clock.textContent = `${t.toFixed(2)} s`;
    };
    const setPlaying = (on) => {
      playing = on;
      play.textContent = on ? 'Pause' : 'Play';
      if (hasVideo()) { if (on) video.play().catch(() => {}); else video.pause(); }
      last = performance.now();
    };
    video.addEventListener('ended', () => setPlaying(false));
    play.addEventListener('click', () => setPlaying(!playing));
    const seek = (t) => {
      const d = duration() || 0;
      t = Math.min(Math.max(t, 0), d);
      if (hasVideo()) video.currentTime = t; else ownTime = t;
    };
    back.addEventListener('click', () => { setPlaying(false); seek(viewer.timeSource() - 1 / fps); });
    fwd.addEventListener('click', () => { setPlaying(false); seek(viewer.timeSource() + 1 / fps); });
    scrub.addEventListener('input', () => seek((Number(scrub.value) / 1000) * (duration() || 0)));
    const loadGlb = async (name) => {
      status.textContent = 'Loading the 3D view…';
      try {
        await viewer.load(byName[name].url);
        status.textContent = 'Drag to orbit, scroll to zoom. The figure follows the video.';
        canvas.dataset.loaded = 'true';
      } catch (e) {
        status.textContent = 'The 3D view could not be shown in this browser; the files below are complete.';
      }
    };
    glbChoice.addEventListener('change', () => loadGlb(glbChoice.value));
    viewer.start();
    loadGlb(glbName);
  }

  const quality = byName['quality.json'];
  if (quality) {
    const box = h('section', { class: 'panel', 'aria-labelledby': 'quality-h' }, h('h2', { id: 'quality-h' }, 'Quality'), h('p', { class: 'muted' }, 'Reading the report…'));
    sections.push(box);
    fetch(quality.url).then((r) => r.json()).then((q) => box.replaceChildren(box.firstChild, qualityInWords(q)))
      .catch(() => box.replaceChildren(box.firstChild, h('p', {}, 'The quality report could not be read; download it below.')));
  }
  const g1 = byName['g1_motion.json'];
  if (g1) {
    const box = h('section', { class: 'panel', 'aria-labelledby': 'g1-h' }, h('h2', { id: 'g1-h' }, 'Unitree G1 motion'), h('p', { class: 'muted' }, 'Reading the robot motion…'));
    sections.push(box);
    fetch(g1.url).then((r) => r.json()).then((m) => box.replaceChildren(box.firstChild, robotSummary(m)))
      .catch(() => box.replaceChildren(box.firstChild, h('p', {}, 'The robot motion could not be read here; download it below.')));
  }
  sections.push(h('section', { class: 'panel', 'aria-labelledby': 'files-h' }, h('h2', { id: 'files-h' }, 'Downloads'),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'File'), h('th', { class: 'num' }, 'Size'), h('th', { class: 'hide-phone' }, 'SHA-256'))),
      h('tbody', {}, files.map((f) => h('tr', {},
        h('td', {}, h('a', { href: f.url, download: f.name, testid: `job-download-${f.name}` }, f.name)),
        h('td', { class: 'num' }, fmtBytes(f.bytes)),
        h('td', { class: 'mono hide-phone' }, f.sha256))))))));
  sections.push(await reexportPanel(job));
  holder.replaceChildren(...sections);
}

// a completed job's motion made again: another frame rate, other targets (a new avatar), upper body only
async function reexportPanel(job) {
  let account = null; let avatars = [];
  try { account = await api('GET', '/api/v1/account'); } catch (e) { account = null; }
  try { avatars = ((await api('GET', '/api/v1/avatars?limit=100')).items || []).filter((a) => a.status === 'ready'); } catch (e) { avatars = []; }
  const allowed = new Set(account ? account.limits.allowedTargets || [] : ['default']);
  const err = h('div');
  const targets = h('fieldset', {}, h('legend', {}, 'Make'));
  const add = (id, label) => {
    const ok = allowed.has(id) || (id.startsWith('avatar:') && account && account.plan !== 'free');
    targets.append(h('label', { class: 'check', for: `rx-${id}` },
      h('input', { type: 'checkbox', id: `rx-${id}`, value: id, testid: `reexport-target-${id}`, checked: job.targetIds.includes(id) && ok, disabled: !ok }),
      label, ok ? '' : h('span', { class: 'hint' }, ' (not on your plan)')));
  };
  add('default', 'Animated skeleton');
  add('unitree_g1', 'Unitree G1 robot motion');
  for (const a of avatars) add(`avatar:${a.avatarId}`, `Avatar: ${a.name}`);
  const fps = h('select', { id: 'rx-fps', testid: 'reexport-fps' }, ...[24, 30, 60, 120].map((v) => h('option', { value: String(v), selected: job.exportFps === v }, `${v} frames a second`)));
  const body = h('select', { id: 'rx-body' }, h('option', { value: 'full_body' }, 'Full body'),
    h('option', { value: 'upper_body', selected: job.mocapType === 'upper_body' }, 'Upper body only'));
  const submit = h('button', { type: 'submit', testid: 'reexport-submit' }, 'Make a new export');
  const form = h('form', { class: 'panel', 'aria-labelledby': 'rx-h' }, h('h2', { id: 'rx-h' }, 'Export again'),
    h('p', { class: 'muted' }, 'A new job from this motion, without capturing the video again: another frame rate, other targets, or the upper body only. It costs one credit per 10 seconds.'),
    h('div', { class: 'row' }, targets,
      h('div', {}, h('label', { for: 'rx-fps' }, 'Frame rate of the files'), fps, h('label', { for: 'rx-body', class: 'spaced' }, 'Body'), body)),
    err, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault(); err.replaceChildren();
    const targetIds = [...targets.querySelectorAll('input:checked')].map((b) => b.value);
    if (!targetIds.length) { err.replaceChildren(errorBox(new Error('Pick at least one thing to make.'))); return; }
    submit.disabled = true;
    try {
      const child = await api('POST', `${JOBS}/${job.id}/exports`, { exportFps: Number(fps.value), targetIds, mocapType: body.value }, { idempotent: true });
      go(`/studio/jobs/${child.job.id}`);
    } catch (e) { err.replaceChildren(errorBox(e)); submit.disabled = false; }
  });
  return form;
}

function pct(x) { return x === null || x === undefined ? 'unknown' : `${Math.round(x * 100)} %`; }

function qualityInWords(q) {
  const items = [];
  const fr = q.frames || {};
  if (fr.total !== undefined) {
    items.push(`A person was found in ${fr.withPerson} of ${fr.total} frames (${pct(fr.personRatio)})` +
      (fr.longestGapS ? `; the longest stretch without one lasted ${fmtSec(fr.longestGapS)}.` : '.'));
    if (fr.otherPerson) items.push(`Another person was closer to the camera in ${fr.otherPerson} frames; the Studio followed the main performer.`);
  }
  const conf = q.perJointConfidence || {};
  const confVals = Object.values(conf).map((v) => (typeof v === 'number' ? v : v && v.mean)).filter((v) => typeof v === 'number');
  if (confVals.length) {
    const mean = confVals.reduce((a, b) => a + b, 0) / confVals.length;
    items.push(`Joints were seen with ${mean > 0.8 ? 'high' : mean > 0.6 ? 'fair' : 'low'} confidence on average (${pct(mean)}).`);
  }
  if (q.jitter && q.jitter.meanAccelerationMps2 !== null && q.jitter.meanAccelerationMps2 !== undefined) {
    const a = q.jitter.meanAccelerationMps2;
    items.push(`The motion is ${a < 5 ? 'smooth' : a < 15 ? 'mostly smooth' : 'jittery in places'} (mean joint acceleration ${a} m/s²).`);
  }
  const spread = Object.values(q.boneLengthSpreadMm || {}).filter((v) => typeof v === 'number');
  if (spread.length) {
    const worst = Math.max(...spread);
    items.push(worst < 1 ? 'Bone lengths stay fixed for the whole take.' : `Bone lengths vary by up to ${worst.toFixed(1)} mm.`);
  }
  const fc = q.footContacts || {};
  for (const side of ['left', 'right']) {
    const f = fc[side];
    if (f && f.contactRatio !== null && f.contactRatio !== undefined) {
      items.push(`The ${side} foot is on the ground ${pct(f.contactRatio)} of the time` +
        (f.skateSpeedCmS !== null && f.skateSpeedCmS !== undefined ? ` and slides ${f.skateSpeedCmS} cm/s on average while planted.` : '.'));
    }
  }
  if (q.robot) {
    const r = q.robot;
    items.push(r.limitViolations ? `The robot motion exceeds joint limits in ${r.limitViolations} joint-frames (at most ${r.maxLimitViolationRad} rad).` : 'The robot motion stays within every joint limit.');
    if (r.trackingErrorMm) {
      const vals = Object.values(r.trackingErrorMm).filter((v) => typeof v === 'number');
      if (vals.length) items.push(`The robot follows the performer's hands and feet within ${Math.round(Math.max(...vals))} mm.`);
    }
  }
  if (!items.length) items.push('The report has no figures for this job.');
  return h('ul', { testid: 'quality-words' }, items.map((t) => h('li', {}, t)));
}

function robotSummary(m) {
  const dur = m.frameCount && m.fps ? m.frameCount / m.fps : null;
  const names = m.jointNames || [];
  const dof = m.dof_pos || [];
  const list = h('dl', { class: 'facts' },
    h('dt', {}, 'Frames'), h('dd', {}, `${m.frameCount} at ${m.fps} frames a second (${fmtSec(dur)})`),
    h('dt', {}, 'Joints'), h('dd', {}, `${names.length} (${m.variant || 'G1'})`),
    h('dt', {}, 'Frame'), h('dd', {}, 'Z up, metres, ground at z = 0'));
  // a small chart of the leg joints over time
  const canvas = h('canvas', { width: '640', height: '160', style: 'width:100%;max-width:640px;height:auto', 'aria-label': 'Knee and hip pitch angles over time' });
  const ctx = canvas.getContext('2d');
  const pick = names.map((n, i) => [n, i]).filter(([n]) => /knee|hip_pitch/.test(n)).slice(0, 4);
  const colours = ['#1f5fbf', '#b3261e', '#1d7a46', '#9a5b00'];
  if (ctx && dof.length && pick.length) {
    let lo = Infinity; let hi = -Infinity;
    for (const row of dof) for (const [, i] of pick) { lo = Math.min(lo, row[i]); hi = Math.max(hi, row[i]); }
    const span = hi - lo || 1;
    pick.forEach(([, i], k) => {
      ctx.strokeStyle = colours[k]; ctx.lineWidth = 2; ctx.beginPath();
      dof.forEach((row, f) => {
        const x = (f / Math.max(dof.length - 1, 1)) * 630 + 5; const y = 150 - ((row[i] - lo) / span) * 140;
        if (f === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    });
  }
  const legend = h('p', { class: 'hint' }, pick.map(([n], k) => h('span', { style: `color:${colours[k]};margin-right:12px` }, `■ ${n}`)));
  return h('div', {}, list, canvas, legend);
}

// -- avatars

async function pageAvatars() {
  setTitle('Avatars');
  main.append(h('h1', {}, 'Avatars'),
    h('p', { class: 'muted' }, 'Bring your own rigged character once (FBX, glTF/GLB or VRM); every later job can animate it directly.'));
  let page;
  try { page = await api('GET', '/api/v1/avatars?limit=100'); } catch (e) {
    main.append(e.status === 404 ? h('p', { class: 'notice' }, 'Avatars are not available on this server.') : errorBox(e));
    return;
  }
  const err = h('div');
  const name = h('input', { id: 'avatar-name', type: 'text', maxlength: '200', required: true });
  const file = h('input', { id: 'avatar-file', type: 'file', accept: '.fbx,.glb,.gltf,.vrm', testid: 'avatar-file' });
  const progress = h('p', { class: 'hint', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', testid: 'avatar-submit' }, 'Upload and prepare');
  const form = h('form', { class: 'panel' }, h('h2', {}, 'Add an avatar'),
    h('div', { class: 'row' }, h('div', {}, h('label', { for: 'avatar-name' }, 'Name'), name),
      h('div', {}, h('label', { for: 'avatar-file' }, 'Model file'), file)), err, progress, h('div', { class: 'actions' }, submit));
  const list = h('div');
  const detail = h('div');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault(); err.replaceChildren();
    const f = file.files[0];
    if (!f || !name.value.trim()) { err.replaceChildren(errorBox(new Error('Give the avatar a name and choose its file.'))); return; }
    submit.disabled = true;
    try {
      const created = await api('POST', '/api/v1/avatars', { name: name.value.trim(), sourceFilename: f.name, sourceBytes: f.size }, { idempotent: true });
      await putWithProgress(created.uploadUrl, f, (p) => { progress.textContent = `Uploading ${p}%`; });
      progress.textContent = 'Preparing the avatar…';
      const av = await api('POST', `/api/v1/avatars/${created.avatarId}/complete-upload`);
      progress.textContent = '';
      name.value = ''; file.value = '';
      await refreshList();
      showAvatar(av);
    } catch (e) { err.replaceChildren(errorBox(e)); progress.textContent = ''; }
    submit.disabled = false;
  });
  const refreshList = async () => {
    page = await api('GET', '/api/v1/avatars?limit=100');
    if (!page.items.length) { list.replaceChildren(h('div', { class: 'panel empty' }, 'No avatars yet.')); return; }
    list.replaceChildren(h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Status'), h('th', { class: 'hide-phone' }, 'Format'),
        h('th', { class: 'num hide-phone' }, 'Bones'), h('th', { class: 'num hide-phone' }, 'Height'), h('th', {}, ''))),
      h('tbody', {}, page.items.map((a) => h('tr', { 'data-avatar': a.avatarId },
        h('td', {}, a.name), h('td', {}, h('span', { class: a.status === 'ready' ? 'pill completed' : a.status === 'failed' ? 'pill failed' : 'pill', testid: 'avatar-row-status' }, a.status === 'draft' ? 'preparing' : a.status)),
        h('td', { class: 'hide-phone' }, a.format || ''), h('td', { class: 'num hide-phone' }, a.bones ?? ''),
        h('td', { class: 'num hide-phone' }, a.heightM ? `${a.heightM.toFixed(2)} m` : ''),
        h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Bone mapping of ${a.name}`, onclick: () => showAvatar(a) }, 'Bone mapping'))))))));
  };
  const showAvatar = (a) => {
    const rows = Object.entries(a.mapping || {});
    const inputs = {};
    const derr = h('div');
    const table = h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Skeleton bone'), h('th', {}, 'Avatar bone'))),
      h('tbody', {}, rows.concat((a.unmapped || []).map((b) => [b, ''])).map(([bone, target]) => {
        const inp = h('input', { type: 'text', value: target || '', 'aria-label': `Avatar bone for ${bone}`, placeholder: 'not mapped',
          testid: `avatar-bone-${bone}`, spellcheck: 'false', autocomplete: 'off' });
        inputs[bone] = inp;
        return h('tr', {}, h('td', { class: 'mono' }, bone), h('td', {}, inp));
      })));
    const save = h('button', { type: 'button', testid: 'avatar-save' }, 'Save mapping');
    save.addEventListener('click', async () => {
      derr.replaceChildren();
      const mapping = {};
      for (const [bone, inp] of Object.entries(inputs)) if (inp.value.trim()) mapping[bone] = inp.value.trim();
      try {
        const updated = await api('PATCH', `/api/v1/avatars/${a.avatarId}`, { mapping });
        await refreshList(); showAvatar(updated);
        detail.querySelector('[data-testid=avatar-saved]').textContent = 'The mapping is saved and checked.';
      } catch (e) {
        derr.replaceChildren(h('div', { class: 'error', role: 'alert', testid: 'avatar-mapping-error' },
          e.status === 422 ? `This mapping cannot be used, so nothing was changed: ${explain(e)}` : explain(e)));
      }
    });
    const del = h('button', { type: 'button', class: 'danger', testid: 'avatar-delete' }, 'Delete avatar');
    del.addEventListener('click', async () => {
      if (!window.confirm(`Delete ${a.name}? Finished jobs keep their files.`)) return;
      try { await api('DELETE', `/api/v1/avatars/${a.avatarId}`); detail.replaceChildren(); await refreshList(); } catch (e) { derr.replaceChildren(errorBox(e)); }
    });
    detail.replaceChildren(h('section', { class: 'panel', 'aria-labelledby': 'avatar-h' },
      h('h2', { id: 'avatar-h', tabindex: '-1' }, a.name),
      h('dl', { class: 'facts' }, h('dt', {}, 'Status'), h('dd', { testid: 'avatar-status' }, a.status === 'draft' ? 'preparing' : a.status),
        h('dt', {}, 'File'), h('dd', {}, `${a.sourceFilename || ''} (${(a.format || '').toUpperCase()}, ${a.bones ?? '?'} bones)`),
        h('dt', {}, 'Height'), h('dd', {}, a.heightM ? `${a.heightM.toFixed(2)} m` : 'unknown'),
        h('dt', {}, 'Rest pose'), h('dd', {}, (a.restPose || '').replace('_', '-')),
        h('dt', {}, 'Fingers'), h('dd', {}, a.fingers ? 'yes' : 'no')),
      a.status === 'ready' ? h('p', { class: 'muted', testid: 'avatar-mapping-summary' },
        `${rows.length} skeleton bones are mapped onto this character` +
        ((a.unmapped || []).length ? `; ${a.unmapped.length} have no match (${a.unmapped.join(', ')}) and keep their rest pose.` : '.') +
        ' Correct a bone below by typing the character\'s own bone name.') : '',
      h('p', { class: 'hint', role: 'status', testid: 'avatar-saved' }),
      a.error ? h('div', { class: 'error' }, a.error.detail || a.error.title || 'The avatar could not be prepared.') : '',
      (a.warnings || []).length ? h('ul', {}, a.warnings.map((w) => h('li', {}, typeof w === 'string' ? w : (w.message || '')))) : '',
      h('div', { class: 'table-wrap' }, table), derr, h('div', { class: 'actions' }, save, del)));
    detail.querySelector('h2').focus();
  };
  main.append(form, list, detail);
  try { await refreshList(); } catch (e) { list.replaceChildren(errorBox(e)); }
  focusHeading();
}

function putWithProgress(url, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.onprogress = (ev) => onProgress(Math.round((100 * ev.loaded) / (ev.total || file.size)));
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) { resolve(); return; }
      let problem = null;
      try { problem = JSON.parse(xhr.responseText); } catch (x) { problem = null; }
      reject(new ApiError(xhr.status, problem));
    };
    xhr.onerror = () => reject(new Error('The upload was interrupted. Try again.'));
    xhr.send(file);
  });
}

// -- credits

async function pageCredits() {
  setTitle('Credits');
  main.append(h('h1', {}, 'Credits'));
  let acct;
  try { acct = await api('GET', '/api/v1/account'); } catch (e) { main.append(errorBox(e)); return; }
  const card = (channel, label, note) => {
    const b = acct.balances[channel];
    return h('div', { class: 'panel' }, h('h2', { style: 'margin-top:0' }, label),
      h('div', { class: 'balance' }, h('span', { testid: `balance-${channel}` }, String(b.balance)), h('span', { class: 'hint' }, ' v-credits')),
      h('p', { class: 'muted' }, `${b.held} held by running jobs, ${b.available} available. ${note}`));
  };
  main.append(h('div', { class: 'balances' },
    card('studio', 'Studio balance', 'Jobs started here spend it.'),
    card('api', 'API balance', 'Jobs started with an API key spend it.')),
  h('p', { class: 'muted' }, `Plan: ${acct.plan}. Up to ${acct.limits.maxActiveJobs} jobs at once, clips up to ${acct.limits.maxDurationSec} s, files kept ${acct.limits.retentionDays} days.`));
  const filter = h('select', { id: 'ledger-channel' }, h('option', { value: '' }, 'Both balances'), h('option', { value: 'studio' }, 'Studio'), h('option', { value: 'api' }, 'API'));
  const body = h('tbody');
  const more = h('div', { class: 'actions' });
  const table = h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Movement'), h('th', { class: 'num' }, 'Credits'), h('th', {}, 'Balance'), h('th', { class: 'hide-phone' }, 'Job'))), body));
  const WORDS = { grant: 'Added', hold: 'Held for a job', capture: 'Charged', release: 'Released', refund: 'Refunded', adjust: 'Adjusted' };
  const load = async (cursor) => {
    const q = new URLSearchParams({ limit: '50' });
    if (filter.value) q.set('channel', filter.value);
    if (cursor) q.set('cursor', cursor);
    const page = await api('GET', `/api/v1/account/ledger?${q}`);
    const rows = page.items.map((e) => h('tr', {}, h('td', {}, fmtDate(e.createdAt)), h('td', {}, WORDS[e.type] || e.type, e.reason ? h('span', { class: 'hint' }, ` (${e.reason})`) : ''),
      h('td', { class: 'num' }, String(e.amount)), h('td', {}, e.channel),
      h('td', { class: 'hide-phone' }, e.jobId ? h('a', { href: `/studio/jobs/${e.jobId}`, 'data-link': true, class: 'mono' }, e.jobId) : '')));
    if (cursor) body.append(...rows); else body.replaceChildren(...rows);
    if (!cursor && !rows.length) body.replaceChildren(h('tr', {}, h('td', { colspan: '5', class: 'empty' }, 'No credit movements yet.')));
    more.replaceChildren(page.nextCursor ? h('button', { type: 'button', class: 'secondary', onclick: () => load(page.nextCursor) }, 'Show older movements') : '');
  };
  filter.addEventListener('change', () => load(null));
  main.append(h('h2', {}, 'Every movement'), h('div', { style: 'max-width:240px;margin-bottom:8px' }, h('label', { for: 'ledger-channel' }, 'Show'), filter), table, more);
  try { await load(null); } catch (e) { main.append(errorBox(e)); }
  focusHeading();
}

// -- webhooks

async function pageWebhooks() {
  setTitle('Webhooks');
  main.append(h('h1', {}, 'Webhooks'),
    h('p', { class: 'muted' }, 'Have mocapd call your server when a job or an avatar changes state. Each message is signed (Standard Webhooks) and retried until your server answers 2xx.'));
  let page;
  try { page = await api('GET', '/api/v1/webhooks?limit=100'); } catch (e) {
    main.append(e.status === 404 ? h('p', { class: 'notice' }, 'Webhooks are not available on this server.') : errorBox(e));
    return;
  }
  const err = h('div');
  const url = h('input', { id: 'wh-url', type: 'url', placeholder: 'https://example.com/mocapd-events', required: true, testid: 'webhook-url' });
  const desc = h('input', { id: 'wh-desc', type: 'text', maxlength: '200' });
  const events = h('fieldset', {}, h('legend', {}, 'Events'),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', value: '*', checked: true }), 'All events'),
    ALL_EVENTS.map((ev) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: ev }), h('span', { class: 'mono' }, ev))));
  const secretBox = h('div');
  const form = h('form', { class: 'panel' }, h('h2', { style: 'margin-top:0' }, 'Add an endpoint'),
    h('label', { for: 'wh-url' }, 'URL'), url, h('label', { for: 'wh-desc', style: 'margin-top:12px' }, 'Description ', h('span', { class: 'hint' }, '(optional)')), desc,
    h('div', { style: 'margin-top:12px' }, events), err, secretBox, h('div', { class: 'actions' }, h('button', { type: 'submit', testid: 'webhook-submit' }, 'Add endpoint')));
  const list = h('div');
  const detail = h('div');
  const showSecret = (secret) => secretBox.replaceChildren(h('div', { class: 'secret', role: 'status' },
    h('p', { style: 'margin-top:0' }, 'The signing secret, shown only now. Copy it into your receiver:'), h('p', { class: 'mono', testid: 'webhook-secret' }, secret)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault(); err.replaceChildren(); secretBox.replaceChildren();
    const chosen = [...events.querySelectorAll('input:checked')].map((b) => b.value);
    const body = { url: url.value.trim(), events: chosen.includes('*') || !chosen.length ? ['*'] : chosen };
    if (desc.value.trim()) body.description = desc.value.trim();
    try {
      const created = await api('POST', '/api/v1/webhooks', body, { idempotent: true });
      showSecret(created.secret);
      url.value = ''; desc.value = '';
      await refresh();
    } catch (e) { err.replaceChildren(errorBox(e)); }
  });
  const refresh = async () => {
    page = await api('GET', '/api/v1/webhooks?limit=100');
    if (!page.items.length) { list.replaceChildren(h('div', { class: 'panel empty' }, 'No endpoints yet.')); return; }
    list.replaceChildren(h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'URL'), h('th', { class: 'hide-phone' }, 'Events'), h('th', {}, 'Enabled'), h('th', {}, ''))),
      h('tbody', {}, page.items.map((w) => h('tr', { 'data-webhook': w.webhookId }, h('td', { class: 'mono' }, w.url), h('td', { class: 'hide-phone' }, (w.events || []).includes('*') ? 'all' : (w.events || []).join(', ')),
        h('td', { testid: 'webhook-enabled' }, w.enabled ? 'yes' : (w.disabledReason ? `no: ${w.disabledReason}` : 'no')),
        h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Details of ${w.url}`, onclick: () => showHook(w) }, 'Details'))))))));
  };
  const DELIVERY = { pending: 'waiting to be sent', succeeded: 'delivered', failed: 'failed' };
  let stopPoll = null;
  cleanup.push(() => { if (stopPoll) stopPoll(); });
  const showHook = async (w) => {
    if (stopPoll) stopPoll();
    const derr = h('div');
    const body = h('tbody');
    const loadDeliveries = async () => {
      const d = await api('GET', `/api/v1/webhooks/${w.webhookId}/deliveries?limit=50`);
      const rows = (d.items || []).map((x) => h('tr', {}, h('td', {}, fmtDate(x.createdAt)), h('td', { class: 'mono' }, x.eventType),
        h('td', { testid: 'webhook-delivery-status' }, DELIVERY[x.status] || x.status,
          x.status !== 'succeeded' && x.nextAttemptAt ? h('span', { class: 'hint' }, ` (next try ${fmtDate(x.nextAttemptAt)})`) : ''),
        h('td', { class: 'num' }, x.attempt), h('td', { class: 'num' }, x.responseStatus ?? ''),
        h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Send the ${x.eventType} message of ${fmtDate(x.createdAt)} again`, onclick: async () => {
          try { await api('POST', `/api/v1/webhooks/${w.webhookId}/deliveries/${x.id}/redeliver`); await loadDeliveries(); } catch (e) { derr.replaceChildren(errorBox(e)); }
        } }, 'Send again'))));
      body.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: '6', class: 'empty' }, 'Nothing sent yet.'))]));
    };
    const act = (label, fn, cls = 'secondary', testid = null) => h('button', { type: 'button', class: cls, testid, onclick: async () => {
      derr.replaceChildren();
      try { await fn(); } catch (e) { derr.replaceChildren(errorBox(e)); }
    } }, label);
    detail.replaceChildren(h('section', { class: 'panel', 'aria-labelledby': 'wh-h' }, h('h2', { id: 'wh-h', tabindex: '-1', class: 'mono' }, w.url),
      h('div', { class: 'actions' },
        act('Send a test event', async () => { await api('POST', `/api/v1/webhooks/${w.webhookId}/test`); await loadDeliveries(); }, 'secondary', 'webhook-test'),
        act(w.enabled ? 'Disable' : 'Enable', async () => { const u = await api('PATCH', `/api/v1/webhooks/${w.webhookId}`, { enabled: !w.enabled }); await refresh(); showHook(u); }, 'secondary', 'webhook-toggle'),
        act('New secret', async () => { const r = await api('POST', `/api/v1/webhooks/${w.webhookId}/rotate-secret`); showSecret(r.secret); secretBox.scrollIntoView({ block: 'nearest' }); }, 'secondary', 'webhook-rotate'),
        act('Delete', async () => {
          if (!window.confirm('Delete this endpoint?')) return;
          await api('DELETE', `/api/v1/webhooks/${w.webhookId}`); if (stopPoll) stopPoll(); detail.replaceChildren(); secretBox.replaceChildren(); await refresh();
        }, 'danger', 'webhook-delete')),
      derr, h('h3', {}, 'Deliveries'),
      h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Event'), h('th', {}, 'Status'),
        h('th', { class: 'num' }, 'Attempt'), h('th', { class: 'num' }, 'Answer'), h('th', {}, ''))), body))));
    detail.querySelector('h2').focus();
    try { await loadDeliveries(); } catch (e) { derr.replaceChildren(errorBox(e)); }
    // a live delivery log while the endpoint is open (deliveries are sent in the background)
    let timer = null; let stopped = false;
    const tick = async () => { try { await loadDeliveries(); } catch (e) { /* shown on the next action */ } if (!stopped) timer = setTimeout(tick, 2000); };
    timer = setTimeout(tick, 2000);
    stopPoll = () => { stopped = true; clearTimeout(timer); };
  };
  main.append(form, list, detail);
  try { await refresh(); } catch (e) { list.replaceChildren(errorBox(e)); }
  focusHeading();
}

// ---- start ----------------------------------------------------------------------------------------

(async () => {
  try { session = await api('GET', '/api/v1/studio/session'); } catch (e) { session = null; }
  render();
})();
