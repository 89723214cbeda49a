/** Catalog page `/`: filters (availability, price, categories), sort, card grid, pagination. */

import {
  ApiError,
  type Availability,
  type CatalogItem,
  type CatalogPage,
  type Category,
  fetchCatalog,
  fetchCategories,
  fetchSlugBadges,
  isAbortError,
  latest,
  productImageUrl,
  type Sort,
} from "./api";
import {
  type CatalogState,
  catalogUrl,
  effectiveSort,
  hasFilters,
  parseCatalogState,
  toQuery,
} from "./catalogState";
import { availabilityBadge, errorBox, priceBadge, productImage } from "./components";
import { announce, clear, h } from "./dom";
import { formatInteger, formatPrice, foundGames, sellerCount } from "./format";
import { navigate } from "./router";

const AVAILABILITY_OPTIONS: [Availability, string][] = [
  ["any", "Vše"],
  ["available", "Skladem"],
  ["preorder", "Předobjednávka"],
  ["unavailable", "Nedostupné"],
];

const SORT_OPTIONS: [Sort, string][] = [
  ["relevance", "Nejrelevantnější"],
  ["name", "Podle názvu"],
  ["price_asc", "Od nejlevnějších"],
  ["price_desc", "Od nejdražších"],
  ["newest", "Nejnovější"],
];

const CATEGORY_FILTER_THRESHOLD = 12;

let categoriesPromise: Promise<Category[]> | null = null;

function loadCategories(): Promise<Category[]> {
  categoriesPromise ??= fetchCategories().catch((error: unknown) => {
    categoriesPromise = null;
    throw error;
  });
  return categoriesPromise;
}

function card(item: CatalogItem): HTMLElement {
  const href = `/p/${encodeURIComponent(item.slug)}`;
  return h(
    "li",
    { class: "card", "data-slug": item.slug },
    h(
      "a",
      { href, "data-link": true, class: "card-link" },
      h("div", { class: "card-media" }, productImage(productImageUrl(item.slug, item.hero_image_url), item.name, "card-image")),
      h(
        "div",
        { class: "card-body" },
        h("h2", { class: "card-title" }, item.name),
        item.min_price === null
          ? h("p", { class: "card-price card-price-none" }, "Cena neuvedena")
          : h("p", { class: "card-price" }, `od ${formatPrice(item.min_price)}`),
        h(
          "p",
          { class: "card-meta" },
          availabilityBadge(item),
          h("span", { class: "card-sellers" }, sellerCount(item.seller_count)),
        ),
      ),
    ),
  );
}

/** Price badges ("nejnižší cena za 90 dní") on the cards, once they arrive; optional extras:
 * a failure leaves the cards as they are. */
async function addBadges(grid: HTMLElement, slugs: string[]): Promise<void> {
  let found: Map<string, string[]>;
  try {
    found = await fetchSlugBadges(slugs);
  } catch {
    return;
  }
  for (const element of grid.querySelectorAll<HTMLElement>(".card")) {
    const badge = priceBadge(found.get(element.dataset.slug ?? "") ?? []);
    if (badge) element.querySelector(".card-meta")?.append(badge);
  }
}

/** Page numbers to show: first, last, current ±1, with null for gaps. */
function pageWindow(current: number, last: number): (number | null)[] {
  const pages = new Set([1, last, current - 1, current, current + 1]);
  const sorted = [...pages].filter((p) => p >= 1 && p <= last).sort((a, b) => a - b);
  const result: (number | null)[] = [];
  sorted.forEach((p, i) => {
    if (i > 0 && p - sorted[i - 1] > 1) result.push(null);
    result.push(p);
  });
  return result;
}

export class CatalogView {
  readonly root: HTMLElement;
  private state: CatalogState = parseCatalogState(new URLSearchParams());
  private readonly catalog = latest(fetchCatalog);
  private readonly form: HTMLFormElement;
  private readonly availabilityInputs: HTMLInputElement[] = [];
  private readonly minInput: HTMLInputElement;
  private readonly maxInput: HTMLInputElement;
  private readonly priceError: HTMLElement;
  private readonly categoryList: HTMLElement;
  private readonly categoryFilter: HTMLInputElement;
  private readonly sortSelect: HTMLSelectElement;
  private readonly heading: HTMLElement;
  private readonly activeFilters: HTMLElement;
  private readonly results: HTMLElement;
  private readonly pagination: HTMLElement;
  private categories: Category[] = [];
  private categoryError: string | null = null;
  private requestCount = 0;

  constructor() {
    this.availabilityInputs = AVAILABILITY_OPTIONS.map(([value]) =>
      h("input", { type: "radio", name: "availability", value }),
    );
    this.minInput = h("input", {
      id: "filter-min-price",
      name: "min_price",
      type: "number",
      min: 0,
      step: 1,
      inputmode: "numeric",
      placeholder: "0",
    });
    this.maxInput = h("input", {
      id: "filter-max-price",
      name: "max_price",
      type: "number",
      min: 0,
      step: 1,
      inputmode: "numeric",
      placeholder: "∞",
    });
    this.priceError = h("p", { class: "field-error", role: "alert", hidden: true });
    this.categoryList = h("ul", { class: "category-list", id: "category-list" });
    this.categoryFilter = h("input", {
      id: "category-filter",
      type: "search",
      placeholder: "Najít kategorii…",
      hidden: true,
    });
    this.sortSelect = h(
      "select",
      { id: "sort-select", name: "sort" },
      SORT_OPTIONS.map(([value, label]) => h("option", { value }, label)),
    );
    this.heading = h("h1", { class: "results-count", id: "results-count" }, "Načítám…");
    this.activeFilters = h("div", { class: "active-filters" });
    this.results = h("div", { class: "results-body", "aria-live": "polite" });
    this.pagination = h("nav", { class: "pagination", "aria-label": "Stránkování" });

    this.form = h(
      "form",
      { class: "filters-form", "aria-label": "Filtry" },
      h(
        "fieldset",
        { class: "filter-group" },
        h("legend", {}, "Dostupnost"),
        AVAILABILITY_OPTIONS.map(([, label], i) =>
          h("label", { class: "radio" }, this.availabilityInputs[i], " ", label),
        ),
      ),
      h(
        "fieldset",
        { class: "filter-group" },
        h("legend", {}, "Cena (Kč)"),
        h(
          "div",
          { class: "price-range" },
          h("label", { for: "filter-min-price" }, "Od"),
          this.minInput,
          h("label", { for: "filter-max-price" }, "Do"),
          this.maxInput,
        ),
        this.priceError,
        h("button", { type: "submit", class: "button button-small" }, "Použít cenu"),
      ),
      h(
        "fieldset",
        { class: "filter-group" },
        h("legend", {}, "Kategorie"),
        h("label", { class: "visually-hidden", for: "category-filter" }, "Najít kategorii"),
        this.categoryFilter,
        this.categoryList,
      ),
      h("a", { href: "/", "data-link": true, class: "reset-filters" }, "Zrušit všechny filtry"),
    );

    this.root = h(
      "div",
      { class: "catalog" },
      h(
        "aside",
        { class: "filters" },
        h(
          "details",
          { class: "filters-details", open: window.matchMedia("(min-width: 48rem)").matches },
          h("summary", {}, "Filtry"),
          this.form,
        ),
      ),
      h(
        "section",
        { class: "results", "aria-labelledby": "results-count" },
        h(
          "div",
          { class: "toolbar" },
          this.heading,
          h("label", { class: "sort", for: "sort-select" }, "Řadit: "),
          this.sortSelect,
        ),
        this.activeFilters,
        this.results,
        this.pagination,
      ),
    );

    for (const input of this.availabilityInputs) {
      input.addEventListener("change", () => {
        if (input.checked) this.go({ availability: input.value as Availability });
      });
    }
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.applyPrice();
    });
    this.minInput.addEventListener("change", () => this.applyPrice());
    this.maxInput.addEventListener("change", () => this.applyPrice());
    this.sortSelect.addEventListener("change", () => {
      this.go({ sort: this.sortSelect.value as Sort });
    });
    this.categoryFilter.addEventListener("input", () => this.renderCategories());
  }

  /** Navigates to the state with `patch` applied; filters reset the page to 1. */
  private go(patch: Partial<CatalogState>): void {
    const next: CatalogState = { ...this.state, page: 1, ...patch };
    if (next.sort === (next.q ? "relevance" : "name")) next.sort = null;
    navigate(catalogUrl(next), { scroll: "page" in patch });
  }

  private applyPrice(): void {
    const read = (input: HTMLInputElement): number | null | "invalid" => {
      const raw = input.value.trim();
      if (raw === "") return null;
      const n = Number(raw.replace(",", "."));
      return Number.isFinite(n) && n >= 0 ? n : "invalid";
    };
    const min = read(this.minInput);
    const max = read(this.maxInput);
    let problem: string | null = null;
    if (min === "invalid" || max === "invalid") problem = "Zadejte cenu jako nezáporné číslo.";
    else if (min !== null && max !== null && min > max) problem = "Cena „od“ je vyšší než cena „do“.";
    this.priceError.hidden = problem === null;
    this.priceError.textContent = problem ?? "";
    if (problem !== null || min === "invalid" || max === "invalid") return;
    if (min === this.state.minPrice && max === this.state.maxPrice) return;
    this.go({ minPrice: min, maxPrice: max });
  }

  private toggleCategory(name: string, checked: boolean): void {
    const categories = checked
      ? [...this.state.categories, name]
      : this.state.categories.filter((c) => c !== name);
    this.go({ categories: [...new Set(categories)] });
  }

  private renderCategories(): void {
    clear(this.categoryList);
    if (this.categoryError) {
      this.categoryList.append(h("li", { class: "field-error" }, this.categoryError));
      return;
    }
    this.categoryFilter.hidden = this.categories.length <= CATEGORY_FILTER_THRESHOLD;
    const needle = this.categoryFilter.value.trim().toLocaleLowerCase("cs");
    const selected = new Set(this.state.categories);
    // Selected categories first (including ones the list does not know), then by count.
    const known = new Map(this.categories.map((c) => [c.name, c.count]));
    const entries: [string, number | null][] = [
      ...this.state.categories.map((name): [string, number | null] => [name, known.get(name) ?? null]),
      ...this.categories
        .filter((c) => !selected.has(c.name))
        .map((c): [string, number | null] => [c.name, c.count]),
    ];
    entries.forEach(([name, count], index) => {
      if (needle && !selected.has(name) && !name.toLocaleLowerCase("cs").includes(needle)) return;
      const id = `category-${index}`;
      const checkbox = h("input", {
        type: "checkbox",
        id,
        name: "categories",
        value: name,
        checked: selected.has(name),
      });
      checkbox.addEventListener("change", () => this.toggleCategory(name, checkbox.checked));
      this.categoryList.append(
        h(
          "li",
          {},
          h(
            "label",
            { for: id, class: "checkbox" },
            checkbox,
            h("span", { class: "category-name" }, name),
            count === null ? null : h("span", { class: "category-count" }, formatInteger(count)),
          ),
        ),
      );
    });
  }

  private syncControls(): void {
    const state = this.state;
    for (const input of this.availabilityInputs) input.checked = input.value === state.availability;
    if (document.activeElement !== this.minInput) {
      this.minInput.value = state.minPrice === null ? "" : String(state.minPrice);
    }
    if (document.activeElement !== this.maxInput) {
      this.maxInput.value = state.maxPrice === null ? "" : String(state.maxPrice);
    }
    this.priceError.hidden = true;
    const relevance = this.sortSelect.querySelector<HTMLOptionElement>('option[value="relevance"]');
    if (relevance) relevance.hidden = relevance.disabled = state.q === "";
    this.sortSelect.value = effectiveSort(state);
    this.renderCategories();

    clear(this.activeFilters);
    if (state.q) {
      this.activeFilters.append(
        h(
          "p",
          { class: "query-note" },
          "Výsledky hledání pro „",
          h("strong", {}, state.q),
          "“ ",
          h("a", { href: catalogUrl({ ...state, q: "", sort: null, page: 1 }), "data-link": true }, "zrušit hledání"),
        ),
      );
    }
  }

  private renderPage(data: CatalogPage): void {
    const state = this.state;
    this.heading.textContent = foundGames(data.total);
    this.heading.dataset.total = String(data.total);
    clear(this.results);
    clear(this.pagination);
    if (data.items.length === 0) {
      this.results.append(
        h(
          "div",
          { class: "message" },
          h(
            "p",
            {},
            data.total > 0
              ? "Na této stránce už nic není."
              : hasFilters(state)
                ? "Žádná hra neodpovídá zvoleným filtrům."
                : "Katalog je zatím prázdný.",
          ),
          hasFilters(state) || data.total > 0
            ? h("a", { href: "/", "data-link": true, class: "button" }, "Zobrazit celý katalog")
            : null,
        ),
      );
    } else {
      const grid = h("ul", { class: "grid", id: "catalog-grid" }, data.items.map(card));
      this.results.append(grid);
      void addBadges(grid, data.items.map((item) => item.slug));
    }
    const lastPage = Math.max(1, Math.ceil(data.total / data.page_size));
    if (lastPage > 1 || state.page > 1) {
      const link = (page: number, label: string, attrs: Record<string, string> = {}) =>
        h("a", { href: catalogUrl({ ...state, page }), "data-link": true, class: "page-link", ...attrs }, label);
      this.pagination.append(
        state.page > 1
          ? link(Math.min(state.page - 1, lastPage), "‹ Předchozí", { rel: "prev", "aria-label": "Předchozí stránka" })
          : h("span", { class: "page-link disabled", "aria-hidden": "true" }, "‹ Předchozí"),
        h(
          "ol",
          { class: "page-list" },
          pageWindow(Math.min(state.page, lastPage), lastPage).map((page) =>
            h(
              "li",
              {},
              page === null
                ? h("span", { class: "page-gap", "aria-hidden": "true" }, "…")
                : page === state.page
                  ? h("span", { class: "page-link current", "aria-current": "page" }, String(page))
                  : link(page, String(page), { "aria-label": `Stránka ${page}` }),
            ),
          ),
        ),
        state.page < lastPage
          ? link(state.page + 1, "Další ›", { rel: "next", "aria-label": "Další stránka" })
          : h("span", { class: "page-link disabled", "aria-hidden": "true" }, "Další ›"),
        h("p", { class: "page-info" }, `Strana ${formatInteger(state.page)} z ${formatInteger(lastPage)}`),
      );
    }
    announce(foundGames(data.total));
  }

  /** Renders the state of the current URL. */
  async update(search: URLSearchParams): Promise<void> {
    this.state = parseCatalogState(search);
    document.title = this.state.q ? `Hledání „${this.state.q}“ – pricecat` : "pricecat – ceny deskových her";
    this.syncControls();
    if (this.categories.length === 0 && !this.categoryError) {
      loadCategories()
        .then((categories) => {
          this.categories = categories;
          this.categoryError = null;
          this.renderCategories();
        })
        .catch((error: unknown) => {
          if (isAbortError(error)) return;
          this.categoryError = error instanceof ApiError ? error.message : "Kategorie se nepodařilo načíst.";
          this.renderCategories();
        });
    }
    const request = ++this.requestCount;
    this.results.setAttribute("aria-busy", "true");
    this.root.classList.add("loading");
    try {
      const data = await this.catalog.run(toQuery(this.state));
      this.renderPage(data);
    } catch (error) {
      if (isAbortError(error)) return;
      const message = error instanceof ApiError ? error.message : "Katalog se nepodařilo načíst.";
      this.heading.textContent = "Katalog";
      clear(this.results);
      clear(this.pagination);
      this.results.append(errorBox(message, () => void this.update(search)));
      announce(message);
    } finally {
      if (request === this.requestCount) {
        this.results.removeAttribute("aria-busy");
        this.root.classList.remove("loading");
      }
    }
  }

  cancel(): void {
    this.catalog.cancel();
  }
}
