// A small, safe Markdown renderer for answers: headings, paragraphs, lists (nested by
// indentation), block quotes, rules, fenced and inline code, bold, italics, links, bare URLs and
// citations [n].
//
// Safety rule: every piece of the source is HTML-escaped before any markup is added, and the only
// markup added is the fixed set of tags below. Link targets must be http(s), mailto or an in-page
// #fragment; anything else (javascript:, data:…) stays plain text. The result can therefore be
// given to innerHTML even though answers are untrusted text.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const SAFE_HREF = /^(?:https?:\/\/|mailto:|#)/i;

/**
 * Escape text for HTML element content and attribute values.
 * @param {string} text
 * @returns {string}
 */
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/**
 * Render Markdown to an HTML string that is safe to assign to innerHTML.
 * @param {string} source Markdown text (untrusted).
 * @param {{citationHref?: (n: number) => (string|null), headingLevel?: number}} [options]
 *   citationHref: the link target of citation [n], or null to leave it unlinked;
 *   headingLevel: the HTML level of a Markdown "#" heading (default 4: answers sit under h3).
 * @returns {string}
 */
export function renderMarkdown(source, options = {}) {
  const lines = String(source ?? "")
    .replace(/\u0000/g, "")
    .replace(/\r\n?/g, "\n")
    .split("\n");
  const inline = (text) => renderInline(text, options.citationHref);
  const headingBase = options.headingLevel ?? 4;
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    // The info string after the fence ("python", "python title=x.py") is not shown; a backtick
    // fence's has no backtick ("```print(1)``` …" is a paragraph with inline code).
    const fence = line.match(/^\s*(```|~~~)([^`]*)$/);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1; // the closing fence (or the end of a still-streaming block)
      out.push(`<pre><code>${escapeHtml(body.join("\n"))}</code></pre>`);
      continue;
    }
    const heading = line.match(/^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/);
    if (heading) {
      const level = Math.min(6, headingBase + heading[1].length - 1);
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      i += 1;
      continue;
    }
    if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
      out.push("<hr>");
      i += 1;
      continue;
    }
    if (listItem(line)) {
      const start = i;
      while (i < lines.length && (listItem(lines[i]) || continuation(lines[i], lines[i - 1]))) i += 1;
      out.push(renderList(lines.slice(start, i), inline));
      continue;
    }
    if (/^\s{0,3}>/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^\s{0,3}>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s{0,3}>\s?/, ""));
      out.push(`<blockquote>${renderMarkdown(quoted.join("\n"), options)}</blockquote>`);
      continue;
    }
    // The first line always: one that startsBlock() claims but no rule above took ("# a\u2028b")
    // would otherwise never be consumed.
    const paragraph = [lines[i++].trim()];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) paragraph.push(lines[i++].trim());
    // Line breaks are kept: answers put one source per line under "Sources:".
    out.push(`<p>${paragraph.map(inline).join("<br>")}</p>`);
  }
  return out.join("\n");
}

function listItem(line) {
  return line.match(/^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/);
}

function continuation(line, previous) {
  // An indented, non-empty line right after a list item continues that item.
  return Boolean(previous && previous.trim() && line.trim() && /^\s{2,}\S/.test(line) && !startsBlock(line.trim()));
}

function startsBlock(line) {
  return /^\s{0,3}(#{1,6}\s|>|```|~~~)/.test(line) || Boolean(listItem(line));
}

function renderList(lines, inline) {
  // Items as {indent, ordered, text, children}; deeper indentation nests under the item above.
  const root = { indent: -1, children: [] };
  const stack = [root];
  for (const line of lines) {
    const item = listItem(line);
    if (!item) {
      const last = stack[stack.length - 1];
      if (last !== root) last.text += ` ${line.trim()}`;
      continue;
    }
    const indent = item[1].replace(/\t/g, "    ").length;
    while (stack.length > 1 && stack[stack.length - 1].indent >= indent) stack.pop();
    const node = { indent, ordered: /\d/.test(item[2]), number: parseInt(item[2], 10), text: item[3], children: [] };
    stack[stack.length - 1].children.push(node);
    stack.push(node);
  }
  return renderItems(root.children, inline);
}

function renderItems(items, inline) {
  if (!items.length) return "";
  const ordered = items[0].ordered;
  const tag = ordered ? "ol" : "ul";
  const start = ordered && items[0].number !== 1 ? ` start="${items[0].number}"` : "";
  const body = items.map((item) => `<li>${inline(item.text)}${renderItems(item.children, inline)}</li>`).join("");
  return `<${tag}${start}>${body}</${tag}>`;
}

/**
 * Render one line of inline Markdown (escaped first, then the fixed markup).
 * @param {string} text
 * @param {(n: number) => (string|null)} [citationHref]
 * @returns {string}
 */
export function renderInline(text, citationHref) {
  // Finished pieces of HTML wait in `held` behind a \u0000n\u0000 marker, so that later rules
  // never look inside them (a URL inside a link, an asterisk inside code).
  const held = [];
  const hold = (html) => `\u0000${held.push(html) - 1}\u0000`;
  let html = String(text)
    .split(/(`[^`\n]+`)/)
    .map((piece, index) => (index % 2 ? hold(`<code>${escapeHtml(piece.slice(1, -1))}</code>`) : escapeHtml(piece)))
    .join("");
  html = html.replace(/\[([^\]\n]+)\]\(([^()\s]+(?:\([^()\s]*\)[^()\s]*)*)\)/g, (whole, label, href) =>
    isSafeHref(href) ? hold(link(href, label)) : whole,
  );
  // Escaped quotes and angle brackets end a bare URL ("<https://x.example>").
  html = html.replace(/https?:\/\/(?:(?!&(?:lt|gt|quot|#39);)[^\s\u0000])+/g, (url) => {
    const [href, rest] = trimUrl(url);
    return hold(link(href, href)) + rest;
  });
  html = html.replace(/\[(\d{1,3})\]/g, (whole, n) => {
    const href = citationHref ? citationHref(Number(n)) : null;
    return hold(
      href
        ? `<a class="cite" href="${href}" aria-label="source ${n}">[${n}]</a>`
        : `<span class="cite">[${n}]</span>`,
    );
  });
  html = html
    .replace(/\*\*(?=\S)([^*]+?)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([^_]+?)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/\*(?=[^\s*])([^*]+?)\*/g, "<em>$1</em>")
    .replace(/(^|[^\w])_(?=[^\s_])([^_]+?)_(?!\w)/g, "$1<em>$2</em>");
  // Markers can nest (a citation held inside a link label): resolve until none is left.
  while (/\u0000\d+\u0000/.test(html)) html = html.replace(/\u0000(\d+)\u0000/g, (_, n) => held[Number(n)]);
  return html;
}

function isSafeHref(escapedHref) {
  return SAFE_HREF.test(escapedHref);
}

function link(escapedHref, escapedLabel) {
  const external = /^https?:/i.test(escapedHref);
  const attributes = external ? ' rel="noopener noreferrer" target="_blank"' : "";
  return `<a href="${escapedHref}"${attributes}>${escapedLabel}</a>`;
}

function trimUrl(url) {
  // A bare URL ends before trailing punctuation and before a ")" it did not open:
  // "(see https://x.example/a-(b))." links https://x.example/a-(b). The text is escaped already,
  // so a trailing "&" is "&amp;".
  let end = url.length;
  for (;;) {
    const head = url.slice(0, end);
    if (head.endsWith("&amp;")) end -= 5;
    else if (/[.,;:!?*_]$/.test(head)) end -= 1;
    else if (head.endsWith(")") && (head.match(/\(/g) || []).length < (head.match(/\)/g) || []).length) end -= 1;
    else break;
  }
  return [url.slice(0, end), url.slice(end)];
}
