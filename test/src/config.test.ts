import { describe, expect, it } from 'vitest';
import { ConfigError, configWarnings, helpText, loadConfig, OPTIONS } from '../../src/config.js';

describe('config', () => {
  it('applies SPEC defaults and freezes the result', () => {
    const config = loadConfig([], {}, 8);
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      textModels: ['sentence-transformers/all-MiniLM-L6-v2'],
      imageModels: ['Xenova/clip-vit-base-patch32'],
      textDtype: 'fp32',
      imageDtype: 'fp32',
      cachePrefix: 'twinlane',
      cacheTtlSeconds: 86400,
      l1Bytes: 268435456,
      redisUrl: null,
      offline: false,
    });
    expect(config.executionProvider).toEqual({ name: 'cpu', deviceId: 0 });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('lets flags win over environment variables, in both --flag value and --flag=value forms', () => {
    const config = loadConfig(['--port', '9000', '--cache-prefix=tl'], {
      TWINLANE_PORT: '7000',
      TWINLANE_CACHE_PREFIX: 'env',
    });
    expect(config.port).toBe(9000);
    expect(config.cachePrefix).toBe('tl');
  });

  it('parses booleans, lists, providers and `none`', () => {
    const config = loadConfig([], {
      TWINLANE_OFFLINE: '1',
      TWINLANE_API_KEYS: 'a, b,,c',
      TWINLANE_EXECUTION_PROVIDER: 'cuda:1',
      TWINLANE_IMAGE_MODEL: 'none',
    });
    expect(config.offline).toBe(true);
    expect(config.apiKeys).toEqual(['a', 'b', 'c']);
    expect(config.executionProvider).toEqual({ name: 'cuda', deviceId: 1 });
    expect(config.imageModels).toEqual([]);
    const lists = loadConfig([], {
      TWINLANE_TEXT_MODEL: 'org/a, org/b,org/c',
      TWINLANE_IMAGE_MODEL: 'org/clip',
      TWINLANE_TEXT_DTYPE: 'q8',
    });
    expect(lists).toMatchObject({
      textModels: ['org/a', 'org/b', 'org/c'],
      imageModels: ['org/clip'],
      textDtype: 'q8',
      imageDtype: 'fp32',
    });
  });

  it('defaults the Redis breaker to 5 failures and a 1000 ms cool-down, and takes both from env or flags', () => {
    expect(loadConfig([], {})).toMatchObject({ redisFailureThreshold: 5, redisCoolDownMs: 1000 });
    const config = loadConfig(['--redis-cool-down-ms', '250'], {
      TWINLANE_REDIS_FAILURE_THRESHOLD: '2',
      TWINLANE_REDIS_COOL_DOWN_MS: '9000',
    });
    expect(config).toMatchObject({ redisFailureThreshold: 2, redisCoolDownMs: 250 });
  });

  it.each([
    [{ TWINLANE_PORT: '70000' }, /TWINLANE_PORT must be between 0 and 65535/],
    [{ TWINLANE_PORT: '80a' }, /TWINLANE_PORT must be a whole number/],
    [{ TWINLANE_OFFLINE: 'yes' }, /TWINLANE_OFFLINE must be true, false, 1 or 0/],
    [{ TWINLANE_EXECUTION_PROVIDER: 'tpu' }, /TWINLANE_EXECUTION_PROVIDER must be "cpu" or "cuda\[:deviceId\]"/],
    [{ TWINLANE_TEXT_MODEL: '../etc/passwd' }, /TWINLANE_TEXT_MODEL must be model ids/],
    [{ TWINLANE_TEXT_MODEL: 'a/b, c/d, a/b' }, /TWINLANE_TEXT_MODEL names a\/b twice/],
    [{ TWINLANE_TEXT_MODEL: ' , ' }, /TWINLANE_TEXT_MODEL must name at least one model/],
    [{ TWINLANE_TEXT_DTYPE: 'int4' }, /TWINLANE_TEXT_DTYPE must be fp32 or q8/],
    [{ TWINLANE_IMAGE_MODEL: 'ratelimit' }, /TWINLANE_IMAGE_MODEL cannot be "ratelimit"/],
    [{ TWINLANE_AUTH_OPS: 'true' }, /TWINLANE_AUTH_OPS needs TWINLANE_API_KEYS/],
    [{ TWINLANE_HUB_URL: 'not a url' }, /TWINLANE_HUB_URL must be a URL/],
    [{ TWINLANE_RATE_BURST: '5' }, /TWINLANE_RATE_BURST needs TWINLANE_RATE_LIMIT/],
    [{ TWINLANE_REDIS_FAILURE_THRESHOLD: '0' }, /TWINLANE_REDIS_FAILURE_THRESHOLD must be between 1 and 1000/],
    [{ TWINLANE_REDIS_COOL_DOWN_MS: '1.5' }, /TWINLANE_REDIS_COOL_DOWN_MS must be a whole number/],
    [{ TWINLANE_BATCH_LANE_SHARE: '0' }, /TWINLANE_BATCH_LANE_SHARE must be a number above 0 and at most 1/],
    [{ TWINLANE_BATCH_LANE_SHARE: '1.5' }, /TWINLANE_BATCH_LANE_SHARE must be a number above 0 and at most 1/],
  ])('refuses %o with a message naming the option', (env, message) => {
    expect(() => loadConfig([], env)).toThrow(ConfigError);
    expect(() => loadConfig([], env)).toThrow(message);
  });

  it('refuses unknown flags and flags without a value', () => {
    expect(() => loadConfig(['--nope', '1'], {})).toThrow(/Unknown option --nope/);
    expect(() => loadConfig(['--port'], {})).toThrow(/--port needs a value/);
  });

  it.each([1, 2, 4, 8, 16, 32])(
    'lets either lane alone use every core of %i, as separate sessions up to 8',
    (cores) => {
      const config = loadConfig([], {}, cores);
      for (const [threads, intra] of [
        [config.textThreads, config.textIntraOpThreads],
        [config.imageThreads, config.imageIntraOpThreads],
      ] as const) {
        expect(threads * intra).toBeLessThanOrEqual(cores);
        expect(threads * intra).toBeGreaterThan(cores / 2);
        expect(threads).toBe(Math.min(cores, 8));
      }
      expect(configWarnings(config, cores)).toEqual([]);
    },
  );

  it('warns about explicit layouts past the measured harmless bounds, and not about the defaults', () => {
    const oneLane = loadConfig([], { TWINLANE_TEXT_THREADS: '4' }, 2);
    expect(configWarnings(oneLane, 2)).toEqual([
      expect.stringContaining('text lane asks for 4 worker(s) × 1 intra-op thread(s) = 4 threads on 2 cores'),
    ]);
    const image = loadConfig([], { TWINLANE_IMAGE_INTRA_OP_THREADS: '2' }, 4);
    expect(configWarnings(image, 4)).toEqual([
      expect.stringContaining('image lane asks for 4 worker(s) × 2 intra-op thread(s) = 8 threads on 4 cores'),
    ]);
    expect(
      configWarnings(
        loadConfig(
          [],
          { TWINLANE_IMAGE_MODEL: 'none', TWINLANE_TEXT_THREADS: '2', TWINLANE_TEXT_INTRA_OP_THREADS: '2' },
          4,
        ),
        4,
      ),
    ).toEqual([]);
  });

  it('derives queue bounds from batch size and workers', () => {
    const config = loadConfig([], { TWINLANE_TEXT_MAX_BATCH_ITEMS: '16', TWINLANE_TEXT_THREADS: '2' }, 4);
    expect(config.textMaxQueue).toBe(16 * 2 * 8);
  });

  it('lists every option with its env name, default and unit in --help', () => {
    const help = helpText();
    for (const option of OPTIONS) {
      expect(help).toContain(option.env);
      expect(help).toContain(`(${option.unit})`);
    }
  });
});

describe('config documentation', () => {
  it('lists every option in the README', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync('README.md', 'utf8');
    for (const option of OPTIONS) expect(readme, option.env).toContain(`\`${option.env}\``);
  });
});
