// The ragstream web page: ask, search, the documents, feedback. No framework, no build step.
//
// Everything the API returns comes from documents, which may be hostile: it is only ever put on the
// page as text (textContent, text nodes, attribute values), never parsed as HTML. The page's
// Content-Security-Policy requires Trusted Types, so an HTML string sink would throw anyway.
//
// The API key is kept in sessionStorage (this tab only) and sent as the x-api-key header; it never
// goes into a URL.
"use strict";

(() => {
  const KEY_STORAGE = "ragstream.apiKey";
  const API_KEY_HEADER = "x-api-key";
  const SNIPPET_CHARS = 420;

  const $ = (id) => document.getElementById(id);
  const state = { feedback: null, answer: null, docs: { cursor: null, back: [], next: null, loaded: false } };

  // -- DOM: text only -----------------------------------------------------------------------------------

  /** An element with attributes and children; strings become text nodes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== "") node.append(child);
    }
    return node;
  }

  /** The last part of a source URI, for a short label. */
  function fileName(source) {
    const text = String(source || "");
    const tail = text.replace(/\/+$/, "").split("/").pop() || text;
    try {
      return decodeURIComponent(tail);
    } catch {
      return tail;
    }
  }

  /** Text nodes of `text` with a line-break opportunity (<wbr>) after each run of separators.
   *
   * A long URI then wraps at its slashes, dots, dashes and underscores rather than letter by letter;
   * the text itself stays text (no markup is parsed). */
  function breakable(text) {
    const nodes = [];
    for (const piece of String(text || "").match(/[^\/\-_.?&=#]*(?:[\/\-_.?&=#]+|$)/g) || []) {
      if (!piece) continue;
      if (nodes.length) nodes.push(el("wbr"));
      nodes.push(piece);
    }
    return nodes;
  }

  function pageLabel(page) {
    return page === null || page === undefined ? "—" : String(page);
  }

  // -- the API key ---------------------------------------------------------------------------------------

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  function setKey(value) {
    try {
      if (value) sessionStorage.setItem(KEY_STORAGE, value);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // storage disabled: the key lives as long as the input holds it
    }
  }

  function currentKey() {
    return storedKey() || $("api-key").value;
  }

  // -- calling the API -----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** A readable sentence for an error answer of the API. */
  function describe(status, data, retryAfter) {
    const said = data && typeof data.message === "string" ? data.message : "";
    switch (status) {
      case 401:
        return "The API key is missing or wrong (401). Enter the key under “API key” at the top, save it, and try again.";
      case 413:
        return `The request is too large (413)${said ? ": " + said : ""}. Shorten the question or the filters.`;
      case 422: {
        const details = Array.isArray(data && data.detail) ? data.detail : [];
        const parts = details.slice(0, 4).map((d) => {
          const where = (Array.isArray(d.loc) ? d.loc : [])
            .filter((part) => part !== "body" && part !== "query" && part !== "[key]")
            .join(" › ");
          return where ? `${where}: ${d.msg}` : String(d.msg || "");
        });
        return `The request was not accepted (422)${parts.length ? ": " + parts.join("; ") : ""}.`;
      }
      case 429:
        return "Too many requests (429). Wait a moment and try again.";
      case 503: {
        const wait = /^\d+$/.test(retryAfter || "") ? `in ${retryAfter} seconds` : "in a moment";
        return `The service is unavailable right now (503)${said ? ": " + said : ""}. Try again ${wait}.`;
      }
      default:
        return `The server answered ${status}${said ? ": " + said : ""}.`;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const key = currentKey();
    if (key) headers[API_KEY_HEADER] = key;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(new URL(path, document.baseURI), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
        redirect: "error",
      });
    } catch {
      throw new ApiError(0, "The API could not be reached. Check that the server is running, then try again.");
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, describe(response.status, data, response.headers.get("Retry-After")));
    }
    return data;
  }

  // -- messages ------------------------------------------------------------------------------------------

  function showError(error) {
    const box = $("error");
    box.textContent = error instanceof Error ? error.message : String(error);
    box.hidden = false;
    $("api-key").setAttribute("aria-invalid", error instanceof ApiError && error.status === 401 ? "true" : "false");
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  /** Run ``work`` with the busy line shown and the form's buttons disabled. */
  async function busy(id, form, work) {
    clearError();
    const line = $(id);
    const buttons = form ? [...form.querySelectorAll("button")] : [];
    line.hidden = false;
    line.closest("section").setAttribute("aria-busy", "true");
    buttons.forEach((b) => (b.disabled = true));
    try {
      await work();
    } catch (error) {
      showError(error);
    } finally {
      line.hidden = true;
      line.closest("section").removeAttribute("aria-busy");
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  // -- the passage dialog --------------------------------------------------------------------------------

  let opener = null;

  /** Show one passage: {title, source, page, score, text}. */
  function openPassage(item, from) {
    opener = from || document.activeElement;
    $("passage-title").textContent = item.heading || item.title || fileName(item.source);
    $("passage-source").textContent = item.source || "—";
    $("passage-page").textContent = pageLabel(item.page);
    $("passage-score").textContent = typeof item.score === "number" ? item.score.toFixed(3) : "—";
    $("passage-text").textContent = item.text || "";
    $("passage").showModal();
    $("passage-close").focus();
  }

  function closePassage() {
    const dialog = $("passage");
    if (dialog.open) dialog.close();
  }

  // -- health ---------------------------------------------------------------------------------------------

  async function loadHealth() {
    try {
      const health = await api("GET", "health");
      state.feedback = Boolean(health.feedback);
      const answers = health.answerer === "extractive" ? "extractive answers" : `answers by ${health.answerer}`;
      $("status").textContent =
        `Index ${health.index} · ${answers} · feedback ${state.feedback ? "on" : "off (tracing is not configured)"}`;
      $("status").dataset.state = health.status;
    } catch (error) {
      $("status").textContent = error.message;
      $("status").dataset.state = "degraded";
    }
  }

  // -- ask -------------------------------------------------------------------------------------------------

  function citationLabel(c) {
    const where = c.page === null || c.page === undefined ? "" : `, page ${c.page}`;
    return `${c.title || fileName(c.source)}${where}`;
  }

  function citationItem(c) {
    return { heading: `[${c.n}] ${c.title || fileName(c.source)}`, ...c, text: c.snippet };
  }

  /** The answer's text with each [n] that names a citation turned into a button that opens it. */
  function answerNodes(text, citations) {
    const byNumber = new Map(citations.map((c) => [c.n, c]));
    const nodes = [];
    let last = 0;
    for (const match of text.matchAll(/\[(\d{1,3})\]/g)) {
      const citation = byNumber.get(Number(match[1]));
      if (!citation) continue;
      if (match.index > last) nodes.push(text.slice(last, match.index));
      const button = el(
        "button",
        { type: "button", class: "cite", "aria-label": `Citation ${citation.n}: ${citationLabel(citation)}` },
        String(citation.n),
      );
      button.addEventListener("click", () => openPassage(citationItem(citation), button));
      nodes.push(button);
      last = match.index + match[0].length;
    }
    if (last < text.length) nodes.push(text.slice(last));
    return nodes;
  }

  function renderAnswer(answer) {
    state.answer = answer;
    const citations = Array.isArray(answer.citations) ? answer.citations : [];
    const grounded = $("grounded");
    // an extractive answer quotes sentences on the question's key terms; nothing checked they answer it
    grounded.textContent = !answer.grounded
      ? "Not answered by the sources"
      : answer.grounding === "key_terms"
        ? "Quoted from the sources (not verified to answer)"
        : "Grounded in the sources";
    grounded.className = `badge ${answer.grounded ? "ok" : "warn"}`;
    $("answered-by").textContent =
      answer.model === "extractive"
        ? "Answered by the extractive answerer (sentences quoted from the sources, no language model)"
        : `Answered by the chat model ${answer.model}`;
    $("answer-text").replaceChildren(...answerNodes(String(answer.answer || ""), citations));
    $("citations").replaceChildren(
      ...citations.map((c) => {
        const button = el(
          "button",
          { type: "button", class: "source" },
          el("span", { class: "source-title" }, citationLabel(c)),
          el("span", { class: "source-uri" }, c.source),
        );
        button.addEventListener("click", () => openPassage(citationItem(c), button));
        return el("li", { value: c.n }, button);
      }),
    );
    $("citations-heading").hidden = citations.length === 0;
    renderFeedback(answer);
    $("answer").hidden = false;
  }

  function renderFeedback(answer) {
    const up = $("thumb-up");
    const down = $("thumb-down");
    const line = $("feedback-state");
    up.setAttribute("aria-pressed", "false");
    down.setAttribute("aria-pressed", "false");
    const can = Boolean(answer.trace_id) && state.feedback !== false;
    up.disabled = !can;
    down.disabled = !can;
    $("feedback").classList.toggle("off", !can);
    if (can) line.textContent = "";
    else if (state.feedback === false || !answer.trace_id) {
      line.textContent = state.feedback === false
        ? "Feedback is off: this server does not have tracing configured."
        : "Feedback is off: this answer has no trace to score.";
    }
  }

  async function sendFeedback(score, button) {
    const answer = state.answer;
    if (!answer || !answer.trace_id) return;
    const line = $("feedback-state");
    $("thumb-up").disabled = true;
    $("thumb-down").disabled = true;
    line.textContent = "Sending…";
    try {
      const body = { trace_id: answer.trace_id, score };
      // a key bound to prefixes proves the answer was its own with the answer's token
      if (answer.feedback_token) body.feedback_token = answer.feedback_token;
      const result = await api("POST", "feedback", body);
      button.setAttribute("aria-pressed", "true");
      line.textContent = result && result.recorded
        ? "Thank you: your feedback was recorded."
        : `Not recorded: ${(result && result.reason) || "the server gave no reason"}.`;
    } catch (error) {
      line.textContent = "";
      $("thumb-up").disabled = false;
      $("thumb-down").disabled = false;
      showError(error);
    }
  }

  // -- search ----------------------------------------------------------------------------------------------

  /** The filter of the search form, or throws a readable Error. */
  function searchFilter() {
    const filter = {};
    const prefix = $("source-prefix").value.trim();
    const type = $("content-type").value.trim();
    if (prefix) filter.source_prefix = prefix;
    if (type) filter.content_type = type;
    const metadata = {};
    const lines = $("metadata").value.split("\n");
    lines.forEach((raw, i) => {
      const line = raw.trim();
      if (!line) return;
      const at = line.indexOf("=");
      if (at < 1) throw new Error(`Metadata line ${i + 1} should read key=value.`);
      metadata[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    });
    if (Object.keys(metadata).length) filter.metadata = metadata;
    return Object.keys(filter).length ? filter : undefined;
  }

  function renderHits(query, hits) {
    $("search-summary").textContent =
      hits.length === 0 ? `Nothing found for “${query}”.` : `${hits.length} result${hits.length === 1 ? "" : "s"} for “${query}”.`;
    $("hits").replaceChildren(
      ...hits.map((hit, i) => {
        const text = String(hit.text || "");
        const snippet = text.length > SNIPPET_CHARS ? `${text.slice(0, SNIPPET_CHARS)}…` : text;
        const open = el("button", { type: "button", class: "link" }, "Open passage");
        open.addEventListener("click", () =>
          openPassage({ heading: `${i + 1}. ${hit.title || fileName(hit.source)}`, ...hit }, open),
        );
        const type = hit.metadata && typeof hit.metadata.content_type === "string" ? hit.metadata.content_type : null;
        return el(
          "li",
          { class: "hit" },
          el("h3", { class: "hit-title" }, hit.title || fileName(hit.source)),
          el(
            "p",
            { class: "hit-meta" },
            el("span", { class: "source-uri" }, hit.source),
            ` · page ${pageLabel(hit.page)}`,
            type ? ` · ${type}` : null,
            ` · score ${Number(hit.score).toFixed(3)}`,
          ),
          el("p", { class: "hit-text" }, snippet),
          open,
        );
      }),
    );
  }

  // -- documents -------------------------------------------------------------------------------------------

  const COLUMNS = ["Source", "Status", "Chunks", "Pages", "Type", "Updated", "Reason"];
  // a URI's scheme and bucket or host: "file:///", "s3://bucket/", "https://host/"
  const SOURCE_ROOT = /^[a-z][a-z0-9+.-]*:\/\/[^/]*\/?/i;
  const PLACEHOLDER_CHARS = 36;

  function formatTime(value) {
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return String(value || "");
    return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  /** The time as its date and its hour, each kept on one line (a narrow column wraps between them). */
  function timeCell(value) {
    const text = formatTime(value);
    const at = text.indexOf(" ");
    if (at < 0) return text;
    return el(
      "span",
      {},
      el("span", { class: "nowrap" }, text.slice(0, at)),
      " ",
      el("span", { class: "nowrap" }, text.slice(at + 1)),
    );
  }

  function documentRow(doc) {
    const reason = doc.error ? (doc.error_kind ? `${doc.error} (${doc.error_kind})` : doc.error) : "";
    const cells = [
      el("span", { class: "source-uri" }, ...breakable(doc.source)),
      el("span", { class: `badge status-${doc.status}` }, doc.status),
      String(doc.chunks ?? 0),
      pageLabel(doc.pages),
      doc.content_type ? el("span", {}, ...breakable(doc.content_type)) : "—",
      timeCell(doc.updated_at),
      reason,
    ];
    // the source is shown whole on hover, wherever it wrapped
    const titles = { 0: doc.source, 4: doc.content_type };
    return el(
      "tr",
      { class: `status-${doc.status}` },
      ...cells.map((cell, i) => el("td", { "data-label": COLUMNS[i], title: titles[i] }, cell)),
    );
  }

  /** The folder the sources share, or the first one's folder when they share no more than a scheme. */
  function commonFolder(sources) {
    let common = sources.reduce((a, b) => {
      let i = 0;
      while (i < a.length && a[i] === b[i]) i++;
      return a.slice(0, i);
    });
    common = common.slice(0, common.lastIndexOf("/") + 1);
    if (!SOURCE_ROOT.test(common) || common.replace(SOURCE_ROOT, "") === "") {
      common = sources[0].slice(0, sources[0].lastIndexOf("/") + 1);
    }
    return common;
  }

  /** An example for the prefix boxes in the form of the listed sources (file://… for local files,
   * s3://bucket/… for a bucket), shortened in the middle when it would not fit the box; or null. */
  function prefixExample(sources) {
    const given = sources.filter((s) => typeof s === "string" && s.includes("/"));
    if (!given.length) return null;
    const folder = commonFolder(given);
    if (!folder) return null;
    const root = (folder.match(SOURCE_ROOT) || [""])[0];
    if (folder.length <= PLACEHOLDER_CHARS || root === folder) return folder;
    const last = folder.slice(0, -1).split("/").pop();
    return root && last ? `${root}…/${last}/` : folder.slice(0, PLACEHOLDER_CHARS - 1) + "…";
  }

  /** Make the prefix boxes' placeholders look like the sources this home holds. */
  function showPrefixExample(docs) {
    const example = prefixExample(docs.map((d) => d.source));
    if (!example) return;
    $("doc-prefix").placeholder = example;
    $("source-prefix").placeholder = example;
  }

  async function loadDocuments(cursor) {
    const params = new URLSearchParams();
    const status = $("doc-status").value;
    const prefix = $("doc-prefix").value.trim();
    if (status) params.set("status", status);
    if (prefix) params.set("prefix", prefix);
    params.set("limit", $("doc-limit").value);
    if (cursor) params.set("cursor", cursor);
    const page = await api("GET", `documents?${params}`);
    const docs = Array.isArray(page.documents) ? page.documents : [];
    state.docs.cursor = cursor || null;
    state.docs.next = page.next_cursor || null;
    state.docs.loaded = true;
    $("documents-body").replaceChildren(...docs.map(documentRow));
    if (docs.length) showPrefixExample(docs);
    const number = state.docs.back.length + 1;
    const failed = docs.filter((d) => d.status === "failed").length;
    $("documents-caption").textContent = docs.length
      ? `Documents, page ${number}: ${docs.length} shown${failed ? `, ${failed} failed` : ""}`
      : "No documents match.";
    $("doc-page").textContent = `Page ${number}`;
    $("doc-next").disabled = !state.docs.next;
    $("doc-prev").disabled = state.docs.back.length === 0;
    $("doc-first").disabled = state.docs.back.length === 0;
  }

  function documents(cursor) {
    return busy("documents-busy", $("documents-form"), () => loadDocuments(cursor));
  }

  // -- tabs ------------------------------------------------------------------------------------------------

  const tabs = () => [...document.querySelectorAll('[role="tab"]')];

  function selectTab(tab, focus) {
    for (const t of tabs()) {
      const selected = t === tab;
      t.setAttribute("aria-selected", String(selected));
      t.tabIndex = selected ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !selected;
    }
    if (focus) tab.focus();
    const name = tab.id.replace("tab-", "");
    history.replaceState(null, "", `#${name}`);
    if (name === "documents" && !state.docs.loaded) {
      state.docs.back = [];
      documents(null);
    }
  }

  function onTabKey(event) {
    const all = tabs();
    const at = all.indexOf(event.currentTarget);
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: all.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    selectTab(all[(to + all.length) % all.length], true);
  }

  // -- wiring ----------------------------------------------------------------------------------------------

  function start() {
    $("api-key").value = storedKey();
    $("key-state").textContent = storedKey()
      ? "A key is saved for this tab."
      : "Needed only when the server requires one. Kept in this tab only.";

    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("api-key").value.trim();
      setKey(value);
      $("api-key").setAttribute("aria-invalid", "false");
      $("key-state").textContent = value ? "Key saved for this tab." : "No key saved.";
    });
    $("key-forget").addEventListener("click", () => {
      setKey("");
      $("api-key").value = "";
      $("key-state").textContent = "Key forgotten.";
    });

    for (const tab of tabs()) {
      tab.addEventListener("click", () => selectTab(tab, false));
      tab.addEventListener("keydown", onTabKey);
    }

    $("ask-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const question = $("question").value.trim();
      if (!question) return;
      busy("ask-busy", $("ask-form"), async () => renderAnswer(await api("POST", "ask", { question })));
    });
    $("thumb-up").addEventListener("click", () => sendFeedback(1, $("thumb-up")));
    $("thumb-down").addEventListener("click", () => sendFeedback(0, $("thumb-down")));

    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const query = $("query").value.trim();
      if (!query) return;
      busy("search-busy", $("search-form"), async () => {
        const body = { query };
        const filter = searchFilter();
        if (filter) body.filter = filter;
        const topK = $("top-k").value.trim();
        if (topK) body.top_k = Number(topK);
        const result = await api("POST", "search", body);
        renderHits(query, Array.isArray(result.hits) ? result.hits : []);
      });
    });

    $("documents-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.docs.back = [];
      documents(null);
    });
    $("doc-next").addEventListener("click", () => {
      if (!state.docs.next) return;
      state.docs.back.push(state.docs.cursor);
      documents(state.docs.next);
    });
    $("doc-prev").addEventListener("click", () => {
      if (!state.docs.back.length) return;
      documents(state.docs.back.pop());
    });
    $("doc-first").addEventListener("click", () => {
      state.docs.back = [];
      documents(null);
    });

    $("passage-close").addEventListener("click", closePassage);
    $("passage").addEventListener("click", (event) => {
      if (event.target === $("passage")) closePassage(); // a click on the backdrop
    });
    $("passage").addEventListener("close", () => {
      // The browser gives the focus back as the dialog closes; this event comes a task later, so it
      // only catches a focus left nowhere and never takes it from where the user has since moved it.
      const lost = !document.activeElement || document.activeElement === document.body;
      if (lost && opener && document.contains(opener)) opener.focus();
      opener = null;
    });

    const wanted = $(`tab-${location.hash.slice(1)}`);
    selectTab(wanted && wanted.getAttribute("role") === "tab" ? wanted : $("tab-ask"), false);
    loadHealth();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
