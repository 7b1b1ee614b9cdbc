/**
 * The LimitationWatcher turns observations of limited quantities into "limitation imminent" and "limitation
 * encountered" conditions (through the ConditionTracker, so each is raised once and resolved once).
 *
 * Per (limitation, subject) series, at every observation:
 * - value >= limit: "limitation encountered" (failure) opens; an open "imminent" for the series is resolved with
 *   the note 'limit reached'. When the value drops below the limit again, "encountered" is resolved.
 * - otherwise the series' history is forecast (forecastLimit; Theil-Sen by default). When the predicted time is
 *   within the warning window (per-limitation override, else the global default), "limitation imminent" (warning)
 *   opens with the prediction. While it stays open it is raised again only when the prediction changes
 *   materially: the new ETA differs from the last one raised by more than max(20% of the time that was then
 *   remaining, 1 hour) (both configurable). It is resolved once the ETA has been outside the window (or absent)
 *   for `clearAfter` observations in a row, so a forecast wobbling at the window's edge does not flap.
 *
 * The history (at most `maxPoints` per series, one per `minIntervalMs` plus the latest, at most `maxSeries`
 * series, least recently observed evicted) is in memory; open conditions are durable in the tracker, so a restart neither repeats nor loses them. Subjects should
 * be few (the reserve, a keeper): track the largest file/directory rather than every one.
 */
import type { ConditionTracker } from '../events/conditions.ts';
import { conditionKey } from '../events/conditions.ts';
import type { EventEnvelope, LimitationImminentPayload } from '../events/types.ts';
import type { Clock } from '../ports.ts';
import type { Limitation } from './limits.ts';
import { forecastLimit, ForecastMethod } from './trend.ts';
import type { ForecastMethodSpec, ForecastResult, Point } from './trend.ts';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

export interface LimitationWatcherOptions {
  tracker: ConditionTracker;
  clock: Clock;
  /** Global warning window. Default 7 days. */
  warningWindowMs?: number;
  /** Per-limitation windows. */
  windowOverrides?: Partial<Record<Limitation, number>>;
  /** Default Theil-Sen over the last 256 samples. */
  method?: ForecastMethodSpec;
  /** Samples kept per series. Default 256. */
  maxPoints?: number;
  /** Resolution of the history: an observation less than this after the previous kept sample replaces the
   * latest sample instead of adding one (so a metric sampled every minute still keeps days of history).
   * Default 1 hour. */
  minIntervalMs?: number;
  /** Series kept. Default 1024. */
  maxSeries?: number;
  /** Material change of the ETA: more than max(fraction * remaining, minMs). Defaults 0.2 and 1 hour. */
  material?: { fraction?: number; minMs?: number };
  /** Observations outside the window before "imminent" is resolved. Default 3. */
  clearAfter?: number;
}

export interface Observation {
  limitation: Limitation;
  /** '' for the whole reserve; a keeper's BoxId for disk capacity; a path for a directory. */
  subject?: string;
  value: number;
  limit: number;
  /** Default: the clock's now. */
  time?: number;
}

export interface ObserveResult {
  forecast: ForecastResult;
  /** Events raised by this observation (openings, re-raises, resolutions). */
  raised: EventEnvelope[];
}

interface Series {
  points: Point[];
  clearRun: number;
}

/** Is `next` materially different from `previous`, seen at `now`? */
export function materialChange(previous: number, next: number, now: number, fraction = 0.2, minMs = HOUR_MS): boolean {
  const remaining = Math.max(0, previous - now);
  return Math.abs(next - previous) > Math.max(fraction * remaining, minMs);
}

export class LimitationWatcher {
  readonly #tracker: ConditionTracker;
  readonly #clock: Clock;
  #window: number;
  #overrides: Partial<Record<Limitation, number>>;
  readonly #method: ForecastMethodSpec;
  readonly #maxPoints: number;
  readonly #maxSeries: number;
  readonly #minInterval: number;
  readonly #fraction: number;
  readonly #minMs: number;
  readonly #clearAfter: number;
  readonly #series = new Map<string, Series>();

  constructor(options: LimitationWatcherOptions) {
    this.#tracker = options.tracker;
    this.#clock = options.clock;
    this.#window = options.warningWindowMs ?? 7 * DAY_MS;
    this.#overrides = { ...(options.windowOverrides ?? {}) };
    this.#method = options.method ?? ForecastMethod.theilSen;
    this.#maxPoints = Math.max(2, options.maxPoints ?? 256);
    this.#maxSeries = Math.max(1, options.maxSeries ?? 1024);
    this.#minInterval = Math.max(0, options.minIntervalMs ?? HOUR_MS);
    this.#fraction = options.material?.fraction ?? 0.2;
    this.#minMs = options.material?.minMs ?? HOUR_MS;
    this.#clearAfter = Math.max(1, options.clearAfter ?? 3);
  }

  /** Follow a changed configuration: the global warning window and the per-limitation overrides (replaced whole).
   * Takes effect at the next observation. */
  setWindows(warningWindowMs: number, overrides: Partial<Record<Limitation, number>> = {}): void {
    this.#window = warningWindowMs;
    this.#overrides = { ...overrides };
  }

  /** The warning window for `limitation`. */
  windowFor(limitation: Limitation): number {
    return this.#overrides[limitation] ?? this.#window;
  }

  /** The samples held for a series (oldest first). */
  history(limitation: Limitation, subject = ''): Point[] {
    return [...(this.#series.get(`${limitation}\u0000${subject}`)?.points ?? [])];
  }

  #seriesFor(id: string): Series {
    let s = this.#series.get(id);
    if (s) {
      this.#series.delete(id);
    } else {
      s = { points: [], clearRun: 0 };
    }
    this.#series.set(id, s);
    while (this.#series.size > this.#maxSeries) this.#series.delete(this.#series.keys().next().value as string);
    return s;
  }

  async observe(o: Observation): Promise<ObserveResult> {
    const subject = o.subject ?? '';
    const now = o.time ?? this.#clock.now();
    const series = this.#seriesFor(`${o.limitation}\u0000${subject}`);
    const pts = series.points;
    if (pts.length >= 2 && now - pts[pts.length - 2].t < this.#minInterval && now >= pts[pts.length - 1].t) pts[pts.length - 1] = { t: now, v: o.value };
    else pts.push({ t: now, v: o.value });
    if (series.points.length > this.#maxPoints) series.points.splice(0, series.points.length - this.#maxPoints);
    const forecast = forecastLimit(series.points, o.limit, this.#method);
    const raised: EventEnvelope[] = [];
    const note = (e: EventEnvelope | undefined): void => {
      if (e) raised.push(e);
    };
    const imminentKey = conditionKey('limitation-imminent', o.limitation, subject);
    const encounteredKey = conditionKey('limitation-encountered', o.limitation, subject);

    if (o.value >= o.limit) {
      series.clearRun = 0;
      note(await this.#tracker.end(imminentKey, 'limit reached'));
      note(
        await this.#tracker.begin(encounteredKey, {
          kind: 'limitation-encountered',
          severity: 'failure',
          payload: { limitation: o.limitation, subject, value: o.value, limit: o.limit },
        }),
      );
      return { forecast, raised };
    }
    note(await this.#tracker.end(encounteredKey));

    const window = this.windowFor(o.limitation);
    const due = forecast.eta !== null && forecast.eta - now <= window;
    const active = this.#tracker.active(imminentKey);
    if (due && forecast.eta !== null) {
      series.clearRun = 0;
      const payload: LimitationImminentPayload = {
        limitation: o.limitation,
        subject,
        value: o.value,
        limit: o.limit,
        eta: Math.round(forecast.eta),
        method: forecast.method,
        slope: forecast.slope,
        windowMs: window,
      };
      const draft = { kind: 'limitation-imminent', severity: 'warning', payload } as const;
      if (!active) note(await this.#tracker.begin(imminentKey, draft));
      else {
        const previous = (active.payload as LimitationImminentPayload).eta;
        if (materialChange(previous, payload.eta, now, this.#fraction, this.#minMs)) note(await this.#tracker.reraise(imminentKey, draft));
      }
    } else if (active) {
      series.clearRun++;
      if (series.clearRun >= this.#clearAfter) {
        series.clearRun = 0;
        note(await this.#tracker.end(imminentKey, forecast.eta === null ? 'no growth toward the limit' : 'no longer within the warning window'));
      }
    }
    return { forecast, raised };
  }
}
