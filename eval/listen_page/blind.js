// MUSHRA-style blind test (ITU-R BS.1534). The order of the trials and of the items in each trial is
// shuffled with a PRNG seeded by the listener's name (and the trial id), so the same listener always
// sees the same order, and the letter -> method mapping goes into the downloaded JSON.
(() => {
  const DATA = JSON.parse(document.getElementById("data").textContent);
  const STORE = `gan-stretch-listen:${DATA.page}:`;
  const byId = Object.fromEntries(DATA.trials.map((t) => [t.id, t]));
  const $ = (id) => document.getElementById(id);
  const SCALE = ["Bad", "Poor", "Fair", "Good", "Excellent"];

  function hash32(s) { // FNV-1a
    let h = 0x811c9dc5;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
    return h >>> 0;
  }
  function mulberry32(a) {
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function shuffled(list, key) { // Fisher-Yates
    const rand = mulberry32(hash32(key)), a = list.slice();
    for (let i = a.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [a[i], a[j]] = [a[j], a[i]]; }
    return a;
  }
  const letter = (i) => (i < 26 ? "" : String.fromCharCode(64 + Math.floor(i / 26))) + String.fromCharCode(65 + (i % 26));

  let listener = null, order = [], current = 0, ratings = {};

  function plan(id) { // [{letter, method, src}] of one trial, fixed per (listener, trial)
    return shuffled(byId[id].items, `${listener}\u0000${id}`).map((it, i) => ({ letter: letter(i), ...it }));
  }
  const complete = (id) => plan(id).every((it) => (ratings[id] || {})[it.letter] !== undefined);
  function save() { localStorage.setItem(STORE + listener, JSON.stringify(ratings)); }

  function start(name) {
    listener = name.trim();
    if (!listener) return;
    localStorage.setItem("gan-stretch-listen:last-listener", listener);
    try { ratings = JSON.parse(localStorage.getItem(STORE + listener)) || {}; } catch (e) { ratings = {}; }
    order = shuffled(DATA.trials.map((t) => t.id), `${listener}\u0000trials`);
    current = Math.max(0, order.findIndex((id) => !complete(id)));
    $("listener").value = listener;
    $("test").hidden = false;
    document.querySelector("details").open = false;
    render();
  }

  function status() {
    const done = order.filter(complete).length;
    const rated = order.reduce((n, id) => n + Object.keys(ratings[id] || {}).length, 0);
    const total = order.reduce((n, id) => n + byId[id].items.length, 0);
    $("progress").textContent = `${listener}: ${done} of ${order.length} trials complete (${rated} of ${total} items rated)`;
    $("trialnav").replaceChildren(...order.map((id, k) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = k + 1;
      b.title = `trial ${k + 1}`;
      b.className = (k === current ? "current " : "") + (complete(id) ? "done" : (ratings[id] ? "partial" : ""));
      b.onclick = () => { current = k; render(); };
      return b;
    }));
    $("prev").disabled = current === 0;
    $("next").disabled = current === order.length - 1;
  }

  function render() {
    const id = order[current], t = byId[id], given = ratings[id] || {};
    const box = $("trial");
    box.dataset.trial = id;
    box.innerHTML = "";
    const h = document.createElement("h2");
    h.textContent = `Trial ${current + 1} of ${order.length}: ${t.piece}, rate ${t.rate} `;
    const sub = document.createElement("span");
    sub.className = "rate";
    sub.textContent = `(${t.rate < 1 ? "slowed down" : "sped up"} to ${Number((1 / t.rate).toPrecision(3))}× the duration)`;
    h.append(sub);
    box.append(h);
    const head = document.createElement("div");
    head.className = "item scale";
    head.innerHTML = `<span class="letter"></span><span></span><span class="labels">${SCALE.map((s) => `<span>${s}</span>`).join("")}</span><span></span>`;
    box.append(head);
    const ref = document.createElement("div");
    ref.className = "item ref";
    ref.innerHTML = `<span class="letter">Ref</span><audio controls preload="auto"></audio><span class="what"></span><span></span>`;
    ref.querySelector(".what").textContent = DATA.reference_text;
    ref.querySelector("audio").src = t.reference;
    box.append(ref);
    for (const it of plan(id)) {
      const row = document.createElement("div");
      row.className = "item";
      row.dataset.letter = it.letter;
      const value = given[it.letter];
      row.innerHTML = `<span class="letter">${it.letter}</span><audio controls preload="auto"></audio>` +
        `<input type="range" min="0" max="100" step="1" aria-label="rating of ${it.letter}"><output></output>`;
      row.querySelector("audio").src = it.src;
      const slider = row.querySelector("input"), out = row.querySelector("output");
      slider.value = value === undefined ? 50 : value;
      const show = () => {
        const v = (ratings[id] || {})[it.letter];
        row.classList.toggle("unrated", v === undefined);
        out.textContent = v === undefined ? "–" : v;
      };
      const rate = () => { (ratings[id] ||= {})[it.letter] = Number(slider.value); save(); show(); status(); };
      slider.addEventListener("input", rate);
      slider.addEventListener("pointerup", rate); // a click on the thumb rates it where it stands
      show();
      box.append(row);
    }
    status();
  }

  function payload() {
    return {
      format: DATA.format, page: DATA.page, title: DATA.title, truth: DATA.truth, listener,
      saved: new Date().toISOString(), user_agent: navigator.userAgent,
      trials: order.map((id) => {
        const items = plan(id);
        return { trial: id, piece: byId[id].piece, rate: byId[id].rate, order: items.map((i) => i.letter),
          mapping: Object.fromEntries(items.map((i) => [i.letter, i.method])),
          ratings: ratings[id] || {}, complete: complete(id) };
      }),
    };
  }

  function download() {
    const blob = new Blob([JSON.stringify(payload(), null, 1)], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `ratings-${listener.replace(/[^A-Za-z0-9._-]+/g, "_")}-${DATA.page}.json`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  $("who").addEventListener("submit", (e) => { e.preventDefault(); start($("listener").value); });
  $("prev").onclick = () => { current--; render(); };
  $("next").onclick = () => { current++; render(); window.scrollTo(0, 0); };
  $("download").onclick = () => {
    const left = order.filter((id) => !complete(id)).length;
    if (left && !confirm(`${left} trial(s) are not complete. Download anyway?`)) return;
    download();
  };
  const last = localStorage.getItem("gan-stretch-listen:last-listener");
  if (last) $("listener").value = last;
  // for tests and the curious: the plan of a trial, the current trial, what would be downloaded
  window.listen = { plan: (id) => plan(id), current: () => order[current], payload };
})();
