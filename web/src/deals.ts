/**
 * "Slevy" page `/slevy`: current real reductions from the deals endpoint (a price below the lowest
 * price of the 30 days before the reduction; fake sales never appear). Filters live in the query
 * string (min_discount, availability, categories, seller, page) like the catalog's.
 */

import { ApiError, type Deal, type DealsQuery, fetchDeals, isAbortError } from "./api";
import { errorBox, priceBadge } from "./components";
import { h } from "./dom";
import { formatDate, formatPercent, formatPrice } from "./format";
import { navigate } from "./router";

const PAGE_SIZE = 24;
const DISCOUNTS = [5, 10, 20, 30, 50];

function queryFrom(search: URLSearchParams): DealsQuery {
  const min = Number(search.get("min_discount") ?? "10");
  const availability = search.get("availability");
  const page = Number(search.get("page") ?? "1");
  return {
    min_discount: Number.isFinite(min) && min >= 0 && min <= 100 ? min : 10,
    availability: availability === "available" || availability === "preorder" ? availability : "any",
    categories: (search.get("categories") ?? "").split(",").map((c) => c.trim()).filter(Boolean),
    seller: search.get("seller")?.trim() || undefined,
    page: Number.isInteger(page) && page >= 1 ? page : 1,
    page_size: PAGE_SIZE,
  };
}

function urlFor(query: DealsQuery): string {
  const params = new URLSearchParams();
  if (query.min_discount !== undefined && query.min_discount !== 10) params.set("min_discount", String(query.min_discount));
  if (query.availability && query.availability !== "any") params.set("availability", query.availability);
  if (query.categories && query.categories.length > 0) params.set("categories", query.categories.join(","));
  if (query.seller) params.set("seller", query.seller);
  if (query.page && query.page > 1) params.set("page", String(query.page));
  const qs = params.toString();
  return `/slevy${qs ? `?${qs}` : ""}`;
}

function dealCard(deal: Deal): HTMLElement {
  return h(
    "li",
    { class: "deal-card", "data-slug": deal.slug, "data-seller": deal.seller },
    h("a", { href: `/p/${encodeURIComponent(deal.slug)}`, "data-link": true, class: "deal-name" }, deal.name),
    h("p", { class: "deal-seller" }, `u ${deal.seller}`, deal.is_preorder ? " · předobjednávka" : ""),
    h(
      "p",
      { class: "deal-prices" },
      h("strong", { class: "deal-price" }, formatPrice(deal.price)),
      " ",
      h("s", { class: "deal-prior" }, formatPrice(deal.prior_price)),
      " ",
      h("span", { class: "deal-discount" }, `−${formatPercent(deal.discount_percent ?? 0)}`),
    ),
    h(
      "p",
      { class: "deal-note" },
      `Sleva ${formatPercent(deal.discount_percent ?? 0)} z ${formatPrice(deal.prior_price)} ` +
        "(nejnižší cena za 30 dní před zlevněním), zlevněno " + formatDate(deal.reduced_at),
    ),
    priceBadge(deal.badges),
  );
}

export class DealsView {
  readonly root: HTMLElement = h("section", { class: "deals", "aria-labelledby": "deals-heading" });
  private controller: AbortController | null = null;

  cancel(): void {
    this.controller?.abort();
    this.controller = null;
  }

  async update(search: URLSearchParams): Promise<void> {
    this.cancel();
    const controller = new AbortController();
    this.controller = controller;
    const query = queryFrom(search);
    document.title = "Slevy – pricecat";
    this.root.replaceChildren(
      h("h1", { id: "deals-heading" }, "Slevy"),
      h(
        "p",
        { class: "deals-intro" },
        "Jen skutečná zlevnění: cena pod nejnižší cenou obchodu za 30 dní před zlevněním.",
      ),
      this.filters(query),
      h("p", { class: "loading", role: "status" }, "Načítám slevy…"),
    );
    try {
      const page = await fetchDeals(query, controller.signal);
      if (controller.signal.aborted) return;
      this.root.lastElementChild?.remove();
      if (page.items.length === 0) {
        this.root.append(h("p", { class: "message deals-empty" }, "Žádné slevy neodpovídají filtru."));
        return;
      }
      this.root.append(
        h("p", { class: "deals-total", role: "status" }, `Nalezeno slev: ${page.total}`),
        h("ul", { class: "deal-list", id: "deal-list" }, page.items.map(dealCard)),
        this.pager(query, page.total),
      );
    } catch (error) {
      if (isAbortError(error)) return;
      this.root.lastElementChild?.remove();
      const message = error instanceof ApiError ? error.message : "Slevy se nepodařilo načíst.";
      this.root.append(errorBox(message, () => void this.update(search)));
    }
  }

  private filters(query: DealsQuery): HTMLElement {
    const minDiscount = h(
      "select",
      { name: "min_discount", id: "deals-min-discount" },
      DISCOUNTS.map((d) => h("option", { value: String(d), selected: d === query.min_discount }, `alespoň ${d} %`)),
    );
    const availability = h(
      "select",
      { name: "availability", id: "deals-availability" },
      h("option", { value: "any", selected: query.availability === "any" }, "Skladem i předobjednávky"),
      h("option", { value: "available", selected: query.availability === "available" }, "Skladem"),
      h("option", { value: "preorder", selected: query.availability === "preorder" }, "Předobjednávky"),
    );
    const categories = h("input", {
      name: "categories", id: "deals-categories", type: "text", value: (query.categories ?? []).join(", "),
      placeholder: "např. rodinné hry",
    });
    const seller = h("input", { name: "seller", id: "deals-seller", type: "text", value: query.seller ?? "" });
    const form = h(
      "form",
      { class: "deals-filters", id: "deals-filters" },
      h("label", { for: "deals-min-discount" }, "Sleva"),
      minDiscount,
      h("label", { for: "deals-availability" }, "Dostupnost"),
      availability,
      h("label", { for: "deals-categories" }, "Kategorie"),
      categories,
      h("label", { for: "deals-seller" }, "Obchod"),
      seller,
      h("button", { type: "submit", class: "button" }, "Filtrovat"),
    );
    const apply = (): void => {
      navigate(
        urlFor({
          min_discount: Number(minDiscount.value),
          availability: availability.value as DealsQuery["availability"],
          categories: categories.value.split(",").map((c) => c.trim()).filter(Boolean),
          seller: seller.value.trim() || undefined,
        }),
      );
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      apply();
    });
    minDiscount.addEventListener("change", apply);
    availability.addEventListener("change", apply);
    return form;
  }

  private pager(query: DealsQuery, total: number): HTMLElement {
    const page = query.page ?? 1;
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    return h(
      "nav",
      { class: "pager", "aria-label": "Stránkování slev" },
      page > 1 ? h("a", { href: urlFor({ ...query, page: page - 1 }), "data-link": true, rel: "prev" }, "‹ Předchozí") : null,
      h("span", {}, ` ${page} / ${pages} `),
      page < pages ? h("a", { href: urlFor({ ...query, page: page + 1 }), "data-link": true, rel: "next" }, "Další ›") : null,
    );
  }
}
