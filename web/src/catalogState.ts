/** Catalog filter state <-> URL query string (the URL is the single source of truth). */

import type { Availability, CatalogQuery, Sort } from "./api";

export const DEFAULT_PAGE_SIZE = 24;

export interface CatalogState {
  page: number;
  pageSize: number;
  availability: Availability;
  minPrice: number | null;
  maxPrice: number | null;
  categories: string[];
  q: string;
  /** null = the default (relevance with q, name without). */
  sort: Sort | null;
}

const AVAILABILITIES: Availability[] = ["any", "available", "preorder", "unavailable"];
const SORTS: Sort[] = ["name", "price_asc", "price_desc", "newest", "relevance"];

function positiveInt(value: string | null, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!value || !/^\d+$/.test(value)) return fallback;
  const n = Number(value);
  return n >= 1 && n <= max ? n : fallback;
}

function price(value: string | null): number | null {
  if (!value) return null;
  const n = Number(value.replace(",", "."));
  return Number.isFinite(n) && n >= 0 ? n : null;
}

export function parseCatalogState(search: URLSearchParams): CatalogState {
  const availability = search.get("availability") as Availability | null;
  const sort = search.get("sort") as Sort | null;
  const q = (search.get("q") ?? "").trim().slice(0, 100);
  const categories = (search.get("categories") ?? "")
    .split(",")
    .map((c) => c.trim())
    .filter((c, i, all) => c !== "" && all.indexOf(c) === i);
  return {
    page: positiveInt(search.get("page"), 1),
    pageSize: positiveInt(search.get("page_size"), DEFAULT_PAGE_SIZE, 100),
    availability: availability && AVAILABILITIES.includes(availability) ? availability : "any",
    minPrice: price(search.get("min_price")),
    maxPrice: price(search.get("max_price")),
    categories,
    q,
    sort: sort && SORTS.includes(sort) && !(sort === "relevance" && !q) ? sort : null,
  };
}

/** Query string for the state, defaults omitted, stable parameter order ("" for no filters). */
export function catalogSearch(state: CatalogState): string {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  if (state.availability !== "any") params.set("availability", state.availability);
  if (state.minPrice !== null) params.set("min_price", String(state.minPrice));
  if (state.maxPrice !== null) params.set("max_price", String(state.maxPrice));
  if (state.categories.length > 0) params.set("categories", state.categories.join(","));
  if (state.sort) params.set("sort", state.sort);
  if (state.pageSize !== DEFAULT_PAGE_SIZE) params.set("page_size", String(state.pageSize));
  if (state.page > 1) params.set("page", String(state.page));
  const search = params.toString();
  return search ? `?${search}` : "";
}

export function catalogUrl(state: CatalogState): string {
  return `/${catalogSearch(state)}`;
}

export function effectiveSort(state: CatalogState): Sort {
  return state.sort ?? (state.q ? "relevance" : "name");
}

export function toQuery(state: CatalogState): CatalogQuery {
  return {
    page: state.page,
    page_size: state.pageSize,
    availability: state.availability,
    min_price: state.minPrice ?? undefined,
    max_price: state.maxPrice ?? undefined,
    categories: state.categories,
    q: state.q || undefined,
    sort: state.sort ?? undefined,
  };
}

export function hasFilters(state: CatalogState): boolean {
  return (
    state.q !== "" ||
    state.availability !== "any" ||
    state.minPrice !== null ||
    state.maxPrice !== null ||
    state.categories.length > 0
  );
}
