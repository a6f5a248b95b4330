// The /playground page: texts (one per line) and dropped images are embedded through the public API
// (POST /v1/embeddings, base64 vectors) and every pair's cosine similarity is drawn as a heat map.
// Each call's model, dims, cache hits and timings are listed; errors are shown in the API's words.
// A plain script (no modules, no build step beyond tsc): it runs as served.

interface ModelInfo {
  readonly id: string;
  readonly lanes: readonly ('text' | 'image')[];
  readonly dims: number;
}

interface Item {
  readonly label: string;
  readonly input: string | { text: string } | { image: string };
  readonly kind: 'text' | 'image';
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const images: { name: string; dataUri: string }[] = [];
let models: ModelInfo[] = [];

function headers(): Record<string, string> {
  const key = $<HTMLInputElement>('key').value.trim();
  return { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) };
}

/** The API's error shape in its own words: `code (status): message`. */
async function apiError(res: Response): Promise<string> {
  const text = await res.text();
  try {
    const { error } = JSON.parse(text) as { error: { code: string; message: string } };
    return `${error.code} (${res.status}): ${error.message}`;
  } catch {
    return `HTTP ${res.status}: ${text.slice(0, 200)}`;
  }
}

function showError(message: string): void {
  $('error').textContent = message;
}

async function loadModels(): Promise<void> {
  const res = await fetch('/info', { headers: headers() });
  if (!res.ok) return showError(await apiError(res));
  showError('');
  models = ((await res.json()) as { models: ModelInfo[] }).models;
  const select = $<HTMLSelectElement>('model');
  select.replaceChildren(
    new Option('auto', ''),
    ...models.map((m) => new Option(`${m.id} (${m.lanes.join('+')}, ${m.dims})`, m.id)),
  );
}

/** The chosen model, or the first that serves every kind of input present. */
function pickModel(kinds: ReadonlySet<string>): ModelInfo | undefined {
  const chosen = $<HTMLSelectElement>('model').value;
  if (chosen) return models.find((m) => m.id === chosen);
  return models.find((m) => [...kinds].every((k) => (m.lanes as readonly string[]).includes(k)));
}

function itemsFor(model: ModelInfo | undefined): Item[] {
  const texts = $<HTMLTextAreaElement>('texts')
    .value.split('\n')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  const tagged = model !== undefined && model.lanes.length > 1;
  return [
    ...texts.map((t): Item => ({ label: t, input: tagged ? { text: t } : t, kind: 'text' })),
    ...images.map((i): Item => ({ label: i.name, input: tagged ? { image: i.dataUri } : i.dataUri, kind: 'image' })),
  ];
}

function decode(base64: string): Float32Array {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return dot / Math.sqrt(na * nb);
}

/** Cool (blue, low) to warm (red, high) over the matrix's own off-diagonal range, so differences show. */
function colour(value: number, low: number, high: number): string {
  const t = high > low ? Math.min(1, Math.max(0, (value - low) / (high - low))) : 1;
  return `rgb(${Math.round(40 + 215 * t)}, ${Math.round(90 + 60 * (1 - Math.abs(2 * t - 1)))}, ${Math.round(255 - 215 * t)})`;
}

function drawHeatMap(items: readonly Item[], vectors: readonly Float32Array[]): void {
  const matrix = vectors.map((a) => vectors.map((b) => cosine(a, b)));
  const off = matrix.flatMap((row, i) => row.filter((_, j) => j !== i));
  const low = Math.min(...off);
  const high = Math.max(...off);
  const table = document.createElement('table');
  table.className = 'heat';
  const head = table.insertRow();
  head.insertCell().outerHTML = '<th></th>';
  for (const item of items) {
    const th = document.createElement('th');
    th.textContent = item.label;
    th.title = item.label;
    head.append(th);
  }
  matrix.forEach((row, i) => {
    const tr = table.insertRow();
    const th = document.createElement('th');
    th.textContent = items[i]!.label;
    tr.append(th);
    row.forEach((value, j) => {
      const td = tr.insertCell();
      td.textContent = value.toFixed(3);
      td.dataset['row'] = String(i);
      td.dataset['col'] = String(j);
      td.dataset['cos'] = String(value);
      td.style.background = i === j ? '#ddd' : colour(value, low, high);
    });
  });
  $('heat').replaceChildren(table);
}

function logCall(res: Response, model: string, dims: number, count: number): void {
  const h = (name: string) => res.headers.get(name) ?? '?';
  const line = document.createElement('div');
  line.className = 'call';
  line.textContent = `${model}: ${count} inputs, ${dims} dims, cache hits ${h('x-cache-hits')}, queue ${h('x-queue-time')} ms, inference ${h('x-inference-time')} ms, total ${h('x-total-time')} ms`;
  $('calls').prepend(line);
}

async function compare(): Promise<void> {
  showError('');
  const kinds = new Set<string>();
  if ($<HTMLTextAreaElement>('texts').value.trim() !== '') kinds.add('text');
  if (images.length > 0) kinds.add('image');
  const model = pickModel(kinds);
  const items = itemsFor(model);
  if (items.length < 2) return showError('Enter at least two texts or images to compare.');
  const res = await fetch('/v1/embeddings', {
    method: 'POST',
    headers: headers(),
    body: JSON.stringify({
      input: items.map((i) => i.input),
      encoding_format: 'base64',
      ...(model ? { model: model.id } : {}),
    }),
  });
  if (!res.ok) return showError(await apiError(res));
  const answer = (await res.json()) as { model: string; data: { index: number; embedding: string }[] };
  const vectors = answer.data.sort((a, b) => a.index - b.index).map((d) => decode(d.embedding));
  drawHeatMap(items, vectors);
  logCall(res, answer.model, vectors[0]?.length ?? 0, items.length);
}

function readImages(files: FileList | readonly File[]): Promise<void> {
  const reads = [...files]
    .filter((f) => f.type.startsWith('image/'))
    .map(
      (file) =>
        new Promise<void>((resolve) => {
          const reader = new FileReader();
          reader.onload = () => {
            images.push({ name: file.name, dataUri: String(reader.result) });
            resolve();
          };
          reader.readAsDataURL(file);
        }),
    );
  return Promise.all(reads).then(() => {
    $('images').textContent =
      images.length === 0 ? '' : `${images.length} image(s): ${images.map((i) => i.name).join(', ')}`;
  });
}

function wire(): void {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer) void readImages(e.dataTransfer.files);
  });
  $<HTMLInputElement>('files').addEventListener('change', (e) => {
    const input = e.target as HTMLInputElement;
    if (input.files) void readImages(input.files);
  });
  $('clear').addEventListener('click', () => {
    images.length = 0;
    $('images').textContent = '';
  });
  $('run').addEventListener('click', () => void compare().catch((e: unknown) => showError(String(e))));
  $('key').addEventListener('change', () => void loadModels());
  void loadModels();
}

wire();
