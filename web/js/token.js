// Reads the link token from the URL fragment. The fragment is never sent to a server, so the
// token stays out of request lines, logs and Referer headers; it is kept in memory only.

export function tokenFromLocation(location) {
  const raw = location.hash.startsWith("#") ? location.hash.slice(1) : location.hash;
  return raw.trim() || null;
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
