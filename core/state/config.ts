/**
 * The reserve's shared configuration (the same on every Box, changed through signed `config-changed` events,
 * last-writer-wins per field) and a Box's local configuration (its own addresses and where its key pair lives).
 *
 * Both are zod schemas with defaults for everything, so `parseSharedConfig({})` is a working reserve. A bad value
 * yields ConfigError listing every bad field by path ("replication.minimum: must be at most replication.target").
 * The shared config holds a *reference* to the shared secret (keyring:NAME, file:PATH or env:VAR), never the
 * secret itself.
 *
 * Per-field changes: every leaf of the shared config has a dotted path (CONFIG_FIELDS, plus one path per
 * limitation under events.warningWindowOverrides). A `config-changed` event sets leaves; `null` resets a leaf to
 * its default. `materializeConfig` turns the merged leaves into a whole config; when concurrent changes combine
 * into an invalid whole (one Box raised the minimum RF while another lowered the target), the whole is repaired
 * deterministically (the minimum is clamped to the target) and the repair is reported, never thrown.
 */
import { z } from 'zod';
import { ReserveError } from '../errors.ts';
import { Limitation } from '../forecast/limits.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const GiB = 1024 ** 3;
const TiB = 1024 ** 4;

/** One bad field. `path` is dotted ('' for the whole value). */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** A configuration (or one field of it) failed validation; `issues` lists every bad field. */
export class ConfigError extends ReserveError {
  static override readonly name = 'ConfigError';
  constructor(
    readonly issues: readonly ConfigIssue[],
    what = 'configuration',
  ) {
    super(`invalid ${what}: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
  }
}

// ------------------------------------------------------------------------------------------------ leaves

const multiaddr = z
  .string()
  .max(512)
  .regex(/^(\/[^/\s]+)+$/, 'must be a multiaddr such as /ip4/192.0.2.1/tcp/4001 or /dns4/box.example/tcp/4001/p2p/12D3...')
  .refine((s) => s.split('/').length >= 3, 'must be a multiaddr with at least a protocol and a value');

const secretRef = z
  .string()
  .max(512)
  .regex(
    /^(keyring:[A-Za-z0-9_.-]{1,64}|env:[A-Za-z_][A-Za-z0-9_]{0,63}|file:\S{1,500})$/,
    'must name where the secret is kept (keyring:NAME, env:VAR or file:PATH), never the secret itself',
  );

const duration = (min: number, max: number) => z.int().min(min).max(max);
const byteCount = z.int().min(1).max(Number.MAX_SAFE_INTEGER);
const regionName = z.string().min(1).max(64).regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, 'must be a short name (letters, digits, _ . : -)');

const LIMITATIONS = Object.values(Limitation) as [Limitation, ...Limitation[]];
const limitationSchema = z.enum(LIMITATIONS);

const replicationSchema = z
  .strictObject({
    target: z.int().min(1).max(32).default(3),
    minimum: z.int().min(1).max(32).default(2),
  })
  .refine((r) => r.minimum <= r.target, { message: 'must be at most replication.target', path: ['minimum'] });

const eventsSchema = z.strictObject({
  /** Normal events are batched and dispatched this often. */
  normalFrequencyMs: duration(SECOND, 7 * DAY).default(HOUR),
  /** "Limitation imminent" fires when a limit is forecast within this window. */
  warningWindowMs: duration(0, 10 * 365 * DAY).default(7 * DAY),
  /** Per-limitation windows that replace the global one. */
  warningWindowOverrides: z.partialRecord(limitationSchema, duration(0, 10 * 365 * DAY)).default({}),
});

const limitsSchema = z.strictObject({
  maxFileBytes: byteCount.default(64 * GiB),
  maxFilesPerDirectory: z.int().min(1).max(100_000_000).default(100_000),
  maxSnapshotBytes: byteCount.default(16 * TiB),
  maxKeepers: z.int().min(1).max(1024).default(64),
  /** Bytes every keeper keeps free beyond what it stores for the reserve. */
  keeperReserveBytes: z.int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
});

const repairSchema = z
  .strictObject({
    /** A keeper must be unreachable this long before its chunks are re-replicated elsewhere. */
    graceMs: duration(0, 30 * DAY).default(HOUR),
    /** A keeper that comes back must stay reachable this long before it counts as back (no flapping). */
    hysteresisMs: duration(0, 30 * DAY).default(10 * MINUTE),
  });

export const sharedConfigSchema = z.strictObject({
  /** Bootstrap addresses of peers (members' own latest addresses live in the membership state). */
  peers: z.array(multiaddr).max(256).default([]),
  secretRef: secretRef.default('keyring:reserve'),
  replication: replicationSchema.prefault({}),
  events: eventsSchema.prefault({}),
  limits: limitsSchema.prefault({}),
  /** Known failure domains; when present, every member's region must be one of them. */
  regions: z.array(regionName).max(64).optional(),
  repair: repairSchema.prefault({}),
});

export type SharedConfig = z.output<typeof sharedConfigSchema>;
export type SharedConfigInput = z.input<typeof sharedConfigSchema>;

function issuesOf(error: z.ZodError, prefix = ''): ConfigIssue[] {
  return error.issues.map((i) => ({
    path: [prefix, ...i.path.map(String)].filter((p) => p !== '').join('.'),
    message: i.message,
  }));
}

/** Validate a whole shared config (missing fields take their defaults). Throws ConfigError listing every bad field. */
export function parseSharedConfig(input: unknown): SharedConfig {
  const r = sharedConfigSchema.safeParse(input ?? {});
  if (!r.success) throw new ConfigError(issuesOf(r.error), 'shared configuration');
  return r.data;
}

export function defaultSharedConfig(): SharedConfig {
  return parseSharedConfig({});
}

// ------------------------------------------------------------------------------------------------ fields

const FIXED_FIELDS: Record<string, z.ZodType> = {
  peers: z.array(multiaddr).max(256),
  secretRef,
  'replication.target': z.int().min(1).max(32),
  'replication.minimum': z.int().min(1).max(32),
  'events.normalFrequencyMs': duration(SECOND, 7 * DAY),
  'events.warningWindowMs': duration(0, 10 * 365 * DAY),
  'limits.maxFileBytes': byteCount,
  'limits.maxFilesPerDirectory': z.int().min(1).max(100_000_000),
  'limits.maxSnapshotBytes': byteCount,
  'limits.maxKeepers': z.int().min(1).max(1024),
  'limits.keeperReserveBytes': z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  regions: z.array(regionName).max(64),
  'repair.graceMs': duration(0, 30 * DAY),
  'repair.hysteresisMs': duration(0, 30 * DAY),
};
const OVERRIDE_PREFIX = 'events.warningWindowOverrides.';

/** Every settable leaf path of the shared config. */
export const CONFIG_FIELDS: readonly string[] = Object.freeze([
  ...Object.keys(FIXED_FIELDS),
  ...LIMITATIONS.map((l) => OVERRIDE_PREFIX + l),
]);

function fieldSchema(path: string): z.ZodType | undefined {
  if (Object.hasOwn(FIXED_FIELDS, path)) return FIXED_FIELDS[path];
  if (path.startsWith(OVERRIDE_PREFIX) && limitationSchema.safeParse(path.slice(OVERRIDE_PREFIX.length)).success) {
    return duration(0, 10 * 365 * DAY);
  }
  return undefined;
}

/**
 * Check one field change (`null` resets it to its default). Returns the clean value; throws ConfigError naming
 * the path.
 */
export function validateConfigField(path: string, value: unknown): unknown {
  const schema = fieldSchema(path);
  if (schema === undefined) throw new ConfigError([{ path, message: 'is not a configuration field' }], 'configuration change');
  if (value === null) return null;
  const r = schema.safeParse(value);
  if (!r.success) throw new ConfigError(issuesOf(r.error, path), 'configuration change');
  return r.data;
}

/** Check a whole change set; collects every bad field. Paths must be unique. */
export function validateConfigChanges(changes: ReadonlyArray<readonly [string, unknown]>): Array<[string, unknown]> {
  const issues: ConfigIssue[] = [];
  const out: Array<[string, unknown]> = [];
  const seen = new Set<string>();
  for (const [path, value] of changes) {
    if (seen.has(path)) {
      issues.push({ path, message: 'is set twice in one change' });
      continue;
    }
    seen.add(path);
    try {
      out.push([path, validateConfigField(path, value)]);
    } catch (err) {
      if (err instanceof ConfigError) issues.push(...err.issues);
      else throw err;
    }
  }
  if (changes.length === 0) issues.push({ path: '', message: 'a change sets at least one field' });
  if (issues.length > 0) throw new ConfigError(issues, 'configuration change');
  return out;
}

/** The dotted-path leaves of a (partial) config object, for turning a whole config into field changes. */
export function configToFields(config: SharedConfigInput): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  const walk = (value: unknown, prefix: string): void => {
    if (fieldSchema(prefix) !== undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
      if (prefix !== '' && value !== undefined) out.push([prefix, value]);
      return;
    }
    for (const [k, v] of Object.entries(value)) walk(v, prefix === '' ? k : `${prefix}.${k}`);
  };
  walk(config, '');
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.startsWith(OVERRIDE_PREFIX) ? ['events', 'warningWindowOverrides', path.slice(OVERRIDE_PREFIX.length)] : path.split('.');
  let node = target;
  for (const p of parts.slice(0, -1)) {
    if (node[p] === undefined || node[p] === null || typeof node[p] !== 'object') node[p] = {};
    node = node[p] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]] = value;
}

/**
 * The whole config from merged field values (null or absent: default). Never throws: a combination that is
 * invalid as a whole is repaired deterministically and reported in `issues`.
 */
export function materializeConfig(fields: ReadonlyMap<string, unknown>): { config: SharedConfig; issues: ConfigIssue[] } {
  const input: Record<string, unknown> = {};
  const paths = [...fields.keys()].sort();
  for (const path of paths) {
    const value = fields.get(path);
    if (value === null || value === undefined || fieldSchema(path) === undefined) continue;
    setPath(input, path, value);
  }
  const issues: ConfigIssue[] = [];
  let r = sharedConfigSchema.safeParse(input);
  if (!r.success) {
    const replication = input.replication as { target?: number; minimum?: number } | undefined;
    const target = replication?.target ?? 3;
    const minimum = replication?.minimum ?? 2;
    if (minimum > target) {
      setPath(input, 'replication.minimum', target);
      issues.push({ path: 'replication.minimum', message: `${minimum} is above replication.target ${target}; using ${target}` });
    }
    r = sharedConfigSchema.safeParse(input);
  }
  if (!r.success) {
    // Field values are validated one by one on the way in, so this is only reachable through a future
    // cross-field rule; drop the offending fields rather than stop the reserve.
    for (const issue of issuesOf(r.error)) issues.push({ path: issue.path, message: `${issue.message}; using the default` });
    return { config: defaultSharedConfig(), issues };
  }
  return { config: r.data, issues };
}

/** The warning window for one limitation: its override, else the global window. */
export function warningWindowFor(config: SharedConfig, limitation: Limitation): number {
  return config.events.warningWindowOverrides[limitation] ?? config.events.warningWindowMs;
}

// ------------------------------------------------------------------------------------------------ local

export const localConfigSchema = z.strictObject({
  /** Addresses this Box listens on. */
  listen: z.array(multiaddr).min(1).max(32).default(['/ip4/0.0.0.0/tcp/0']),
  /** Addresses to tell peers, when listen addresses are not reachable as is (NAT, port forwarding). */
  announce: z.array(multiaddr).max(32).default([]),
  /** Where the Box's key pair file lives (relative paths are under the data dir). */
  keyFile: z.string().min(1).max(4096).default('keys/box.key'),
  /** Bytes this Box offers to the reserve (its capacity in the membership state). */
  capacity: byteCount.optional(),
  /** This Box's failure domain. */
  region: regionName.optional(),
});

export type LocalConfig = z.output<typeof localConfigSchema>;

/** Validate a Box's local config. Throws ConfigError listing every bad field. */
export function parseLocalConfig(input: unknown): LocalConfig {
  const r = localConfigSchema.safeParse(input ?? {});
  if (!r.success) throw new ConfigError(issuesOf(r.error), 'local configuration');
  return r.data;
}
