// Model folders for tests that serve several models: a temporary models directory holding the shared
// stand-ins (linked, never copied) and a second text model made from the MiniLM stand-in's weights
// with CLS pooling and a 128-token limit, so two text models give different vectors from one file set.
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MODELS_DIR } from './server.js';

export const MINILM = 'twinlane/minilm-l6-standin';
export const CLIP = 'twinlane/clip-standin';
export const VISION = 'twinlane/clip-vision-standin';
export const MINILM_CLS = 'test/minilm-cls';

export interface ModelsDir {
  readonly dir: string;
  remove(): Promise<void>;
}

export async function modelsDirWithClsVariant(): Promise<ModelsDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'twinlane-models-'));
  await mkdir(path.join(dir, 'twinlane'));
  for (const id of [MINILM, CLIP, VISION]) await symlink(path.join(MODELS_DIR, id), path.join(dir, id));
  const source = path.join(MODELS_DIR, MINILM);
  const target = path.join(dir, MINILM_CLS);
  await mkdir(path.join(target, '1_Pooling'), { recursive: true });
  for (const entry of await readdir(source)) {
    if (entry === '1_Pooling' || entry === 'sentence_bert_config.json' || entry === 'README.md') continue;
    await symlink(path.join(source, entry), path.join(target, entry));
  }
  await writeFile(
    path.join(target, '1_Pooling', 'config.json'),
    JSON.stringify({ word_embedding_dimension: 384, pooling_mode_cls_token: true, pooling_mode_mean_tokens: false }),
  );
  await writeFile(
    path.join(target, 'sentence_bert_config.json'),
    JSON.stringify({ max_seq_length: 128, do_lower_case: false }),
  );
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
