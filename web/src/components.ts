/** Small shared UI pieces: availability badges, product images with placeholder, messages. */

import { h, safeHttpUrl } from "./dom";

export function availabilityBadge(
  item: { is_available: boolean; is_preorder: boolean },
  rawLabel?: string | null,
): HTMLElement {
  const [kind, label] = item.is_available
    ? ["available", "Skladem"]
    : item.is_preorder
      ? ["preorder", "Předobjednávka"]
      : ["unavailable", "Nedostupné"];
  return h(
    "span",
    { class: `badge badge-${kind}`, title: rawLabel && rawLabel !== label ? rawLabel : null },
    label,
  );
}

function placeholder(name: string, className: string): HTMLElement {
  const initials = name
    .split(/\s+/)
    .filter((w) => /^\p{L}/u.test(w))
    .slice(0, 2)
    .map((w) => w[0].toUpperCase())
    .join("");
  return h(
    "div",
    { class: `${className} image-placeholder`, role: "img", "aria-label": `${name} – bez obrázku` },
    h("span", { "aria-hidden": "true" }, initials || "?"),
  );
}

/**
 * The product image (a same-origin URL: the API's image proxy, see `productImageUrl`) or a
 * placeholder when it is missing or fails to load. `eager` for the hero image, lazy loading everywhere else.
 */
export function productImage(
  url: string | null,
  name: string,
  className: string,
  options: { eager?: boolean; width?: number; height?: number } = {},
): HTMLElement {
  const src = safeHttpUrl(url);
  if (!src) return placeholder(name, className);
  const image = h("img", {
    class: className,
    src,
    alt: name,
    loading: options.eager ? "eager" : "lazy",
    decoding: "async",
    referrerpolicy: "no-referrer",
    width: options.width ?? 240,
    height: options.height ?? 240,
  });
  image.addEventListener("error", () => image.replaceWith(placeholder(name, className)), {
    once: true,
  });
  return image;
}

export function errorBox(message: string, retry?: () => void): HTMLElement {
  return h(
    "div",
    { class: "message message-error", role: "alert" },
    h("p", {}, message),
    retry ? h("button", { type: "button", class: "button", onclick: retry }, "Zkusit znovu") : null,
  );
}

/** Czech text of a price badge (the API's badge names). */
export const BADGE_TEXT: Record<string, string> = {
  lowest_ever: "nejnižší cena v historii",
  lowest_365d: "nejnižší cena za rok",
  lowest_90d: "nejnižší cena za 90 dní",
  lowest_30d: "nejnižší cena za 30 dní",
};

/** The strongest badge only (the API lists them strongest first). */
export function priceBadge(badges: string[]): HTMLElement | null {
  const first = badges.find((b) => b in BADGE_TEXT);
  return first ? h("span", { class: "price-badge", "data-badge": first }, BADGE_TEXT[first]) : null;
}
