// DOM helpers: elements are built with textContent only; the one exception is the answer, whose
// HTML comes from markdown.js (escaped first).

/**
 * Create an element.
 * @param {string} tag
 * @param {Record<string, string|number|boolean|null|undefined>} [attributes] "text" sets textContent;
 *   null, undefined and false leave an attribute out; true sets it empty.
 * @param {...(Node|string|null|undefined)} children
 * @returns {HTMLElement}
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") element.textContent = String(value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) element.append(child);
  }
  return element;
}

/** A short random id, also outside secure contexts (where crypto.randomUUID is missing). */
export function randomId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Seconds with two decimals, e.g. "1.25 s". */
export function seconds(ms) {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** HH:MM:SS.mmm of an epoch time in milliseconds. */
export function clock(ms) {
  const date = new Date(ms);
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}
