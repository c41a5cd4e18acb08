// @ts-check
// Reads the link token from the URL fragment. The fragment is never sent to a server, so the
// token stays out of request lines, logs and Referer headers.

export function tokenFromLocation(location) {
  const raw = location.hash.startsWith("#") ? location.hash.slice(1) : location.hash;
  return raw.trim() || null;
}

// The link token and the resume token live in this tab's sessionStorage (gone when the tab
// closes; a reload keeps them, so it resumes into the call), and the token leaves the
// address bar as soon as it is read: not in history, screenshots or a shared screen.
const TOKEN_KEY = "sessionroom.token";
const RESUME_KEY = "sessionroom.resume";
const NEW_DEVICE_KEY = "sessionroom.newDevice";

/** @returns {Storage | null} */
function tabStorage() {
  try {
    return window.sessionStorage; // throws where storage is blocked (some iframes)
  } catch {
    return null;
  }
}

// The link this tab is for: from the fragment (then stored, and the fragment removed), or
// from this tab's storage (a reload). Null when there is neither: a bookmark of /join.
export function takeToken(location, history) {
  const storage = tabStorage();
  const fromLink = tokenFromLocation(location);
  if (fromLink) {
    history.replaceState(history.state, "", location.pathname + location.search);
    try {
      // Another link in the same tab: the resume token of the old one does not apply.
      if (storage?.getItem(TOKEN_KEY) !== fromLink) storage?.removeItem(RESUME_KEY);
      storage?.setItem(TOKEN_KEY, fromLink);
    } catch {
      // Storage full or blocked: this page still works, a reload will not.
    }
    return fromLink;
  }
  try {
    return storage?.getItem(TOKEN_KEY) || null;
  } catch {
    return null;
  }
}

/** @returns {string | null} */
export function storedResume() {
  try {
    return tabStorage()?.getItem(RESUME_KEY) || null;
  } catch {
    return null;
  }
}

/** @param {string | null} resume */
export function storeResume(resume) {
  try {
    if (resume) tabStorage()?.setItem(RESUME_KEY, resume);
    else tabStorage()?.removeItem(RESUME_KEY);
  } catch {
    // as above
  }
}

// "Join here instead" reloads the page to join again as a new device: remembered for the
// next join only.
export function markNewDevice() {
  try {
    tabStorage()?.setItem(NEW_DEVICE_KEY, "1");
  } catch {
    // as above
  }
}

/** @returns {boolean} */
export function takeNewDevice() {
  try {
    const storage = tabStorage();
    const marked = storage?.getItem(NEW_DEVICE_KEY) === "1";
    storage?.removeItem(NEW_DEVICE_KEY);
    return marked;
  } catch {
    return false;
  }
}

// The claims are signed, not secret: reading them here only shows the name and the window.
// The server checks the signature; nothing here is trusted for access.
export function readClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return typeof claims === "object" && claims !== null ? claims : null;
  } catch {
    return null;
  }
}

// Whether a permission list (the token's `perms`, or `permissions` in `joined`) includes
// `permission`. A token without the list has everything its role allows (docs/protocol.md),
// and the role is checked separately wherever it matters.
export function permits(perms, permission) {
  return !Array.isArray(perms) || perms.includes(permission);
}
