// The served models: every id of TWINLANE_TEXT_MODEL and TWINLANE_IMAGE_MODEL, each with the towers
// its folder has (text, vision, or both: a CLIP-style model serves both lanes under one id, in one
// space) and what only it knows: dims, max tokens, pooling, the bound of its token counts, the cache
// key segment of its weights. Requests name a model (or take their lane's default, the first of that
// lane's list); everything model-specific is asked of the registry, never re-derived elsewhere.
import { tokenUpperBound, type LaneName } from '../lanes/index.js';
import { TwinlaneError } from './errors.js';
import {
  resolveTowers,
  type ImageModelInfo,
  type ModelDtype,
  type ResolveOptions,
  type TextModelInfo,
  type TowerDtypes,
} from './models.js';

interface Tower {
  /** Position in its lane's model list: what lane items carry. */
  readonly slot: number;
  /** The cache key's model segment: the id, and `@q8` for quantized weights, so variants never share vectors. */
  readonly cacheId: string;
}

export interface TextTower extends TextModelInfo, Tower {
  /** True when `text` could make more tokens than the model takes: with truncate:false it must skip the cache. */
  mayExceed(text: string): boolean;
}

export type ImageTower = ImageModelInfo & Tower;

export interface ServedModel {
  readonly id: string;
  readonly dims: number;
  readonly text: TextTower | null;
  readonly image: ImageTower | null;
}

export interface RegistryConfig {
  readonly textModels: readonly string[];
  readonly imageModels: readonly string[];
  readonly textDtype: ModelDtype;
  readonly imageDtype: ModelDtype;
}

function cacheId(id: string, dtype: ModelDtype): string {
  return dtype === 'fp32' ? id : `${id}@${dtype}`;
}

export class ModelRegistry {
  readonly #models: readonly ServedModel[];
  readonly #defaults: Readonly<Record<LaneName, ServedModel | null>>;
  readonly #text: readonly TextTower[];
  readonly #image: readonly ImageTower[];

  /** Reads (or downloads) every listed model, text list first; an id on both lists is one model. */
  static async resolve(config: RegistryConfig, options: Omit<ResolveOptions, 'dtype'>): Promise<ModelRegistry> {
    const dtypes: TowerDtypes = { text: config.textDtype, image: config.imageDtype };
    const listed = [
      ...config.textModels.map((id) => ({ id, kind: 'text' as const })),
      ...config.imageModels.map((id) => ({ id, kind: 'image' as const })),
    ];
    const seen = new Set<string>();
    const towers = [];
    for (const { id, kind } of listed) {
      if (seen.has(id)) continue;
      seen.add(id);
      towers.push(await resolveTowers(id, kind, options, dtypes));
    }
    return new ModelRegistry(towers, config);
  }

  constructor(
    towers: readonly {
      readonly id: string;
      readonly text: TextModelInfo | null;
      readonly image: ImageModelInfo | null;
    }[],
    config: Pick<RegistryConfig, 'textModels' | 'imageModels'>,
  ) {
    const text: TextTower[] = [];
    const image: ImageTower[] = [];
    this.#models = towers.map((t) => {
      const textTower = t.text && ModelRegistry.#textTower(t.text, text.length);
      const imageTower = t.image && { ...t.image, slot: image.length, cacheId: cacheId(t.image.id, t.image.dtype) };
      if (textTower) text.push(textTower);
      if (imageTower) image.push(imageTower);
      return { id: t.id, dims: (t.text ?? t.image)!.dims, text: textTower, image: imageTower };
    });
    this.#text = text;
    this.#image = image;
    const byId = (id: string | undefined) => this.#models.find((m) => m.id === id) ?? null;
    // A lane's default is the first of its list, else the first model with a tower for it (a CLIP
    // model named only as a text model still brings its vision tower).
    this.#defaults = {
      text: byId(config.textModels[0]) ?? this.#models.find((m) => m.text) ?? null,
      image: byId(config.imageModels[0]) ?? this.#models.find((m) => m.image) ?? null,
    };
  }

  static #textTower(info: TextModelInfo, slot: number): TextTower {
    // Below this length no text can be over the limit, so the common case skips the bound's scan.
    const safeLength = info.tokenBound === 'utf16' ? info.maxTokens - 2 : Math.floor((info.maxTokens - 2) / 12);
    return {
      ...info,
      slot,
      cacheId: cacheId(info.id, info.dtype),
      mayExceed: (text) => text.length > safeLength && tokenUpperBound(info.tokenBound, text) > info.maxTokens,
    };
  }

  list(): readonly ServedModel[] {
    return this.#models;
  }

  /** The text towers in their lane's order (lane items name them by slot). */
  textTowers(): readonly TextTower[] {
    return this.#text;
  }

  imageTowers(): readonly ImageTower[] {
    return this.#image;
  }

  /** The model a request names, or `lane`'s default; an unknown id is a 404 naming the param. */
  find(id: string | undefined, lane: LaneName): ServedModel {
    const model = id === undefined ? this.#defaults[lane] : this.#models.find((m) => m.id === id);
    if (!model) {
      throw new TwinlaneError(
        'model_not_found',
        id === undefined
          ? `No ${lane} model is configured.`
          : `The model '${id}' does not exist on this server. Available: ${this.#models.map((m) => m.id).join(', ')}.`,
        { param: 'model' },
      );
    }
    return model;
  }

  /** The text tower of the model a request names (or the default); a model without one is a 400. */
  textTower(id: string | undefined): TextTower {
    const model = this.find(id, 'text');
    if (!model.text)
      throw new TwinlaneError('invalid_request', `${model.id} is an image model; send images to it.`, {
        param: 'model',
      });
    return model.text;
  }

  imageTower(id: string | undefined): ImageTower {
    const model = this.find(id, 'image');
    if (!model.image)
      throw new TwinlaneError('invalid_request', `${model.id} is a text model; send text to it.`, { param: 'model' });
    return model.image;
  }

  /** Matryoshka `dimensions`: an integer from 1 to the model's dims. */
  static checkDimensions(dimensions: number | undefined, tower: { readonly id: string; readonly dims: number }): void {
    if (dimensions === undefined) return;
    if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > tower.dims) {
      throw new TwinlaneError(
        'invalid_dimensions',
        `dimensions must be an integer from 1 to ${tower.dims} for ${tower.id} (got ${dimensions}).`,
        { param: 'dimensions' },
      );
    }
  }
}
