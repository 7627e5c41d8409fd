import { type Html, html } from '../html.js';

/** The login form: the API's token, posted once and kept by the browser as an HttpOnly cookie (session.ts). */
export function loginBody(next: string, failed: boolean): Html {
  return html`<h1>Log in</h1>
    <p>
      This fleet service needs its API token (the first line of the file given to
      <code>fleet serve --token-file</code>).
    </p>
    ${failed ? html`<p class="error" id="error" role="alert">That token is not valid for this server.</p>` : ''}
    <form method="post" action="/ui/login?next=${encodeURIComponent(next)}" class="actions">
      <label
        >Token <input type="password" name="token" id="token" autocomplete="current-password" required autofocus
      /></label>
      <button type="submit">Log in</button>
    </form>`;
}
