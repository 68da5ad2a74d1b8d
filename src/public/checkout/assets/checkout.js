// The hosted checkout page's script: live updates (Server-Sent Events, else
// polling status.json), the countdown, copy buttons, the network switch
// (in place, without a reload), the browser-wallet button (EIP-6963, else
// window.ethereum) and messages to an embedding page. The page works
// without it; the daemon's status is the only truth.
(() => {
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const messages = page.messages;
  const fill = (template, values) =>
    template.replace(/\{([a-zA-Z_]+)\}/g, (whole, name) =>
      Object.hasOwn(values, name) ? String(values[name]) : whole,
    );
  const screenData = () => JSON.parse(document.getElementById("screen-data").textContent);
  let data = screenData();
  // NOTE: the countdown follows the server's clock: the offset is taken once,
  // at load, from the page's `Server-Timing: clock;desc="<UNIX ms>"` header
  // (the page's bytes carry no time, so the server can keep them); without
  // it, the browser's clock.
  const clockOffset = (() => {
    const [navigation] = performance.getEntriesByType?.("navigation") ?? [];
    const clock = navigation?.serverTiming?.find((entry) => entry.name === "clock");
    const serverNow = Number(clock?.description);
    return Number.isFinite(serverNow) && serverNow > 0 ? serverNow - Date.now() : 0;
  })();
  let lastBody = "";
  let walletBusy = false;
  // The network the shopper chose (the switch or the link's ?network=); null: the server's default.
  let network = new URLSearchParams(window.location.search).get("network");
  const providers = [];

  // ---- the parent window, when the shop embeds the page ----
  function tellParent(status) {
    if (window.parent === window) return;
    for (const origin of page.frameAncestors) {
      window.parent.postMessage({ type: "0xbtcpay:status", id: page.id, status }, origin);
    }
  }

  // ---- countdown ----
  function tick() {
    const el = document.getElementById("countdown");
    if (!el) return;
    const left = Math.floor(Number(el.dataset.expires) - (Date.now() + clockOffset) / 1000);
    if (left <= 0) {
      el.textContent = messages.expired_now;
      return;
    }
    const h = Math.floor(left / 3600);
    const m = Math.floor((left % 3600) / 60);
    const s = left % 60;
    const two = (n) => String(n).padStart(2, "0");
    el.textContent = h > 0 ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
  }

  // ---- redirect after paid ----
  let redirectTimer;
  function scheduleRedirect() {
    clearInterval(redirectTimer);
    if (!data.redirect) return;
    let left = data.redirect.seconds;
    const note = document.getElementById("redirect-note");
    const go = () => window.location.assign(data.redirect.url);
    if (left <= 0) return go();
    redirectTimer = setInterval(() => {
      left -= 1;
      if (note) note.textContent = fill(messages.redirecting, { seconds: left });
      if (left <= 0) {
        clearInterval(redirectTimer);
        go();
      }
    }, 1000);
  }

  // ---- the screen, swapped in place from the server's rendering ----
  function revealControls() {
    for (const button of document.querySelectorAll("button.copy")) button.hidden = false;
    showWalletButton();
  }

  async function refreshScreen() {
    const query = new URLSearchParams({ lang: page.lang });
    if (network) query.set("network", network);
    const url = `${window.location.pathname}?${query}`;
    const response = await fetch(url, { headers: { accept: "text/html" }, cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const next = doc.getElementById("screen");
    const live = doc.getElementById("live");
    if (!next || !live) return;
    const current = document.getElementById("screen");
    const checkedQr = document.querySelector('input[name="qr"]:checked')?.value;
    current.replaceWith(document.adoptNode(next));
    if (checkedQr) {
      const keep = document.getElementById(`qr-${checkedQr}`);
      if (keep) keep.checked = true;
    }
    document.getElementById("live").textContent = live.textContent;
    document.title = doc.title;
    data = screenData();
    revealControls();
    tick();
    scheduleRedirect();
  }

  /** What the rendered screen depends on; the server computes the same for the page it renders. */
  const signatureOf = (status) =>
    [
      status.status,
      status.paid_amount,
      status.confirmations,
      status.paid_late,
      status.reorged_after_paid,
    ].join("|");

  let refreshing = Promise.resolve();

  // ---- network switch: the screen of the chosen network, swapped in place ----
  function switchNetwork(link) {
    network = link.dataset.network;
    const url = new URL(window.location.href);
    url.searchParams.set("network", network);
    window.history.replaceState(window.history.state, "", url);
    for (const other of document.querySelectorAll(".languages a")) {
      const href = new URL(other.href);
      href.searchParams.set("network", network);
      other.setAttribute("href", href.search);
    }
    refreshing = refreshing
      .then(refreshScreen)
      .then(() => document.querySelector(`a[data-network="${network}"]`)?.focus())
      // Offline or refused: the link itself still works.
      .catch(() => window.location.assign(link.href));
  }

  function onStatus(body) {
    if (body === lastBody) return;
    lastBody = body;
    const status = JSON.parse(body);
    tellParent(status.status);
    if (signatureOf(status) !== data.signature) {
      refreshing = refreshing.then(refreshScreen).catch(() => {});
    }
    if (["paid", "expired", "cancelled"].includes(status.status)) stopLive();
  }

  // ---- live updates ----
  let source;
  let pollTimer;
  function stopLive() {
    source?.close();
    clearInterval(pollTimer);
  }
  function poll() {
    clearInterval(pollTimer);
    const once = async () => {
      try {
        const response = await fetch(`${window.location.pathname}/status.json`, {
          cache: "no-store",
        });
        if (response.ok) onStatus(await response.text());
      } catch {}
    };
    void once();
    pollTimer = setInterval(once, 3000);
  }
  function live() {
    if (data.final) return;
    if (typeof EventSource !== "function") return poll();
    source = new EventSource(`${window.location.pathname}/events`);
    source.onmessage = (event) => onStatus(event.data);
    source.onerror = () => {
      // CLOSED: the server refused the stream (not a dropped connection, which reconnects).
      if (source.readyState === EventSource.CLOSED) poll();
    };
  }

  // ---- copy buttons ----
  async function copy(button) {
    const text = button.dataset.copy;
    let ok = false;
    try {
      if (navigator.clipboard?.writeText) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch {}
    if (!ok) {
      // Fallback: a selected text field and the legacy copy command.
      const field = document.createElement("textarea");
      field.value = text;
      field.setAttribute("readonly", "");
      field.className = "offscreen";
      document.body.append(field);
      field.select();
      try {
        ok = document.execCommand("copy");
      } catch {}
      field.remove();
    }
    const message = document.getElementById("wallet-message");
    if (message) message.textContent = ok ? messages.copied : messages.copy_failed;
  }

  // ---- browser wallet ----
  window.addEventListener("eip6963:announceProvider", (event) => {
    const detail = event.detail;
    if (detail?.provider && !providers.some((p) => p.info?.uuid === detail.info?.uuid)) {
      providers.push(detail);
      showWalletButton();
    }
  });
  window.dispatchEvent(new Event("eip6963:requestProvider"));

  function provider() {
    return (
      providers[0] ?? (window.ethereum ? { info: undefined, provider: window.ethereum } : undefined)
    );
  }

  function showWalletButton() {
    const button = document.getElementById("wallet-pay");
    const found = provider();
    if (!button || !found) return;
    const name = found.info?.name || button.dataset.fallback;
    button.textContent = fill(button.dataset.label, { wallet: name });
    button.hidden = false;
    button.disabled = walletBusy;
  }

  function say(text) {
    const message = document.getElementById("wallet-message");
    if (message) message.textContent = text;
  }

  function walletErrorText(error, target) {
    const code = error?.code ?? error?.data?.originalError?.code;
    if (code === 4001) return messages.wallet_rejected;
    if (code === 4902) {
      return fill(messages.wallet_unknown_chain, {
        network: target.networkName,
        chainId: Number.parseInt(target.chainId, 16),
      });
    }
    if (code === -32002) return messages.wallet_pending;
    return fill(messages.wallet_error, { message: String(error?.message ?? error) });
  }

  async function payWithWallet(button) {
    const found = provider();
    if (!found || walletBusy) return;
    walletBusy = true;
    button.disabled = true;
    // NOTE: the screen (and the network shown) may change while the wallet
    // asks: the chain switched to and the transaction sent stay one network's.
    const target = data;
    const ask = (method, params) =>
      found.provider.request(params ? { method, params } : { method });
    try {
      say(messages.wallet_confirm);
      const accounts = await ask("eth_requestAccounts");
      say(fill(messages.wallet_switch, { network: target.networkName }));
      await ask("wallet_switchEthereumChain", [{ chainId: target.chainId }]);
      say(messages.wallet_confirm);
      const hash = await ask("eth_sendTransaction", [
        { from: accounts[0], to: target.token, data: target.calldata, value: "0x0" },
      ]);
      say(fill(messages.wallet_submitted, { hash }));
    } catch (error) {
      say(walletErrorText(error, target));
    } finally {
      walletBusy = false;
      const current = document.getElementById("wallet-pay");
      if (current) current.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const element = event.target instanceof Element ? event.target : null;
    const link = element?.closest("a[data-network]");
    if (link && !event.metaKey && !event.ctrlKey && !event.shiftKey && event.button === 0) {
      event.preventDefault();
      switchNetwork(link);
      return;
    }
    const target = element?.closest("button");
    if (!target) return;
    if (target.classList.contains("copy")) void copy(target);
    if (target.id === "wallet-pay") void payWithWallet(target);
  });

  revealControls();
  // Wallets that inject window.ethereum late.
  setTimeout(showWalletButton, 500);
  tick();
  setInterval(tick, 1000);
  scheduleRedirect();
  tellParent(data.status);
  live();
})();
