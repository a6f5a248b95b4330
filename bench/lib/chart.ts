// Line charts for the load report, drawn as SVG and rendered to PNG with sharp (already a
// dependency for image preprocessing; librsvg inside its libvips), so no browser and no charting
// library with a canvas build is needed. Log-scaled axes by default: concurrency doubles per step,
// and throughput and latency span several decades between cached texts and unique images; linear
// axes for a figure over time (bench:soak's memory).
import sharp from 'sharp';

export interface Series {
  readonly label: string;
  readonly colour: string;
  readonly dashed: boolean;
  /** [x, y] with y NaN where there is no figure. */
  readonly points: readonly (readonly [number, number])[];
}

export interface Chart {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  /** Log scales (the default) suit sweeps; linear ones suit figures over time. */
  readonly scale?: 'log' | 'linear';
}

const W = 1200;
const H = 720;
const PAD = { left: 90, right: 330, top: 60, bottom: 70 };

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Powers of ten (and 2× / 5× between them when the range is short) covering [lo, hi]. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  const steps = Math.log10(hi / lo) < 3 ? [1, 2, 5] : [1];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const m of steps) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) ticks.push(v);
    }
  return ticks;
}

const tickLabel = (v: number) => (v >= 1000 ? `${v / 1000}k` : v >= 1 ? String(v) : v.toPrecision(1));

/** About six round steps covering [lo, hi], from zero up when the values are positive. */
function linearTicks(lo: number, hi: number): number[] {
  const raw = (hi - lo) / 6;
  const step = [1, 2, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(raw))).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.floor(lo / step) * step; v < hi + step; v += step) ticks.push(Number(v.toPrecision(6)));
  return ticks;
}

interface Axes {
  readonly px: (x: number) => number;
  readonly py: (y: number) => number;
  readonly xTicks: readonly number[];
  readonly yTicks: readonly number[];
}

function logAxes(xs: readonly number[], ys: readonly number[]): Axes {
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [10 ** Math.floor(Math.log10(Math.min(...ys))), 10 ** Math.ceil(Math.log10(Math.max(...ys)))];
  return {
    px: (x) => PAD.left + (Math.log2(x / x0) / Math.log2(x1 / x0)) * (W - PAD.left - PAD.right),
    py: (y) => H - PAD.bottom - (Math.log10(y / y0) / Math.log10(y1 / y0)) * (H - PAD.top - PAD.bottom),
    xTicks: [...new Set(xs)].sort((a, b) => a - b),
    yTicks: logTicks(y0, y1),
  };
}

function linearAxes(xs: readonly number[], ys: readonly number[]): Axes {
  const xTicks = linearTicks(Math.min(...xs), Math.max(...xs));
  const yTicks = linearTicks(0, Math.max(...ys));
  const [x0, x1] = [xTicks[0]!, xTicks.at(-1)!];
  const y1 = yTicks.at(-1)!;
  return {
    px: (x) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right),
    py: (y) => H - PAD.bottom - (y / y1) * (H - PAD.top - PAD.bottom),
    xTicks,
    yTicks,
  };
}

export function chartSvg(chart: Chart): string {
  const xs = chart.series.flatMap((s) => s.points.map(([x]) => x));
  const ys = chart.series.flatMap((s) => s.points.map(([, y]) => y)).filter((y) => Number.isFinite(y) && y > 0);
  const { px, py, xTicks, yTicks } = (chart.scale ?? 'log') === 'log' ? logAxes(xs, ys) : linearAxes(xs, ys);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif" font-size="14">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - PAD.right / 2}" y="32" text-anchor="middle" font-size="20">${escape(chart.title)}</text>`,
  ];
  for (const x of xTicks) {
    out.push(`<line x1="${px(x)}" x2="${px(x)}" y1="${PAD.top}" y2="${H - PAD.bottom}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${px(x)}" y="${H - PAD.bottom + 22}" text-anchor="middle">${x}</text>`);
  }
  for (const y of yTicks) {
    out.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${py(y)}" y2="${py(y)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${PAD.left - 8}" y="${py(y) + 5}" text-anchor="end">${tickLabel(y)}</text>`);
  }
  out.push(
    `<rect x="${PAD.left}" y="${PAD.top}" width="${W - PAD.left - PAD.right}" height="${H - PAD.top - PAD.bottom}" fill="none" stroke="#888"/>`,
    `<text x="${(PAD.left + W - PAD.right) / 2}" y="${H - 20}" text-anchor="middle">${escape(chart.xLabel)}</text>`,
    `<text transform="translate(24 ${(PAD.top + H - PAD.bottom) / 2}) rotate(-90)" text-anchor="middle">${escape(chart.yLabel)}</text>`,
  );
  chart.series.forEach((s, i) => {
    const points = s.points.filter(([, y]) => Number.isFinite(y) && y > 0);
    const dash = s.dashed ? ' stroke-dasharray="8 5"' : '';
    if (points.length > 1)
      out.push(
        `<polyline fill="none" stroke="${s.colour}" stroke-width="2.5"${dash} points="${points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`,
      );
    for (const [x, y] of points) out.push(`<circle cx="${px(x)}" cy="${py(y)}" r="3.5" fill="${s.colour}"/>`);
    const ly = PAD.top + 10 + i * 24;
    const lx = W - PAD.right + 20;
    out.push(
      `<line x1="${lx}" x2="${lx + 36}" y1="${ly}" y2="${ly}" stroke="${s.colour}" stroke-width="2.5"${dash}/>`,
      `<text x="${lx + 44}" y="${ly + 5}">${escape(s.label)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n');
}

export async function chartPng(chart: Chart, file: string): Promise<void> {
  await sharp(Buffer.from(chartSvg(chart)))
    .png()
    .toFile(file);
}
