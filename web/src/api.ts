/**
 * The only module that talks to the backend: typed functions per /api/v1 endpoint.
 *
 * - Relative URLs only (same origin as the page); no other host is ever contacted from here.
 * - Numeric fields are normalized to `number | null` (the API may serialize Postgres numerics
 *   as strings).
 * - Every function takes an optional AbortSignal; superseded requests are cancelled by the
 *   caller (see `latest()` for the "only the newest call wins" helper used by search).
 * - Failures are thrown as `ApiError` carrying a Czech, user-facing `message`.
 */

import type { components, operations } from "./api.gen";

const API_BASE = "/api/v1";

// ---- types: generated from the API's OpenAPI document (api/schemas.py -> src/api.gen.ts,
// `npm run gen:api`; scripts/test.sh fails when api.gen.ts is stale). Only the UI's own
// refinements are written here: a product without a name shows its slug.

type Schemas = components["schemas"];
type CatalogParams = NonNullable<operations["get~catalog.catalog"]["parameters"]["query"]>;
type DealsParams = NonNullable<operations["get~deals.deals"]["parameters"]["query"]>;
/** `name` filled in (the slug where the API has none). */
type Named<T extends { name: string | null }> = Omit<T, "name"> & { name: string };

export type Availability = NonNullable<CatalogParams["availability"]>;
export type Sort = NonNullable<CatalogParams["sort"]>;

/** /catalog's query, categories as a list (sent comma-separated). */
export type CatalogQuery = Omit<CatalogParams, "categories"> & { categories?: string[] };

export type CatalogItem = Named<Schemas["CatalogCard"]>;
export type CatalogPage = Omit<Schemas["CatalogPage"], "items"> & { items: CatalogItem[] };

/** [scraped_at (UTC), price, is_available] */
export type PricePoint = Schemas["SellerOffer"]["price_points"][number];
export type SellerOffer = Schemas["SellerOffer"];
export type WindowLow = Schemas["WindowLow"];
export type Discount = Schemas["Discount"];
export type Badge = Schemas["SellerOffer"]["badges"][number];
export type Window = keyof Schemas["WindowLows"];
export const WINDOWS: Window[] = ["30d", "90d", "365d"];

/** /deals's query, categories as a list (sent comma-separated). */
export type DealsQuery = Omit<DealsParams, "categories" | "availability"> & {
  categories?: string[];
  availability?: NonNullable<DealsParams["availability"]>;
};
export type Deal = Named<Schemas["DealItem"]>;
export type DealsPage = Omit<Schemas["DealsPage"], "items"> & { items: Deal[] };

export type Product = Named<Schemas["Product"]>;
export type Suggestion = Named<Schemas["Suggestion"]>;
export type Category = Schemas["CategoryCount"];
export type RecentSnapshot = Schemas["RecentSnapshot"];

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, code: string, message: string, details: unknown = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function isAbortError(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

const PARAMETER_NAMES: Record<string, string> = {
  page: "stránka",
  page_size: "počet na stránku",
  availability: "dostupnost",
  min_price: "cena od",
  max_price: "cena do",
  categories: "kategorie",
  q: "hledaný text",
  sort: "řazení",
  limit: "počet",
  slug: "adresa hry",
};

function parameterFrom(details: unknown): string | null {
  if (details === null || typeof details !== "object") return null;
  const record = details as Record<string, unknown>;
  for (const key of ["parameter", "param", "field", "name"]) {
    const value = record[key];
    if (typeof value === "string") return value;
  }
  if (Array.isArray(details)) {
    for (const entry of details) {
      const found = parameterFrom(entry);
      if (found) return found;
    }
  }
  for (const key of ["parameters", "errors", "fields"]) {
    const found = parameterFrom(record[key]);
    if (found) return found;
  }
  return null;
}

/** Maps an HTTP status / error code to a Czech message for the user. */
export function czechMessage(status: number, code: string, details: unknown): string {
  if (status === 404 || code === "not_found") return "Požadovanou položku jsme nenašli.";
  if (status === 400 || status === 422) {
    const parameter = parameterFrom(details);
    const label = parameter ? (PARAMETER_NAMES[parameter] ?? parameter) : null;
    return label
      ? `Neplatná hodnota filtru „${label}“. Upravte ji prosím a zkuste to znovu.`
      : "Neplatný požadavek. Upravte prosím filtry a zkuste to znovu.";
  }
  if (status === 429) return "Příliš mnoho požadavků. Zkuste to prosím za chvíli.";
  if (status === 503) return "Služba je dočasně nedostupná. Zkuste to prosím za chvíli.";
  if (status >= 500) return "Na serveru došlo k chybě. Zkuste to prosím znovu.";
  return "Požadavek se nepodařilo zpracovat.";
}

type QueryValue = string | number | string[] | undefined | null;

function buildUrl(path: string, query: Record<string, QueryValue> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) {
      if (value.length > 0) params.set(key, value.join(","));
    } else {
      params.set(key, String(value));
    }
  }
  const search = params.toString();
  return `${API_BASE}${path}${search ? `?${search}` : ""}`;
}

/**
 * Same-origin URL of a product's hero image: the API's image proxy, so the browser never loads
 * from a seller's host (`hero_image_url` stays data). `null` when the product has no image
 * (the UI then draws its own placeholder).
 */
export function productImageUrl(slug: string, heroImageUrl: string | null): string | null {
  return heroImageUrl ? `${API_BASE}/images/${encodeURIComponent(slug)}` : null;
}

async function getJson(url: string, signal?: AbortSignal): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, {
      signal,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
  } catch (error) {
    if (isAbortError(error)) throw error;
    throw new ApiError(0, "network", "Nelze se spojit se serverem. Zkontrolujte připojení.");
  }
  let body: unknown = null;
  try {
    body = await response.json();
  } catch (error) {
    if (isAbortError(error)) throw error;
    body = null;
  }
  if (!response.ok) {
    const error = (body as { error?: { code?: unknown; details?: unknown } } | null)?.error;
    const code = typeof error?.code === "string" ? error.code : `http_${response.status}`;
    const details = error?.details ?? null;
    throw new ApiError(response.status, code, czechMessage(response.status, code, details), details);
  }
  if (body === null || typeof body !== "object") {
    throw new ApiError(response.status, "bad_body", "Server vrátil neočekávanou odpověď.");
  }
  return body;
}

// ---- normalization -------------------------------------------------------------------------

type Json = Record<string, unknown>;

function num(value: unknown): number | null {
  if (value === null || value === undefined || value === "") return null;
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

function str(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function items(body: unknown): Json[] {
  const list = (body as { items?: unknown }).items;
  return Array.isArray(list) ? (list as Json[]) : [];
}

function catalogItem(raw: Json): CatalogItem {
  return {
    slug: String(raw.slug),
    name: String(raw.name ?? raw.slug),
    hero_image_url: str(raw.hero_image_url),
    min_price: num(raw.min_price),
    min_price_seller: str(raw.min_price_seller),
    seller_count: num(raw.seller_count) ?? 0,
    is_available: raw.is_available === true,
    is_preorder: raw.is_preorder === true,
    categories: strings(raw.categories),
    last_scraped_at: str(raw.last_scraped_at),
  };
}

function pricePoint(raw: unknown): PricePoint | null {
  if (!Array.isArray(raw) || typeof raw[0] !== "string") return null;
  return [raw[0], num(raw[1]), raw[2] === true];
}

function sellerOffer(raw: Json): SellerOffer {
  const points = Array.isArray(raw.price_points) ? raw.price_points : [];
  return {
    seller: String(raw.seller),
    url: str(raw.url),
    product_codes: strings(raw.product_codes),
    current_price: num(raw.current_price),
    availability_raw: str(raw.availability_raw),
    is_available: raw.is_available === true,
    is_preorder: raw.is_preorder === true,
    min_price: num(raw.min_price),
    max_price: num(raw.max_price),
    last_seen_at: str(raw.last_seen_at),
    price_points: points.map(pricePoint).filter((p): p is PricePoint => p !== null),
    lows: windowLows(raw.lows),
    discount: discount(raw.discount),
    badges: badges(raw.badges),
  };
}

function windowLows(value: unknown): Schemas["WindowLows"] {
  const raw = (value && typeof value === "object" ? value : {}) as Record<string, Json | undefined>;
  const out = {} as Record<Window, WindowLow>;
  for (const w of WINDOWS) out[w] = { price: num(raw[w]?.price), at: str(raw[w]?.at) };
  return out;
}

function marketLows(value: unknown): Schemas["MarketLows"] {
  const raw = (value && typeof value === "object" ? value : {}) as Record<string, Json | undefined>;
  const out = {} as Schemas["MarketLows"];
  for (const w of WINDOWS) {
    out[w] = { price: num(raw[w]?.price), at: str(raw[w]?.at), seller: str(raw[w]?.seller) };
  }
  return out;
}

function discount(value: unknown): Discount | null {
  if (!value || typeof value !== "object") return null;
  const raw = value as Json;
  const prior = num(raw.prior_price);
  const percent = num(raw.percent);
  const reducedAt = str(raw.reduced_at);
  return prior === null || percent === null || reducedAt === null
    ? null
    : { prior_price: prior, percent, reduced_at: reducedAt };
}

const BADGES: Badge[] = ["lowest_ever", "lowest_365d", "lowest_90d", "lowest_30d"];

function badges(value: unknown): Badge[] {
  return strings(value).filter((b): b is Badge => (BADGES as string[]).includes(b));
}

function deal(raw: Json): Deal {
  return {
    slug: String(raw.slug),
    name: String(raw.name ?? raw.slug),
    seller: String(raw.seller),
    price: num(raw.price) ?? 0,
    prior_price: num(raw.prior_price) ?? 0,
    discount_percent: num(raw.discount_percent) ?? 0,
    reduced_at: String(raw.reduced_at ?? ""),
    is_available: raw.is_available === true,
    is_preorder: raw.is_preorder === true,
    badges: badges(raw.badges),
  };
}

/** Catalog-card badges of the given slugs (only slugs that have one are returned). */
export async function fetchSlugBadges(slugs: string[], signal?: AbortSignal): Promise<Map<string, Badge[]>> {
  const out = new Map<string, Badge[]>();
  if (slugs.length === 0) return out;
  const params = new URLSearchParams({ slugs: [...new Set(slugs)].sort().join(",") });
  const body = await getJson(`${API_BASE}/deals/badges?${params.toString()}`, signal);
  for (const raw of items(body)) out.set(String(raw.slug), badges(raw.badges));
  return out;
}

export async function fetchDeals(query: DealsQuery, signal?: AbortSignal): Promise<DealsPage> {
  const params = new URLSearchParams();
  if (query.page && query.page > 1) params.set("page", String(query.page));
  if (query.page_size) params.set("page_size", String(query.page_size));
  if (query.min_discount !== undefined) params.set("min_discount", String(query.min_discount));
  if (query.availability && query.availability !== "any") params.set("availability", query.availability);
  if (query.categories && query.categories.length > 0) params.set("categories", query.categories.join(","));
  if (query.seller) params.set("seller", query.seller);
  const qs = params.toString();
  const body = (await getJson(`${API_BASE}/deals${qs ? `?${qs}` : ""}`, signal)) as Json;
  return {
    items: items(body).map(deal),
    page: num(body.page) ?? 1,
    page_size: num(body.page_size) ?? 24,
    total: num(body.total) ?? 0,
  };
}

// ---- endpoints -----------------------------------------------------------------------------

export async function fetchCatalog(query: CatalogQuery, signal?: AbortSignal): Promise<CatalogPage> {
  const body = (await getJson(
    buildUrl("/catalog", {
      page: query.page,
      page_size: query.page_size,
      availability: query.availability === "any" ? undefined : query.availability,
      min_price: query.min_price,
      max_price: query.max_price,
      categories: query.categories,
      q: query.q,
      sort: query.sort,
    }),
    signal,
  )) as Json;
  return {
    items: items(body).map(catalogItem),
    page: num(body.page) ?? query.page ?? 1,
    page_size: num(body.page_size) ?? query.page_size ?? 24,
    total: num(body.total) ?? 0,
    total_estimate: num(body.total_estimate) ?? 0,
  };
}

export async function fetchProduct(slug: string, signal?: AbortSignal): Promise<Product> {
  const body = (await getJson(buildUrl(`/products/${encodeURIComponent(slug)}`), signal)) as Json;
  const sellers = Array.isArray(body.sellers) ? (body.sellers as Json[]) : [];
  return {
    slug: str(body.slug) ?? slug,
    name: String(body.name ?? slug),
    hero_image_url: str(body.hero_image_url),
    description: str(body.description),
    categories: strings(body.categories),
    min_price: num(body.min_price),
    min_price_seller: str(body.min_price_seller),
    lowest_price_ever: num(body.lowest_price_ever),
    lowest_price_ever_at: str(body.lowest_price_ever_at),
    seller_count: num(body.seller_count) ?? sellers.length,
    is_available: body.is_available === true,
    is_preorder: body.is_preorder === true,
    first_seen_at: str(body.first_seen_at),
    last_scraped_at: str(body.last_scraped_at),
    market_lows: marketLows(body.market_lows),
    sellers: sellers.map(sellerOffer),
  };
}

export async function fetchSuggestions(
  q: string,
  options: { availability?: Availability; limit?: number } = {},
  signal?: AbortSignal,
): Promise<Suggestion[]> {
  const body = await getJson(
    buildUrl("/search/suggest", {
      q,
      availability: options.availability === "any" ? undefined : options.availability,
      limit: options.limit,
    }),
    signal,
  );
  return items(body).map((raw) => ({
    slug: String(raw.slug),
    name: String(raw.name ?? raw.slug),
    hero_image_url: str(raw.hero_image_url),
    min_price: num(raw.min_price),
    is_available: raw.is_available === true,
    is_preorder: raw.is_preorder === true,
  }));
}

export async function fetchCategories(signal?: AbortSignal): Promise<Category[]> {
  const body = await getJson(buildUrl("/meta/categories"), signal);
  return items(body).map((raw) => ({ name: String(raw.name), count: num(raw.count) ?? 0 }));
}

export async function fetchRecent(limit = 100, signal?: AbortSignal): Promise<RecentSnapshot[]> {
  const body = await getJson(buildUrl("/snapshots/recent", { limit }), signal);
  return items(body).map((raw) => ({
    slug: str(raw.slug),
    seller: str(raw.seller),
    price: num(raw.price),
    previous_price: num(raw.previous_price),
    availability_raw: str(raw.availability_raw),
    is_available: raw.is_available === true,
    is_preorder: raw.is_preorder === true,
    scraped_at: str(raw.scraped_at),
  }));
}

/**
 * Wraps an endpoint so that each call aborts the previous, still-running one: only the
 * newest call can resolve (superseded calls reject with an AbortError).
 */
export function latest<A extends unknown[], R>(
  fn: (...args: [...A, AbortSignal]) => Promise<R>,
): { run: (...args: A) => Promise<R>; cancel: () => void } {
  let controller: AbortController | null = null;
  return {
    run: (...args: A) => {
      controller?.abort();
      controller = new AbortController();
      return fn(...args, controller.signal);
    },
    cancel: () => {
      controller?.abort();
      controller = null;
    },
  };
}
