/**
 * Shared and local configuration: working defaults, one clear error per bad field (all of them, by path), the
 * secret only ever referenced, per-field changes, and deterministic repair of inconsistent merged configs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyOptions } from './support/fc.ts';
import {
  CONFIG_FIELDS,
  ConfigError,
  configToFields,
  defaultSharedConfig,
  materializeConfig,
  parseLocalConfig,
  parseSharedConfig,
  validateConfigChanges,
  validateConfigField,
  warningWindowFor,
} from '../core/state/config.ts';

function issuesOf(fn: () => unknown): Array<{ path: string; message: string }> {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).name).toBe('ConfigError');
    return [...(err as ConfigError).issues];
  }
  throw new Error('expected a ConfigError');
}

describe('shared config', () => {
  it('has sensible defaults', () => {
    const c = defaultSharedConfig();
    expect(c.replication).toEqual({ target: 3, minimum: 2 });
    expect(c.repair).toEqual({ graceMs: 3_600_000, hysteresisMs: 600_000 });
    expect(c.events.normalFrequencyMs).toBe(3_600_000);
    expect(c.events.warningWindowMs).toBe(7 * 86_400_000);
    expect(c.limits.maxKeepers).toBe(64);
    expect(c.secretRef).toBe('keyring:reserve');
    expect(c.regions).toBeUndefined();
    expect(parseSharedConfig(undefined)).toEqual(c);
  });

  it('reports every bad field by its path', () => {
    const issues = issuesOf(() =>
      parseSharedConfig({
        peers: ['not an address', '/ip4/1.2.3.4/tcp/1'],
        replication: { target: 0, minimum: 2 },
        events: { normalFrequencyMs: 5, warningWindowOverrides: { 'file-size': -1, bogus: 3 } },
        limits: { maxKeepers: 0 },
        repair: { graceMs: 'soon' },
        surprise: true,
      }),
    );
    const paths = issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining(['peers.0', 'replication.target', 'events.normalFrequencyMs', 'limits.maxKeepers', 'repair.graceMs']),
    );
    expect(paths.some((p) => p.startsWith('events.warningWindowOverrides'))).toBe(true);
    expect(issues.some((i) => i.message.length > 0 && i.path === '')).toBe(true); // the unknown key 'surprise'
  });

  it('minimum RF must not exceed target RF', () => {
    const issues = issuesOf(() => parseSharedConfig({ replication: { target: 2, minimum: 3 } }));
    expect(issues).toEqual([{ path: 'replication.minimum', message: 'must be at most replication.target' }]);
  });

  it('holds a reference to the secret, never the secret', () => {
    for (const ok of ['keyring:reserve', 'env:RESERVE_SECRET', 'file:/etc/reserve/secret']) expect(parseSharedConfig({ secretRef: ok }).secretRef).toBe(ok);
    for (const bad of ['0123456789abcdef0123456789abcdef0123456789abcdef', 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0', 'keyring:has space']) {
      expect(issuesOf(() => parseSharedConfig({ secretRef: bad }))[0].path).toBe('secretRef');
    }
  });

  it('per-limitation warning windows override the global one', () => {
    const c = parseSharedConfig({ events: { warningWindowMs: 1000, warningWindowOverrides: { 'disk-capacity': 5000 } } });
    expect(warningWindowFor(c, 'disk-capacity')).toBe(5000);
    expect(warningWindowFor(c, 'file-size')).toBe(1000);
  });

  it('validates field changes one by one and names the path', () => {
    expect(validateConfigField('replication.target', 5)).toBe(5);
    expect(validateConfigField('regions', null)).toBe(null);
    expect(issuesOf(() => validateConfigField('replication.target', 0))[0].path).toBe('replication.target');
    expect(issuesOf(() => validateConfigField('nope', 1))[0]).toEqual({ path: 'nope', message: 'is not a configuration field' });
    const many = issuesOf(() => validateConfigChanges([['limits.maxKeepers', -1], ['peers', ['x']], ['limits.maxKeepers', 3]]));
    expect([...new Set(many.map((i) => i.path))]).toEqual(['limits.maxKeepers', 'peers.0']);
    expect(many.find((i) => i.message.includes('set twice'))?.path).toBe('limits.maxKeepers');
    expect(CONFIG_FIELDS).toContain('events.warningWindowOverrides.disk-capacity');
  });

  it('a whole config splits into fields and back', () => {
    const c = parseSharedConfig({ regions: ['north', 'south'], replication: { target: 4, minimum: 3 }, peers: ['/dns4/a.example/tcp/1'] });
    const fields = configToFields(c);
    for (const [path, value] of fields) expect(validateConfigField(path, value)).toEqual(value);
    expect(materializeConfig(new Map(fields))).toEqual({ config: c, issues: [] });
  });

  it('materialising merged fields never throws and repairs min > target deterministically', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 32 }), fc.integer({ min: 1, max: 32 }), (target, minimum) => {
        const { config, issues } = materializeConfig(new Map<string, unknown>([['replication.target', target], ['replication.minimum', minimum]]));
        expect(config.replication.target).toBe(target);
        expect(config.replication.minimum).toBe(Math.min(minimum, target));
        expect(issues.length).toBe(minimum > target ? 1 : 0);
      }),
      propertyOptions('config: materialize repairs'),
    );
    expect(materializeConfig(new Map([['replication.target', null]])).config.replication.target).toBe(3);
  });
});

describe('local config', () => {
  it('has defaults and reports bad fields by path', () => {
    expect(parseLocalConfig({})).toEqual({ listen: ['/ip4/0.0.0.0/tcp/0'], announce: [], keyFile: 'keys/box.key' });
    const issues = issuesOf(() => parseLocalConfig({ listen: [], capacity: 0, region: 'a b' }));
    expect(issues.map((i) => i.path).sort()).toEqual(['capacity', 'listen', 'region']);
  });
});
