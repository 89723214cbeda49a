/** Czech (cs-CZ) formatting of prices, dates and counted nouns. */

const LOCALE = "cs-CZ";
const TIME_ZONE = "Europe/Prague";

const wholeCrowns = new Intl.NumberFormat(LOCALE, {
  style: "currency",
  currency: "CZK",
  minimumFractionDigits: 0,
  maximumFractionDigits: 0,
});
const crownsWithHellers = new Intl.NumberFormat(LOCALE, {
  style: "currency",
  currency: "CZK",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});
const dateFormat = new Intl.DateTimeFormat(LOCALE, {
  day: "numeric",
  month: "numeric",
  year: "numeric",
  timeZone: TIME_ZONE,
});
const dateTimeFormat = new Intl.DateTimeFormat(LOCALE, {
  day: "numeric",
  month: "numeric",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  timeZone: TIME_ZONE,
});
const shortDateFormat = new Intl.DateTimeFormat(LOCALE, {
  day: "numeric",
  month: "numeric",
  timeZone: TIME_ZONE,
});
const integerFormat = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });

/** "1 299 Kč" (hellers only when the price has them: "1 299,50 Kč"). */
export function formatPrice(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return Number.isInteger(value) ? wholeCrowns.format(value) : crownsWithHellers.format(value);
}

export function formatInteger(value: number): string {
  return integerFormat.format(value);
}

function toDate(value: string | number | Date): Date | null {
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "12. 3. 2024" */
export function formatDate(value: string | number | Date | null | undefined): string {
  if (value === null || value === undefined) return "–";
  const date = toDate(value);
  return date ? dateFormat.format(date) : "–";
}

/** "12. 3. 2024 14:05" */
export function formatDateTime(value: string | number | Date | null | undefined): string {
  if (value === null || value === undefined) return "–";
  const date = toDate(value);
  return date ? dateTimeFormat.format(date) : "–";
}

/** "12. 3." */
export function formatShortDate(value: string | number | Date): string {
  const date = toDate(value);
  return date ? shortDateFormat.format(date) : "";
}

/** Czech plural: one (1), few (2–4), many (0, 5+ and fractions). */
export function plural(count: number, one: string, few: string, many: string): string {
  const rule = new Intl.PluralRules(LOCALE).select(count);
  if (rule === "one") return one;
  if (rule === "few") return few;
  return many;
}

/** "Nalezeno 123 her" / "Nalezena 1 hra" / "Nalezeny 3 hry" */
export function foundGames(count: number): string {
  const n = formatInteger(count);
  return plural(count, `Nalezena ${n} hra`, `Nalezeny ${n} hry`, `Nalezeno ${n} her`);
}

/** "1 prodejce" / "3 prodejci" / "5 prodejců" */
export function sellerCount(count: number): string {
  return `${formatInteger(count)} ${plural(count, "prodejce", "prodejci", "prodejců")}`;
}

/** 22 -> "22 %", 16.7 -> "16,7 %" */
export function formatPercent(value: number): string {
  return `${new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 1 }).format(value)}\u00a0%`;
}
