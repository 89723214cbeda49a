/** History-API router: `/` (catalog, state in the query string), `/slevy` (deals) and
 * `/p/{slug}` (product). */

export type Route =
  | { name: "catalog"; search: URLSearchParams }
  | { name: "product"; slug: string }
  | { name: "deals"; search: URLSearchParams }
  | { name: "not_found" };

export function currentRoute(): Route {
  const path = window.location.pathname.replace(/\/+$/, "") || "/";
  if (path === "/" || path === "/index.html") {
    return { name: "catalog", search: new URLSearchParams(window.location.search) };
  }
  if (path === "/slevy") {
    return { name: "deals", search: new URLSearchParams(window.location.search) };
  }
  const product = /^\/p\/([^/]+)$/.exec(path);
  if (product) {
    let slug: string;
    try {
      slug = decodeURIComponent(product[1]);
    } catch {
      return { name: "not_found" };
    }
    return { name: "product", slug };
  }
  return { name: "not_found" };
}

type Listener = () => void;
const listeners: Listener[] = [];

export function onRouteChange(listener: Listener): void {
  listeners.push(listener);
}

function notify(): void {
  for (const listener of listeners) listener();
}

/** Navigates within the app (pushState, or replaceState with `replace`). */
export function navigate(url: string, options: { replace?: boolean; scroll?: boolean } = {}): void {
  const target = new URL(url, window.location.href);
  if (target.origin !== window.location.origin) {
    window.location.assign(target.href);
    return;
  }
  const next = target.pathname + target.search + target.hash;
  const current = window.location.pathname + window.location.search + window.location.hash;
  if (next !== current) {
    if (options.replace) window.history.replaceState(null, "", next);
    else window.history.pushState(null, "", next);
  }
  notify();
  if (options.scroll !== false) window.scrollTo({ top: 0 });
}

export function startRouter(): void {
  window.addEventListener("popstate", notify);
  // Internal links opt in with data-link; modified clicks (new tab etc.) keep browser behaviour.
  document.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const anchor = (event.target as Element | null)?.closest?.("a[data-link]");
    if (!(anchor instanceof HTMLAnchorElement)) return;
    event.preventDefault();
    navigate(anchor.href);
  });
}
