import { escapeHtml } from './html.js';
import type { DemoMetrics } from './metrics.js';

/** Everything the home page shows, read from the session by the route. */
export interface HomeView {
  user: string | null;
  notice: string | null;
  offer: { text: string; secondsLeft: number } | null;
  note: string;
  count: number;
  sessionId: string;
  /** The browser sent this session's cookie: the session is stored. */
  stored: boolean;
  metrics: DemoMetrics;
  nextRotation: { at: Date; inSeconds: number } | null;
  savePath: string;
}

function loginSection(user: string | null): string {
  if (user !== null) {
    return `<section>
<h2>Account</h2>
<p id="user">Signed in as <strong>${escapeHtml(user)}</strong>.</p>
<form method="post" action="/logout"><button id="logout">Log out (destroy the session)</button></form>
</section>`;
  }
  return `<section>
<h2>Log in</h2>
<p class="hint">There is no password and no user database in this demo: any name signs you in.
Logging in calls <code>session.regenerate(true)</code>, so the session ID changes and the old one is deleted.</p>
<form method="post" action="/login" id="login-form">
<label>Name <input name="name" id="name" required maxlength="40" autocomplete="username"></label>
<button>Log in</button>
</form>
</section>`;
}

function noticeSection(view: HomeView): string {
  const flash =
    view.notice === null
      ? ''
      : `<p class="flash" id="flash" role="status">${escapeHtml(view.notice)} <span class="hint">(flashdata: shown once; reload and it is gone)</span></p>`;
  const offer =
    view.offer === null
      ? ''
      : `<p class="temp" id="tempdata">${escapeHtml(view.offer.text)} <span class="hint">(tempdata: disappears in <span id="temp-seconds">${view.offer.secondsLeft}</span> s)</span></p>`;
  return flash + offer;
}

function noteSection(note: string): string {
  return `<section>
<h2>Note</h2>
<form method="post" action="/note">
<label>Your note <textarea name="note" id="note" maxlength="500" rows="2">${escapeHtml(note)}</textarea></label>
<button id="save-note">Save</button>
</form>
</section>`;
}

function counterSection(count: number): string {
  return `<section>
<h2>Counter</h2>
<p>Stored in the session: <strong id="count">${count}</strong></p>
<p>Each button sends that many <code>fetch</code> requests at once. They all change the same
session, and the session lock makes them take turns, so none is lost.</p>
<p>
<button type="button" class="increment" data-times="1">+1</button>
<button type="button" class="increment" data-times="5">+5 in parallel</button>
<button type="button" class="increment" data-times="20" id="increment-20">+20 in parallel</button>
</p>
<p id="increment-result" aria-live="polite"></p>
</section>`;
}

function sessionSection(view: HomeView): string {
  const rotation =
    view.nextRotation === null
      ? 'automatic rotation is off'
      : `<time datetime="${escapeHtml(view.nextRotation.at.toISOString())}">${escapeHtml(view.nextRotation.at.toLocaleTimeString('en-GB'))}</time> (in ${view.nextRotation.inSeconds} s, on the next page load after that)`;
  return `<section>
<h2>Session</h2>
<dl>
<dt>Session ID</dt><dd><code id="session-id">${escapeHtml(view.sessionId)}</code>${
    view.stored
      ? ''
      : ' <span class="hint" id="not-stored">(not stored: this visit stored nothing, so no cookie was sent and nothing was written — log in, save a note or count to create the session)</span>'
  }</dd>
<dt>Next ID rotation</dt><dd id="next-rotation">${rotation}</dd>
<dt>Stored in</dt><dd><code>${escapeHtml(view.savePath)}</code> (file driver)</dd>
</dl>
</section>`;
}

function metricsSection(metrics: DemoMetrics): string {
  const row = (id: string, label: string, value: number) =>
    `<dt>${label}</dt><dd id="metric-${id}">${value}</dd>`;
  return `<section>
<h2>Live metrics</h2>
<p class="hint">Counted in this server from keepsake's <code>node:diagnostics_channel</code> events (docs/observability.md), for every visitor.</p>
<dl>
${row('created', 'Sessions created', metrics.sessionsCreated)}
${row('regenerated', 'ID regenerations', metrics.regenerations)}
${row('destroyed', 'Sessions destroyed', metrics.destroyed)}
${row('lock-waits', 'Lock acquisitions', metrics.lockWaits)}
${row('longest-wait', 'Longest lock wait (ms)', Math.round(metrics.longestLockWaitMs))}
${row('lock-timeouts', 'Lock timeouts (503)', metrics.lockTimeouts)}
${row('store-errors', 'Store errors (503)', metrics.storeErrors)}
</dl>
</section>`;
}

/** The home page body. */
export function homePage(view: HomeView): string {
  return `<h1>keepsake demo</h1>
${noticeSection(view)}
${loginSection(view.user)}
${noteSection(view.note)}
${counterSection(view.count)}
${sessionSection(view)}
${metricsSection(view.metrics)}`;
}
