/** Product page `/p/{slug}`: hero, description, categories, sellers table, price-history chart. */

import {
  ApiError,
  fetchProduct,
  isAbortError,
  productImageUrl,
  type Product,
  type SellerOffer,
  type Window,
  WINDOWS,
} from "./api";
import { catalogUrl, parseCatalogState } from "./catalogState";
import type { PriceChart } from "./chart";
import { availabilityBadge, errorBox, priceBadge, productImage } from "./components";
import { announce, h, safeHttpUrl } from "./dom";
import { formatDate, formatDateTime, formatPercent, formatPrice, sellerCount } from "./format";

const LOW_LABEL: Record<Window, string> = {
  "30d": "Nejnižší za 30 dní",
  "90d": "za 90 dní",
  "365d": "za rok",
};

const ALLOWED_TAGS: Record<string, string> = {
  P: "p",
  BR: "br",
  UL: "ul",
  OL: "ol",
  LI: "li",
  STRONG: "strong",
  B: "strong",
  EM: "em",
  I: "em",
  H1: "h3",
  H2: "h3",
  H3: "h3",
  H4: "h4",
  H5: "h4",
  H6: "h4",
  BLOCKQUOTE: "blockquote",
};

/** Copies text and a small set of formatting tags; drops attributes, images, scripts, links. */
function sanitizeInto(source: Node, target: Node): void {
  for (const node of Array.from(source.childNodes)) {
    if (node.nodeType === Node.TEXT_NODE) {
      target.appendChild(document.createTextNode(node.textContent ?? ""));
    } else if (node.nodeType === Node.ELEMENT_NODE) {
      const tag = (node as Element).tagName;
      if (["SCRIPT", "STYLE", "IFRAME", "OBJECT", "TEMPLATE", "NOSCRIPT", "SVG"].includes(tag)) continue;
      const mapped = ALLOWED_TAGS[tag];
      if (mapped) {
        const element = document.createElement(mapped);
        sanitizeInto(node, element);
        target.appendChild(element);
      } else {
        sanitizeInto(node, target);
        if (tag === "DIV" || tag === "TR") target.appendChild(document.createElement("br"));
      }
    }
  }
}

/** The description as served: HTML is reduced to safe formatting, plain text keeps its lines. */
export function renderDescription(description: string): HTMLElement {
  const container = h("div", { class: "description", id: "product-description" });
  if (/<\/?[a-z][^>]*>/i.test(description)) {
    // DOMParser documents have no browsing context: nothing in them is fetched or executed.
    const parsed = new DOMParser().parseFromString(description, "text/html");
    sanitizeInto(parsed.body, container);
  } else {
    for (const paragraph of description.split(/\n\s*\n/)) {
      if (paragraph.trim()) container.append(h("p", {}, paragraph.trim()));
    }
  }
  return container;
}

function priceOrder(a: SellerOffer, b: SellerOffer): number {
  // By current price; sellers without a price last; ties keep the API's priority order.
  if (a.current_price === null) return b.current_price === null ? 0 : 1;
  if (b.current_price === null) return -1;
  return a.current_price - b.current_price;
}

function sellersTable(sellers: SellerOffer[]): HTMLElement {
  const sorted = [...sellers].sort(priceOrder);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "sellers", id: "sellers-table" },
      h("caption", { class: "visually-hidden" }, "Nabídky obchodů seřazené podle ceny"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Obchod"),
          h("th", { scope: "col", class: "num" }, "Cena"),
          h("th", { scope: "col", class: "hide-narrow" }, "Sleva a nejnižší ceny"),
          h("th", { scope: "col", class: "hide-narrow" }, "Dostupnost"),
          h("th", { scope: "col", class: "num hide-narrow" }, "Rozpětí cen"),
          h("th", { scope: "col", class: "hide-narrow" }, "Aktualizováno"),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Odkaz")),
        ),
      ),
      h(
        "tbody",
        {},
        sorted.map((offer) => {
          const href = safeHttpUrl(offer.url);
          return h(
            "tr",
            { "data-seller": offer.seller },
            h(
              "th",
              { scope: "row", class: "seller-name" },
              offer.seller,
              h("span", { class: "show-narrow" }, availabilityBadge(offer, offer.availability_raw)),
            ),
            h("td", { class: "num price" }, formatPrice(offer.current_price)),
            h(
              "td",
              { class: "deal-info hide-narrow" },
              offer.discount
                ? h(
                    "div",
                    { class: "seller-discount" },
                    `Sleva ${formatPercent(offer.discount.percent)} z ${formatPrice(offer.discount.prior_price)} ` +
                      "(nejnižší cena za 30 dní před zlevněním)",
                  )
                : null,
              priceBadge(offer.badges),
              h(
                "div",
                { class: "seller-lows" },
                WINDOWS.map((w) =>
                  h("span", { class: "seller-low", "data-window": w }, `${LOW_LABEL[w]}: ${formatPrice(offer.lows[w].price)}`),
                ),
              ),
            ),
            h("td", { class: "hide-narrow" }, availabilityBadge(offer, offer.availability_raw)),
            h(
              "td",
              { class: "num hide-narrow" },
              offer.min_price === null
                ? "–"
                : offer.min_price === offer.max_price
                  ? formatPrice(offer.min_price)
                  : `${formatPrice(offer.min_price)} – ${formatPrice(offer.max_price)}`,
            ),
            h("td", { class: "hide-narrow" }, formatDateTime(offer.last_seen_at)),
            h(
              "td",
              {},
              href
                ? h(
                    "a",
                    {
                      href,
                      class: "button button-small shop-link",
                      target: "_blank",
                      rel: "noopener noreferrer nofollow",
                      "aria-label": `Přejít do obchodu ${offer.seller} (otevře se v novém okně)`,
                    },
                    "Do obchodu",
                  )
                : "–",
            ),
          );
        }),
      ),
    ),
  );
}

function backLink(): HTMLElement {
  const back = sessionStorage.getItem("pricecat:lastCatalog") ?? "/";
  return h("a", { href: back.startsWith("/") ? back : "/", "data-link": true, class: "back-link" }, "← Zpět na katalog");
}

function renderProduct(product: Product, chart: PriceChart): HTMLElement {
  const cheapest = [...product.sellers].filter((s) => s.current_price !== null).sort(priceOrder)[0];
  const minSeller =
    product.min_price === null
      ? null
      : product.sellers.find((s) => s.current_price === product.min_price && (s.is_available || s.is_preorder)) ??
        cheapest;
  return h(
    "article",
    { class: "product", "data-slug": product.slug },
    backLink(),
    h(
      "div",
      { class: "product-hero" },
      h("div", { class: "product-media" }, productImage(productImageUrl(product.slug, product.hero_image_url), product.name, "hero-image", { eager: true, width: 480, height: 480 })),
      h(
        "div",
        { class: "product-summary" },
        h("h1", { class: "product-title" }, product.name),
        h(
          "p",
          { class: "product-price" },
          product.min_price === null
            ? "Momentálně nikde neprodávají"
            : h("span", {}, "od ", h("strong", {}, formatPrice(product.min_price)), minSeller ? ` u ${minSeller.seller}` : ""),
          " ",
          availabilityBadge(product),
        ),
        h(
          "dl",
          { class: "facts" },
          h("dt", {}, "Nejnižší cena v historii"),
          h(
            "dd",
            { id: "lowest-ever" },
            product.lowest_price_ever === null
              ? "–"
              : `${formatPrice(product.lowest_price_ever)} (${formatDate(product.lowest_price_ever_at)})`,
          ),
          h("dt", {}, "Nabídky"),
          h("dd", {}, sellerCount(product.sellers.length)),
          h("dt", {}, "Aktualizováno"),
          h("dd", {}, formatDateTime(product.last_scraped_at)),
        ),
        product.categories.length > 0
          ? h(
              "ul",
              { class: "chips", "aria-label": "Kategorie" },
              product.categories.map((category) =>
                h(
                  "li",
                  {},
                  h(
                    "a",
                    {
                      href: catalogUrl({ ...parseCatalogState(new URLSearchParams()), categories: [category] }),
                      "data-link": true,
                      class: "chip",
                    },
                    category,
                  ),
                ),
              ),
            )
          : null,
      ),
    ),
    h(
      "section",
      { class: "product-section", "aria-labelledby": "offers-heading" },
      h("h2", { id: "offers-heading" }, "Nabídky obchodů"),
      product.sellers.length > 0 ? sellersTable(product.sellers) : h("p", {}, "Žádný obchod tuto hru nenabízí."),
    ),
    h(
      "section",
      { class: "product-section", "aria-labelledby": "history-heading" },
      h("h2", { id: "history-heading" }, "Vývoj cen"),
      chart.element,
    ),
    h(
      "section",
      { class: "product-section", "aria-labelledby": "description-heading" },
      h("h2", { id: "description-heading" }, "Popis"),
      product.description
        ? renderDescription(product.description)
        : h("p", { class: "muted", id: "product-description" }, "Popis zatím nemáme."),
    ),
  );
}

function notFound(slug: string): HTMLElement {
  return h(
    "div",
    { class: "message message-not-found", role: "alert" },
    h("h1", {}, "Tuto hru jsme nenašli"),
    h("p", {}, `Hra s adresou „${slug}“ v katalogu není – možná byla odstraněna, nebo je adresa chybná.`),
    h("a", { href: "/", "data-link": true, class: "button" }, "Zpět na katalog"),
  );
}

export class ProductView {
  private controller: AbortController | null = null;
  private chart: PriceChart | null = null;

  async show(root: HTMLElement, slug: string): Promise<void> {
    this.dispose();
    const controller = new AbortController();
    this.controller = controller;
    root.replaceChildren(h("p", { class: "loading-note", "aria-busy": "true" }, "Načítám…"));
    try {
      // The chart library is loaded only for product pages (a separate same-origin chunk).
      const [product, { priceChart }] = await Promise.all([
        fetchProduct(slug, controller.signal),
        import("./chart"),
      ]);
      if (controller.signal.aborted) return;
      this.chart = priceChart(product.sellers, product.name);
      root.replaceChildren(renderProduct(product, this.chart));
      document.title = `${product.name} – pricecat`;
      announce(product.name);
    } catch (error) {
      if (isAbortError(error) || controller.signal.aborted) return;
      if (error instanceof ApiError && (error.status === 404 || error.status === 400)) {
        document.title = "Hra nenalezena – pricecat";
        root.replaceChildren(notFound(slug));
      } else {
        document.title = "Chyba – pricecat";
        const message = error instanceof ApiError ? error.message : "Hru se nepodařilo načíst.";
        root.replaceChildren(errorBox(message, () => void this.show(root, slug)));
      }
    }
  }

  dispose(): void {
    this.controller?.abort();
    this.controller = null;
    this.chart?.destroy();
    this.chart = null;
  }
}
