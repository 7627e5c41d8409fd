/**
 * HTML built from tagged templates: every interpolated value is escaped unless it is already `Html` (the output of
 * another `html` template), so a device-supplied string can never become markup. Escapes the five characters that
 * matter in text and in quoted attribute values (HTML Living Standard §13.1.2.3, "attribute value (double-quoted)");
 * attributes are always written double-quoted here.
 */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

const ENTITIES: Readonly<Record<string, string>> = Object.freeze({
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
});

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

function render(value: HtmlValue): string {
  if (value instanceof Html) return value.text;
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return (value as readonly HtmlValue[]).map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): Html {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return new Html(out);
}

/** A path segment or query value inside an href: percent-encoded, then escaped by the template. */
export function pathPart(text: string): string {
  return encodeURIComponent(text);
}
