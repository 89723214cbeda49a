/**
 * Header search box (ARIA combobox): suggestions from /search/suggest, debounced ~150 ms,
 * superseded requests aborted; ↑/↓ move, Enter opens the selected game (or searches the
 * catalog when nothing is selected), Escape closes.
 */

import {
  ApiError,
  fetchSuggestions,
  isAbortError,
  latest,
  productImageUrl,
  type Suggestion,
} from "./api";
import { catalogUrl, parseCatalogState } from "./catalogState";
import { availabilityBadge, productImage } from "./components";
import { clear, h } from "./dom";
import { formatPrice } from "./format";
import { currentRoute, navigate } from "./router";

const DEBOUNCE_MS = 150;
const LIMIT = 8;

export function setupSearch(): { syncFromRoute: () => void } {
  const form = document.getElementById("search-form") as HTMLFormElement;
  const input = document.getElementById("search-input") as HTMLInputElement;
  const list = document.getElementById("search-suggestions") as HTMLUListElement;
  const suggest = latest(fetchSuggestions);

  let items: Suggestion[] = [];
  let active = -1;
  let timer: number | undefined;
  let lastQuery = "";

  function close(): void {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function setActive(index: number): void {
    active = index;
    list.querySelectorAll<HTMLElement>('[role="option"]').forEach((option, i) => {
      const selected = i === index;
      option.setAttribute("aria-selected", String(selected));
      option.classList.toggle("active", selected);
      if (selected) {
        input.setAttribute("aria-activedescendant", option.id);
        option.scrollIntoView({ block: "nearest" });
      }
    });
    if (index < 0) input.removeAttribute("aria-activedescendant");
  }

  function open(slug: string): void {
    close();
    input.blur();
    navigate(`/p/${encodeURIComponent(slug)}`);
  }

  function showMessage(text: string, kind: "empty" | "error"): void {
    clear(list);
    items = [];
    list.append(h("li", { class: `suggestion-message suggestion-${kind}`, role: "presentation" }, text));
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    active = -1;
  }

  function render(query: string): void {
    clear(list);
    if (items.length === 0) {
      showMessage(`Pro „${query}“ jsme nic nenašli.`, "empty");
      return;
    }
    items.forEach((item, index) => {
      const option = h(
        "li",
        {
          id: `suggestion-${index}`,
          role: "option",
          class: "suggestion",
          "aria-selected": "false",
          "data-slug": item.slug,
        },
        productImage(productImageUrl(item.slug, item.hero_image_url), item.name, "suggestion-image", { width: 40, height: 40 }),
        h("span", { class: "suggestion-name" }, item.name),
        h(
          "span",
          { class: "suggestion-meta" },
          item.min_price === null ? "" : `od ${formatPrice(item.min_price)}`,
          " ",
          availabilityBadge(item),
        ),
      );
      // mousedown keeps focus in the input (no blur-close before the click lands).
      option.addEventListener("mousedown", (event) => event.preventDefault());
      option.addEventListener("click", () => open(item.slug));
      option.addEventListener("mousemove", () => {
        if (active !== index) setActive(index);
      });
      list.append(option);
    });
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    setActive(-1);
  }

  async function load(query: string): Promise<void> {
    try {
      items = await suggest.run(query, { limit: LIMIT });
      if (input.value.trim() !== query) return;
      render(query);
    } catch (error) {
      if (isAbortError(error)) return;
      showMessage(
        error instanceof ApiError ? error.message : "Návrhy se nepodařilo načíst.",
        "error",
      );
    }
  }

  input.addEventListener("input", () => {
    const query = input.value.trim().slice(0, 100);
    window.clearTimeout(timer);
    if (query === lastQuery && !list.hidden) return;
    lastQuery = query;
    if (query === "") {
      suggest.cancel();
      items = [];
      clear(list);
      close();
      return;
    }
    timer = window.setTimeout(() => void load(query), DEBOUNCE_MS);
  });

  input.addEventListener("keydown", (event) => {
    const count = items.length;
    switch (event.key) {
      case "ArrowDown":
        if (list.hidden && count > 0) {
          list.hidden = false;
          input.setAttribute("aria-expanded", "true");
        }
        if (count > 0) {
          event.preventDefault();
          setActive(active + 1 >= count ? 0 : active + 1);
        }
        break;
      case "ArrowUp":
        if (count > 0 && !list.hidden) {
          event.preventDefault();
          setActive(active <= 0 ? count - 1 : active - 1);
        }
        break;
      case "Escape":
        if (!list.hidden) {
          event.preventDefault();
          close();
        }
        break;
      case "Enter":
        if (!list.hidden && active >= 0 && active < count) {
          event.preventDefault();
          open(items[active].slug);
        }
        break;
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    window.clearTimeout(timer);
    suggest.cancel();
    close();
    const q = input.value.trim().slice(0, 100);
    // Keep the current catalog filters, start at page 1 with the default sort for the query.
    const route = currentRoute();
    const base = parseCatalogState(
      route.name === "catalog" ? route.search : new URLSearchParams(),
    );
    navigate(catalogUrl({ ...base, q, sort: null, page: 1 }));
  });

  input.addEventListener("blur", () => window.setTimeout(close, 100));
  input.addEventListener("focus", () => {
    if (items.length > 0 && input.value.trim() === lastQuery && lastQuery !== "") render(lastQuery);
  });

  return {
    syncFromRoute: () => {
      const route = currentRoute();
      const q = route.name === "catalog" ? (route.search.get("q") ?? "").trim() : "";
      if (document.activeElement !== input) {
        input.value = q;
        lastQuery = q;
      }
      window.clearTimeout(timer);
      suggest.cancel();
      close();
    },
  };
}
