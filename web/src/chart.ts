/**
 * Price-history chart (uPlot): one step line per seller from its `price_points`, plus the
 * lowest price across sellers at every moment. Legend toggles series; the tooltip lists the
 * sellers at the cursor, cheapest first.
 *
 * The drawn series are exposed for tests and tools on the container element
 * (`data-series` = JSON list of labels, `data-seller-series` = number of seller lines) and on
 * `window.__pricecatChart`.
 */

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import type { SellerOffer } from "./api";
import { append, h } from "./dom";
import { formatDate, formatPrice, formatShortDate } from "./format";

export const LOWEST_LABEL = "Nejnižší cena";

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
const LOWEST_COLOR = "#111827";
const TIME_ZONE = "Europe/Prague";

export interface ChartSeries {
  label: string;
  /** y value per x index (null = no price known then) */
  values: (number | null)[];
  /** availability per x index (for the tooltip) */
  available: (boolean | null)[];
}

export interface ChartModel {
  /** x values: unix seconds, ascending, unique */
  times: number[];
  sellers: ChartSeries[];
  lowest: (number | null)[];
}

declare global {
  interface Window {
    __pricecatChart?: { labels: string[]; sellerSeries: number; points: number } | null;
  }
}

/**
 * Builds aligned step data: each seller's last known price is carried forward from its first
 * point until the newest point of any seller (its price holds until the next change).
 * `lowest` is the minimum over sellers that are available at that moment, or over all sellers
 * with a price when none is available.
 */
export function buildChartModel(sellers: SellerOffer[]): ChartModel {
  const parsed = sellers.map((s) => ({
    label: s.seller,
    points: s.price_points
      .map(([at, price, available]) => ({ t: Math.floor(Date.parse(at) / 1000), price, available }))
      .filter((p) => Number.isFinite(p.t))
      .sort((a, b) => a.t - b.t),
  }));
  const times = [...new Set(parsed.flatMap((s) => s.points.map((p) => p.t)))].sort((a, b) => a - b);
  const series: ChartSeries[] = parsed
    .filter((s) => s.points.length > 0)
    .map((s) => {
      const values: (number | null)[] = [];
      const available: (boolean | null)[] = [];
      let j = -1;
      for (const t of times) {
        while (j + 1 < s.points.length && s.points[j + 1].t <= t) j++;
        values.push(j >= 0 ? s.points[j].price : null);
        available.push(j >= 0 ? s.points[j].available : null);
      }
      return { label: s.label, values, available };
    });
  const lowest = times.map((_, i) => {
    const priced = series.filter((s) => s.values[i] !== null);
    const pool = priced.some((s) => s.available[i]) ? priced.filter((s) => s.available[i]) : priced;
    return pool.length > 0 ? Math.min(...pool.map((s) => s.values[i] as number)) : null;
  });
  return { times, sellers: series, lowest };
}

function tooltipPlugin(model: ChartModel, tooltip: HTMLElement): uPlot.Plugin {
  return {
    hooks: {
      setCursor: (u: uPlot) => {
        const idx = u.cursor.idx;
        const left = u.cursor.left ?? -1;
        if (idx === null || idx === undefined || left < 0) {
          tooltip.hidden = true;
          return;
        }
        const rows = model.sellers
          .map((s, i) => ({ s, i, value: s.values[idx], available: s.available[idx] }))
          .filter((r) => r.value !== null && u.series[r.i + 1]?.show !== false)
          .sort((a, b) => (a.value as number) - (b.value as number));
        tooltip.replaceChildren();
        append(tooltip, [
          h("p", { class: "chart-tooltip-date" }, formatDate(u.posToVal(left, "x") * 1000)),
          h(
            "ol",
            {},
            rows.map((r) =>
              h(
                "li",
                {},
                h("span", { class: "swatch", style: `background:${PALETTE[r.i % PALETTE.length]}` }),
                h("span", { class: "chart-tooltip-seller" }, r.s.label),
                h("span", { class: "chart-tooltip-price" }, formatPrice(r.value)),
                r.available ? null : h("span", { class: "chart-tooltip-note" }, " (nedostupné)"),
              ),
            ),
          ),
          model.lowest[idx] === null
            ? null
            : h("p", { class: "chart-tooltip-lowest" }, `${LOWEST_LABEL}: ${formatPrice(model.lowest[idx])}`),
        ]);
        tooltip.hidden = false;
        const overLeft = u.over.offsetLeft;
        const overTop = u.over.offsetTop;
        const width = tooltip.offsetWidth;
        const x = left + overLeft + 12 + width > u.over.offsetWidth + overLeft
          ? left + overLeft - width - 12
          : left + overLeft + 12;
        tooltip.style.transform = `translate(${Math.max(0, x)}px, ${overTop + 8}px)`;
      },
    },
  };
}

export interface PriceChart {
  element: HTMLElement;
  destroy: () => void;
}

/** Renders the chart into a new element; call `destroy()` when the page goes away. */
export function priceChart(sellers: SellerOffer[], productName: string): PriceChart {
  const model = buildChartModel(sellers);
  const labels = [...model.sellers.map((s) => s.label), LOWEST_LABEL];
  const container = h("div", {
    class: "price-chart",
    id: "price-chart",
    role: "figure",
    "aria-label": `Graf vývoje cen hry ${productName}: ${model.sellers.length} prodejců a nejnižší cena`,
    "data-series": JSON.stringify(labels),
    "data-seller-series": String(model.sellers.length),
    "data-points": String(model.times.length),
  });
  const tooltip = h("div", { class: "chart-tooltip", hidden: true, "aria-hidden": "true" });
  container.append(tooltip);

  if (model.times.length === 0) {
    container.append(h("p", { class: "message" }, "Historie cen zatím není k dispozici."));
    window.__pricecatChart = { labels: [], sellerSeries: 0, points: 0 };
    return { element: container, destroy: () => undefined };
  }

  const stepped = uPlot.paths.stepped?.({ align: 1 });
  const options: uPlot.Options = {
    width: 600,
    height: 320,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), TIME_ZONE),
    cursor: {
      points: { size: 7 },
      drag: { x: true, y: false },
      // Step lines: the value at time t is the last point at or before t (never the next one).
      dataIdx: (u, _seriesIdx, closestIdx, xValue) => {
        const xs = u.data[0];
        let i = closestIdx;
        while (i > 0 && xs[i] > xValue) i--;
        return i;
      },
    },
    legend: { live: false },
    scales: { x: { time: true }, y: { auto: true } },
    axes: [
      {
        values: (_u, splits) => splits.map((v) => formatShortDate(v * 1000)),
        grid: { stroke: "#e5e7eb" },
      },
      {
        size: 84,
        values: (_u, splits) => splits.map((v) => formatPrice(v)),
        grid: { stroke: "#e5e7eb" },
      },
    ],
    series: [
      { label: "Datum", value: (_u, v) => (v === null ? "–" : formatDate(v * 1000)) },
      ...model.sellers.map(
        (s, i): uPlot.Series => ({
          label: s.label,
          stroke: PALETTE[i % PALETTE.length],
          width: 2,
          paths: stepped,
          points: { show: false },
          value: (_u, v) => formatPrice(v),
        }),
      ),
      {
        label: LOWEST_LABEL,
        stroke: LOWEST_COLOR,
        width: 3,
        dash: [6, 4],
        paths: stepped,
        points: { show: false },
        value: (_u, v) => formatPrice(v),
      },
    ],
    plugins: [tooltipPlugin(model, tooltip)],
  };
  // A single point would be invisible as a step line: show points then.
  if (model.times.length === 1) {
    for (const s of options.series.slice(1)) s.points = { show: true, size: 8 };
  }
  const data: uPlot.AlignedData = [model.times, ...model.sellers.map((s) => s.values), model.lowest];
  const plot = new uPlot(options, data, container);
  window.__pricecatChart = { labels, sellerSeries: model.sellers.length, points: model.times.length };

  const resize = () => {
    const width = Math.max(280, container.clientWidth);
    const height = width < 560 ? 240 : 320;
    if (plot.width !== width || plot.height !== height) plot.setSize({ width, height });
  };
  const observer = new ResizeObserver(() => resize());
  observer.observe(container);
  container.addEventListener("mouseleave", () => (tooltip.hidden = true));

  return {
    element: container,
    destroy: () => {
      observer.disconnect();
      plot.destroy();
      window.__pricecatChart = null;
    },
  };
}
