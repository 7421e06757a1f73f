/*
 * Herald operator console: one page over the node's own HTTP API, with no dependencies
 * and no build step, so it is served from the node binary and works offline.
 *
 * It reads exactly what a script would: the topology from /v1/domains (and the owners of
 * partitions from /v1/cluster when there is one), live heads and lag from the /v1/streams
 * watch, readiness and replay progress from /readyz, dead letters, lookups and a live
 * tail. Strings from the node only ever reach the page as text nodes or attribute
 * values, never as markup.
 */
'use strict';

(() => {
  // ---------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const enc = encodeURIComponent;
  const numbers = new Intl.NumberFormat();

  /** An HTML element with attributes and children; strings become text, never markup. */
  const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
  /** The same for SVG. */
  const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

  function build(node, attrs, children) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'text') node.textContent = String(value);
      else if (name === 'dataset') Object.assign(node.dataset, value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const fmt = (n) => (typeof n === 'number' ? numbers.format(n) : n == null ? '–' : String(n));

  function fmtRate(rate) {
    if (!Number.isFinite(rate)) return '–';
    if (rate === 0) return '0/s';
    return rate < 10 ? `${rate.toFixed(1)}/s` : `${numbers.format(Math.round(rate))}/s`;
  }

  function fmtDuration(seconds) {
    if (seconds == null || !Number.isFinite(seconds)) return 'unknown';
    const total = Math.max(0, Math.round(seconds));
    if (total < 60) return `${total} s`;
    if (total < 3600) return `${Math.floor(total / 60)} min ${total % 60} s`;
    return `${Math.floor(total / 3600)} h ${Math.floor((total % 3600) / 60)} min`;
  }

  /** A CloudEvent's time as a local clock time with milliseconds (the raw text if odd). */
  function fmtTime(text) {
    const date = new Date(text);
    if (!text || Number.isNaN(date.getTime())) return text || '';
    const clock = date.toLocaleTimeString([], { hour12: false });
    return `${clock}.${String(date.getMilliseconds()).padStart(3, '0')}`;
  }

  /** Shows `text` in a message box (hidden when empty); `kind` picks its colour. */
  function showMessage(node, text, kind = 'error') {
    node.hidden = !text;
    node.textContent = text || '';
    node.dataset.kind = kind;
  }

  function setPill(node, state, text) {
    node.dataset.state = state;
    node.textContent = text;
  }

  /** Refills a <select> only when its choices changed, keeping the user's pick. */
  function fillSelect(select, values, empty) {
    const wanted = values.length ? values : [''];
    const current = [...select.options].map((option) => option.value);
    if (current.length === wanted.length && current.every((v, i) => v === wanted[i])) return;
    const picked = select.value;
    select.replaceChildren(
      ...(values.length
        ? values.map((value) => h('option', { value, text: value }))
        : [h('option', { value: '', text: empty, disabled: true })]),
    );
    select.value = values.includes(picked) ? picked : values[0] || '';
  }

  /** Runs `task` now and then again `ms` after each run ends, so runs never overlap. */
  function every(ms, task) {
    (async () => {
      for (;;) {
        try {
          await task();
        } catch (error) {
          console.error(error);
        }
        await sleep(ms);
      }
    })();
  }

  // ---------------------------------------------------------------------------------------
  // Token, requests and problems
  // ---------------------------------------------------------------------------------------

  const TOKEN_KEY = 'herald.console.token';
  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  /** Request headers, with the bearer token when one is saved (auth may be off). */
  function authHeaders(extra) {
    const headers = { ...extra };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    return headers;
  }

  /** A refused request: the node's RFC 9457 problem, or status 0 when it was unreachable. */
  class ApiError extends Error {
    constructor(status, title, detail, body) {
      super(detail || title || `HTTP ${status}`);
      Object.assign(this, { status, title, detail: detail || title, body });
    }
  }

  /** Reads a failed response as problem JSON, or as whatever text it carries. */
  async function problemOf(response) {
    const text = await response.text().catch(() => '');
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: a proxy's page, say. Its text is the best detail there is.
    }
    const title = (body && body.title) || response.statusText || `HTTP ${response.status}`;
    const detail = (body && body.detail) || text.trim().slice(0, 300) || title;
    return new ApiError(response.status, title, detail, body);
  }

  /** Fetches JSON from the API; failures throw ApiError. `source` names it in the banner. */
  async function api(path, { method = 'GET', source = path } = {}) {
    let response;
    try {
      response = await fetch(path, { method, headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
    } catch (error) {
      throw new ApiError(0, 'Unreachable', `cannot reach the node (${error.message})`);
    }
    if (!response.ok) {
      const problem = await problemOf(response);
      noteAuth(source, problem);
      throw problem;
    }
    noteAuth(source, null);
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  const describe = (error) => (error.status ? `${error.status} ${error.title}: ${error.detail}` : error.message);

  // Which views the node refused for want of a (better) token, so the banner can say so.
  const refusals = new Map();

  function noteAuth(source, error) {
    if (error && (error.status === 401 || error.status === 403)) refusals.set(source, error);
    else if (!error || error.status) refusals.delete(source); // answered: the token was fine
    else return; // unreachable says nothing about the token
    const banner = $('auth-banner');
    banner.hidden = refusals.size === 0;
    if (banner.hidden) return;
    const missing = [...refusals.values()].some((e) => e.status === 401);
    const ask = missing
      ? 'This node requires a bearer token: enter one above and save.'
      : 'The token lacks a scope some views need (dead letters need an admin token).';
    const list = [...refusals].map(([where, e]) => h('li', { text: `${where}: ${e.status} ${e.detail}` }));
    $('auth-banner-text').replaceChildren(ask, h('ul', {}, list));
  }

  // ---------------------------------------------------------------------------------------
  // Server-sent events over fetch()
  // ---------------------------------------------------------------------------------------

  /** Parses the text/event-stream format (WHATWG HTML, "server-sent events") fed in chunks. */
  class SseParser {
    constructor(onEvent) {
      Object.assign(this, { onEvent, buffer: '', type: '', data: [], lastId: null });
    }

    push(text) {
      this.buffer += text;
      const terminator = /\r\n|[\r\n]/g;
      let start = 0;
      let match;
      while ((match = terminator.exec(this.buffer))) {
        // A '\r' that ends the chunk may be half of "\r\n": wait for the next chunk.
        if (match[0] === '\r' && match.index === this.buffer.length - 1) break;
        this.line(this.buffer.slice(start, match.index));
        start = terminator.lastIndex;
      }
      this.buffer = this.buffer.slice(start);
    }

    line(line) {
      if (line === '') return this.dispatch();
      if (line.startsWith(':')) return undefined; // a comment, such as the node's keepalive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.type = value;
      else if (field === 'data') this.data.push(value);
      else if (field === 'id' && !value.includes('\0')) this.lastId = value;
      // Other fields (retry, unknown ones) are ignored: the backoff here is our own.
      return undefined;
    }

    dispatch() {
      // An event without data lines is not dispatched, as in a browser's EventSource.
      if (this.data.length) {
        this.onEvent({ type: this.type || 'message', data: this.data.join('\n'), id: this.lastId });
      }
      this.type = '';
      this.data = [];
    }
  }

  /**
   * One server-sent-event stream, read with fetch() because EventSource cannot send the
   * Authorization header. Reconnects with exponential backoff when the stream ends or fails
   * and, with `resume`, sends Last-Event-ID so a tail goes on where it stopped. A plain
   * (non-SSE) 200 goes to `onPlain` and is asked again after `pollMs`: a node that does not
   * stream that URL still feeds the page.
   */
  class SseClient {
    constructor(options) {
      Object.assign(this, {
        resume: false,
        pollMs: 1000,
        onPlain: null,
        onState: () => {},
        retryable: () => true,
        lastId: null,
        stopped: true,
      }, options);
    }

    start() {
      if (!this.stopped) return;
      this.stopped = false;
      this.loop();
    }

    stop() {
      this.stopped = true;
      this.abort();
    }

    /** Drops the connection and connects again at once (a new token, say). */
    restart() {
      if (this.stopped) return this.start();
      return this.abort();
    }

    abort() {
      if (this.controller) this.controller.abort();
      if (this.wake) this.wake();
    }

    async loop() {
      let backoff = 500;
      while (!this.stopped) {
        let wait = backoff;
        const controller = new AbortController();
        this.controller = controller;
        try {
          const headers = authHeaders({ Accept: 'text/event-stream' });
          if (this.resume && this.lastId !== null) headers['Last-Event-ID'] = this.lastId;
          const response = await fetch(this.url(), { headers, cache: 'no-store', signal: controller.signal });
          if (!response.ok) throw await problemOf(response);
          noteAuth(this.source, null);
          const type = response.headers.get('content-type') || '';
          if (!type.includes('text/event-stream') && this.onPlain) {
            this.onPlain(await response.json());
            this.onState('polling');
            wait = this.pollMs;
            backoff = 500;
          } else {
            this.onState('connected');
            backoff = 500;
            await this.read(response);
            if (!this.stopped) this.onState('reconnecting', 'the stream ended');
            wait = backoff;
            backoff = Math.min(backoff * 2, 30000);
          }
        } catch (error) {
          if (this.stopped) break;
          if (controller.signal.aborted) {
            wait = 0; // restart(): connect again right away
          } else {
            if (error instanceof ApiError) noteAuth(this.source, error);
            const detail = error instanceof ApiError ? describe(error) : `connection failed (${error.message})`;
            if (!this.retryable(error)) {
              this.stopped = true;
              this.onState('failed', detail);
              break;
            }
            this.onState('reconnecting', detail);
            backoff = Math.min(backoff * 2, 30000);
          }
        }
        if (wait > 0 && !this.stopped) {
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, wait);
            this.wake = () => { clearTimeout(timer); resolve(); };
          });
          this.wake = null;
        }
      }
    }

    async read(response) {
      const parser = new SseParser((event) => {
        if (event.id !== null) this.lastId = event.id;
        this.onEvent(event);
      });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        parser.push(decoder.decode(value, { stream: true }));
      }
    }
  }

  // ---------------------------------------------------------------------------------------
  // What the page knows
  // ---------------------------------------------------------------------------------------

  const state = {
    domains: [], // GET /v1/domains .domains
    cluster: null, // GET /v1/cluster, or null where it gives nothing
    streamDomain: new Map(), // partition stream -> domain, from the cluster's layout
    streams: new Map(), // stream -> its latest entry of GET /v1/streams
    samples: new Map(), // stream -> [[ms, last_sequence], …] over RATE_WINDOW_MS
    head: null, // the node-wide log head (null in networked mode)
  };

  /** Rates are averaged over this window, so one late snapshot does not spike them. */
  const RATE_WINDOW_MS = 5000;

  /**
   * The domain a stream belongs to, and whether it is that domain's dead-letter stream
   * (`deadletter-orders`, `deadletter-orders-p3`). Partition streams are `<domain>-p<N>`;
   * the cluster's layout says so exactly when it is known.
   */
  function streamOwner(stream) {
    const deadletter = stream.startsWith('deadletter-');
    const name = deadletter ? stream.slice('deadletter-'.length) : stream;
    const known = (domain) => state.domains.some((d) => d.name === domain);
    if (state.streamDomain.has(name)) return { domain: state.streamDomain.get(name), deadletter };
    if (known(name)) return { domain: name, deadletter };
    const partition = /^(.*)-p\d+$/.exec(name);
    if (partition && known(partition[1])) return { domain: partition[1], deadletter };
    return { domain: null, deadletter };
  }

  function recordSample(stream, sequence, now) {
    const samples = state.samples.get(stream) || [];
    samples.push([now, sequence]);
    while (samples.length > 2 && now - samples[0][0] > RATE_WINDOW_MS) samples.shift();
    state.samples.set(stream, samples);
  }

  /** Events per second appended to `stream`, from the heads seen over the window. */
  function streamRate(stream) {
    const samples = state.samples.get(stream);
    if (!samples || samples.length < 2) return NaN;
    const [t0, s0] = samples[0];
    const [t1, s1] = samples[samples.length - 1];
    return t1 - t0 < 200 ? NaN : Math.max(0, s1 - s0) / ((t1 - t0) / 1000);
  }

  /** A domain's rate: the sum over its own streams (all partitions, no dead letters). */
  function domainRate(domain) {
    let sum = NaN;
    for (const stream of state.streams.keys()) {
      const owner = streamOwner(stream);
      if (owner.domain !== domain || owner.deadletter) continue;
      const rate = streamRate(stream);
      if (Number.isFinite(rate)) sum = (Number.isFinite(sum) ? sum : 0) + rate;
    }
    return sum;
  }

  // ---------------------------------------------------------------------------------------
  // Topology
  // ---------------------------------------------------------------------------------------

  const BOX_W = 190;
  const COL_GAP = 96;
  const ROW_GAP = 28;
  const MARGIN = 16;
  const LINE_H = 17;
  const LANE = 11;
  const SQUARE = 10;
  const NODE_COLOURS = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#65a30d', '#dc2626'];

  let topologySignature = '';
  const rateTexts = new Map(); // domain -> its box's rate <text>, updated every snapshot
  const partitionTexts = new Map(); // domain -> its box's partition <text>

  async function loadTopology() {
    try {
      const answer = await api('/v1/domains', { source: 'topology' });
      state.domains = (answer && answer.domains) || [];
      showMessage($('topology-message'), '');
    } catch (error) {
      showMessage($('topology-message'), `Cannot read the topology: ${describe(error)}`);
      return;
    }
    try {
      state.cluster = await api('/v1/cluster', { source: 'cluster' });
    } catch (error) {
      // Ownership is a bonus: a node without the route just shows none. A passing failure
      // (NATS away) keeps what was known.
      if (error.status === 404 || error.status === 401 || error.status === 403) state.cluster = null;
    }
    state.streamDomain = new Map();
    const partitions = (state.cluster && state.cluster.partitions) || {};
    for (const [domain, info] of Object.entries(partitions)) {
      for (const owner of info.owners || []) state.streamDomain.set(owner.stream, domain);
    }
    if (state.cluster) {
      const mode = state.cluster.mode ? ` · ${state.cluster.mode}` : '';
      $('node-name').textContent = `node ${state.cluster.node || '?'}${mode}`;
    }
    const signature = JSON.stringify([state.domains, partitions, state.cluster && state.cluster.nodes]);
    if (signature !== topologySignature) {
      topologySignature = signature;
      renderTopology();
      fillLookupDomains();
    }
    updateTopologyRates();
  }

  /** Subscriptions as owner → subscriber pairs, each with the types that flow along it. */
  function subscriptionEdges(domains) {
    const owner = new Map();
    for (const d of domains) for (const type of Object.keys(d.types || {})) owner.set(type, d.name);
    const pairs = new Map();
    for (const d of domains) {
      for (const type of d.subscriptions || []) {
        const from = owner.get(type);
        if (!from) continue;
        const key = JSON.stringify([from, d.name]);
        if (!pairs.has(key)) pairs.set(key, { from, to: d.name, types: [] });
        pairs.get(key).types.push(type);
      }
    }
    return [...pairs.values()];
  }

  /**
   * Columns by depth. A saga's subscriptions form cycles (orders ⇄ inventory), so first
   * choose the edges that set depth: a depth-first walk from the entry points that drops
   * edges back to a domain still on its path; depth is then the longest path over the
   * rest. Entry points come first: domains that subscribe to nothing, then those whose
   * ingress types reach the most subscribers (where clients start the flow).
   */
  function columnsOf(domains, edges) {
    const names = domains.map((d) => d.name);
    const next = new Map(names.map((n) => [n, []]));
    for (const e of edges) if (e.from !== e.to) next.get(e.from).push(e.to);
    for (const list of next.values()) list.sort();
    const readers = new Map();
    for (const d of domains) for (const t of d.subscriptions || []) readers.set(t, (readers.get(t) || 0) + 1);
    const rank = (d) => ((d.subscriptions || []).length ? 0 : 1e9)
      + (d.ingress || []).reduce((sum, t) => sum + (readers.get(t) || 0), 0);
    const roots = [...domains].sort((a, b) => rank(b) - rank(a) || a.name.localeCompare(b.name));

    const onPath = new Set();
    const finished = [];
    const kept = new Map(names.map((n) => [n, []]));
    const visit = (n) => {
      onPath.add(n);
      for (const m of next.get(n)) {
        if (onPath.has(m)) continue; // feedback: drawn, but not counted for depth
        kept.get(n).push(m);
        if (!finished.includes(m)) visit(m);
      }
      onPath.delete(n);
      finished.push(n);
    };
    for (const root of roots) if (!finished.includes(root.name)) visit(root.name);

    const depth = new Map(names.map((n) => [n, 0]));
    for (const n of [...finished].reverse()) {
      for (const m of kept.get(n)) depth.set(m, Math.max(depth.get(m), depth.get(n) + 1));
    }
    const columns = [];
    for (const n of names) (columns[depth.get(n)] = columns[depth.get(n)] || []).push(n);
    // Within a column, follow the rows of the domains feeding it, to spare crossings.
    const row = new Map();
    return columns.filter(Boolean).map((column) => {
      const weight = (n) => {
        const feeders = names.filter((m) => kept.get(m).includes(n) && row.has(m));
        return feeders.length ? feeders.reduce((sum, m) => sum + row.get(m), 0) / feeders.length : 0;
      };
      column.sort((a, b) => weight(a) - weight(b) || a.localeCompare(b));
      column.forEach((n, i) => row.set(n, i));
      return column;
    });
  }

  /** Colours per node id, in sorted order so they stay put between refreshes. */
  function nodeColours() {
    const ids = ((state.cluster && state.cluster.nodes) || []).map((n) => n.id).sort();
    return new Map(ids.map((id, i) => [id, NODE_COLOURS[i % NODE_COLOURS.length]]));
  }

  function partitionOwners(domain) {
    const partitions = state.cluster && state.cluster.partitions && state.cluster.partitions[domain];
    return partitions ? partitions.owners || [] : [];
  }

  function boxHeight(domain) {
    const owners = partitionOwners(domain.name);
    const perRow = Math.floor((BOX_W - 24) / (SQUARE + 3));
    const squares = owners.length ? Math.ceil(owners.length / perRow) * (SQUARE + 3) + 4 : 0;
    return 48 + squares + 6 + Math.max(1, Object.keys(domain.types || {}).length) * LINE_H + 8;
  }

  function renderTopology() {
    const svg = $('topology-svg');
    rateTexts.clear();
    partitionTexts.clear();
    const domains = state.domains;
    if (!domains.length) {
      svg.replaceChildren();
      showMessage($('topology-message'), 'This node knows no domains.', 'info');
      return;
    }
    const domainByName = new Map(domains.map((d) => [d.name, d]));
    const edges = subscriptionEdges(domains);
    const columns = columnsOf(domains, edges);
    const column = new Map();
    columns.forEach((names, c) => names.forEach((n) => column.set(n, c)));

    // Which way each edge goes: straight to the next column, over the top to a later one,
    // or under the bottom back to an earlier one (or to itself). Arcs stack in lanes,
    // shorter ones nearer the boxes, so nested arcs never overlap.
    const lanes = { over: [], under: [] };
    for (const e of edges) {
      const [from, to] = [column.get(e.from), column.get(e.to)];
      e.kind = to === from + 1 ? 'direct' : to > from ? 'over' : 'under';
      e.span = [Math.min(from, to), Math.max(from, to)];
    }
    for (const kind of ['over', 'under']) {
      const arcs = edges.filter((e) => e.kind === kind).sort((a, b) => (a.span[1] - a.span[0]) - (b.span[1] - b.span[0]));
      for (const arc of arcs) {
        const below = lanes[kind].filter((o) => o.span[0] < arc.span[1] && arc.span[0] < o.span[1]
          || (arc.span[0] === arc.span[1] && o.span[0] <= arc.span[0] && arc.span[0] <= o.span[1]));
        arc.lane = below.reduce((max, o) => Math.max(max, o.lane + 1), 0);
        lanes[kind].push(arc);
      }
    }
    const laneCount = (kind) => lanes[kind].reduce((max, e) => Math.max(max, e.lane + 1), 0);
    const top = MARGIN + (laneCount('over') ? 14 + laneCount('over') * LANE : 0);

    // Boxes: columns left to right, top-aligned.
    const box = new Map();
    let bottom = top;
    columns.forEach((names, c) => {
      let y = top;
      for (const n of names) {
        const b = { x: MARGIN + c * (BOX_W + COL_GAP), y, w: BOX_W, h: boxHeight(domainByName.get(n)) };
        b.ports = { left: [], right: [], top: [], bottom: [] };
        box.set(n, b);
        y += b.h + ROW_GAP;
        bottom = Math.max(bottom, b.y + b.h);
      }
    });
    const width = MARGIN * 2 + columns.length * BOX_W + (columns.length - 1) * COL_GAP;
    const height = bottom + (laneCount('under') ? 14 + laneCount('under') * LANE : 0) + MARGIN;

    // Ports: each edge end gets its own spot on a side of its box. An arc leaves by the
    // box's top (bottom) when nothing in its column is above (below) it; otherwise by the
    // side, up (down) a gutter between columns, so it never crosses a stacked box.
    const extreme = (n, kind) => {
      const names = columns[column.get(n)];
      return (kind === 'over' ? names[0] : names[names.length - 1]) === n;
    };
    for (const e of edges) {
      const [a, b] = [box.get(e.from), box.get(e.to)];
      let sides = ['right', 'left'];
      if (e.kind !== 'direct') {
        const cap = e.kind === 'over' ? 'top' : 'bottom';
        const back = column.get(e.to) < column.get(e.from);
        sides = [extreme(e.from, e.kind) ? cap : back ? 'left' : 'right',
          extreme(e.to, e.kind) ? cap : e.kind === 'under' ? 'right' : 'left'];
      }
      e.ends = [{ box: a, other: b, side: sides[0] }, { box: b, other: a, side: sides[1] }];
      for (const end of e.ends) {
        // Along a side, arcs take the ports nearest the lane they go to.
        end.key = e.kind === 'direct' ? end.other.y + end.other.h / 2 : e.kind === 'over' ? -1e6 - e.lane : 1e6 + e.lane;
        end.box.ports[end.side].push(end);
      }
    }
    const gutters = new Map(); // `${column}:${side}` -> arcs already running in that gutter
    let right = 0;
    for (const [name, b] of box) {
      for (const [side, ends] of Object.entries(b.ports)) {
        const vertical = side === 'left' || side === 'right';
        ends.sort((p, q) => (vertical ? p.key - q.key : p.other.x - q.other.x));
        ends.forEach((end, i) => {
          const t = (i + 1) / (ends.length + 1);
          end.x = vertical ? b.x + (side === 'right' ? b.w : 0) : b.x + 14 + t * (b.w - 28);
          end.y = vertical ? b.y + 8 + t * (b.h - 16) : b.y + (side === 'bottom' ? b.h : 0);
          if (vertical && Math.abs(end.key) >= 1e6) {
            const key = `${column.get(name)}:${side}`;
            const k = gutters.get(key) || 0;
            gutters.set(key, k + 1);
            end.gutter = side === 'right' ? end.x + 10 + k * 6 : end.x - 10 - k * 6;
            right = Math.max(right, end.gutter);
          }
        });
      }
    }
    const fullWidth = Math.max(width, right + MARGIN);

    const defs = s('defs', {},
      s('marker', { id: 'arrowhead', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
        s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' })));
    const links = edges.map((e) => drawEdge(e, top, bottom));
    const boxes = domains.map((d) => drawDomain(d, box.get(d.name)));
    svg.setAttribute('viewBox', `0 0 ${fullWidth} ${height}`);
    svg.setAttribute('width', fullWidth);
    svg.setAttribute('height', height);
    svg.style.maxWidth = `${fullWidth}px`;
    svg.replaceChildren(defs, s('g', { class: 'links' }, links), s('g', { class: 'domains' }, boxes));
    renderLegend();
  }

  /** A polyline with rounded corners, as path data. */
  function rounded(points, radius) {
    const r1 = (v) => Math.round(v * 10) / 10;
    let d = `M ${r1(points[0][0])} ${r1(points[0][1])}`;
    for (let i = 1; i < points.length - 1; i += 1) {
      const [[px, py], [x, y], [nx, ny]] = [points[i - 1], points[i], points[i + 1]];
      const before = Math.hypot(x - px, y - py) || 1;
      const after = Math.hypot(nx - x, ny - y) || 1;
      const r = Math.min(radius, before / 2, after / 2);
      d += ` L ${r1(x + ((px - x) / before) * r)} ${r1(y + ((py - y) / before) * r)}`
        + ` Q ${r1(x)} ${r1(y)} ${r1(x + ((nx - x) / after) * r)} ${r1(y + ((ny - y) / after) * r)}`;
    }
    const [lx, ly] = points[points.length - 1];
    return `${d} L ${r1(lx)} ${r1(ly)}`;
  }

  /** One subscription pair as a path; a wider transparent twin makes it easy to hover. */
  function drawEdge(e, top, bottom) {
    const [a, b] = e.ends;
    let d;
    if (e.kind === 'direct') {
      const dx = COL_GAP / 2;
      d = `M ${a.x} ${a.y} C ${a.x + dx} ${a.y}, ${b.x - dx} ${b.y}, ${b.x} ${b.y}`;
    } else {
      // Out to the lane (through a gutter when leaving by a side), across, and back in.
      const lane = e.kind === 'over' ? top - 14 - e.lane * LANE : bottom + 14 + e.lane * LANE;
      const points = [[a.x, a.y]];
      if (a.gutter !== undefined) points.push([a.gutter, a.y], [a.gutter, lane]);
      else points.push([a.x, lane]);
      if (b.gutter !== undefined) points.push([b.gutter, lane], [b.gutter, b.y]);
      else points.push([b.x, lane]);
      points.push([b.x, b.y]);
      d = rounded(points, 6);
    }
    // The data attributes sit on the visible path alone, so a selector finds one element.
    const data = { from: e.from, to: e.to, type: e.types.join(',') };
    return s('g', { class: `link ${e.kind}` },
      s('title', { text: `${e.from} → ${e.to}\n${e.types.join('\n')}` }),
      s('path', { class: 'arrow-hit', d }),
      s('path', { class: 'arrow', d, dataset: data, 'marker-end': 'url(#arrowhead)' }));
  }

  function drawDomain(domain, b) {
    const status = domain.status || 'unknown';
    const g = s('g', {
      class: `domain status-${status}`,
      dataset: { domain: domain.name, status },
      onmouseenter: () => lightLinks(domain.name),
      onmouseleave: () => lightLinks(null),
    });
    const why = domain.failure ? `: ${domain.failure}` : '';
    g.append(
      s('title', { text: `${domain.name} (${status}${why})` }),
      s('rect', { class: 'box', x: b.x, y: b.y, width: b.w, height: b.h, rx: 8 }),
      s('text', { class: 'name', x: b.x + 12, y: b.y + 21, text: domain.name }),
      s('circle', { class: 'status', cx: b.x + b.w - 16, cy: b.y + 16, r: 5 }),
      s('text', { class: 'status-text', x: b.x + b.w - 26, y: b.y + 20, 'text-anchor': 'end', text: status }),
    );
    const owners = partitionOwners(domain.name);
    const count = owners.length || null;
    const partitions = s('text', { class: 'partitions', x: b.x + 12, y: b.y + 39, text: partitionLabel(domain, count) });
    const rate = s('text', { class: 'rate', x: b.x + b.w - 12, y: b.y + 39, 'text-anchor': 'end', text: '–' });
    partitionTexts.set(domain.name, { node: partitions, known: count !== null });
    rateTexts.set(domain.name, { node: rate, group: g });
    g.append(partitions, rate);

    // One square per partition, in the colour of the node owning it (hollow: nobody).
    let y = b.y + 48;
    if (owners.length) {
      const colours = nodeColours();
      const perRow = Math.floor((b.w - 24) / (SQUARE + 3));
      owners.forEach((owner, i) => {
        const x = b.x + 12 + (i % perRow) * (SQUARE + 3);
        const row = y + Math.floor(i / perRow) * (SQUARE + 3);
        const fill = owner.node ? colours.get(owner.node) || '#64748b' : 'none';
        g.append(s('rect', {
          class: `partition${owner.node ? '' : ' unowned'}`,
          x, y: row, width: SQUARE, height: SQUARE, rx: 2, fill,
          dataset: { stream: owner.stream, node: owner.node || '' },
        }, s('title', { text: `${owner.stream}: ${owner.node ? `node ${owner.node}` : 'no owner'} (${owner.status})` })));
      });
      y += Math.ceil(owners.length / perRow) * (SQUARE + 3) + 4;
    }
    g.append(s('line', { class: 'divider', x1: b.x, x2: b.x + b.w, y1: y, y2: y }));
    y += 6;

    // Event types owned, ingress ones marked: clients may post those.
    const types = Object.entries(domain.types || {});
    if (!types.length) g.append(s('text', { class: 'no-types', x: b.x + 12, y: y + 12, text: 'owns no event types' }));
    types.forEach(([type, info], i) => {
      const ingress = Boolean(info && info.ingress) || (domain.ingress || []).includes(type);
      const short = type.includes('.') ? type.slice(type.lastIndexOf('.') + 1) : type;
      const label = short.length > 24 ? `${short.slice(0, 23)}…` : short;
      const baseline = y + 12 + i * LINE_H;
      g.append(s('text', { class: `type${ingress ? ' ingress' : ''}`, x: b.x + 12, y: baseline, dataset: { type } },
        s('title', { text: `${type}${ingress ? ' (ingress: clients may post it)' : ''}${info && info.key ? `, keyed by ${info.key}` : ''}` }),
        s('tspan', { class: 'marker', text: ingress ? '⇢ ' : '· ' }),
        s('tspan', { text: label })));
    });
    return g;
  }

  function partitionLabel(domain, count) {
    if (count) return `${count} partition${count === 1 ? '' : 's'}`;
    return domain.partitioned ? 'partitioned' : '1 partition';
  }

  /** Hovering a domain lights its subscriptions, in and out, and dims the rest. */
  function lightLinks(domain) {
    for (const arrow of $('topology-svg').querySelectorAll('path.arrow')) {
      const link = arrow.parentNode;
      const mine = domain !== null && (arrow.dataset.from === domain || arrow.dataset.to === domain);
      link.classList.toggle('lit', mine);
      link.classList.toggle('dim', domain !== null && !mine);
    }
  }

  function renderLegend() {
    const legend = $('topology-legend');
    const colours = nodeColours();
    if (!colours.size) {
      legend.replaceChildren();
      return;
    }
    const nodes = [...colours].map(([id, colour]) => {
      const member = state.cluster.nodes.find((n) => n.id === id) || {};
      // Through the CSSOM: the page's CSP refuses style attributes.
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = colour;
      return h('span', { class: 'legend-node', title: `${member.http || ''} · version ${member.version || '?'}` },
        swatch, id);
    });
    legend.replaceChildren(h('span', { class: 'muted', text: 'Partition owners: ' }), ...nodes,
      h('span', { class: 'legend-node' }, h('span', { class: 'swatch hollow' }), 'no owner'));
  }

  /** Per-domain rates into the boxes; partition counts from the streams when no cluster. */
  function updateTopologyRates() {
    for (const [domain, { node, group }] of rateTexts) {
      const rate = domainRate(domain);
      node.textContent = Number.isFinite(rate) ? `${fmtRate(rate).replace('/s', '')} ev/s` : '– ev/s';
      group.dataset.rate = Number.isFinite(rate) ? rate.toFixed(2) : '';
    }
    for (const [domain, { node, known }] of partitionTexts) {
      if (known) continue;
      const count = [...state.streams.keys()].filter((st) => {
        const owner = streamOwner(st);
        return owner.domain === domain && !owner.deadletter;
      }).length;
      const d = state.domains.find((x) => x.name === domain);
      if (count && d) node.textContent = partitionLabel(d, count);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Streams (live)
  // ---------------------------------------------------------------------------------------

  const streamRows = new Map(); // stream -> its <tr>
  const byName = (a, b) => a.localeCompare(b, undefined, { numeric: true });

  function applyStreams(answer) {
    const now = performance.now();
    const seen = new Set();
    for (const entry of (answer && answer.streams) || []) {
      state.streams.set(entry.stream, entry);
      recordSample(entry.stream, entry.last_sequence, now);
      seen.add(entry.stream);
    }
    for (const name of [...state.streams.keys()]) {
      if (!seen.has(name)) {
        state.streams.delete(name);
        state.samples.delete(name);
      }
    }
    state.head = answer ? answer.head : null;
    renderStreams();
    updateTopologyRates();
    fillSelect($('tail-stream'), [...state.streams.keys()].sort(byName), 'no streams yet');
  }

  function renderStreams() {
    const body = $('streams-body');
    for (const [name, row] of streamRows) {
      if (!state.streams.has(name)) {
        row.remove();
        streamRows.delete(name);
      }
    }
    const names = [...state.streams.keys()].sort(byName);
    names.forEach((name, index) => {
      let row = streamRows.get(name);
      if (!row) {
        row = h('tr', { dataset: { stream: name } },
          h('td', { class: 'name', text: name }),
          h('td', { class: 'domain' }),
          h('td', { class: 'head num' }),
          h('td', { class: 'rate num' }),
          h('td', { class: 'subscribers' }));
        streamRows.set(name, row);
      }
      if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
      updateStreamRow(row, state.streams.get(name));
    });
    const total = names.reduce((sum, n) => sum + (Number.isFinite(streamRate(n)) ? streamRate(n) : 0), 0);
    const head = state.head == null ? '' : ` · log head ${fmt(state.head)}`;
    $('streams-summary').textContent = `${names.length} stream${names.length === 1 ? '' : 's'}${head} · ${fmtRate(total)} in all`;
  }

  function updateStreamRow(row, entry) {
    const cells = row.cells;
    // The owner is known once the topology is: until then the cell stays empty.
    const owner = streamOwner(entry.stream);
    row.classList.toggle('deadletter', owner.deadletter);
    cells[1].textContent = owner.domain ? `${owner.domain}${owner.deadletter ? ' (dead letters)' : ''}` : '';
    // Plain digits: the exact sequence, easy to compare and copy.
    cells[2].textContent = String(entry.last_sequence);
    cells[2].dataset.value = String(entry.last_sequence);
    cells[3].textContent = fmtRate(streamRate(entry.stream));
    // Subscribers grouped per domain (a partitioned one reads from several hosts): the
    // worst lag shows, every host's progress is in the tooltip.
    const groups = new Map();
    for (const sub of entry.subscribers || []) {
      const group = groups.get(sub.domain) || { lag: 0, hosts: [] };
      group.lag = Math.max(group.lag, sub.lag || 0);
      group.hosts.push(`${sub.stream || sub.domain}: consumed ${sub.consumed}, lag ${sub.lag}`);
      groups.set(sub.domain, group);
    }
    const signature = JSON.stringify([...groups]);
    if (row.dataset.subscribers === signature) return;
    row.dataset.subscribers = signature;
    const chips = [...groups].map(([domain, group]) => h('span', {
      class: `subscriber${group.lag > 0 ? ' behind' : ''}`,
      dataset: { domain, lag: String(group.lag) },
      title: group.hosts.join('\n'),
    }, domain, ' ', h('span', { class: 'lag', text: String(group.lag) })));
    cells[4].replaceChildren(...(chips.length ? chips : [h('span', { class: 'muted', text: 'none' })]));
  }

  function setLive(liveState, detail) {
    const live = $('live');
    const text = { connected: 'connected', polling: 'connected (polling)', reconnecting: 'reconnecting…', failed: 'offline' };
    live.dataset.state = liveState;
    live.textContent = text[liveState] || liveState;
    live.title = detail || 'Live stream watch';
    const problem = liveState === 'reconnecting' || liveState === 'failed';
    showMessage($('streams-message'), problem && detail ? `Live watch: ${detail}` : '');
  }

  const watch = new SseClient({
    source: 'streams',
    url: () => '/v1/streams',
    onEvent: (event) => {
      if (event.type !== 'streams' && event.type !== 'message') return;
      try {
        applyStreams(JSON.parse(event.data));
      } catch (error) {
        console.warn('bad streams event', error);
      }
    },
    onPlain: applyStreams,
    onState: setLive,
  });

  // ---------------------------------------------------------------------------------------
  // Readiness and recovery
  // ---------------------------------------------------------------------------------------

  const recoveryItems = new Map(); // stream -> its progress element

  async function pollReady() {
    let response;
    let body = null;
    try {
      response = await fetch('/readyz', { headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
      body = await response.json().catch(() => null);
    } catch (error) {
      setPill($('ready-status'), 'down', 'unreachable');
      showMessage($('ready-detail'), `Cannot reach the node: ${error.message}`);
      return;
    }
    const ready = response.ok;
    setPill($('ready-status'), ready ? 'ready' : 'not-ready', ready ? 'ready' : response.status === 503 ? 'not ready' : `HTTP ${response.status}`);
    const failed = Object.entries((body && body.failed) || {}).map(([d, why]) => `${d} failed: ${why}`);
    const detail = ready ? '' : [(body && body.detail) || '', ...failed].filter(Boolean).join('\n');
    showMessage($('ready-detail'), detail, failed.length ? 'error' : 'warn');
    renderRecovery(body && body.recovery);
  }

  function renderRecovery(recovery) {
    const list = $('recovery-list');
    const entries = Object.entries(recovery || {}).sort(([a], [b]) => byName(a, b));
    const active = entries.filter(([, r]) => !r.done);
    for (const [stream, item] of recoveryItems) {
      if (!active.some(([name]) => name === stream)) {
        item.remove();
        recoveryItems.delete(stream);
      }
    }
    for (const [stream, r] of active) {
      let item = recoveryItems.get(stream);
      if (!item) {
        const owner = streamOwner(stream);
        const label = owner.domain && owner.domain !== stream ? `${stream} (${owner.domain})` : stream;
        item = h('div', { class: 'recovery-item', dataset: { stream } },
          h('div', { class: 'recovery-label' }, h('span', { class: 'name', text: label }), h('span', { class: 'pct' })),
          h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-label': `replay of ${stream}` },
            h('div', { class: 'fill' })),
          h('div', { class: 'recovery-info muted' }));
        recoveryItems.set(stream, item);
        list.append(item);
      }
      const total = Number(r.total) || 0;
      const pct = total > 0 ? Math.min(100, (100 * (Number(r.replayed) || 0)) / total) : 0;
      item.querySelector('.pct').textContent = `${pct.toFixed(1)}%`;
      item.querySelector('.bar').setAttribute('aria-valuenow', pct.toFixed(1));
      item.querySelector('.fill').style.width = `${pct}%`;
      const eta = r.eta_seconds == null ? 'ETA unknown' : `ETA ${fmtDuration(r.eta_seconds)}`;
      item.querySelector('.recovery-info').textContent = `${fmt(r.replayed)} of ${fmt(r.total)} events · ${fmtRate(Number(r.per_second))} · ${eta}`;
    }
    const done = entries.filter(([, r]) => r.done);
    const doneText = done.map(([stream, r]) => `${stream} (${fmt(r.replayed)})`).join(', ');
    let text;
    if (recovery === undefined || recovery === null) text = 'This node does not report replay progress.';
    else if (!entries.length) text = 'Nothing to replay.';
    else text = `${active.length ? '' : 'Every stream has caught up. '}${done.length ? `Replayed: ${doneText}.` : ''}`;
    $('recovery-done').textContent = text;
  }

  // ---------------------------------------------------------------------------------------
  // Dead letters
  // ---------------------------------------------------------------------------------------

  const pendingReleases = new Set(); // dead-letter ids with a retry or skip under way
  let parkedSignature = '';

  async function refreshDeadLetters() {
    let counts;
    try {
      counts = await api('/v1/deadletters', { source: 'dead letters' });
    } catch (error) {
      const why = error.status === 401 || error.status === 403
        ? `Dead letters need a token with the admin scope (${error.status}: ${error.detail})`
        : `Cannot read dead letters: ${describe(error)}`;
      showMessage($('deadletters-message'), why);
      setPill($('deadletters-total'), 'unknown', '?');
      return;
    }
    const hosts = (counts && counts.domains) || [];
    renderCounts(hosts);
    // Listed per host stream (a partition's own, `orders-p3`), which works embedded and
    // networked alike; retry and skip go to the same name.
    const lists = await Promise.all(hosts.filter((d) => d.parked > 0).map((d) =>
      api(`/v1/deadletters/${enc(d.domain)}`, { source: 'dead letters' })
        .then((list) => ({ host: d.domain, list }), (error) => ({ host: d.domain, error }))));
    const failures = lists.filter((l) => l.error).map((l) => `${l.host}: ${describe(l.error)}`);
    showMessage($('deadletters-message'), failures.join('\n'));
    renderParked(lists.filter((l) => l.list));
  }

  function renderCounts(hosts) {
    // A partitioned domain's hosts fold into one row; the tooltip has each partition.
    const domains = new Map();
    for (const host of hosts) {
      const owner = streamOwner(host.domain);
      const name = owner.domain || host.domain;
      const row = domains.get(name) || { parked: 0, waiting: 0, parts: [] };
      row.parked += host.parked || 0;
      row.waiting += host.waiting || 0;
      row.parts.push(`${host.domain}: ${host.parked} parked, ${host.waiting} waiting`);
      domains.set(name, row);
    }
    const total = [...domains.values()].reduce((sum, d) => sum + d.parked, 0);
    setPill($('deadletters-total'), total ? 'warn' : 'ready', `${total} parked`);
    $('deadletter-counts').replaceChildren(...[...domains].sort(([a], [b]) => byName(a, b)).map(([name, d]) =>
      h('tr', { dataset: { domain: name }, class: d.parked ? 'has-parked' : null, title: d.parts.join('\n') },
        h('td', { text: name }),
        h('td', { class: 'parked num', text: String(d.parked) }),
        h('td', { class: 'waiting num', text: String(d.waiting) }))));
  }

  function renderParked(lists) {
    const entries = lists.flatMap(({ host, list }) => (list.dead_letters || []).map((entry) => ({ host, entry })));
    $('deadletters-empty').hidden = entries.length > 0;
    // Rebuilt only when something changed, so a button is never replaced under the mouse.
    const signature = JSON.stringify([entries, [...pendingReleases]]);
    if (signature === parkedSignature) return;
    parkedSignature = signature;
    $('deadletter-list').replaceChildren(...entries.map(({ host, entry }) => {
      const input = entry.input || {};
      const busy = pendingReleases.has(entry.id);
      const button = (action, label) => h('button', {
        type: 'button', class: action, disabled: busy,
        title: action === 'retry' ? 'Run the handler on this input again' : 'Give up on this input; its key is released',
        onclick: () => release(host, entry.id, action),
      }, label);
      return h('tr', { dataset: { id: entry.id, domain: host } },
        h('td', { class: 'input' },
          h('div', { class: 'type', text: input.type || entry.id }),
          h('div', { class: 'muted small', text: `${input.stream} #${input.sequence} · key ${input.key}`, title: `id ${input.id}, source ${input.source}, in ${host}` })),
        h('td', { class: 'error' },
          h('div', { class: 'error-text', text: entry.error, title: entry.error }),
          h('div', { class: 'muted small', text: `parked ${fmtTime(entry.parked_at)}`, title: entry.parked_at })),
        h('td', { class: 'num', text: String(entry.attempts) }),
        h('td', { class: 'num', text: String(entry.waiting) }),
        h('td', { class: 'actions' }, button('retry', 'Retry'), button('skip', 'Skip')));
    }));
  }

  async function release(host, id, action) {
    pendingReleases.add(id);
    parkedSignature = ''; // the next redraw keeps this row's buttons disabled
    for (const row of $('deadletter-list').rows) {
      if (row.dataset.id === id) row.querySelectorAll('button').forEach((button) => { button.disabled = true; });
    }
    const result = $('deadletters-result');
    try {
      const answer = await api(`/v1/deadletters/${enc(host)}/${enc(id)}/${action}`, { method: 'POST', source: 'dead letters' });
      let text = `${answer.id} ${answer.action} in ${answer.stream}: ${answer.handled} input(s) handled.`;
      if (answer.parked_again) text += ` ${answer.parked_again} failed and is parked now; ${answer.still_waiting} wait behind it.`;
      showMessage(result, text, answer.parked_again ? 'warn' : 'ok');
    } catch (error) {
      showMessage(result, `${action === 'retry' ? 'Retry' : 'Skip'} of ${id} refused: ${describe(error)}`);
    } finally {
      pendingReleases.delete(id);
      parkedSignature = '';
      await refreshDeadLetters();
    }
  }

  // ---------------------------------------------------------------------------------------
  // Lookup: entities and named queries
  // ---------------------------------------------------------------------------------------

  function fillLookupDomains() {
    fillSelect($('lookup-domain'), state.domains.map((d) => d.name), 'no domains');
    fillQueries();
  }

  function fillQueries() {
    const domain = state.domains.find((d) => d.name === $('lookup-domain').value);
    const queries = (domain && domain.queries) || [];
    fillSelect($('query-name'), queries, 'no named queries');
    $('query-go').disabled = queries.length === 0;
  }

  /** Shows an answer as indented JSON, or the problem's detail. */
  async function showAnswer(pre, path, source) {
    pre.dataset.state = 'loading';
    pre.textContent = `GET ${path} …`;
    try {
      const answer = await api(path, { source });
      pre.dataset.state = 'ok';
      pre.textContent = JSON.stringify(answer, null, 2);
    } catch (error) {
      pre.dataset.state = 'error';
      pre.textContent = describe(error);
    }
  }

  function lookupEntity(event) {
    event.preventDefault();
    const domain = $('lookup-domain').value;
    const key = $('lookup-key').value.trim();
    const pre = $('lookup-result');
    if (!domain || !key) {
      pre.dataset.state = 'error';
      pre.textContent = 'Pick a domain and type a key.';
      return;
    }
    showAnswer(pre, `/v1/domains/${enc(domain)}/entities/${enc(key)}`, 'lookup');
  }

  function runQuery(event) {
    event.preventDefault();
    const domain = $('lookup-domain').value;
    const name = $('query-name').value;
    if (!domain || !name) return;
    // Re-encoded through URLSearchParams, so "customer=a b" travels as a valid query.
    const params = new URLSearchParams($('query-params').value.trim().replace(/^\?/, '')).toString();
    showAnswer($('query-result'), `/v1/domains/${enc(domain)}/queries/${enc(name)}${params ? `?${params}` : ''}`, 'lookup');
  }

  // ---------------------------------------------------------------------------------------
  // Tail
  // ---------------------------------------------------------------------------------------

  const TAIL_MAX = 200;
  const TAIL_HISTORY = 50; // events shown from before the start when no `from` is given
  let tail = null; // { client, stream, last }

  function startTail(event) {
    if (event) event.preventDefault();
    stopTail();
    const stream = $('tail-stream').value;
    if (!stream) {
      showMessage($('tail-note'), 'No stream to tail yet.', 'info');
      return;
    }
    let from = $('tail-from').value.trim();
    if (!from) {
      const entry = state.streams.get(stream);
      if (entry && entry.last_sequence > 0) from = String(Math.max(1, entry.last_sequence - TAIL_HISTORY + 1));
    }
    $('tail-events').replaceChildren();
    showMessage($('tail-note'), '');
    const current = { stream, last: 0 };
    current.client = new SseClient({
      source: 'tail',
      resume: true, // reconnecting sends Last-Event-ID, which the node resumes after
      url: () => `/v1/streams/${enc(stream)}/tail${from ? `?from=${enc(from)}` : ''}`,
      onEvent: (e) => addTailEvent(current, e),
      onState: (st, detail) => {
        const label = { connected: `tailing ${stream}`, reconnecting: 'reconnecting…', failed: 'stopped' }[st] || st;
        $('tail-status').textContent = label;
        $('tail-status').dataset.state = st;
        if (st === 'failed') {
          showMessage($('tail-note'), `Tail of ${stream}: ${detail}`);
          $('tail-stop').disabled = true;
        }
      },
      // A refusal (unknown stream, bad `from`, no token) will not heal by asking again;
      // an unreachable node, a 429 or a 5xx may.
      retryable: (error) => !(error instanceof ApiError) || error.status === 429 || error.status >= 500,
    });
    tail = current;
    $('tail-stop').disabled = false;
    $('tail-status').textContent = 'connecting…';
    current.client.start();
  }

  function stopTail() {
    if (!tail) return;
    tail.client.stop();
    tail = null;
    $('tail-status').textContent = 'stopped';
    $('tail-status').dataset.state = 'stopped';
    $('tail-stop').disabled = true;
  }

  function addTailEvent(current, sse) {
    if (tail !== current) return; // an old tail's last words
    let ce;
    try {
      ce = JSON.parse(sse.data);
    } catch {
      return;
    }
    const sequence = Number(ce.sequence != null ? ce.sequence : sse.id);
    if (sequence <= current.last) return; // already shown before a reconnect
    current.last = sequence;
    const compact = JSON.stringify(ce.data);
    const li = h('li', { dataset: { id: ce.id || '', sequence: String(sequence), type: ce.type || sse.type, stream: ce.stream || current.stream } },
      h('div', { class: 'event-head' },
        h('span', { class: 'seq', text: `#${sequence}` }),
        h('span', { class: 'type', text: ce.type || sse.type }),
        h('span', { class: 'subject', title: 'subject (the entity key)', text: ce.subject || ce.partitionkey || '' }),
        h('time', { class: 'time', datetime: ce.time || '', title: ce.time || '', text: fmtTime(ce.time) }),
        causeOf(ce),
        h('span', { class: 'event-id muted', title: `id ${ce.id}, source ${ce.source}`, text: ce.id || '' })),
      h('code', { class: 'data', title: compact, text: compact }));
    const list = $('tail-events');
    list.prepend(li);
    while (list.children.length > TAIL_MAX) list.lastElementChild.remove();
  }

  /** The event's cause (the input it reacted to) as a link, or a note that a client sent it. */
  function causeOf(ce) {
    if (!ce.causeid) return h('span', { class: 'cause-none muted', text: 'from a client' });
    const where = ce.causestream ? `${ce.causestream} #${ce.causesequence}` : ce.causeid;
    return h('a', {
      class: 'cause',
      href: '#',
      title: `caused by event ${ce.causeid} (source ${ce.causesource || '?'})`,
      dataset: { causeId: ce.causeid, causeStream: ce.causestream || '', causeSequence: String(ce.causesequence || '') },
      onclick: (event) => {
        event.preventDefault();
        findCause(event.currentTarget.dataset);
      },
    }, `← ${where}`);
  }

  /** Highlights the causing event when the tail shows it; otherwise fetches and names it. */
  async function findCause({ causeId, causeStream, causeSequence }) {
    const rows = [...$('tail-events').children];
    const row = rows.find((li) => li.dataset.id === causeId && (!causeStream || li.dataset.stream === causeStream))
      || rows.find((li) => li.dataset.id === causeId);
    const note = $('tail-note');
    if (row) {
      showMessage(note, '');
      row.classList.remove('highlight');
      void row.offsetWidth; // restart the highlight animation
      row.classList.add('highlight');
      row.scrollIntoView({ block: 'center', behavior: 'smooth' });
      return;
    }
    showMessage(note, `Cause ${causeId} (${causeStream} #${causeSequence}) is not in this tail; fetching it…`, 'info');
    if (!causeStream || !causeSequence) return;
    try {
      const [cause] = await api(`/v1/streams/${enc(causeStream)}/events?from=${enc(causeSequence)}&limit=1`, { source: 'tail' });
      if (!cause || String(cause.sequence) !== causeSequence) throw new ApiError(404, 'Not found', 'not in the log any more');
      showMessage(note, `Cause ${causeId}: ${cause.type} on ${cause.subject} at ${causeStream} #${causeSequence}, ${fmtTime(cause.time)}: ${JSON.stringify(cause.data)}`, 'info');
    } catch (error) {
      showMessage(note, `Cause ${causeId} (${causeStream} #${causeSequence}): cannot fetch it (${describe(error)})`, 'warn');
    }
  }

  // ---------------------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------------------

  function saveToken(event) {
    if (event) event.preventDefault();
    const value = $('token').value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    refusals.clear();
    noteAuth('', null);
    // Everything again with the new token, at once rather than at the next tick.
    watch.restart();
    if (tail) {
      if (tail.client.stopped) startTail();
      else tail.client.restart();
    }
    loadTopology();
    refreshDeadLetters();
  }

  function init() {
    $('token').value = token();
    $('token-form').addEventListener('submit', saveToken);
    $('token-clear').addEventListener('click', () => {
      $('token').value = '';
      saveToken();
    });
    $('lookup-domain').addEventListener('change', fillQueries);
    $('lookup-form').addEventListener('submit', lookupEntity);
    $('query-form').addEventListener('submit', runQuery);
    $('tail-form').addEventListener('submit', startTail);
    $('tail-stop').addEventListener('click', stopTail);
    fillSelect($('tail-stream'), [], 'no streams yet');
    fillLookupDomains();

    watch.start();
    every(10000, loadTopology); // statuses and owners change; the picture redraws only then
    every(2000, pollReady);
    every(3000, refreshDeadLetters);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
